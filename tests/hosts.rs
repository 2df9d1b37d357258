//! Several hypervisor hosts in one plan, on the testbed: guest g4 plays a
//! second host (its own sshd and network namespace; it shares this
//! machine's PID space and block devices, as a host shares them with its
//! guests), and guest g3 names it as the host it runs on.

mod common;

use common::{Bounded, COMMAND_LIMIT};

use std::process::{Command, Stdio};

use common::exe;
use common::testbed::{
    STATE, guest, plan_text, processes_naming, session_folders, testbed, write_plan,
};
use vmbench::event::{Event, GuestState, LogLevel};
use vmbench::store::Reader;

/// g4 as the `[[host]]` h2.
fn host_h2() -> String {
    format!(
        "[[host]]\nname = \"h2\"\naddress = \"198.18.0.14\"\nuser = \"root\"\n\
         identity = \"{STATE}/id_ed25519\"\nknown_hosts = \"{STATE}/known_hosts\"\n\n"
    )
}

/// g3 on h2: its disk (the loop device behind its image, looked up on h2)
/// and its sshd (a process of h2's), and discovery there.
fn g3_on_h2() -> String {
    guest(3, &format!("{STATE}/known_hosts"))
        // h2 has no view of this machine's veths nor of its cgroups.
        .replace("interface = \"vmbt-g3h\"\n", "")
        .replace("cgroup = \"/vmbench-testbed/g3\"\n", "")
        .replace(
            "name = \"g3\"\n",
            &format!(
                "name = \"g3\"\nhost = \"h2\"\ndiscover = true\n\
                 process = \"sshd -f {STATE}/g3/sshd_config\"\n"
            ),
        )
}

/// Records `plan` to `recording` headless; the session must succeed.
fn record(plan: &std::path::Path, recording: &std::path::Path) {
    let status = Command::new(exe())
        .arg("record")
        .arg(plan)
        .arg("-o")
        .arg(recording)
        .stderr(Stdio::null())
        .status_within(COMMAND_LIMIT);
    assert!(status.success(), "the session failed: {status}");
}

#[test]
fn each_host_samples_itself_and_sees_its_own_guests() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let guests = format!(
        "{}{}{}",
        host_h2(),
        guest(1, &format!("{STATE}/known_hosts")),
        g3_on_h2()
    );
    // The same work on a guest of each host, both netns.
    let benchmarks = "[[benchmark]]\nname = \"cpu-here\"\nworkload = { type = \"cpu\" }\n\
                      duration = \"3s\"\nconcurrency = [1]\nguests = [\"g1\"]\n\n\
                      [[benchmark]]\nname = \"cpu-h2\"\nworkload = { type = \"cpu\" }\n\
                      duration = \"3s\"\nconcurrency = [1]\nguests = [\"g3\"]\n";
    let plan = write_plan(dir.path(), &plan_text(&guests, benchmarks));
    // `check` reaches the host too (its key, vmbench there, its clock).
    let checked = Command::new(exe())
        .args(["check", plan.to_str().expect("utf-8")])
        .output_within(COMMAND_LIMIT);
    let table = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("h2 ") && l.contains("hypervisor-host") && l.contains(" ok ")),
        "{table}"
    );
    let recording = dir.path().join("hosts.vmb");
    record(&plan, &recording);
    let reader = Reader::open(&recording).expect("recording");
    let ids = |source: &str, metric: &str| -> Vec<u32> {
        reader
            .series
            .iter()
            .filter(|s| s.source == source && s.metric == metric)
            .map(|s| s.id)
            .collect()
    };
    let samples = reader.samples(0, u64::MAX).expect("samples");
    let ticks_of = |id: u32| {
        samples
            .iter()
            .filter(|s| s.values.iter().any(|(i, _)| *i == id))
            .count()
    };
    // h2's own counters, from its agent, tick by tick.
    let h2_user = ids("host:h2", "cpu.user");
    assert_eq!(h2_user.len(), 1, "host:h2 cpu.user: {h2_user:?}");
    assert!(ticks_of(h2_user[0]) >= 4, "{} ticks", ticks_of(h2_user[0]));
    assert_eq!(ids("host:h2/vmbench", "cpu.utime").len(), 1);
    // g3 as h2 sees it, defined once: by h2's agent, not by this host.
    for (metric, what) in [("disk.reads", "its disk"), ("cpu.utime", "its sshd")] {
        let found = ids("host-seen:g3", metric);
        assert_eq!(found.len(), 1, "host-seen:g3 {metric} ({what}): {found:?}");
        assert!(ticks_of(found[0]) >= 4);
    }
    // g1 is still seen from here.
    assert_eq!(ids("host-seen:g1", "cpu.cgroup_ns").len(), 1);
    let events = reader.events(0, u64::MAX).expect("events");
    // Discovery ran on h2, where no QEMU, libvirt or Xen guest runs.
    assert!(
        events.iter().any(
            |e| matches!(e, Event::Log { level: LogLevel::Info, text, .. }
            if text.starts_with("h2: g3: not found among this host's guests"))
        ),
        "no word of discovery on h2"
    );
    // h2 was brought up, and took no copy.
    assert!(events.iter().any(|e| matches!(e, Event::GuestState { guest, state: GuestState::Ready { .. }, .. } if guest == "h2")));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::RunSpawned { guest, .. } if guest == "h2"))
    );
    // Nothing of this session is left on h2.
    let (_, folder) = session_folders(&events)
        .into_iter()
        .find(|(g, _)| g == "h2")
        .expect("h2's folder");
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !processes_naming(&format!("{}/vmbench", folder.display())).is_empty() {
        assert!(
            std::time::Instant::now() < gone,
            "vmbench outlived the session on h2"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!folder.exists(), "{} left on h2", folder.display());
    // The report pools a technology across hosts, and splits it by host
    // when asked.
    let technologies = |by_host: bool| -> Vec<String> {
        let mut report = Command::new(exe());
        // Both phases ran on netns guests: one is the other's baseline
        // (forced: where this machine is a VM, any baseline is refused).
        report
            .args([
                "report",
                "--force",
                "--baseline",
                "netns",
                "--format",
                "json",
            ])
            .arg(&recording);
        if by_host {
            report.arg("--by-host");
        }
        let out = report.output_within(COMMAND_LIMIT);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let mut found: Vec<String> = json["technologies"]
            .as_array()
            .expect("technologies")
            .iter()
            .map(|t| t.as_str().expect("text").to_string())
            .collect();
        found.sort();
        found
    };
    assert_eq!(technologies(false), ["netns"]);
    assert_eq!(technologies(true), ["netns", "netns@h2"]);
}

#[test]
fn a_fleet_is_taken_from_an_ansible_inventory() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    // g1 and g2 as netns guests, g4 as their hypervisor host, and g3 in a
    // group the plan does not run.
    let inventory = "[netns]\ng1 ansible_host=198.18.0.11\ng2 ansible_host=198.18.0.12 \
                     vmbench_host=g4 vmbench_sampling=sftp\n\n[spare]\ng3 ansible_host=198.18.0.13\n\n\
                     [hypervisors]\ng4 ansible_host=198.18.0.14\n\n[all:vars]\nansible_user=root\n";
    std::fs::write(dir.path().join("fleet.ini"), inventory).expect("inventory");
    let plan = format!(
        "name = \"fleet\"\ninterval = \"500ms\"\n\n[inventory]\nfile = \"fleet.ini\"\n\
         hypervisors = \"hypervisors\"\nidentity = \"{STATE}/id_ed25519\"\n\
         known_hosts = \"{STATE}/known_hosts\"\n\n[[benchmark]]\nname = \"cpu\"\n\
         workload = {{ type = \"cpu\" }}\nduration = \"2s\"\nconcurrency = [2]\n\
         guests = [\"g1\", \"g2\"]\n"
    );
    let plan = write_plan(dir.path(), &plan);
    let recording = dir.path().join("fleet.vmb");
    record(&plan, &recording);
    // The inventory file is gone; the recording still has the fleet.
    drop(std::fs::remove_file(dir.path().join("fleet.ini")));
    let reader = Reader::open(&recording).expect("recording");
    let events = reader.events(0, u64::MAX).expect("events");
    let mut ran: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::RunSpawned {
                guest, technology, ..
            } => Some((guest.clone(), technology.clone())),
            _ => None,
        })
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [("g1".into(), "netns".into()), ("g2".into(), "netns".into())]
    );
    // g4 was brought up as a host and sampled there; g2's own counters
    // came over SFTP, as its inventory line says.
    assert!(
        reader
            .series
            .iter()
            .any(|s| s.source == "host:g4" && s.metric == "cpu.user")
    );
    assert!(!reader.series.iter().any(|s| s.source == "guest:g2/vmbench"));
    assert!(
        reader
            .series
            .iter()
            .any(|s| s.source == "guest:g2" && s.metric == "cpu.user")
    );
    let replayed = vmbench::plan::LoadedPlan::parse(&reader.header.plan_source, "recording")
        .expect("the recorded plan reads without the inventory");
    assert_eq!(replayed.plan.guests.len(), 3);
    assert_eq!(replayed.plan.hosts.len(), 1);
}
