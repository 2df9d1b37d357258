//! Host counters from /proc, sampled on a drift-free schedule. Samples carry
//! raw cumulative counters; rates are derived by the model.
//!
//! The /proc files stay open and are re-read from offset 0 on each tick, which
//! makes the kernel regenerate them without an open() per file per tick.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use procfs::net::InterfaceDeviceStatus;
use procfs::prelude::*;
use procfs::process::{Io, Stat};
use procfs::{DiskStats, KernelStats, Meminfo};

use crate::bus::EventSink;
use crate::event::{Clock, Event, Nanos, RunId, Sample, SeriesDef, SeriesId, SeriesKind};
use crate::plan::Guest;

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

struct WatchedProcess {
    run: RunId,
    stat: ProcFile,
    io: ProcFile,
    ids: [SeriesId; 4],
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

#[derive(Clone, Copy)]
enum DiskState {
    /// Partitions would count their disk's I/O twice.
    Partition,
    /// Never done I/O (unused loop devices): not worth a series until it does.
    Idle,
    Tracked([SeriesId; 7]),
}

/// vmbench's own process, sampled on every tick.
const OWN_STAT: &str = "/proc/self/stat";
const OWN_IO: &str = "/proc/self/io";

/// The /proc files every machine is sampled from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProcKind {
    Stat,
    Meminfo,
    NetDev,
    Diskstats,
}

impl ProcKind {
    const ALL: [ProcKind; 4] = [
        ProcKind::Stat,
        ProcKind::Meminfo,
        ProcKind::NetDev,
        ProcKind::Diskstats,
    ];

    fn path(self) -> &'static str {
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
enum Machine {
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
struct ProcView {
    prefix: String,
    machine: Machine,
    cpu_total: [SeriesId; 8],
    cpus: Vec<[SeriesId; 8]>,
    context_switches: SeriesId,
    procs_running: SeriesId,
    mem: [SeriesId; 5],
    nets: HashMap<String, [SeriesId; 4]>,
    disks: HashMap<String, DiskState>,
    /// This tick's raw values per interface and per disk, for attribution.
    net_now: HashMap<String, [u64; 4]>,
    disk_now: HashMap<String, [u64; 7]>,
}

impl ProcView {
    fn new(prefix: &str, machine: Machine, registry: &mut Registry) -> Self {
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
            net_now: HashMap::new(),
            disk_now: HashMap::new(),
        }
    }

    fn parse(
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

    fn meminfo(&mut self, bytes: &[u8], values: &mut Vec<(SeriesId, u64)>) -> anyhow::Result<()> {
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
                Some(settled @ (DiskState::Partition | DiskState::Tracked(_))) => settled,
                _ if read.iter().all(|v| *v == 0) => DiskState::Idle,
                _ if self.machine.is_partition(&d.name, &self.disk_now) => DiskState::Partition,
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
                        DiskState::Partition | DiskState::Tracked(_)
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
    all.keys().any(|disk| {
        let Some(rest) = name.strip_prefix(disk.as_str()) else {
            return false;
        };
        let digits = if disk.ends_with(|c: char| c.is_ascii_digit()) {
            rest.strip_prefix('p').unwrap_or("")
        } else {
            rest
        };
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A guest as the host sees it: its interface, its disk, its cgroup or its
/// process, as `host-seen:<guest>` series.
struct HostSeenGuest {
    interface: Option<(String, [SeriesId; 4])>,
    disk: Option<(String, [SeriesId; 7])>,
    cgroup: Option<(ProcFile, CgroupVersion, SeriesId)>,
    process: Option<WatchedProcess>,
    /// The VM process's vCPU threads, each its own source.
    vcpus: Vec<(ProcFile, [SeriesId; 2])>,
    /// A Xen domain's counters from xentop.
    xen: Option<(String, [SeriesId; 7])>,
}

/// What xentop counts of a domain, as host-seen series.
const XEN_METRICS: [&str; 7] = [
    "cpu.xen_ns",
    "net.rx_bytes",
    "net.tx_bytes",
    "disk.reads",
    "disk.writes",
    "disk.read_sectors",
    "disk.write_sectors",
];
const XEN_UNITS: [&str; 7] = ["ns", "bytes", "bytes", "ops", "ops", "sectors", "sectors"];

#[derive(Clone, Copy)]
enum CgroupVersion {
    /// cpu.stat's usage_usec.
    V2,
    /// cpuacct.usage, in nanoseconds.
    V1,
}

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
    xentop: Option<crate::discover::XentopFeed>,
    errors: Vec<String>,
}

impl HostSampler {
    pub fn new(ids: SeriesIds) -> io::Result<Self> {
        let mut registry = Registry::new(ids);
        let view = ProcView::new("host", Machine::Host, &mut registry);
        let own = WatchedProcess {
            run: RunId::MAX,
            stat: ProcFile::open(OWN_STAT)?,
            io: ProcFile::open(OWN_IO)?,
            ids: registry.define("vmbench", PROC_FIELDS, PROC_UNITS, SeriesKind::Counter),
        };
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
        let name = guest.name();
        let source = format!("host-seen:{name}");
        let mut seen = HostSeenGuest {
            interface: None,
            disk: None,
            cgroup: None,
            process: None,
            vcpus: Vec::new(),
            xen: None,
        };
        if let Some(domain) = &guest.xen_domain {
            if self.xentop.is_none() {
                match crate::discover::XentopFeed::start() {
                    Ok(feed) => self.xentop = Some(feed),
                    Err(e) => self.errors.push(format!(
                        "guest {name}: xen_domain needs xentop on this host (a Xen dom0): {e}"
                    )),
                }
            }
            if self.xentop.is_some() {
                let ids =
                    self.registry
                        .define(&source, XEN_METRICS, XEN_UNITS, SeriesKind::Counter);
                seen.xen = Some((domain.clone(), ids));
            }
        }
        if let Some(interface) = &guest.interface {
            seen.interface = Some((
                interface.clone(),
                self.registry.define(
                    &source,
                    NET_METRICS_PREFIXED,
                    NET_UNITS,
                    SeriesKind::Counter,
                ),
            ));
        }
        let device = match (&guest.block_device, &guest.image) {
            (Some(dev), _) => Some(Ok(dev.trim_start_matches("/dev/").to_string())),
            (None, Some(image)) => Some(loop_device_of(std::path::Path::new(image))),
            (None, None) => None,
        };
        match device {
            Some(Ok(dev)) => {
                let ids = self.registry.define(
                    &source,
                    DISK_METRICS_PREFIXED,
                    DISK_UNITS,
                    SeriesKind::Counter,
                );
                seen.disk = Some((dev, ids));
            }
            Some(Err(e)) => self.errors.push(format!("guest {name}: {e}")),
            None => {}
        }
        if let Some(path) = &guest.cgroup {
            match open_cgroup(path) {
                Ok((file, version)) => {
                    let [id] = self.registry.define(
                        &source,
                        ["cpu.cgroup_ns"],
                        ["ns"],
                        SeriesKind::Counter,
                    );
                    seen.cgroup = Some((file, version, id));
                }
                Err(e) => self
                    .errors
                    .push(format!("guest {name}: cgroup {path}: {e}")),
            }
        }
        match find_process(guest) {
            Some(Ok(pid)) => {
                // Its threads that run vCPUs, where QEMU names them: their
                // time is the guest's own; the rest is emulation and I/O.
                for (index, tid, _) in crate::discover::vcpu_threads(pid) {
                    if let Ok(stat) = ProcFile::open(&format!("/proc/{pid}/task/{tid}/stat")) {
                        let ids = self.registry.define(
                            &format!("{source}/vcpu{index}"),
                            ["cpu.utime", "cpu.stime"],
                            ["ticks", "ticks"],
                            SeriesKind::Counter,
                        );
                        seen.vcpus.push((stat, ids));
                    }
                }
                match WatchedProcess::open(RunId::MAX, pid, &source, &mut self.registry) {
                    Ok(p) => seen.process = Some(p),
                    Err(e) => self
                        .errors
                        .push(format!("guest {name}: process {pid}: {e}")),
                }
            }
            Some(Err(e)) => self.errors.push(format!("guest {name}: {e}")),
            None => {}
        }
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
        for (kind, file) in &self.files {
            let parsed = file
                .read_into(&mut self.buf)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| {
                    self.view
                        .parse(*kind, bytes, &mut self.registry, &mut values)
                });
            if let Err(e) = parsed {
                self.errors.push(format!("{}: {e}", kind.path()));
            }
        }
        self.sample_guests(&mut values);
        self.sample_processes(&mut values);
        Sample { t, values }
    }

    fn sample_guests(&mut self, values: &mut Vec<(SeriesId, u64)>) {
        for guest in &mut self.guests {
            if let Some((name, ids)) = &guest.interface {
                if let Some(read) = self.view.net_now.get(name) {
                    values.extend(ids.iter().copied().zip(*read));
                }
            }
            if let Some((name, ids)) = &guest.disk {
                if let Some(read) = self.view.disk_now.get(name) {
                    values.extend(ids.iter().copied().zip(*read));
                }
            }
            if let Some((file, version, id)) = &guest.cgroup {
                if let Some(ns) = file
                    .read_into(&mut self.buf)
                    .ok()
                    .and_then(|b| cgroup_cpu_ns(b, *version))
                {
                    values.push((*id, ns));
                }
            }
            if let Some(p) = &guest.process {
                if !sample_process(p, &mut self.buf, values) {
                    guest.process = None;
                }
            }
            if let (Some((domain, ids)), Some(feed)) = (&guest.xen, &self.xentop)
                && let Some(d) = feed.domain(domain)
            {
                // xentop counts whole seconds and KiB.
                let mut read = vec![
                    d.cpu_seconds * 1_000_000_000,
                    d.net_rx_kib * 1024,
                    d.net_tx_kib * 1024,
                    d.block_reads,
                    d.block_writes,
                ];
                read.extend(d.block_read_sectors);
                read.extend(d.block_write_sectors);
                values.extend(ids.iter().copied().zip(read));
            }
            let buf = &mut self.buf;
            guest.vcpus.retain(|(stat, ids)| {
                let Some(stat) = stat
                    .read_into(buf)
                    .ok()
                    .and_then(|b| Stat::from_read(b).ok())
                else {
                    return false;
                };
                values.extend([(ids[0], stat.utime), (ids[1], stat.stime)]);
                true
            });
        }
    }

    fn sample_processes(&mut self, values: &mut Vec<(SeriesId, u64)>) {
        let buf = &mut self.buf;
        sample_process(&self.own, buf, values);
        // A process that has exited is dropped; its last sample stands.
        self.processes.retain(|p| sample_process(p, buf, values));
    }
}

const NET_METRICS_PREFIXED: [&str; 4] = [
    "net.rx_bytes",
    "net.rx_packets",
    "net.tx_bytes",
    "net.tx_packets",
];
const DISK_METRICS_PREFIXED: [&str; 7] = [
    "disk.reads",
    "disk.read_sectors",
    "disk.read_ms",
    "disk.writes",
    "disk.write_sectors",
    "disk.write_ms",
    "disk.io_ms",
];

impl WatchedProcess {
    fn open(run: RunId, pid: u32, source: &str, registry: &mut Registry) -> io::Result<Self> {
        let stat = ProcFile::open(&format!("/proc/{pid}/stat"))?;
        let io = ProcFile::open(&format!("/proc/{pid}/io"))?;
        let ids = registry.define(source, PROC_FIELDS, PROC_UNITS, SeriesKind::Counter);
        Ok(WatchedProcess { run, stat, io, ids })
    }
}

/// The loop device whose backing file is `image`.
pub fn loop_device_of(image: &std::path::Path) -> Result<String, String> {
    let wanted =
        std::fs::canonicalize(image).map_err(|e| format!("image {}: {e}", image.display()))?;
    let entries = std::fs::read_dir("/sys/block").map_err(|e| format!("/sys/block: {e}"))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let backing = entry.path().join("loop/backing_file");
        if let Ok(text) = std::fs::read_to_string(&backing) {
            if std::path::Path::new(text.trim()) == wanted {
                return Ok(name);
            }
        }
    }
    Err(format!(
        "image {} is not attached to any loop device",
        image.display()
    ))
}

/// The cgroup's CPU counter: v2 where the cgroup exists there, else v1's
/// cpuacct hierarchy.
fn open_cgroup(path: &str) -> Result<(ProcFile, CgroupVersion), String> {
    let path = path.trim_start_matches('/');
    let v2_roots = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];
    for root in v2_roots {
        if std::path::Path::new(&format!("{root}/cgroup.controllers")).exists() {
            if let Ok(f) = ProcFile::open(&format!("{root}/{path}/cpu.stat")) {
                return Ok((f, CgroupVersion::V2));
            }
        }
    }
    for root in ["/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/cpu,cpuacct"] {
        if let Ok(f) = ProcFile::open(&format!("{root}/{path}/cpuacct.usage")) {
            return Ok((f, CgroupVersion::V1));
        }
    }
    Err("not found under cgroup v2 nor v1 cpuacct".into())
}

fn cgroup_cpu_ns(bytes: &[u8], version: CgroupVersion) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    match version {
        CgroupVersion::V1 => text.trim().parse().ok(),
        CgroupVersion::V2 => text
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|us| us * 1000),
    }
}

/// The guest's process from `pid`, `pidfile` or `process` (a regex over
/// /proc/*/cmdline); None when the plan gives none.
fn find_process(guest: &Guest) -> Option<Result<u32, String>> {
    if let Some(pid) = guest.pid {
        return Some(Ok(pid));
    }
    if let Some(file) = &guest.pidfile {
        return Some(
            std::fs::read_to_string(file)
                .map_err(|e| format!("pidfile {file}: {e}"))
                .and_then(|t| {
                    t.trim()
                        .parse()
                        .map_err(|_| format!("pidfile {file} holds no pid"))
                }),
        );
    }
    let pattern = guest.process.as_ref()?;
    let Ok(re) = regex::Regex::new(pattern) else {
        return Some(Err(format!("process pattern {pattern:?} is not valid")));
    };
    let own = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == own {
            continue;
        }
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if re.is_match(cmdline.trim_end()) {
                found.push(pid);
            }
        }
    }
    Some(match found.as_slice() {
        [pid] => Ok(*pid),
        [] => Err(format!("no process matches {pattern:?}")),
        many => Err(format!(
            "{} processes match {pattern:?} ({:?}); make the pattern specific",
            many.len(),
            many
        )),
    })
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
    pub fn open(session: &ssh2::Session, guest: &str, ids: SeriesIds) -> anyhow::Result<Self> {
        use anyhow::Context;
        let sftp = session.sftp().context("opening SFTP")?;
        let mut files = Vec::new();
        for kind in ProcKind::ALL {
            let path = kind.path();
            let file = sftp
                .open(std::path::Path::new(path))
                .with_context(|| format!("opening {path} on the guest"))?;
            files.push((kind, file));
        }
        let mut registry = Registry::new(ids);
        let view = ProcView::new(&format!("guest:{guest}"), Machine::Guest, &mut registry);
        Ok(GuestSampler {
            files,
            buf: Vec::with_capacity(64 << 10),
            registry,
            view,
            errors: Vec::new(),
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

    fn guest_with(identity: &str) -> Guest {
        let source = format!(
            "name = \"t\"\n[[guest]]\nname = \"vm\"\ntransport = \"local\"\ntechnology = \"kvm\"\n{identity}\n\
             [[benchmark]]\nname = \"c\"\nworkload = {{ type = \"cpu\" }}\nduration = \"1s\"\nconcurrency = [1]\n"
        );
        let plan = crate::plan::LoadedPlan::parse(&source, "t.toml").expect("valid plan");
        plan.plan.guests[0].clone()
    }

    #[test]
    fn a_guest_process_is_found_by_pattern_and_by_pidfile() {
        let mut child = std::process::Command::new("sleep")
            .arg("31.4159")
            .spawn()
            .expect("sleep runs");
        // Until exec completes, the child's cmdline is still this test's.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(b"sleep")) {
            assert!(std::time::Instant::now() < deadline, "sleep never ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        let by_pattern = guest_with("process = '^sleep 31\\.4159$'");
        assert_eq!(find_process(&by_pattern), Some(Ok(child.id())));
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("vm.pid");
        std::fs::write(&pidfile, format!("{}\n", child.id())).expect("pidfile");
        let by_file = guest_with(&format!("pidfile = {:?}", pidfile.display().to_string()));
        assert_eq!(find_process(&by_file), Some(Ok(child.id())));
        assert!(matches!(
            find_process(&guest_with("process = '^no such process here$'")),
            Some(Err(e)) if e.contains("no process matches")
        ));

        let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc is readable");
        sampler.watch_guest(&by_pattern);
        let sample = sampler.sample(1);
        let defs = sampler.take_new_series();
        let utime = defs
            .iter()
            .find(|d| d.source == "host-seen:vm" && d.metric == "cpu.utime")
            .expect("host-seen CPU of the guest's process");
        assert!(sample.values.iter().any(|(id, _)| *id == utime.id));
        assert!(sampler.take_errors().is_empty());
        child.kill().expect("kill sleep");
        child.wait().expect("reap sleep");
    }

    #[test]
    fn an_identity_that_cannot_be_found_is_reported_not_fatal() {
        let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc is readable");
        sampler.watch_guest(&guest_with(
            "image = '/nonexistent/vm.img'\ncgroup = '/no/such/cgroup'",
        ));
        sampler.sample(1);
        let errors = sampler.take_errors().join("\n");
        assert!(errors.contains("image /nonexistent/vm.img"), "{errors}");
        assert!(errors.contains("cgroup /no/such/cgroup"), "{errors}");
    }

    #[test]
    fn cgroup_counters_of_both_versions_are_read_in_nanoseconds() {
        let v2 = b"usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        assert_eq!(cgroup_cpu_ns(v2, CgroupVersion::V2), Some(1_500_000));
        assert_eq!(
            cgroup_cpu_ns(b"123456789\n", CgroupVersion::V1),
            Some(123_456_789)
        );
        assert_eq!(cgroup_cpu_ns(b"garbage", CgroupVersion::V1), None);
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
