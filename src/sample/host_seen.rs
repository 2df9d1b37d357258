//! A guest as the host sees it: its interface, its disk, its cgroup, its
//! process and vCPU threads, its Xen domain, as `host-seen:<guest>` series.

use procfs::prelude::*;
use procfs::process::Stat;

use super::proc_view::ProcView;
use super::process::{WatchedProcess, sample_process};
use super::{DISK_UNITS, NET_UNITS, ProcFile, Registry};
use crate::discover::XenDomain;
use crate::event::{RunId, SeriesId, SeriesKind};
use crate::plan::Guest;

/// A guest as the host sees it: its interface, its disk, its cgroup or its
/// process, as `host-seen:<guest>` series.
pub(super) struct HostSeenGuest {
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

impl HostSeenGuest {
    /// Follows a guest through what the host sees of it. Parts that cannot be
    /// found are reported once (in `errors`) and left out; the rest are
    /// sampled. The first guest with a Xen domain starts the xentop feed.
    pub(super) fn open(
        guest: &Guest,
        registry: &mut Registry,
        xentop: &mut Option<XentopFeed>,
        errors: &mut Vec<String>,
    ) -> Self {
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
            if xentop.is_none() {
                match XentopFeed::start() {
                    Ok(feed) => *xentop = Some(feed),
                    Err(e) => errors.push(format!(
                        "guest {name}: xen_domain needs xentop on this host (a Xen dom0): {e}"
                    )),
                }
            }
            if xentop.is_some() {
                let ids = registry.define(&source, XEN_METRICS, XEN_UNITS, SeriesKind::Counter);
                seen.xen = Some((domain.clone(), ids));
            }
        }
        if let Some(interface) = &guest.interface {
            seen.interface = Some((
                interface.clone(),
                registry.define(
                    &source,
                    NET_METRICS_PREFIXED,
                    NET_UNITS,
                    SeriesKind::Counter,
                ),
            ));
        }
        let device = match (&guest.block_device, &guest.image) {
            (Some(dev), _) => Some(Ok(dev.trim_start_matches("/dev/").to_string())),
            (None, Some(image)) => {
                Some(crate::discover::loop_device_of(std::path::Path::new(image)))
            }
            (None, None) => None,
        };
        match device {
            Some(Ok(dev)) => {
                let ids = registry.define(
                    &source,
                    DISK_METRICS_PREFIXED,
                    DISK_UNITS,
                    SeriesKind::Counter,
                );
                seen.disk = Some((dev, ids));
            }
            Some(Err(e)) => errors.push(format!("guest {name}: {e}")),
            None => {}
        }
        if let Some(path) = &guest.cgroup {
            match open_cgroup(path) {
                Ok((file, version)) => {
                    let [id] =
                        registry.define(&source, ["cpu.cgroup_ns"], ["ns"], SeriesKind::Counter);
                    seen.cgroup = Some((file, version, id));
                }
                Err(e) => errors.push(format!("guest {name}: cgroup {path}: {e}")),
            }
        }
        match find_process(guest) {
            Some(Ok(pid)) => {
                // Its threads that run vCPUs, where QEMU names them: their
                // time is the guest's own; the rest is emulation and I/O.
                for (index, tid, _) in crate::discover::vcpu_threads(pid) {
                    if let Ok(stat) = ProcFile::open(&format!("/proc/{pid}/task/{tid}/stat")) {
                        let ids = registry.define(
                            &format!("{source}/vcpu{index}"),
                            ["cpu.utime", "cpu.stime"],
                            ["ticks", "ticks"],
                            SeriesKind::Counter,
                        );
                        seen.vcpus.push((stat, ids));
                    }
                }
                match WatchedProcess::open(RunId::MAX, pid, &source, registry) {
                    Ok(p) => seen.process = Some(p),
                    Err(e) => errors.push(format!("guest {name}: process {pid}: {e}")),
                }
            }
            Some(Err(e)) => errors.push(format!("guest {name}: {e}")),
            None => {}
        }
        seen
    }

    /// This tick's readings of the guest, from this host's view of its
    /// devices this tick and the files it keeps open.
    pub(super) fn sample(
        &mut self,
        view: &ProcView,
        xentop: Option<&XentopFeed>,
        buf: &mut Vec<u8>,
        values: &mut Vec<(SeriesId, u64)>,
    ) {
        let guest = self;
        {
            if let Some((name, ids)) = &guest.interface {
                if let Some(read) = view.net_now.get(name) {
                    values.extend(ids.iter().copied().zip(*read));
                }
            }
            if let Some((name, ids)) = &guest.disk {
                if let Some(read) = view.disk_now.get(name) {
                    values.extend(ids.iter().copied().zip(*read));
                }
            }
            if let Some((file, version, id)) = &guest.cgroup {
                if let Some(ns) = file
                    .read_into(buf)
                    .ok()
                    .and_then(|b| cgroup_cpu_ns(b, *version))
                {
                    values.push((*id, ns));
                }
            }
            if let Some(p) = &guest.process {
                if !sample_process(p, buf, values) {
                    guest.process = None;
                }
            }
            if let (Some((domain, ids)), Some(feed)) = (&guest.xen, xentop)
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
}

/// A running `xentop -b -d 1`, its latest frame kept for the host sampler.
pub struct XentopFeed {
    child: std::process::Child,
    latest: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, XenDomain>>>,
}

impl XentopFeed {
    pub fn start() -> std::io::Result<Self> {
        use std::io::BufRead;
        let mut child = std::process::Command::new("xentop")
            .args(["-b", "-d", "1"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let latest = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let shared = latest.clone();
        std::thread::Builder::new()
            .name("xentop".into())
            .spawn(move || {
                let mut frames = crate::discover::XentopFrames::default();
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(Ok(domains)) = frames.push(&line)
                        && let Ok(mut map) = shared.lock()
                    {
                        map.clear();
                        map.extend(domains.into_iter().map(|d| (d.name.clone(), d)));
                    }
                }
            })?;
        Ok(XentopFeed { child, latest })
    }

    pub fn domain(&self, name: &str) -> Option<XenDomain> {
        self.latest.lock().ok()?.get(name).cloned()
    }
}

impl Drop for XentopFeed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    // A match whose ancestor also matches and runs the same program is
    // that process's own child with its command line: sshd's re-exec for
    // each connection (until it retitles itself), a QEMU that forks a
    // helper. The guest is the topmost one. A wrapper that names the
    // guest's command line (sudo, timeout, sh -c) is another program: both
    // stay, and the pattern is ambiguous.
    let program = |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let topmost: Vec<u32> = found
        .iter()
        .copied()
        .filter(|&pid| {
            !ancestors(pid)
                .any(|a| found.contains(&a) && program(a).is_some() && program(a) == program(pid))
        })
        .collect();
    Some(match topmost.as_slice() {
        [pid] => Ok(*pid),
        [] => Err(format!("no process matches {pattern:?}")),
        many => Err(format!(
            "{} processes match {pattern:?} ({:?}); make the pattern specific",
            many.len(),
            many
        )),
    })
}

/// A process's parent, its parent's, and so on up to init; the chain ends
/// early where a process has gone.
fn ancestors(pid: u32) -> impl Iterator<Item = u32> {
    std::iter::successors(parent_of(pid), |&p| parent_of(p))
}

/// The parent's pid from /proc/PID/stat (the field after the state, which
/// follows the command name's closing parenthesis); None for init, for a
/// kernel thread's root and for a process that has gone.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let parent: u32 = after_name.split_whitespace().nth(1)?.parse().ok()?;
    (parent != 0).then_some(parent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::Duration;

    use crate::sample::{HostSampler, SeriesIds};

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

    /// Waits until `pid`'s command line contains `text` (until exec, a
    /// child's is its parent's).
    fn wait_for_cmdline(pid: u32, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(text))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{pid} never ran {text}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_pattern_that_also_matches_the_guests_own_children_finds_the_guest() {
        // As sshd re-executes itself for each connection: a parent and its
        // child with the same words; then an unrelated second match.
        let marker = format!("vmbench-guest-{}", std::process::id());
        let mut parent = std::process::Command::new("sh")
            .args(["-c", "sh -c 'sleep 30; :' \"$0\" & wait", &marker])
            .process_group(0)
            .spawn()
            .expect("sh runs");
        wait_for_cmdline(parent.id(), &marker);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .any(|e| {
                let pid = e.file_name().to_string_lossy().parse::<u32>().ok();
                pid.is_some_and(|p| p != parent.id() && parent_of(p) == Some(parent.id()))
                    && std::fs::read(e.path().join("cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("sleep 30; :"))
            })
        {
            assert!(std::time::Instant::now() < deadline, "the child never ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        let guest = guest_with(&format!("process = '{marker}'"));
        assert_eq!(find_process(&guest), Some(Ok(parent.id())));

        let mut stranger = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", &marker])
            .process_group(0)
            .spawn()
            .expect("sh runs");
        wait_for_cmdline(stranger.id(), &marker);
        assert!(matches!(
            find_process(&guest),
            Some(Err(e)) if e.contains("2 processes match")
        ));
        // A wrapper (here sh) whose child is another program with the
        // words: not the same process, so the pattern is ambiguous.
        let seconds = format!("30.{}", std::process::id());
        let mut wrapper = std::process::Command::new("sh")
            .args(["-c", &format!("sleep {seconds}; :")])
            .process_group(0)
            .spawn()
            .expect("sh runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let sleeper = guest_with(&format!("process = 'sleep {seconds}'"));
        while !matches!(find_process(&sleeper), Some(Err(e)) if e.contains("2 processes match")) {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                find_process(&sleeper)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        for child in [&mut parent, &mut stranger, &mut wrapper] {
            // The parent's own child goes with its process group.
            crate::transport::kill_group(child.id());
            child.wait().expect("reap");
        }
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
}
