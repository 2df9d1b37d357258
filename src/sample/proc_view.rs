//! One machine's /proc (stat, meminfo, net/dev, diskstats) as series: this
//! host's, whose /sys can say more about a device, or a guest's, known only
//! by its /proc files.

use std::collections::HashMap;

use anyhow::Context as _;
use procfs::net::InterfaceDeviceStatus;
use procfs::prelude::*;
use procfs::{DiskStats, KernelStats};

use super::own_disks::MountedDevices;
use super::{CPU_FIELDS, DISK_FIELDS, DISK_UNITS, MEM_FIELDS, NET_FIELDS, NET_UNITS, Registry};
use crate::event::{SeriesId, SeriesKind};

#[derive(Clone, Copy)]
pub(super) enum DiskState {
    /// Partitions would count their disk's I/O twice.
    Partition,
    /// Never done I/O (unused loop devices): not worth a series until it does.
    Idle,
    /// The host's or another guest's, seen through a shared kernel.
    Elsewhere,
    Tracked([SeriesId; 7]),
}

/// The /proc files every machine is sampled from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum ProcKind {
    Stat,
    Meminfo,
    NetDev,
    Diskstats,
}

impl ProcKind {
    pub(super) const ALL: [ProcKind; 4] = [
        ProcKind::Stat,
        ProcKind::Meminfo,
        ProcKind::NetDev,
        ProcKind::Diskstats,
    ];

    /// Whether a machine without it cannot be sampled at all; without the
    /// others (gVisor has no /proc/diskstats) their series are left out.
    pub(super) fn required(self) -> bool {
        matches!(self, ProcKind::Stat | ProcKind::Meminfo)
    }

    /// What a machine without this file goes without, said once.
    pub(super) fn missing_note(self) -> String {
        format!(
            "this machine has no {}: its {} series are left out",
            self.path(),
            match self {
                ProcKind::NetDev => "network",
                ProcKind::Diskstats => "disk",
                ProcKind::Stat => "CPU",
                ProcKind::Meminfo => "memory",
            }
        )
    }

    pub(super) fn path(self) -> &'static str {
        match self {
            ProcKind::Stat => "/proc/stat",
            ProcKind::Meminfo => "/proc/meminfo",
            ProcKind::NetDev => "/proc/net/dev",
            ProcKind::Diskstats => "/proc/diskstats",
        }
    }
}

/// Whose /proc a view reads: this host's, whose /sys can say more about a
/// device, or a guest's, known only by its /proc files.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Machine {
    Host,
    Guest,
}

impl Machine {
    fn is_partition(self, name: &str, all: &HashMap<String, [u64; 7]>) -> bool {
        match self {
            Machine::Host => {
                std::path::Path::new(&format!("/sys/class/block/{name}/partition")).exists()
            }
            Machine::Guest => guest_partition(name, all),
        }
    }

    /// A bridge's port (a tap or veth, or a NIC enslaved to a bridge): its
    /// traffic is counted again at the bridge, so it is kept apart.
    fn is_bridge_port(self, name: &str) -> bool {
        self == Machine::Host
            && std::path::Path::new(&format!("/sys/class/net/{name}/master")).exists()
    }
}

/// One machine's /proc counters as series under one source prefix: `host`
/// for this host, `guest:<name>` for what a guest sees of itself.
pub(super) struct ProcView {
    prefix: String,
    machine: Machine,
    cpu_total: [SeriesId; 8],
    cpus: Vec<[SeriesId; 8]>,
    context_switches: SeriesId,
    procs_running: SeriesId,
    mem: [SeriesId; 5],
    nets: HashMap<String, [SeriesId; 4]>,
    disks: HashMap<String, DiskState>,
    /// Set for a guest that shares its host's kernel: only these devices'
    /// disks are its own.
    mounted_only: Option<MountedDevices>,
    /// This tick's raw values per interface and per disk, for attribution.
    pub(super) net_now: HashMap<String, [u64; 4]>,
    pub(super) disk_now: HashMap<String, [u64; 7]>,
}

impl ProcView {
    pub(super) fn new(prefix: &str, machine: Machine, registry: &mut Registry) -> Self {
        let cpu_total = registry.define(prefix, CPU_FIELDS, ["ticks"; 8], SeriesKind::Counter);
        let [context_switches] =
            registry.define(prefix, ["ctxt"], ["switches"], SeriesKind::Counter);
        let [procs_running] =
            registry.define(prefix, ["procs_running"], ["tasks"], SeriesKind::Gauge);
        let mem = registry.define(prefix, MEM_FIELDS, ["bytes"; 5], SeriesKind::Gauge);
        ProcView {
            prefix: prefix.to_string(),
            machine,
            cpu_total,
            cpus: Vec::new(),
            context_switches,
            procs_running,
            mem,
            nets: HashMap::new(),
            disks: HashMap::new(),
            mounted_only: None,
            net_now: HashMap::new(),
            disk_now: HashMap::new(),
        }
    }

    /// Makes the guest's disks only the devices its mounts are on: a guest
    /// that shares its host's kernel (see `own_disks`).
    pub(super) fn keep_only_mounted(&mut self, mounted: MountedDevices) {
        self.mounted_only = Some(mounted);
    }

    /// Reads and parses every file of `files`; a file that cannot be read
    /// or parsed is said in `errors` and the others are kept.
    pub(super) fn read_files(
        &mut self,
        files: &[(ProcKind, super::ProcFile)],
        buf: &mut Vec<u8>,
        registry: &mut Registry,
        values: &mut Vec<(SeriesId, u64)>,
        errors: &mut Vec<String>,
    ) {
        for (kind, file) in files {
            let parsed = file
                .read_into(buf)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| self.parse(*kind, bytes, registry, values));
            if let Err(e) = parsed {
                errors.push(format!("{}: {e}", kind.path()));
            }
        }
    }

    pub(super) fn parse(
        &mut self,
        kind: ProcKind,
        bytes: &[u8],
        registry: &mut Registry,
        values: &mut Vec<(SeriesId, u64)>,
    ) -> anyhow::Result<()> {
        match kind {
            ProcKind::Stat => self.stat(bytes, registry, values),
            ProcKind::Meminfo => self.meminfo(bytes, values),
            ProcKind::NetDev => self.net(bytes, registry, values),
            ProcKind::Diskstats => self.disks(bytes, registry, values),
        }
    }

    fn stat(
        &mut self,
        bytes: &[u8],
        registry: &mut Registry,
        values: &mut Vec<(SeriesId, u64)>,
    ) -> anyhow::Result<()> {
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
            let source = format!("{}/cpu{}", self.prefix, self.cpus.len());
            let ids = registry.define(&source, CPU_FIELDS, ["ticks"; 8], SeriesKind::Counter);
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

    /// The five memory figures, each only when the file has it: gVisor's
    /// meminfo ends early (no Slab and on), which the procfs crate refuses
    /// as a whole.
    fn meminfo(&mut self, bytes: &[u8], values: &mut Vec<(SeriesId, u64)>) -> anyhow::Result<()> {
        let [total, free, available, cached, buffers] = meminfo_fields(
            bytes,
            ["MemTotal", "MemFree", "MemAvailable", "Cached", "Buffers"],
        );
        let total = total.context("no MemTotal")?;
        let free = free.context("no MemFree")?;
        let read = [
            Some(total),
            available.or(Some(free)),
            Some(free),
            cached,
            buffers,
        ];
        for (id, value) in self.mem.iter().zip(read) {
            if let Some(value) = value {
                values.push((*id, value));
            }
        }
        Ok(())
    }

    fn net(
        &mut self,
        bytes: &[u8],
        registry: &mut Registry,
        values: &mut Vec<(SeriesId, u64)>,
    ) -> anyhow::Result<()> {
        let devices = InterfaceDeviceStatus::from_read(bytes)?;
        let mut names: Vec<&String> = devices.0.keys().collect();
        names.sort();
        self.net_now.clear();
        for name in names {
            let dev = &devices.0[name];
            let machine = self.machine;
            let ids = *self.nets.entry(name.clone()).or_insert_with(|| {
                let kind = if machine.is_bridge_port(name) {
                    "port"
                } else {
                    "net"
                };
                registry.define(
                    &format!("{}/{kind}/{name}", self.prefix),
                    NET_FIELDS,
                    NET_UNITS,
                    SeriesKind::Counter,
                )
            });
            let read = [
                dev.recv_bytes,
                dev.recv_packets,
                dev.sent_bytes,
                dev.sent_packets,
            ];
            values.extend(ids.iter().copied().zip(read));
            self.net_now.insert(name.clone(), read);
        }
        Ok(())
    }

    fn disks(
        &mut self,
        bytes: &[u8],
        registry: &mut Registry,
        values: &mut Vec<(SeriesId, u64)>,
    ) -> anyhow::Result<()> {
        let disks = DiskStats::from_read(bytes)?;
        self.disk_now.clear();
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
            self.disk_now.insert(d.name.clone(), read);
        }
        for d in &disks.0 {
            let read = self.disk_now[&d.name];
            let known = self.disks.get(&d.name).copied();
            let state = match known {
                Some(
                    settled @ (DiskState::Partition | DiskState::Tracked(_) | DiskState::Elsewhere),
                ) => settled,
                _ if read.iter().all(|v| *v == 0) => DiskState::Idle,
                _ if self.machine.is_partition(&d.name, &self.disk_now) => DiskState::Partition,
                _ if self.mounted_only.as_ref().is_some_and(|mounted| {
                    let all = disks
                        .0
                        .iter()
                        .map(|p| (p.name.as_str(), p.major as u32, p.minor as u32));
                    !mounted.owns((&d.name, d.major as u32, d.minor as u32), all, partition_of)
                }) =>
                {
                    DiskState::Elsewhere
                }
                _ => DiskState::Tracked(registry.define(
                    &format!("{}/disk/{}", self.prefix, d.name),
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
                        DiskState::Partition | DiskState::Tracked(_) | DiskState::Elsewhere
                    )
                )
            {
                self.disks.insert(d.name.clone(), state);
            }
        }
        Ok(())
    }
}

/// A guest's view of its own disks, where the host's /sys cannot tell: a
/// device named as another plus digits (vda1), or plus `p` and digits after
/// a name ending in a digit (nvme0n1p1), is a partition of it.
fn guest_partition(name: &str, all: &HashMap<String, [u64; 7]>) -> bool {
    all.keys().any(|disk| partition_of(name, disk))
}

/// Whether `name` is a partition of `disk` by their names (see
/// `guest_partition`).
fn partition_of(name: &str, disk: &str) -> bool {
    let Some(rest) = name.strip_prefix(disk) else {
        return false;
    };
    let digits = if disk.ends_with(|c: char| c.is_ascii_digit()) {
        rest.strip_prefix('p').unwrap_or("")
    } else {
        rest
    };
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// The values of `names` in /proc/meminfo's `Name: value [kB]` lines, in
/// bytes, None for a name the file lacks. Read on every tick: no allocation,
/// and the scan stops once all are found (a Linux kernel's five come first).
fn meminfo_fields<const N: usize>(bytes: &[u8], names: [&str; N]) -> [Option<u64>; N] {
    let mut found = [None; N];
    let mut left = N;
    for line in std::str::from_utf8(bytes).unwrap_or_default().lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(slot) = names.iter().position(|n| *n == name.trim()) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(value) = words.next().and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        let scale = if words.next() == Some("kB") { 1024 } else { 1 };
        if found[slot].replace(value * scale).is_none() {
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const GVISOR_MEMINFO: &str = include_str!("../../tests/fixtures/proc/gvisor-meminfo");

    #[test]
    fn gvisors_short_meminfo_gives_its_figures_where_procfs_refuses_it() {
        use procfs::FromRead as _;
        assert!(procfs::Meminfo::from_read(GVISOR_MEMINFO.as_bytes()).is_err());
        let [total, cached, buffers, slab] = meminfo_fields(
            GVISOR_MEMINFO.as_bytes(),
            ["MemTotal", "Cached", "Buffers", "Slab"],
        );
        assert_eq!(total, Some(24_683_772 * 1024));
        assert_eq!(cached, Some(77_032 * 1024));
        assert_eq!(buffers, Some(0));
        assert_eq!(slab, None);
    }

    #[test]
    fn a_guest_tells_partitions_from_disks_by_name() {
        let disks: HashMap<String, [u64; 7]> =
            ["vda", "vda1", "nvme0n1", "nvme0n1p2", "loop0", "sr0"]
                .iter()
                .map(|n| (n.to_string(), [0; 7]))
                .collect();
        let partitions: Vec<&str> = ["vda", "vda1", "nvme0n1", "nvme0n1p2", "loop0", "sr0"]
            .into_iter()
            .filter(|n| guest_partition(n, &disks))
            .collect();
        assert_eq!(partitions, ["vda1", "nvme0n1p2"]);
    }
}
