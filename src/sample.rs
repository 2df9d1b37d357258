//! Host counters from /proc, sampled on a drift-free schedule. Samples carry
//! raw cumulative counters; rates are derived by the model.
//!
//! The /proc files stay open and are re-read from offset 0 on each tick, which
//! makes the kernel regenerate them without an open() per file per tick.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use procfs::net::InterfaceDeviceStatus;
use procfs::prelude::*;
use procfs::process::{Io, Stat};
use procfs::{DiskStats, KernelStats, Meminfo};

use crate::bus::EventSink;
use crate::event::{Clock, Event, Nanos, RunId, Sample, SeriesDef, SeriesId, SeriesKind};

pub const CPU_FIELDS: [&str; 8] = [
    "cpu.user",
    "cpu.nice",
    "cpu.system",
    "cpu.idle",
    "cpu.iowait",
    "cpu.irq",
    "cpu.softirq",
    "cpu.steal",
];
pub const NET_FIELDS: [&str; 4] = ["rx_bytes", "rx_packets", "tx_bytes", "tx_packets"];
pub const DISK_FIELDS: [&str; 7] = [
    "reads",
    "read_sectors",
    "read_ms",
    "writes",
    "write_sectors",
    "write_ms",
    "io_ms",
];
pub const MEM_FIELDS: [&str; 5] = [
    "mem.total",
    "mem.available",
    "mem.free",
    "mem.cached",
    "mem.buffers",
];
pub const PROC_FIELDS: [&str; 4] = ["cpu.utime", "cpu.stime", "io.read_bytes", "io.write_bytes"];

const DISK_UNITS: [&str; 7] = ["ios", "sectors", "ms", "ios", "sectors", "ms", "ms"];
const NET_UNITS: [&str; 4] = ["bytes", "packets", "bytes", "packets"];
const PROC_UNITS: [&str; 4] = ["ticks", "ticks", "bytes", "bytes"];

pub enum SamplerCommand {
    /// Attribute a benchmark copy's process to its run.
    Watch {
        run: RunId,
        pid: u32,
    },
    Unwatch {
        run: RunId,
    },
    Stop,
}

/// A /proc file kept open and re-read whole on each tick.
struct ProcFile {
    file: File,
}

impl ProcFile {
    fn open(path: &str) -> io::Result<Self> {
        Ok(ProcFile {
            file: File::open(path)?,
        })
    }

    fn read_into<'b>(&self, buf: &'b mut Vec<u8>) -> io::Result<&'b [u8]> {
        buf.clear();
        let mut filled = 0;
        loop {
            if buf.len() < filled + 4096 {
                buf.resize(filled + 16384, 0);
            }
            let n = self.file.read_at(&mut buf[filled..], filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(&buf[..filled])
    }
}

struct WatchedProcess {
    run: RunId,
    stat: ProcFile,
    io: ProcFile,
    ids: [SeriesId; 4],
}

/// Allocates series ids and remembers which (source, metric) each one names.
#[derive(Default)]
struct Registry {
    next: SeriesId,
    new_defs: Vec<SeriesDef>,
}

impl Registry {
    fn define<const N: usize>(
        &mut self,
        source: &str,
        metrics: [&str; N],
        units: [&str; N],
        kind: SeriesKind,
    ) -> [SeriesId; N] {
        std::array::from_fn(|i| {
            let id = self.next;
            self.next += 1;
            self.new_defs.push(SeriesDef {
                id,
                source: source.to_string(),
                metric: metrics[i].to_string(),
                unit: units[i].to_string(),
                kind,
            });
            id
        })
    }
}

#[derive(Clone, Copy)]
enum DiskState {
    /// Partitions would count their disk's I/O twice.
    Partition,
    /// Never done I/O (unused loop devices): not worth a series until it does.
    Idle,
    Tracked([SeriesId; 7]),
}

pub struct HostSampler {
    stat: ProcFile,
    net_dev: ProcFile,
    diskstats: ProcFile,
    meminfo: ProcFile,
    buf: Vec<u8>,
    registry: Registry,
    cpu_total: [SeriesId; 8],
    cpus: Vec<[SeriesId; 8]>,
    context_switches: SeriesId,
    procs_running: SeriesId,
    mem: [SeriesId; 5],
    nets: HashMap<String, [SeriesId; 4]>,
    disks: HashMap<String, DiskState>,
    processes: Vec<WatchedProcess>,
    /// vmbench's own process, so that its cost is in every recording.
    own: WatchedProcess,
    errors: Vec<String>,
}

impl HostSampler {
    pub fn new() -> io::Result<Self> {
        let mut registry = Registry::default();
        let cpu_total = registry.define("host", CPU_FIELDS, ["ticks"; 8], SeriesKind::Counter);
        let [context_switches] =
            registry.define("host", ["ctxt"], ["switches"], SeriesKind::Counter);
        let [procs_running] =
            registry.define("host", ["procs_running"], ["tasks"], SeriesKind::Gauge);
        let mem = registry.define("host", MEM_FIELDS, ["bytes"; 5], SeriesKind::Gauge);
        let own = WatchedProcess {
            run: RunId::MAX,
            stat: ProcFile::open("/proc/self/stat")?,
            io: ProcFile::open("/proc/self/io")?,
            ids: registry.define("vmbench", PROC_FIELDS, PROC_UNITS, SeriesKind::Counter),
        };
        Ok(HostSampler {
            stat: ProcFile::open("/proc/stat")?,
            net_dev: ProcFile::open("/proc/net/dev")?,
            diskstats: ProcFile::open("/proc/diskstats")?,
            meminfo: ProcFile::open("/proc/meminfo")?,
            buf: Vec::with_capacity(64 << 10),
            registry,
            cpu_total,
            cpus: Vec::new(),
            context_switches,
            procs_running,
            mem,
            nets: HashMap::new(),
            disks: HashMap::new(),
            processes: Vec::new(),
            own,
            errors: Vec::new(),
        })
    }

    pub fn watch(&mut self, run: RunId, pid: u32) {
        let opened = ProcFile::open(&format!("/proc/{pid}/stat"))
            .and_then(|stat| Ok((stat, ProcFile::open(&format!("/proc/{pid}/io"))?)));
        match opened {
            Ok((stat, io)) => {
                let ids = self.registry.define(
                    &format!("run/{run}"),
                    PROC_FIELDS,
                    PROC_UNITS,
                    SeriesKind::Counter,
                );
                self.processes.push(WatchedProcess { run, stat, io, ids });
            }
            Err(e) => self
                .errors
                .push(format!("cannot sample process {pid} of run {run}: {e}")),
        }
    }

    pub fn unwatch(&mut self, run: RunId) {
        self.processes.retain(|p| p.run != run);
    }

    /// Series first seen since the last call, to be announced before the sample.
    pub fn take_new_series(&mut self) -> Vec<SeriesDef> {
        std::mem::take(&mut self.registry.new_defs)
    }

    /// Problems met while sampling (a file unreadable, a process gone).
    pub fn take_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }

    pub fn sample(&mut self, t: Nanos) -> Sample {
        let mut values = Vec::with_capacity(self.registry.next as usize);
        if let Err(e) = self.sample_stat(&mut values) {
            self.errors.push(format!("/proc/stat: {e}"));
        }
        if let Err(e) = self.sample_meminfo(&mut values) {
            self.errors.push(format!("/proc/meminfo: {e}"));
        }
        if let Err(e) = self.sample_net(&mut values) {
            self.errors.push(format!("/proc/net/dev: {e}"));
        }
        if let Err(e) = self.sample_disks(&mut values) {
            self.errors.push(format!("/proc/diskstats: {e}"));
        }
        self.sample_processes(&mut values);
        Sample { t, values }
    }

    fn sample_stat(&mut self, values: &mut Vec<(SeriesId, u64)>) -> anyhow::Result<()> {
        let bytes = self.stat.read_into(&mut self.buf)?;
        let stats = KernelStats::from_read(bytes, procfs::current_system_info())?;
        let cpu_values = |c: &procfs::CpuTime| {
            [
                c.user,
                c.nice,
                c.system,
                c.idle,
                c.iowait.unwrap_or(0),
                c.irq.unwrap_or(0),
                c.softirq.unwrap_or(0),
                c.steal.unwrap_or(0),
            ]
        };
        values.extend(self.cpu_total.iter().copied().zip(cpu_values(&stats.total)));
        while self.cpus.len() < stats.cpu_time.len() {
            let source = format!("host/cpu{}", self.cpus.len());
            let ids = self
                .registry
                .define(&source, CPU_FIELDS, ["ticks"; 8], SeriesKind::Counter);
            self.cpus.push(ids);
        }
        for (ids, cpu) in self.cpus.iter().zip(&stats.cpu_time) {
            values.extend(ids.iter().copied().zip(cpu_values(cpu)));
        }
        values.push((self.context_switches, stats.ctxt));
        values.push((
            self.procs_running,
            u64::from(stats.procs_running.unwrap_or(0)),
        ));
        Ok(())
    }

    fn sample_meminfo(&mut self, values: &mut Vec<(SeriesId, u64)>) -> anyhow::Result<()> {
        let bytes = self.meminfo.read_into(&mut self.buf)?;
        let m = Meminfo::from_read(bytes)?;
        let read = [
            m.mem_total,
            m.mem_available.unwrap_or(m.mem_free),
            m.mem_free,
            m.cached,
            m.buffers,
        ];
        values.extend(self.mem.iter().copied().zip(read));
        Ok(())
    }

    fn sample_net(&mut self, values: &mut Vec<(SeriesId, u64)>) -> anyhow::Result<()> {
        let bytes = self.net_dev.read_into(&mut self.buf)?;
        let devices = InterfaceDeviceStatus::from_read(bytes)?;
        let mut names: Vec<&String> = devices.0.keys().collect();
        names.sort();
        for name in names {
            let dev = &devices.0[name];
            let ids = match self.nets.get(name) {
                Some(ids) => *ids,
                None => {
                    let ids = self.registry.define(
                        &format!("host/net/{name}"),
                        NET_FIELDS,
                        NET_UNITS,
                        SeriesKind::Counter,
                    );
                    self.nets.insert(name.clone(), ids);
                    ids
                }
            };
            let read = [
                dev.recv_bytes,
                dev.recv_packets,
                dev.sent_bytes,
                dev.sent_packets,
            ];
            values.extend(ids.iter().copied().zip(read));
        }
        Ok(())
    }

    fn sample_disks(&mut self, values: &mut Vec<(SeriesId, u64)>) -> anyhow::Result<()> {
        let bytes = self.diskstats.read_into(&mut self.buf)?;
        let disks = DiskStats::from_read(bytes)?;
        for d in &disks.0 {
            let read = [
                d.reads,
                d.sectors_read,
                d.time_reading,
                d.writes,
                d.sectors_written,
                d.time_writing,
                d.time_in_progress,
            ];
            let known = self.disks.get(&d.name).copied();
            let state = match known {
                Some(settled @ (DiskState::Partition | DiskState::Tracked(_))) => settled,
                _ if read.iter().all(|v| *v == 0) => DiskState::Idle,
                _ if std::path::Path::new(&format!("/sys/class/block/{}/partition", d.name))
                    .exists() =>
                {
                    DiskState::Partition
                }
                _ => DiskState::Tracked(self.registry.define(
                    &format!("host/disk/{}", d.name),
                    DISK_FIELDS,
                    DISK_UNITS,
                    SeriesKind::Counter,
                )),
            };
            if let DiskState::Tracked(ids) = state {
                values.extend(ids.iter().copied().zip(read));
            }
            if known.is_none()
                || matches!(
                    (known, state),
                    (
                        Some(DiskState::Idle),
                        DiskState::Partition | DiskState::Tracked(_)
                    )
                )
            {
                self.disks.insert(d.name.clone(), state);
            }
        }
        Ok(())
    }

    fn sample_processes(&mut self, values: &mut Vec<(SeriesId, u64)>) {
        let buf = &mut self.buf;
        sample_process(&self.own, buf, values);
        // A process that has exited is dropped; its last sample stands.
        self.processes.retain(|p| sample_process(p, buf, values));
    }
}

/// False when the process is gone.
fn sample_process(
    p: &WatchedProcess,
    buf: &mut Vec<u8>,
    values: &mut Vec<(SeriesId, u64)>,
) -> bool {
    let Some(stat) = p
        .stat
        .read_into(buf)
        .ok()
        .and_then(|b| Stat::from_read(b).ok())
    else {
        return false;
    };
    values.push((p.ids[0], stat.utime));
    values.push((p.ids[1], stat.stime));
    if let Some(io) = p.io.read_into(buf).ok().and_then(|b| Io::from_read(b).ok()) {
        values.push((p.ids[2], io.read_bytes));
        values.push((p.ids[3], io.write_bytes));
    }
    true
}

/// Tick k of a schedule that started at `start`: never drifts, and a tick
/// that would already be late is skipped rather than taken in a burst.
pub fn next_tick(start: Nanos, interval: Nanos, now: Nanos) -> (u64, Nanos) {
    let k = (now.saturating_sub(start)) / interval + 1;
    (k, start + k * interval)
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
    let start = clock.now();
    let mut due = start;
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
        (_, due) = next_tick(start, interval, clock.now().max(due));
        loop {
            let wait = due.saturating_sub(clock.now());
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
    fn ticks_stay_on_the_grid_and_late_ones_are_skipped() {
        assert_eq!(next_tick(100, 10, 100), (1, 110));
        assert_eq!(next_tick(100, 10, 109), (1, 110));
        // 35 ns late: ticks 1..3 are gone, the next one stays on the grid.
        assert_eq!(next_tick(100, 10, 135), (4, 140));
    }

    #[test]
    fn real_proc_gives_cpu_memory_and_loopback() {
        let mut sampler = HostSampler::new().expect("/proc is readable");
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
        let mut sampler = HostSampler::new().expect("/proc is readable");
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
