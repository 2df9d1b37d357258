//! Guests vmbench makes itself: fleets made, measured and removed, and
//! nothing of them left after a normal end, a SIGTERM, or a kill -9
//! followed by `vmbench fleet down`. Each test looks only at what its own
//! session made, found by the session's id (in every name it gives).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::testbed::processes_naming;
use vmbench::store::Reader;

const VMBENCH: &str = env!("CARGO_BIN_EXE_vmbench");

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

/// Two netns guests on a /24 of the test's own: tests run at once, and
/// two fleets on one range would answer for each other.
fn two_netns(net: u8) -> String {
    format!(
        "[[fleet]]\nname = \"ns\"\ntechnology = \"netns\"\ncount = 2\nplacement = \"pinned\"\n\
         disk_mib = 96\naddresses = \"198.18.{net}.0/24\"\n"
    )
}

/// Starts `vmbench record`; returns the child and the fleet's session id,
/// read from the bridge it names on stderr, once the first phase ran (or,
/// with `at_once`, as soon as the fleet is made).
fn record(
    plan: &std::path::Path,
    out: &std::path::Path,
    until: &str,
) -> (Child, String, Vec<String>) {
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
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut lines = Vec::new();
    let mut session = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {until:?} within 120 s; stderr: {lines:#?}"));
        if let Some(rest) = line.split("on bridge vb").nth(1) {
            session = Some(rest[..6].to_string());
        }
        let done = line.contains(until);
        lines.push(line);
        if done {
            break;
        }
    }
    // The rest of stderr is drained so that vmbench never blocks on it.
    std::thread::spawn(move || while rx.recv().is_ok() {});
    (child, session.expect("the fleet's bridge was named"), lines)
}

/// Everything of session `id` still on this host, one line each.
fn remains(id: &str) -> Vec<String> {
    let mut found = Vec::new();
    let out = |program: &str, args: &[&str]| {
        String::from_utf8_lossy(
            &Command::new(program)
                .args(args)
                .output()
                .expect("runs")
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
    for needle in [format!("fleets/{id}/"), format!("vb{id}g")] {
        found.extend(
            processes_naming(&needle)
                .into_iter()
                .map(|p| format!("process {p}")),
        );
    }
    found
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
    let (mut child, id, _) = record(&plan, &out, "fleet ns: 2 of 2 guest(s) ready");
    let status = wait_for(&mut child, Duration::from_secs(120));
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
    let (mut child, id, _) = record(&plan, &out, "phase 1/2");
    assert!(!remains(&id).is_empty(), "the fleet exists while it runs");
    let began = Instant::now();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    wait_for(&mut child, Duration::from_secs(30));
    let took = began.elapsed();
    println!("SIGTERM to exit, teardown included: {took:?}");
    // The session's stop promise (5 s) plus the teardown (2 guests).
    assert!(took < Duration::from_secs(10), "{took:?}");
    let remains = remains(&id);
    assert!(remains.is_empty(), "left behind: {remains:#?}");
}

#[test]
fn after_kill_9_fleet_list_names_what_was_left_and_fleet_down_removes_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = plan(dir.path(), &two_netns(42), "20s", "[1, 2]");
    let out = dir.path().join("r.vmb");
    let (mut child, id, _) = record(&plan, &out, "phase 1/2");
    child.kill().expect("kill -9");
    wait_for(&mut child, Duration::from_secs(10));
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
        .output()
        .expect("runs");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains(&format!("{id}  ")) && list.contains("fleet down"),
        "{list}"
    );
    let down = Command::new(VMBENCH)
        .args(["fleet", "down", &id])
        .output()
        .expect("runs");
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
    let (mut child, id, lines) = record(&path, &out, "fleet vm: 1 of 1 guest(s) ready");
    let status = wait_for(&mut child, Duration::from_secs(300));
    assert!(status.success(), "{status}; {lines:#?}");
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
    let mut session = vmbench::model::Session::new(header.clone());
    reader
        .for_each_event(|e| {
            session.apply(e);
            Ok(())
        })
        .expect("events");
    let results = vmbench::results::Results::of_recording(
        &session,
        "r",
        vmbench::results::DEFAULT_SKEW_BOUND,
    );
    let measured: Vec<&str> = results
        .phases
        .iter()
        .filter(|r| r.aggregate.is_some())
        .map(|r| r.technology.as_str())
        .collect();
    assert!(
        measured.contains(&"nspawn") && measured.contains(&"qemu"),
        "{measured:?}"
    );
}
