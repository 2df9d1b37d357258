//! Counters from /proc, sampled on a drift-free schedule, one module per
//! source: this host (`host`), what the host sees of each guest
//! (`host_seen`), what a guest sees of itself (`agent` on the guest, or
//! `guest_sftp` where vmbench cannot run there), all parsed by one view of
//! a machine's /proc (`proc_view`). Samples carry raw cumulative counters;
//! rates are derived by the model.
//!
//! The /proc files stay open and are re-read from offset 0 on each tick, which
//! makes the kernel regenerate them without an open() per file per tick.

pub mod agent;
pub mod agent_hub;
pub mod agent_link;
mod guest_sftp;
mod host;
mod host_seen;
pub mod own_disks;
mod proc_view;
mod process;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::event::{Nanos, RunId, SeriesDef, SeriesId, SeriesKind};

pub use guest_sftp::{GuestSampler, run_guest_sampler};
pub use host::{HostSampler, run_host_sampler};

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

/// The CPU states that count as busy: every one but idle and iowait.
pub const CPU_BUSY_FIELDS: [&str; 6] = [
    "cpu.user",
    "cpu.nice",
    "cpu.system",
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

/// The session's series ids, shared by the host sampler and every guest
/// sampler so that no two series get the same id.
#[derive(Clone, Default)]
pub struct SeriesIds(Arc<AtomicU32>);

/// Allocates series ids and remembers which (source, metric) each one names.
struct Registry {
    ids: SeriesIds,
    count: usize,
    new_defs: Vec<SeriesDef>,
}

impl Registry {
    fn new(ids: SeriesIds) -> Self {
        Registry {
            ids,
            count: 0,
            new_defs: Vec::new(),
        }
    }

    fn define<const N: usize>(
        &mut self,
        source: &str,
        metrics: [&str; N],
        units: [&str; N],
        kind: SeriesKind,
    ) -> [SeriesId; N] {
        std::array::from_fn(|i| {
            let id = self.ids.0.fetch_add(1, Ordering::Relaxed);
            self.count += 1;
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

/// The latest instant at or before `now` that lies `phase` past a multiple
/// of `interval` (the first one, when none is). Every machine samples on such a grid, the host's at
/// multiples of the interval of its CLOCK_MONOTONIC and each guest's
/// shifted by its clock offset, so that a tick's readings from all of
/// them arrive together and are taken in one wake-up.
pub fn grid_before(now: Nanos, interval: Nanos, phase: Nanos) -> Nanos {
    let interval = interval.max(1);
    let past = (now % interval + interval - phase % interval) % interval;
    // Just after boot the grid's instant may be before 0: the next one.
    now.checked_sub(past).unwrap_or(now + interval - past)
}

/// Tick k of a schedule that started at `start`: never drifts, and a tick
/// that would already be late is skipped rather than taken in a burst.
pub fn next_tick(start: Nanos, interval: Nanos, now: Nanos) -> (u64, Nanos) {
    let k = (now.saturating_sub(start)) / interval + 1;
    (k, start + k * interval)
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
    fn grids_fall_on_multiples_of_the_interval_shifted_by_the_phase() {
        assert_eq!(grid_before(1_234, 100, 0), 1_200);
        assert_eq!(grid_before(1_234, 100, 30), 1_230);
        assert_eq!(grid_before(1_234, 100, 40), 1_140);
        assert_eq!(grid_before(1_240, 100, 40), 1_240);
        // A phase past the interval wraps.
        assert_eq!(grid_before(1_234, 100, 130), 1_230);
        // Before the first instant of the grid (a machine just booted).
        assert_eq!(grid_before(20, 100, 50), 50);
    }
}
