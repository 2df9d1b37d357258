//! This host's counters and the processes it watches (each benchmark
//! copy, and vmbench itself), sampled on their own thread.

use std::io;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::host_seen::{HostSeenGuest, XentopFeed};
use super::proc_view::{Machine, ProcKind, ProcView};
use super::process::{WatchedProcess, sample_process};
use super::{ProcFile, Registry, SamplerCommand, SeriesIds, grid_before, next_tick};
use crate::bus::EventSink;
use crate::event::{Clock, Event, Nanos, RunId, Sample, SeriesDef, SeriesId, monotonic_ns};
use crate::plan::Guest;

/// vmbench's own process, sampled on every tick.
const OWN_STAT: &str = "/proc/self/stat";
const OWN_IO: &str = "/proc/self/io";

pub struct HostSampler {
    files: Vec<(ProcKind, ProcFile)>,
    buf: Vec<u8>,
    registry: Registry,
    view: ProcView,
    processes: Vec<WatchedProcess>,
    /// vmbench's own process, so that its cost is in every recording.
    own: WatchedProcess,
    guests: Vec<HostSeenGuest>,
    /// Started for the first guest with a Xen domain.
    xentop: Option<XentopFeed>,
    errors: Vec<String>,
}

impl HostSampler {
    pub fn new(ids: SeriesIds) -> io::Result<Self> {
        let mut registry = Registry::new(ids);
        let view = ProcView::new("host", Machine::Host, &mut registry);
        let own = WatchedProcess::open_at(RunId::MAX, "self", "vmbench", &mut registry)?;
        let files = ProcKind::ALL
            .iter()
            .map(|kind| Ok((*kind, ProcFile::open(kind.path())?)))
            .collect::<io::Result<_>>()?;
        Ok(HostSampler {
            files,
            buf: Vec::with_capacity(64 << 10),
            registry,
            view,
            processes: Vec::new(),
            own,
            guests: Vec::new(),
            xentop: None,
            errors: Vec::new(),
        })
    }

    pub fn watch(&mut self, run: RunId, pid: u32) {
        match WatchedProcess::open(run, pid, &format!("run/{run}"), &mut self.registry) {
            Ok(p) => self.processes.push(p),
            Err(e) => self
                .errors
                .push(format!("cannot sample process {pid} of run {run}: {e}")),
        }
    }

    pub fn unwatch(&mut self, run: RunId) {
        self.processes.retain(|p| p.run != run);
    }

    /// Follows a guest through what the host sees of it. Parts that cannot be
    /// found are reported once and left out; the rest are sampled.
    pub fn watch_guest(&mut self, guest: &Guest) {
        let seen = HostSeenGuest::open(
            guest,
            &mut self.registry,
            &mut self.xentop,
            &mut self.errors,
        );
        self.guests.push(seen);
    }

    /// Series first seen since the last call, to be announced before the sample.
    pub fn take_new_series(&mut self) -> Vec<SeriesDef> {
        std::mem::take(&mut self.registry.new_defs)
    }

    /// The files every tick reads before any watched process or guest: this
    /// host's counters and vmbench's own, so a benchmark's floor reads the same.
    pub fn files_per_tick() -> Vec<&'static str> {
        let mut files: Vec<&str> = ProcKind::ALL.iter().map(|kind| kind.path()).collect();
        files.extend([OWN_STAT, OWN_IO]);
        files
    }

    /// Problems met while sampling (a file unreadable, a process gone).
    pub fn take_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }

    pub fn sample(&mut self, t: Nanos) -> Sample {
        let mut values = Vec::with_capacity(self.registry.count);
        self.view.read_files(
            &self.files,
            &mut self.buf,
            &mut self.registry,
            &mut values,
            &mut self.errors,
        );
        for guest in &mut self.guests {
            guest.sample(&self.view, self.xentop.as_ref(), &mut self.buf, &mut values);
        }
        self.sample_processes(&mut values);
        Sample { t, values }
    }

    fn sample_processes(&mut self, values: &mut Vec<(SeriesId, u64)>) {
        let buf = &mut self.buf;
        sample_process(&self.own, buf, values);
        // A process that has exited is dropped; its last sample stands.
        self.processes.retain(|p| sample_process(p, buf, values));
    }
}

/// Runs the host sampler on its own thread until told to stop or the bus closes.
pub fn run_host_sampler(
    mut sampler: HostSampler,
    clock: Clock,
    interval: Duration,
    sink: EventSink,
    commands: Receiver<SamplerCommand>,
) {
    let interval = interval.as_nanos() as Nanos;
    // The schedule is kept on this host's monotonic clock, on the grid the
    // guests' agents share.
    let mut due = monotonic_ns();
    let start = grid_before(due, interval, 0);
    loop {
        for def in sampler.take_new_series() {
            if !sink.send(Event::SeriesDefined(def)) {
                return;
            }
        }
        let sample = sampler.sample(clock.now());
        for def in sampler.take_new_series() {
            sink.send(Event::SeriesDefined(def));
        }
        if !sink.send(Event::Sample(sample)) {
            return;
        }
        for text in sampler.take_errors() {
            sink.send(Event::Log {
                t: clock.now(),
                level: crate::event::LogLevel::Warn,
                text,
            });
        }
        (_, due) = next_tick(start, interval, monotonic_ns().max(due));
        loop {
            let wait = due.saturating_sub(monotonic_ns());
            if wait == 0 {
                break;
            }
            match commands.recv_timeout(Duration::from_nanos(wait)) {
                Ok(SamplerCommand::Watch { run, pid }) => sampler.watch(run, pid),
                Ok(SamplerCommand::Unwatch { run }) => sampler.unwatch(run),
                Ok(SamplerCommand::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_proc_gives_cpu_memory_and_loopback() {
        let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc is readable");
        let first = sampler.sample(1);
        let defs = sampler.take_new_series();
        assert!(sampler.take_errors().is_empty());
        let named = |source: &str, metric: &str| {
            defs.iter()
                .find(|d| d.source == source && d.metric == metric)
                .map(|d| d.id)
                .unwrap_or_else(|| panic!("no series {source} {metric}"))
        };
        let value = |id| first.values.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
        assert!(value(named("host", "cpu.idle")).is_some_and(|v| v > 0));
        assert!(value(named("host", "mem.total")).is_some_and(|v| v > 1 << 20));
        assert!(value(named("host/net/lo", "rx_bytes")).is_some());
        assert!(value(named("host/cpu0", "cpu.user")).is_some());
    }

    #[test]
    fn a_watched_process_is_sampled_until_it_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc is readable");
        sampler.watch(7, child.id());
        sampler.sample(1);
        let defs = sampler.take_new_series();
        assert!(
            defs.iter()
                .any(|d| d.source == "run/7" && d.metric == "cpu.utime")
        );
        child.kill().expect("kill sleep");
        child.wait().expect("reap sleep");
        sampler.sample(2);
        assert!(sampler.processes.is_empty());
    }
}
