//! A process's CPU and I/O from its own /proc files, kept open: each
//! benchmark copy's, vmbench's own (on the host and, as the agent, on each
//! guest), and a VM's process as the host sees it.

use std::io;

use procfs::prelude::*;
use procfs::process::{Io, Stat};

use super::{PROC_FIELDS, PROC_UNITS, ProcFile, Registry};
use crate::event::{RunId, SeriesId, SeriesKind};

pub(super) struct WatchedProcess {
    pub(super) run: RunId,
    stat: ProcFile,
    io: ProcFile,
    ids: [SeriesId; 4],
}

impl WatchedProcess {
    pub(super) fn open(
        run: RunId,
        pid: u32,
        source: &str,
        registry: &mut Registry,
    ) -> io::Result<Self> {
        Self::open_at(run, &pid.to_string(), source, registry)
    }

    /// The process at /proc/`dir`: a pid, or `self` for vmbench itself.
    pub(super) fn open_at(
        run: RunId,
        dir: &str,
        source: &str,
        registry: &mut Registry,
    ) -> io::Result<Self> {
        let stat = ProcFile::open(&format!("/proc/{dir}/stat"))?;
        let io = ProcFile::open(&format!("/proc/{dir}/io"))?;
        let ids = registry.define(source, PROC_FIELDS, PROC_UNITS, SeriesKind::Counter);
        Ok(WatchedProcess { run, stat, io, ids })
    }
}

/// False when the process is gone.
pub(super) fn sample_process(
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
