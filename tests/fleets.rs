//! Guests vmbench makes itself: fleets made, measured and removed, and
//! nothing of them left after a normal end, a SIGTERM, or a kill -9
//! followed by `vmbench fleet down`. Each test looks only at what its own
//! session made, found by the session's id (in every name it gives).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Bounded, COMMAND_LIMIT};

use common::testbed::processes_naming;
use vmbench::store::Reader;

const VMBENCH: &str = env!("CARGO_BIN_EXE_vmbench");

/// Held by a test that runs a bare `vmbench fleet down` (which removes
/// every session's leftovers on this host) and by one whose leftovers must
/// outlive a while: they would otherwise race.
static LEFTOVERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn leftovers_to_myself() -> std::sync::MutexGuard<'static, ()> {
    LEFTOVERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A plan of `fleets` and the built-in `cpu` workload at `concurrency`.
fn plan(
    dir: &std::path::Path,
    fleets: &str,
    duration: &str,
    concurrency: &str,
) -> std::path::PathBuf {
    let path = dir.join("plan.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"fleet-test\"\ninterval = \"1s\"\n{fleets}\n\
             [[benchmark]]\nname = \"cpu\"\nworkload = {{ type = \"cpu\" }}\nduration = \"{duration}\"\nconcurrency = {concurrency}\n"
        ),
    )
    .expect("plan written");
    path
}

/// A one-second plan on this host alone.
fn plan_without_fleets(dir: &std::path::Path) -> std::path::PathBuf {
    plan(
        dir,
        "[[guest]]\nname = \"host\"\ntransport = \"local\"\ntechnology = \"bare-metal\"\n",
        "1s",
        "[1]",
    )
}

/// Two netns guests on a /24 of the test's own: tests run at once, and
/// two fleets on one range would answer for each other.
fn two_netns(net: u8) -> String {
    format!(
        "[[fleet]]\nname = \"ns\"\ntechnology = \"netns\"\ncount = 2\nplacement = \"pinned\"\n\
         disk_mib = 96\naddresses = \"198.18.{net}.0/24\"\n"
    )
}

/// A `vmbench record` running, its stderr read line by line as it comes
/// (kept unbounded, so that vmbench never blocks on it).
struct Recording {
    child: Child,
    /// The fleets' session id, read from the first bridge named on stderr.
    id: String,
    lines: Vec<String>,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Recording {
    fn start(plan: &std::path::Path, out: &std::path::Path) -> Self {
        let mut child = Command::new(VMBENCH)
            .args([
                "record",
                &plan.to_string_lossy(),
                "-o",
                &out.to_string_lossy(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vmbench starts");
        let rx = common::stderr_lines(&mut child);
        Recording {
            child,
            id: String::new(),
            lines: Vec::new(),
            stderr: rx,
        }
    }

    /// Reads stderr until a line contains `until`; panics after `limit`.
    fn wait_for_line(&mut self, until: &str, limit: Duration) -> Duration {
        let began = Instant::now();
        let deadline = began + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.stderr.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no {until:?} within {limit:?}; stderr: {:#?}", self.lines)
            });
            if let Some(rest) = line.split("on bridge vb").nth(1) {
                if self.id.is_empty() {
                    self.id = rest[..6].to_string();
                }
            }
            let done = line.contains(until);
            self.lines.push(line);
            if done {
                return began.elapsed();
            }
        }
    }

    /// Everything it said until it ended (within `limit`), and how it ended.
    fn finish(&mut self, limit: Duration) -> std::process::ExitStatus {
        let status = wait_for(&mut self.child, limit);
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            self.lines.push(line);
        }
        status
    }
}

/// A test that fails while its vmbench runs stops it as an operator
/// would (SIGTERM: the fleet is removed), and kills it if that hangs, so
/// that no failed test leaves a session running.
impl Drop for Recording {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        // Long enough for a teardown that waits on virsh.
        let deadline = Instant::now() + Duration::from_secs(60);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `vmbench record` and reads its stderr until `until` (once the
/// first phase ran, or as soon as the fleet is made).
fn record(plan: &std::path::Path, out: &std::path::Path, until: &str) -> Recording {
    let mut recording = Recording::start(plan, out);
    recording.wait_for_line(until, Duration::from_secs(120));
    assert!(!recording.id.is_empty(), "the fleet's bridge was named");
    recording
}

/// Everything of session `id` still on this host, one line each.
fn remains(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    let out = |program: &str, args: &[&str]| {
        String::from_utf8_lossy(
            &Command::new(program)
                .args(args)
                .output_within(COMMAND_LIMIT)
                .stdout,
        )
        .into_owned()
    };
    for line in out("ip", &["-o", "link"]).lines() {
        if line.contains(&format!("vb{id}")) {
            found.push(format!("link: {line}"));
        }
    }
    for line in out("ip", &["netns", "list"]).lines() {
        if line.contains(id) {
            found.push(format!("namespace: {line}"));
        }
    }
    for line in out("losetup", &["-a"]).lines() {
        if line.contains(&format!("vmbench-fleets/{id}")) {
            found.push(format!("loop: {line}"));
        }
    }
    for line in std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
    {
        if line.contains(&format!("fleets/{id}")) {
            found.push(format!("mount: {line}"));
        }
    }
    for path in [
        format!("/run/vmbench/fleets/{id}"),
        format!("/var/tmp/vmbench-fleets/{id}"),
    ] {
        if std::path::Path::new(&path).exists() {
            found.push(format!("file: {path}"));
        }
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroups")
        .flatten()
    {
        let cgroup = hierarchy.path().join(format!("vmbench-fleet-{id}"));
        if cgroup.exists() {
            found.push(format!("cgroup: {}", cgroup.display()));
        }
    }
    // libvirt's overlays of transient disks, beside the shared image.
    for image in std::fs::read_dir("/var/cache/vmbench/images")
        .into_iter()
        .flatten()
        .flatten()
    {
        for file in std::fs::read_dir(image.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file
                .file_name()
                .to_string_lossy()
                .contains(&format!("TRANSIENT-vmbench-{id}-"))
            {
                found.push(format!("file: {}", file.path().display()));
            }
        }
    }
    for needle in [format!("fleets/{id}/"), format!("vb{id}g")] {
        found.extend(
            processes_naming(&needle)
                .into_iter()
                .map(|p| format!("process {p}")),
        );
    }
    found
}

/// A cgroup's CPU quota and period (µs), memory limit (bytes) and cores,
/// read from cgroup v2's files or v1's hierarchies, whichever this host has.
fn cgroup_limits(path: &str) -> (u64, u64, u64, String) {
    let read = |file: String| {
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .trim()
            .to_string()
    };
    let number = |text: String| text.parse::<u64>().expect("a number");
    let root = "/sys/fs/cgroup";
    if std::path::Path::new(&format!("{root}/cgroup.controllers")).exists() {
        let max = read(format!("{root}/{path}/cpu.max"));
        let (quota, period) = max.split_once(' ').expect("quota period");
        return (
            quota.parse().expect("quota"),
            period.parse().expect("period"),
            number(read(format!("{root}/{path}/memory.max"))),
            read(format!("{root}/{path}/cpuset.cpus")),
        );
    }
    (
        number(read(format!("{root}/cpu/{path}/cpu.cfs_quota_us"))),
        number(read(format!("{root}/cpu/{path}/cpu.cfs_period_us"))),
        number(read(format!("{root}/memory/{path}/memory.limit_in_bytes"))),
        read(format!("{root}/cpuset/{path}/cpuset.cpus")),
    )
}

/// The session a recording holds, folded from its events.
fn session_of(reader: &Reader) -> vmbench::model::Session {
    let mut session = vmbench::model::Session::new(reader.header.clone());
    reader
        .for_each_event(|e| {
            session.apply(e);
            Ok(())
        })
        .expect("events");
    session
}

/// The technologies of the phases that gave a figure, in their order.
fn measured_technologies(session: &vmbench::model::Session) -> Vec<String> {
    vmbench::results::Results::of_recording(session, "r", vmbench::results::DEFAULT_SKEW_BOUND)
        .phases
        .iter()
        .filter(|r| r.aggregate.is_some())
        .map(|r| r.technology.clone())
        .collect()
}

/// Why each copy that failed failed, as its recording says.
fn failures(recording: &std::path::Path) -> Vec<String> {
    let events = common::testbed::events_of(recording);
    events
        .iter()
        .filter_map(|e| match e {
            vmbench::event::Event::RunEnded {
                run,
                outcome: vmbench::event::RunOutcome::Failed { reason },
                ..
            } => Some(format!("run {run}: {reason}")),
            _ => None,
        })
        .collect()
}

fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "vmbench did not end within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_netns_fleet_is_made_measured_and_removed_leaving_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = plan(dir.path(), &two_netns(40), "2s", "[1, 2]");
    let out = dir.path().join("r.vmb");
    let mut recording = record(&plan, &out, "fleet ns: 2 of 2 guest(s) ready");
    let id = recording.id.clone();
    // The shape is applied, not only recorded: one core's CPU time, the
    // memory limit, and (pinned) a core of each guest's own.
    for (guest, core) in [("ns-1", "0"), ("ns-2", "1")] {
        assert_eq!(
            cgroup_limits(&format!("vmbench-fleet-{id}/{guest}")),
            (100_000, 100_000, 512 << 20, core.to_string()),
            "{guest}"
        );
    }
    let status = recording.finish(Duration::from_secs(120));
    assert!(status.success(), "{status}");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
    let reader = Reader::open(&out).expect("recording");
    let header = &reader.header;
    assert_eq!(header.fleets.len(), 1);
    let fleet = &header.fleets[0];
    assert_eq!(
        (fleet.technology.as_str(), fleet.count, fleet.vcpus),
        ("netns", 2, 1)
    );
    assert_eq!(fleet.session, id);
    // Pinned: one core each, apart.
    let cores: Vec<_> = fleet.guests.iter().map(|g| g.cores.clone()).collect();
    assert_eq!(cores, [Some("0".to_string()), Some("1".to_string())]);
    assert!(
        fleet.guests.iter().all(|g| g.outcome == "ready"),
        "{fleet:?}"
    );
    // Every phase ran on the fleet and measured both its guests' copies.
    let schedule: Vec<(&str, u32)> = header
        .schedule
        .iter()
        .map(|p| (p.technology.as_str(), p.concurrency))
        .collect();
    assert_eq!(schedule, [("netns", 1), ("netns", 2)]);
}

#[test]
fn sigterm_mid_session_removes_the_fleet() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = plan(dir.path(), &two_netns(41), "20s", "[1, 2]");
    let out = dir.path().join("r.vmb");
    let mut recording = record(&plan, &out, "phase 1/2");
    let id = recording.id.clone();
    assert!(!remains(&id).is_empty(), "the fleet exists while it runs");
    // Not from under a running session, even when named.
    let down = Command::new(VMBENCH)
        .args(["fleet", "down", &id])
        .output_within(COMMAND_LIMIT);
    let said = String::from_utf8_lossy(&down.stdout);
    assert!(
        !down.status.success() && said.contains("still runs; left alone"),
        "{said}"
    );
    let began = Instant::now();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(recording.child.id() as i32, libc::SIGTERM) };
    wait_for(&mut recording.child, Duration::from_secs(30));
    let took = began.elapsed();
    println!("SIGTERM to exit, teardown included: {took:.2?} (bound 6s)");
    // The stop promise (5 s, and 1 s for a loaded 2-core machine), the
    // teardown of two namespace guests (under a second here) inside it.
    assert!(took <= Duration::from_secs(6), "{took:?}");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
}

#[test]
fn after_kill_9_fleet_list_names_what_was_left_and_fleet_down_removes_it() {
    let _alone = leftovers_to_myself();
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = plan(dir.path(), &two_netns(42), "20s", "[1, 2]");
    let out = dir.path().join("r.vmb");
    let mut recording = record(&plan, &out, "phase 1/2");
    let id = recording.id.clone();
    recording.child.kill().expect("kill -9");
    wait_for(&mut recording.child, Duration::from_secs(10));
    let left = remains(&id);
    for kind in ["link", "namespace", "loop", "file", "cgroup", "process"] {
        assert!(
            left.iter().any(|l| l.starts_with(kind)),
            "a kill -9 leaves the {kind}s (else this test proves nothing): {left:#?}"
        );
    }
    // `fleet list` names the leftover.
    let list = Command::new(VMBENCH)
        .args(["fleet", "list"])
        .output_within(COMMAND_LIMIT);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains(&format!("{id}  ")) && list.contains("fleet down"),
        "{list}"
    );
    // The next session, even one without fleets, names it and the command
    // that removes it: its guests take cores from what that session measures.
    let local = dir.path().join("local");
    std::fs::create_dir_all(&local).expect("folder");
    let next = Command::new(VMBENCH)
        .args(["record", &plan_without_fleets(&local).to_string_lossy()])
        .args(["-o", &local.join("r.vmb").to_string_lossy()])
        .output_within(COMMAND_LIMIT);
    let said = String::from_utf8_lossy(&next.stderr);
    assert!(next.status.success(), "{said}");
    assert!(
        said.contains(&format!("the fleet of session {id} was left behind"))
            && said.contains(&format!("`vmbench fleet down {id}`")),
        "{said}"
    );
    let down = Command::new(VMBENCH)
        .args(["fleet", "down", &id])
        .output_within(COMMAND_LIMIT);
    let said = String::from_utf8_lossy(&down.stdout);
    assert!(down.status.success(), "{said}");
    assert!(said.contains(&format!("session {id}: removed")), "{said}");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
}

#[test]
fn a_container_fleet_and_a_qemu_fleet_run_their_phases_apart_with_their_shapes_recorded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fleets = "[[fleet]]\nname = \"ct\"\ntechnology = \"nspawn\"\ncount = 1\ndisk_mib = 96\n\
                  addresses = \"198.18.43.0/24\"\n\
                  [[fleet]]\nname = \"vm\"\ntechnology = \"qemu\"\ncount = 1\nmemory_mib = 512\ndisk_mib = 96\n\
                  addresses = \"198.18.44.0/24\"\n";
    let path = plan(dir.path(), fleets, "2s", "[1]");
    let out = dir.path().join("r.vmb");
    let mut recording = record(&path, &out, "fleet vm: 1 of 1 guest(s) ready");
    let id = recording.id.clone();
    let status = recording.finish(Duration::from_secs(300));
    assert!(status.success(), "{status}; {:#?}", recording.lines);
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
    let reader = Reader::open(&out).expect("recording");
    let header = &reader.header;
    let made: Vec<(&str, u32, u32)> = header
        .fleets
        .iter()
        .map(|f| (f.technology.as_str(), f.count, f.memory_mib))
        .collect();
    assert_eq!(made, [("nspawn", 1, 512), ("qemu", 1, 512)]);
    assert!(header.fleets[1].tool.contains("tcg") || header.fleets[1].tool.contains("kvm"));
    assert!(
        header.fleets.iter().all(|f| f.image.is_some()),
        "the image is named"
    );
    let phases: Vec<&str> = header
        .schedule
        .iter()
        .map(|p| p.technology.as_str())
        .collect();
    assert_eq!(phases, ["nspawn", "qemu"]);
    // Each phase's copies ran on its own technology's guest.
    let measured = measured_technologies(&session_of(&reader));
    assert!(
        measured.iter().any(|t| t == "nspawn") && measured.iter().any(|t| t == "qemu"),
        "{measured:?}"
    );
}

/// Freezes (SIGSTOP) the QEMU of `guest` in fleet `fleet` of session `id`
/// as soon as it has daemonized, long before its guest can boot: a guest
/// that never answers. Returns its pid.
fn freeze_vm(id: &str, fleet: &str, guest: &str) -> i32 {
    let pidfile = format!("/run/vmbench/fleets/{id}/{fleet}/{guest}/qemu.pid");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // QEMU writes the file from its daemon, after the fork; its first
        // process returns (and vmbench goes on) once the daemon is set up.
        let pid = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(pid) = pid.filter(|_| processes_naming(&pidfile).len() == 1) {
            // SAFETY: a signal to the QEMU this test's session started.
            assert_eq!(
                unsafe { libc::kill(pid, libc::SIGSTOP) },
                0,
                "SIGSTOP {pid}"
            );
            return pid;
        }
        assert!(Instant::now() < deadline, "no {pidfile} within 120 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// "ready in 46.2 s" in a fleet's line, as seconds.
fn ready_in(line: &str) -> f64 {
    line.split("ready in ")
        .nth(1)
        .and_then(|r| r.trim_end_matches(" s").parse().ok())
        .unwrap_or_else(|| panic!("no time in {line:?}"))
}

#[test]
fn a_guest_that_never_answers_is_named_and_left_out_and_the_session_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fleets = "[[fleet]]\nname = \"vm\"\ntechnology = \"qemu\"\ncount = 2\nmemory_mib = 384\n\
                  disk_mib = 96\nmin_ready = 1\nready_within = \"45s\"\n\
                  addresses = \"198.18.45.0/24\"\n";
    let path = plan(dir.path(), fleets, "2s", "[1]");
    let out = dir.path().join("r.vmb");
    let mut recording = record(&path, &out, "making 2 qemu guest(s)");
    let id = recording.id.clone();
    let frozen = freeze_vm(&id, "vm", "vm-2");
    // The guest's private host key is not on QEMU's command line, which
    // every user of the host can read.
    let private = std::fs::read(format!(
        "/run/vmbench/fleets/{id}/vm/vm-2/ssh_host_ed25519_key"
    ))
    .expect("the guest's key");
    let pem = String::from_utf8_lossy(&private);
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &private);
    let cmdline = std::fs::read(format!("/proc/{frozen}/cmdline")).expect("cmdline");
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(
        !cmdline.contains(&body[..40]) && !cmdline.contains(&encoded[..40]),
        "{cmdline}"
    );
    recording.wait_for_line("fleet vm: 1 of 2 guest(s) ready", Duration::from_secs(180));
    let took = ready_in(recording.lines.last().expect("the line"));
    // The wait ends at the deadline, not before and not long after: the
    // margin is the two guests' making (a disk, a tap, QEMU's start each)
    // on a loaded 2-core host.
    assert!((45.0..60.0).contains(&took), "ready after {took} s");
    let status = recording.finish(Duration::from_secs(180));
    assert!(status.success(), "{status}; {:#?}", recording.lines);
    let said = recording.lines.join("\n");
    assert!(
        said.contains("vm-2: did not answer within 45s; the end of its log"),
        "{said}"
    );
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
    let reader = Reader::open(&out).expect("recording");
    let header = &reader.header;
    let outcomes: Vec<(&str, bool)> = header.fleets[0]
        .guests
        .iter()
        .map(|g| (g.name.as_str(), g.outcome == "ready"))
        .collect();
    assert_eq!(outcomes, [("vm-1", true), ("vm-2", false)]);
    assert!(
        header.fleets[0].guests[1]
            .outcome
            .starts_with("did not answer within 45s"),
        "{:?}",
        header.fleets[0].guests[1]
    );
    // The plan went on with the guest that came up, and only with it.
    let mut spawned_on = Vec::new();
    reader
        .for_each_event(|e| {
            if let vmbench::event::Event::RunSpawned { guest, .. } = e {
                spawned_on.push(guest.clone());
            }
            Ok(())
        })
        .expect("events");
    assert_eq!(spawned_on, ["vm-1"]);
}

#[test]
fn fewer_guests_than_min_ready_ends_the_session_at_the_deadline_leaving_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fleets = "[[fleet]]\nname = \"vm\"\ntechnology = \"qemu\"\ncount = 1\nmemory_mib = 256\n\
                  disk_mib = 96\nready_within = \"5s\"\naddresses = \"198.18.46.0/24\"\n";
    let path = plan(dir.path(), fleets, "2s", "[1]");
    let out = dir.path().join("r.vmb");
    let began = Instant::now();
    let mut recording = record(&path, &out, "making 1 qemu guest(s)");
    let id = recording.id.clone();
    freeze_vm(&id, "vm", "vm-1");
    let status = recording.finish(Duration::from_secs(120));
    let took = began.elapsed();
    assert!(!status.success(), "{status}");
    let said = recording.lines.join("\n");
    assert!(
        said.contains("fleet vm: 0 of 1 guest(s) came up, fewer than min_ready 1")
            && said.contains("vm-1: did not answer within 5s; the end of its log"),
        "{said}"
    );
    // The deadline (5 s) plus making and removing one VM's resources on a
    // loaded 2-core host (about 2 s here), with room to spare.
    println!("refused after {took:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(!out.exists(), "no recording of a session that never began");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
}

#[test]
fn a_kept_fleet_stays_until_fleet_down_names_it() {
    let _alone = leftovers_to_myself();
    let dir = tempfile::tempdir().expect("temp dir");
    let fleet = format!(
        "{}keep = true\n",
        two_netns(47).replace("count = 2", "count = 1")
    );
    let path = plan(dir.path(), &fleet, "1s", "[1]");
    let out = dir.path().join("r.vmb");
    let mut recording = record(&path, &out, "fleet ns: 1 of 1 guest(s) ready");
    let id = recording.id.clone();
    let status = recording.finish(Duration::from_secs(120));
    assert!(status.success(), "{status}");
    let said = recording.lines.join("\n");
    assert!(
        said.contains(&format!("fleet kept (session {id})"))
            && said.contains("ssh -i ")
            && said.contains(&format!("vmbench fleet down {id}")),
        "{said}"
    );
    assert!(!remains(&id).is_empty(), "the kept fleet is still there");
    let vmbench = |args: &[&str]| {
        let out = Command::new(VMBENCH)
            .args(args)
            .output_within(COMMAND_LIMIT);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let list = vmbench(&["fleet", "list"]);
    assert!(
        list.contains(&format!("kept: `vmbench fleet down {id}`")),
        "{list}"
    );
    // A bare `fleet down` is for what crashes left, not for kept fleets.
    let bare = vmbench(&["fleet", "down"]);
    assert!(
        bare.contains(&format!("session {id}: kept on purpose; left alone")),
        "{bare}"
    );
    assert!(!remains(&id).is_empty(), "a bare fleet down left it");
    let named = vmbench(&["fleet", "down", &id]);
    assert!(named.contains(&format!("session {id}: removed")), "{named}");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
}

#[test]
fn check_on_a_fleet_plan_says_whether_this_host_can_make_the_fleet_and_connects_to_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = plan(dir.path(), &two_netns(48), "1s", "[1]");
    let out = Command::new(VMBENCH)
        .args(["check", &path.to_string_lossy()])
        .output_within(COMMAND_LIMIT);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(
            "fleet ns: 2 netns guest(s), made when a session starts; this host has what they need"
        ),
        "{said}"
    );
    // Its guests are not there yet: no connection is tried, no key asked.
    assert!(!said.contains("198.18.48."), "{said}");
}

#[test]
fn a_gvisor_fleet_and_a_uml_fleet_are_made_measured_from_inside_and_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fleets = "[[fleet]]\nname = \"gv\"\ntechnology = \"gvisor\"\ncount = 1\ndisk_mib = 96\n\
                  addresses = \"198.18.49.0/24\"\n\
                  [[fleet]]\nname = \"um\"\ntechnology = \"uml\"\ncount = 1\nmemory_mib = 384\ndisk_mib = 96\n\
                  addresses = \"198.18.50.0/24\"\n";
    let path = plan(dir.path(), fleets, "2s", "[1]");
    let out = dir.path().join("r.vmb");
    let mut recording = record(&path, &out, "fleet um: 1 of 1 guest(s) ready");
    let id = recording.id.clone();
    let status = recording.finish(Duration::from_secs(300));
    let said = recording.lines.join("\n");
    assert!(status.success(), "{status}; {said}");
    // The agent runs inside both, gVisor's missing /proc files aside.
    assert!(!said.contains("read over SFTP"), "{said}");
    assert!(!said.contains("sampling stopped"), "{said}");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
    let reader = Reader::open(&out).expect("recording");
    let header = &reader.header;
    let made: Vec<(&str, u32)> = header
        .fleets
        .iter()
        .map(|f| (f.technology.as_str(), f.vcpus))
        .collect();
    assert_eq!(made, [("gvisor", 1), ("uml", 1)]);
    assert!(
        header.fleets[0].tool.contains("runsc"),
        "{:?}",
        header.fleets[0]
    );
    assert!(
        header.fleets[1].tool.contains("user-mode Linux"),
        "{:?}",
        header.fleets[1]
    );
    let session = session_of(&reader);
    assert_eq!(measured_technologies(&session), ["gvisor", "uml"]);
    // What each guest saw of itself came from its own agent.
    for guest in ["gv-1", "um-1"] {
        assert!(
            session
                .series_named(&format!("guest:{guest}"), "mem.total")
                .is_some(),
            "{guest}"
        );
    }
}

/// libvirtd and virtlogd as these machines have them: not started by
/// systemd. Started here if they are not running, and stopped by their
/// pids when dropped (only those started here).
struct LibvirtDaemons {
    started: Vec<i32>,
}

impl LibvirtDaemons {
    fn up() -> Self {
        let mut started = Vec::new();
        for (daemon, pidfile) in [
            ("virtlogd", "/run/virtlogd.pid"),
            ("libvirtd", "/run/libvirtd.pid"),
        ] {
            let running = std::fs::read_to_string(pidfile)
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
            if running.is_some() {
                continue;
            }
            let status = Command::new(daemon).arg("-d").status_within(COMMAND_LIMIT);
            assert!(status.success(), "{daemon} -d: {status}");
            let deadline = Instant::now() + Duration::from_secs(20);
            let pid = loop {
                if let Some(pid) = std::fs::read_to_string(pidfile)
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok())
                {
                    break pid;
                }
                assert!(Instant::now() < deadline, "no {pidfile} within 20 s");
                std::thread::sleep(Duration::from_millis(100));
            };
            started.push(pid);
        }
        // libvirtd answers once its socket is up.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new("virsh")
            .args(["-c", "qemu:///system", "version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                Instant::now() < deadline,
                "libvirtd did not answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        LibvirtDaemons { started }
    }
}

impl Drop for LibvirtDaemons {
    fn drop(&mut self) {
        for pid in self.started.iter().rev() {
            // SAFETY: a daemon this test started.
            unsafe { libc::kill(*pid, libc::SIGTERM) };
        }
    }
}

#[test]
fn container_fleets_without_sshd_are_entered_by_command_measured_from_inside_and_removed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fleets = "[[fleet]]\nname = \"ns\"\ntechnology = \"netns\"\ntransport = \"exec\"\ncount = 1\n\
                  disk_mib = 96\naddresses = \"198.18.44.0/24\"\n\
                  [[fleet]]\nname = \"ct\"\ntechnology = \"nspawn\"\ntransport = \"exec\"\ncount = 1\n\
                  disk_mib = 96\naddresses = \"198.18.45.0/24\"\n\
                  [[fleet]]\nname = \"gv\"\ntechnology = \"gvisor\"\ntransport = \"exec\"\ncount = 1\n\
                  disk_mib = 96\naddresses = \"198.18.46.0/24\"\n";
    let path = plan(dir.path(), fleets, "2s", "[1]");
    // A network phase too: its sink is this host's address on each
    // fleet's bridge, found from inside the guest without sshd. vmbench's
    // own sender, not iperf3: iperf3 3.12 under gVisor's ptrace platform
    // fails now and then at its end ("unable to receive results: Resource
    // temporarily unavailable", 2 runs of 8 here), no fault of the link's.
    let text = std::fs::read_to_string(&path).expect("plan")
        + "[[benchmark]]\nname = \"net\"\nworkload = { type = \"net\" }\nduration = \"2s\"\nconcurrency = [1]\n";
    std::fs::write(&path, text).expect("plan written");
    let out = dir.path().join("r.vmb");
    let mut recording = record(&path, &out, "fleet gv: 1 of 1 guest(s) ready");
    let id = recording.id.clone();
    // No sshd was started for any of them.
    let sshd: Vec<String> = processes_naming(&format!("fleets/{id}/"))
        .into_iter()
        .chain(processes_naming("/etc/vmbench/ssh_host_ed25519_key"))
        .filter(|p| p.contains("sshd"))
        .collect();
    assert!(sshd.is_empty(), "sshd runs: {sshd:?}");
    let status = recording.finish(Duration::from_secs(180));
    let said = recording.lines.join("\n");
    assert!(status.success(), "{status}; {said}; {:?}", failures(&out));
    assert!(!said.contains("sampling stopped"), "{said}");
    assert!(!said.contains("no guest-side counters"), "{said}");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
    let reader = Reader::open(&out).expect("recording");
    let session = session_of(&reader);
    assert_eq!(
        measured_technologies(&session),
        ["netns", "nspawn", "gvisor", "netns", "nspawn", "gvisor"]
    );
    // Each guest's agent ran inside it: its own counters are series.
    for guest in ["ns-1", "ct-1", "gv-1"] {
        let prefix = format!("guest:{guest}");
        assert!(
            reader.series.iter().any(|s| s.source.starts_with(&prefix)),
            "{guest}: no series from inside"
        );
    }
}

#[test]
fn a_hung_copy_in_a_gvisor_sandbox_entered_by_runsc_exec_is_killed_inside_it() {
    // Killed at the phase timeout, inside the sandbox: gVisor ends what a
    // `runsc exec` started when its client here is killed, and the kill
    // sent through the prefix follows (that one alone is what reaches a
    // command elsewhere: tests/faults.rs, an exec guest over ssh).
    let _alone = leftovers_to_myself();
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = format!("300.{}", std::process::id());
    let fleet = "[[fleet]]\nname = \"gv\"\ntechnology = \"gvisor\"\ntransport = \"exec\"\ncount = 1\n\
                 disk_mib = 96\naddresses = \"198.18.51.0/24\"\nkeep = true\n";
    let path = dir.path().join("plan.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"hang\"\n{fleet}\n[[benchmark]]\nname = \"hangs\"\nworkload = {{ type = \"custom\", \
             command = [\"sleep\", \"{marker}\"], result_regex = \"never\", metric = \"none\", unit = \"-\" }}\n\
             duration = \"1s\"\ntimeout = \"3s\"\nconcurrency = [1]\n"
        ),
    )
    .expect("plan written");
    let out = dir.path().join("r.vmb");
    let mut recording = record(&path, &out, "fleet gv: 1 of 1 guest(s) ready");
    let id = recording.id.clone();
    let status = recording.finish(Duration::from_secs(120));
    let said = recording.lines.join("\n");
    let down = || {
        Command::new(VMBENCH)
            .args(["fleet", "down", &id])
            .output_within(COMMAND_LIMIT)
    };
    // Inside the sandbox, as its own tools see it: what names the marker
    // (the `[3]` keeps grep and its shell from naming it themselves).
    let inside = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("vmbench-{id}-gv-1"),
            "runsc",
            "--root",
        ])
        .arg(format!("/run/vmbench/fleets/{id}/gv/gv-1/runsc"))
        .args(["--ignore-cgroups", "--network=host", "exec"])
        .arg(format!("vmbench-{id}-gv-1"))
        .args([
            "sh",
            "-c",
            &format!(
                "grep -l '[3]00.{}' /proc/[0-9]*/cmdline; true",
                std::process::id()
            ),
        ])
        .output_within(COMMAND_LIMIT);
    let asked = String::from_utf8_lossy(&inside.stdout).into_owned();
    let refused = String::from_utf8_lossy(&inside.stderr).into_owned();
    down();
    assert!(status.success(), "{status}; {said}");
    assert!(said.contains("timed out after 3s"), "{said}");
    let events = common::testbed::events_of(&out);
    let guest = events
        .iter()
        .find_map(|e| match e {
            vmbench::event::Event::RunSpawned { guest, .. } => Some(guest.clone()),
            _ => None,
        })
        .expect("a copy");
    common::recorded::assert_killed_at_timeout(&events, &guest, Duration::from_secs(3));
    assert!(inside.status.success(), "the sandbox answered: {refused}");
    assert_eq!(asked.trim(), "", "the hung copy lives on in the sandbox");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
}

#[test]
fn a_libvirt_fleet_boots_from_generated_xml_on_a_bridge_of_its_own_and_is_removed() {
    let daemons = LibvirtDaemons::up();
    let dir = tempfile::tempdir().expect("temp dir");
    let fleets = "[[fleet]]\nname = \"lv\"\ntechnology = \"libvirt\"\ncount = 1\nmemory_mib = 384\n\
                  disk_mib = 96\nplacement = \"pinned\"\naddresses = \"198.18.51.0/24\"\n";
    let path = plan(dir.path(), fleets, "2s", "[1]");
    let out = dir.path().join("r.vmb");
    let mut recording = Recording::start(&path, &out);
    // About 36 s of `virsh create` here, then a boot under TCG.
    recording.wait_for_line("fleet lv: 1 of 1 guest(s) ready", Duration::from_secs(400));
    let id = recording.id.clone();
    let domain = format!("vmbench-{id}-lv-1");
    let listed = Command::new("virsh")
        .args(["-c", "qemu:///system", "dumpxml", &domain])
        .output_within(COMMAND_LIMIT);
    let xml = String::from_utf8_lossy(&listed.stdout);
    // On vmbench's bridge, pinned, TCG unless KVM boots here.
    assert!(
        xml.contains(&format!("<source bridge='vb{id}f0'/>")) && xml.contains("cpuset='0'"),
        "{xml}"
    );
    let status = recording.finish(Duration::from_secs(300));
    let said = recording.lines.join("\n");
    assert!(status.success(), "{status}; {said}");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
    let domains = Command::new("virsh")
        .args(["-c", "qemu:///system", "list", "--all", "--name"])
        .output_within(COMMAND_LIMIT);
    let domains = String::from_utf8_lossy(&domains.stdout);
    assert!(!domains.contains(&id), "{domains}");
    // libvirt's own network was never brought up.
    let networks = Command::new("virsh")
        .args(["-c", "qemu:///system", "net-list", "--name"])
        .output_within(COMMAND_LIMIT);
    let networks = String::from_utf8_lossy(&networks.stdout);
    assert!(!networks.contains("default"), "{networks}");
    let reader = Reader::open(&out).expect("recording");
    let header = &reader.header;
    assert_eq!(header.fleets[0].technology, "libvirt");
    assert!(
        header.fleets[0].tool.contains("domain type"),
        "{:?}",
        header.fleets[0]
    );
    // What the host spends on the domain is read from its QEMU process.
    let session = session_of(&reader);
    let host_seen: Vec<String> = session
        .all_series()
        .map(|s| s.def.source.clone())
        .filter(|source| source.starts_with("host-seen:lv-1"))
        .collect();
    assert!(!host_seen.is_empty(), "no host-seen series for lv-1");
    drop(daemons);
}

#[test]
fn the_domain_xml_for_qemu_and_for_xens_libxl_is_valid_to_libvirts_schema() {
    use vmbench::provision::libvirt::{DomainParts, Hypervisor, domain_xml};
    let dir = tempfile::tempdir().expect("temp dir");
    let parts = DomainParts {
        name: "vmbench-abc123-vm-1",
        vcpus: 2,
        memory_mib: 512,
        cpuset: Some("0,1".into()),
        kernel: std::path::Path::new("/var/cache/vmbench/images/i/vmlinux"),
        initrd: std::path::Path::new("/var/cache/vmbench/images/i/initrd.cpio"),
        cmdline: "console=ttyS0 vmbench.name=vm-1 vmbench.ip=198.18.16.10/24 vmbench.key=c3NoLWVkMjU1MTk=",
        root: std::path::Path::new("/var/cache/vmbench/images/i/root.img"),
        data: "/dev/loop9",
        bridge: "vbabc123f0",
        tap: "vbabc123g0",
        mac: "52:54:00:ab:00:00",
        console: std::path::Path::new("/run/vmbench/fleets/abc123/vm/vm-1/boot.log"),
    };
    for hypervisor in [Hypervisor::Qemu, Hypervisor::Kvm, Hypervisor::Xen] {
        let file = dir.path().join(format!("{hypervisor:?}.xml"));
        std::fs::write(&file, domain_xml(&parts, hypervisor)).expect("written");
        let out = Command::new("virt-xml-validate")
            .arg(&file)
            .arg("domain")
            .output_within(COMMAND_LIMIT);
        assert!(
            out.status.success(),
            "{hypervisor:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let xen = domain_xml(&parts, Hypervisor::Xen);
    assert!(
        xen.starts_with("<domain type='xen'>") && xen.contains("xenpvh"),
        "{xen}"
    );
}
