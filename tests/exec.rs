//! Guests reached through a command instead of sshd (`transport = "exec"`):
//! a network namespace of this test's own through `ip netns exec`, and a
//! process in PID, mount and network namespaces of its own through
//! `nsenter`. No sshd runs in either; each gets vmbench, copies released
//! at one barrier, a clock offset, an agent, kills at a timeout, and is
//! lost when its namespace goes away. Namespaces and processes are named
//! by this test process's pid, so another session's cannot be mistaken
//! for them.

mod common;

use common::{Bounded, COMMAND_LIMIT};

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::recorded::{
    assert_killed_at_timeout, assert_later_copy_failed_at_once, assert_took, guest_states, lost_at,
    outcomes, record, runs_of, session_end_reason,
};
use common::testbed::{
    assert_nothing_left, events_of, processes_naming, session_folders, wait_for, write_plan,
};
use vmbench::event::{Event, GuestState, PhaseOutcome, RunOutcome};

const SESSION_LIMIT: Duration = Duration::from_secs(120);

/// Two places to run commands in, without sshd: a network namespace, and
/// a `sleep` that is PID 1 of PID, mount and network namespaces of its own.
struct Places {
    netns: String,
    holder: Child,
    /// The holder's namespaces' first process, as this host sees it.
    init_pid: u32,
    marker: String,
}

impl Places {
    fn new(tag: &str) -> Places {
        let me = std::process::id();
        let netns = format!("vmbx-{me}-{tag}");
        let made = Command::new("ip").args(["netns", "add", &netns]).status();
        assert!(made.is_ok_and(|s| s.success()), "ip netns add {netns}");
        let _ = Command::new("ip")
            .args(["-n", &netns, "link", "set", "lo", "up"])
            .status();
        // A marker of this test process and this fixture: `sleep` takes
        // any number of seconds, and the digits of the tag's bytes make one.
        let tag_digits: String = tag.bytes().map(|b| (b % 10).to_string()).collect();
        let marker = format!("1000.{me}{tag_digits}");
        let holder = Command::new("unshare")
            .args(["--fork", "--pid", "--mount-proc", "--net", "sleep", &marker])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        let init_pid = loop {
            let found = processes_naming(&format!("sleep {marker}"))
                .into_iter()
                .filter(|line| !line.contains("unshare"))
                .find_map(|line| line.split_once(':')?.0.parse().ok());
            if let Some(pid) = found {
                break pid;
            }
            assert!(Instant::now() < deadline, "the namespaces' sleep never ran");
            std::thread::sleep(Duration::from_millis(50));
        };
        Places {
            netns,
            holder,
            init_pid,
            marker,
        }
    }

    fn guests(&self, extra: &str) -> String {
        format!(
            "[[guest]]\nname = \"ns\"\ntransport = \"exec\"\ntechnology = \"namespaces\"\n\
             exec = [\"ip\", \"netns\", \"exec\", \"{netns}\"]\n{extra}\n\
             [[guest]]\nname = \"pidns\"\ntransport = \"exec\"\ntechnology = \"namespaces\"\n\
             exec = [\"nsenter\", \"-t\", \"{pid}\", \"-p\", \"-m\", \"-n\"]\n{extra}\n",
            netns = self.netns,
            pid = self.init_pid
        )
    }

    /// Ends the holder's namespaces: PID 1 killed takes every process there
    /// (and unshare, waiting for it, ends too).
    fn end_holder(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.init_pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.holder.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = self.holder.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Processes of the holder's `sleep` still running (none once it ended).
    fn holder_left(&self) -> Vec<String> {
        processes_naming(&format!("sleep {}", self.marker))
            .into_iter()
            .filter(|l| !l.contains("unshare"))
            .collect()
    }

    /// Deletes the network namespace; what runs in it runs on, unreachable
    /// by name, as after `ip netns del` on a real host.
    fn delete_netns(&self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Places {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.netns])
            .output()
            .map(|out| {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            });
        self.delete_netns();
        self.end_holder();
    }
}

fn plan_with(dir: &std::path::Path, guests: &str, benchmarks: &str) -> PathBuf {
    write_plan(
        dir,
        &format!(
            "name = \"exec\"\n[[guest]]\nname = \"host\"\ntransport = \"local\"\n\
             technology = \"bare-metal\"\n{guests}{benchmarks}"
        ),
    )
}

fn cpu_on(guest: &str) -> String {
    format!(
        "[[benchmark]]\nname = \"cpu\"\nworkload = {{ type = \"cpu\" }}\nduration = \"1s\"\n\
         concurrency = [1]\nguests = [\"{guest}\"]\n"
    )
}

fn ready_info(events: &[Event], name: &str) -> vmbench::event::GuestInfo {
    events
        .iter()
        .find_map(|e| match e {
            Event::GuestState {
                guest,
                state: GuestState::Ready { info },
                ..
            } if guest == name => Some((**info).clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{name} never got ready"))
}

/// Series a guest's agent defined (its own counters, seen from inside).
fn agent_series(recording: &std::path::Path, name: &str) -> usize {
    let prefix = format!("guest:{name}");
    let reader = vmbench::store::Reader::open(recording).expect("the recording opens");
    reader
        .series_events()
        .filter(|e| matches!(e, Event::SeriesDefined(def) if def.source.starts_with(&prefix)))
        .count()
}

#[test]
fn exec_guests_take_copies_at_one_barrier_are_sampled_killed_at_a_timeout_and_left_clean() {
    let places = Places::new("run");
    let dir = tempfile::tempdir().expect("tempdir");
    let me = std::process::id();
    let benchmarks = format!(
        "[[benchmark]]\nname = \"cpu\"\nworkload = {{ type = \"cpu\" }}\nduration = \"2s\"\n\
         concurrency = [2]\nguests = [\"ns\", \"pidns\"]\n\n\
         [[benchmark]]\nname = \"hangs\"\nworkload = {{ type = \"custom\", command = [\"sleep\", \"300.{me}\"], \
         result_regex = \"never\", metric = \"none\", unit = \"-\" }}\nduration = \"1s\"\ntimeout = \"3s\"\n\
         concurrency = [2]\nguests = [\"ns\", \"pidns\"]\n\n"
    );
    let plan = plan_with(dir.path(), &places.guests(""), &benchmarks);
    let mut session = record(dir.path(), &plan);
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        outcomes(&events),
        [PhaseOutcome::Completed, PhaseOutcome::TimedOut],
        "{stderr}"
    );
    for guest in ["ns", "pidns"] {
        let runs = runs_of(&events, guest);
        assert_eq!(runs.len(), 2, "{guest}: {runs:?}");
        assert_eq!(runs[0], RunOutcome::Completed, "{guest}: {runs:?}");
        let info = ready_info(&events, guest);
        assert!(
            info.clock_offset_ns.is_some(),
            "{guest}: no clock offset: {info:?}"
        );
        assert!(info.vmbench.is_ok(), "{guest}: {info:?}");
        assert!(
            agent_series(&session.recording, guest) > 0,
            "{guest}: its agent defined no series: {stderr}"
        );
        assert_eq!(
            guest_states(&events, guest),
            ["connecting", "ready", "closed"]
        );
        // Measured again before the second phase, through the link.
        assert!(
            events.iter().any(
                |e| matches!(e, Event::GuestClock { guest: g, uncertainty_ns, .. }
                    if g == guest && *uncertainty_ns < 1_000_000)
            ),
            "{guest}: its clock was not measured again"
        );
    }
    for guest in ["ns", "pidns"] {
        assert_killed_at_timeout(&events, guest, Duration::from_secs(3));
    }
    // The hung tool was killed in both guests, in the PID namespace too
    // (this host sees every process of it).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_naming(&format!("sleep 300.{me}")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "a hung copy survived its kill: {:?}",
            processes_naming(&format!("sleep 300.{me}"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_nothing_left(&events, Duration::from_secs(10));
    let mut places = places;
    places.end_holder();
    assert_eq!(places.holder_left(), Vec::<String>::new());
}

#[test]
fn an_exec_guest_whose_namespaces_go_away_is_lost_within_its_keepalive() {
    let mut places = Places::new("lost");
    let dir = tempfile::tempdir().expect("tempdir");
    let benchmarks = "[[benchmark]]\nname = \"long\"\nworkload = { type = \"cpu\" }\nduration = \"30s\"\n\
         concurrency = [2]\nguests = [\"ns\", \"pidns\"]\n\n\
         [[benchmark]]\nname = \"after\"\nworkload = { type = \"cpu\" }\nduration = \"1s\"\n\
         concurrency = [2]\nguests = [\"ns\", \"pidns\"]\n\n";
    // Lost after 3 refused probes, one a second, or 3 s without an answer.
    let guests = places.guests("keepalive = \"1s\"\nkeepalive_count = 3\n");
    let plan = plan_with(dir.path(), &guests, benchmarks);
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "both copies run", SESSION_LIMIT, |e| {
        e.iter().filter(|e| e.kind() == "run_started").count() == 2
    });
    let ended = session.now();
    places.delete_netns();
    places.end_holder();
    let lost = |e: &[Event]| {
        ["ns", "pidns"]
            .iter()
            .all(|g| guest_states(e, g).contains(&"lost"))
    };
    wait_for(&session.recording, "both guests lost", SESSION_LIMIT, lost);
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = events_of(&session.recording);
    assert_eq!(status.code(), Some(1), "{stderr}");
    for guest in ["ns", "pidns"] {
        // The promise: lost at the third refused probe in a row, one each
        // keepalive (1 s × 3); 2 s of margin for a loaded 2-core machine.
        assert_took(
            &format!("namespaces gone: {guest} lost"),
            ended,
            lost_at(&events, guest),
            Duration::from_secs(5),
        );
        assert_later_copy_failed_at_once(&events, guest);
    }
    for guest in ["ns", "pidns"] {
        let runs = runs_of(&events, guest);
        assert_eq!(runs.len(), 2, "{guest}: {runs:?}");
        for run in &runs {
            assert!(
                matches!(run, RunOutcome::Failed { reason } if reason.contains("guest lost")
                    || reason.contains("killed by SIGKILL")),
                "{guest}: {runs:?}"
            );
        }
    }
    assert_eq!(
        session_end_reason(&events).as_deref(),
        Some("the plan ran to its end")
    );
    // The namespace's janitor lives on without its name and cleans up; the
    // PID namespace's died with it, so its folder goes at the next
    // session's sweep of the same /tmp (it spares folders under 10 s old).
    let (ns_only, pidns_dir): (Vec<Event>, PathBuf) = {
        let folders = session_folders(&events);
        let pidns = folders
            .iter()
            .find(|(g, _)| g == "pidns")
            .expect("pidns folder");
        let ns_only = events
            .iter()
            .filter(|e| !matches!(e, Event::GuestState { guest, .. } if guest == "pidns"))
            .cloned()
            .collect();
        (ns_only, pidns.1.clone())
    };
    assert_nothing_left(&ns_only, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(11));
    let host_tmp = "[[guest]]\nname = \"here\"\ntransport = \"exec\"\ntechnology = \"namespaces\"\n\
                    exec = [\"env\"]\n";
    let swept = Command::new(common::exe())
        .arg("check")
        .arg(plan_with(dir.path(), host_tmp, &cpu_on("here")))
        .output_within(COMMAND_LIMIT);
    assert!(
        swept.status.success(),
        "{}{}",
        String::from_utf8_lossy(&swept.stdout),
        String::from_utf8_lossy(&swept.stderr)
    );
    assert!(
        !pidns_dir.exists(),
        "{} survived the sweep",
        pidns_dir.display()
    );
}

/// A guest where every command starts slowly (as under a `.bashrc` that
/// starts pyenv) is named in a warning, once, that says why and what to do.
#[test]
fn a_guest_whose_commands_start_slowly_is_named_once_with_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let slow = |name: &str| {
        format!(
            "[[guest]]\nname = \"{name}\"\ntransport = \"exec\"\ntechnology = \"slow-shell\"\n\
             exec = [\"sh\", \"-c\", \"sleep 0.3; exec \\\"$@\\\"\", \"slow\"]\n\n"
        )
    };
    let guests = format!("{}{}", slow("s1"), slow("s2"));
    let benchmarks = "[[benchmark]]\nname = \"cpu\"\nworkload = { type = \"cpu\" }\nduration = \"1s\"\n\
                      concurrency = [2]\nguests = [\"s1\", \"s2\"]\n";
    let plan = plan_with(dir.path(), &guests, benchmarks);
    let mut session = record(dir.path(), &plan);
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let warned: Vec<String> = session
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Log { text, .. } if text.contains("a command took") => Some(text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains("~/.bashrc"), "{warned:?}");
    assert!(
        warned[0].starts_with("s1: ") || warned[0].starts_with("s2: "),
        "{warned:?}"
    );
}
