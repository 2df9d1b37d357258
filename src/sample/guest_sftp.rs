//! What a guest sees of itself, read over SFTP: the fallback for a guest
//! where vmbench's agent cannot run.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::own_disks::MountedDevices;
use super::proc_view::{Machine, ProcKind, ProcView};
use super::{Registry, SeriesIds, next_tick};
use crate::bus::EventSink;
use crate::event::{Clock, Event, Nanos, Sample};

/// What a guest sees of itself, read over SFTP from its own /proc on a
/// session of its own: the files stay open on the guest and are re-read from
/// offset 0, so a tick starts no process there.
pub struct GuestSampler {
    files: Vec<(ProcKind, ssh2::File)>,
    buf: Vec<u8>,
    registry: Registry,
    view: ProcView,
    errors: Vec<String>,
    // Declared last so that the files close before the SFTP channel.
    _sftp: ssh2::Sftp,
}

impl GuestSampler {
    /// `mounted_disks_only`: the guest shares this host's kernel (see
    /// `own_disks`).
    pub fn open(
        session: &ssh2::Session,
        guest: &str,
        ids: SeriesIds,
        mounted_disks_only: bool,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        let sftp = session.sftp().context("opening SFTP")?;
        let mut files = Vec::new();
        let mut errors = Vec::new();
        for kind in ProcKind::ALL {
            let path = kind.path();
            match sftp.open(std::path::Path::new(path)) {
                Ok(file) => files.push((kind, file)),
                // SFTP's "no such file": a guest without it (gVisor has no
                // /proc/diskstats) is sampled from the others.
                Err(e) if e.code() == ssh2::ErrorCode::SFTP(2) && !kind.required() => {
                    errors.push(kind.missing_note());
                }
                Err(e) => return Err(e).with_context(|| format!("opening {path} on the guest")),
            }
        }
        let mut registry = Registry::new(ids);
        let mut view = ProcView::new(&format!("guest:{guest}"), Machine::Guest, &mut registry);
        if mounted_disks_only {
            let mut mountinfo = String::new();
            let mut file = sftp
                .open(std::path::Path::new("/proc/self/mountinfo"))
                .context("opening /proc/self/mountinfo on the guest")?;
            std::io::Read::read_to_string(&mut file, &mut mountinfo)
                .context("reading /proc/self/mountinfo on the guest")?;
            view.keep_only_mounted(MountedDevices::parse(&mountinfo));
        }
        Ok(GuestSampler {
            files,
            buf: Vec::with_capacity(64 << 10),
            registry,
            view,
            errors,
            _sftp: sftp,
        })
    }

    pub fn sample(&mut self, clock: &Clock) -> anyhow::Result<Sample> {
        use std::io::{Read, Seek, SeekFrom};
        let t0 = clock.now();
        let mut values = Vec::with_capacity(self.registry.count);
        for (kind, file) in &mut self.files {
            self.buf.clear();
            file.seek(SeekFrom::Start(0))?;
            file.read_to_end(&mut self.buf)?;
            let parsed = self
                .view
                .parse(*kind, &self.buf, &mut self.registry, &mut values);
            if let Err(e) = parsed {
                self.errors.push(format!("{}: {e}", kind.path()));
            }
        }
        // Stamped halfway through the reads, like a clock probe.
        let t = t0 + (clock.now() - t0) / 2;
        Ok(Sample { t, values })
    }
}

/// Samples a guest on its own thread until `stop` says so or the bus
/// closes; a broken session ends it with a warning.
pub fn run_guest_sampler(
    mut sampler: GuestSampler,
    guest: String,
    clock: Clock,
    interval: Duration,
    sink: EventSink,
    stop: Receiver<()>,
) {
    let interval = interval.as_nanos() as Nanos;
    let start = clock.now();
    let mut due = start;
    loop {
        match sampler.sample(&clock) {
            Ok(sample) => {
                for def in std::mem::take(&mut sampler.registry.new_defs) {
                    sink.send(Event::SeriesDefined(def));
                }
                if !sink.send(Event::Sample(sample)) {
                    return;
                }
            }
            Err(e) => {
                sink.send(Event::Log {
                    t: clock.now(),
                    level: crate::event::LogLevel::Warn,
                    text: format!("{guest}: guest-side sampling stopped: {e:#}"),
                });
                return;
            }
        }
        for text in std::mem::take(&mut sampler.errors) {
            sink.send(Event::Log {
                t: clock.now(),
                level: crate::event::LogLevel::Warn,
                text: format!("{guest}: {text}"),
            });
        }
        (_, due) = next_tick(start, interval, clock.now().max(due));
        let wait = due.saturating_sub(clock.now());
        match stop.recv_timeout(Duration::from_nanos(wait)) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}
