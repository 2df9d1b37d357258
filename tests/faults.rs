//! The fault matrix, on the testbed: every row breaks something real (a
//! guest's processes, its link, its sshd, the VM, the tool, a disk, the
//! recording's disk, the operator's patience) under a running `vmbench
//! record` and asserts the outcome, that the session ends by itself or on
//! request, that its recording holds the fault and every other guest's
//! results, and that nothing of this session is left on a guest or on the
//! host. Each time vmbench promises is measured on the session's clock from
//! the fault (or from the tool's start), asserted against the promise plus
//! a stated margin a loaded 2-core machine keeps, and printed
//! (`--nocapture`).

mod common;

use common::{Bounded, COMMAND_LIMIT};

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::exe;
use common::recorded::{
    Recorded, assert_killed_at_timeout, assert_later_copy_failed_at_once, assert_took, count,
    failed_with, guest_states, lost_at, outcomes, phase_started_at, record, run_times, runs_of,
    session_end_reason,
};
use common::testbed::{
    STATE, assert_nothing_left, events_of, guest, plan_text, processes_naming, restore, ssh_to,
    testbed, wait_for, write_plan,
};
use vmbench::event::{Event, PhaseOutcome, RunOutcome};

/// A guest of the testbed that counts as lost after 3 s of silence.
fn quick_guest(i: usize, extra: &str) -> String {
    let text = guest(i, &format!("{STATE}/known_hosts"));
    format!(
        "{}keepalive = \"1s\"\nkeepalive_count = 3\n{extra}\n",
        text.trim_end_matches('\n').to_string() + "\n"
    )
}

fn cpu(name: &str, seconds: u32, guests: &[&str]) -> String {
    let list: Vec<String> = guests.iter().map(|g| format!("\"{g}\"")).collect();
    format!(
        "[[benchmark]]\nname = \"{name}\"\nworkload = {{ type = \"cpu\" }}\nduration = \"{seconds}s\"\n\
         concurrency = [{}]\nguests = [{}]\n\n",
        guests.len(),
        list.join(", ")
    )
}

fn phase_released(events: &[Event], phase: u32) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::PhaseReleased { phase: p, .. } if *p == phase))
}

fn released_at(events: &[Event], phase: u32) -> u64 {
    events
        .iter()
        .find_map(|e| match e {
            Event::PhaseReleased { t, phase: p } if *p == phase => Some(*t),
            _ => None,
        })
        .unwrap_or_else(|| panic!("phase {phase} was never released"))
}

fn phase_ended(events: &[Event], phase: u32) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::PhaseEnded { phase: p, .. } if *p == phase))
}

/// The processes of a namespace guest.
fn guest_pids(i: usize) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "pids", &format!("vmbt-g{i}")])
        .output_within(COMMAND_LIMIT);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn signal_guest(i: usize, signal: &str) {
    for pid in guest_pids(i) {
        let _ = Command::new("kill").args([signal, &pid]).status();
    }
}

/// Kills every process of a namespace guest (its sshd, its sessions, its
/// copies and janitors) and waits until they are gone, so that its sshd
/// can be started again on the same address.
fn kill_guest(i: usize) {
    signal_guest(i, "-KILL");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !guest_pids(i).is_empty() {
        assert!(Instant::now() < deadline, "g{i}'s processes do not die");
        signal_guest(i, "-KILL");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn link(i: usize, state: &str) {
    let ok = Command::new("ip")
        .args(["link", "set", &format!("vmbt-g{i}h"), state])
        .status_within(COMMAND_LIMIT);
    assert!(ok.success(), "ip link set vmbt-g{i}h {state}");
}

/// Brings a cut link back even when the test fails.
struct LinkCut(usize);

impl LinkCut {
    fn new(i: usize) -> Self {
        link(i, "down");
        LinkCut(i)
    }
}

impl Drop for LinkCut {
    fn drop(&mut self) {
        link(self.0, "up");
    }
}

/// Lets a stopped guest go on even when the test fails.
struct Stopped(usize);

impl Drop for Stopped {
    fn drop(&mut self) {
        signal_guest(self.0, "-CONT");
    }
}

const SESSION_LIMIT: Duration = Duration::from_secs(120);

/// A guest whose link is cut or whose processes die is lost within its
/// silence limit (`quick_guest`: keepalive 1 s × 3), and 2 s more on a
/// loaded 2-core machine.
const LOST_BOUND: Duration = Duration::from_secs(5);

/// A janitor removes vmbench from a guest that hears no heartbeat within
/// its patience (twice the silence limit, at least 30 s), 5 s more here.
const JANITOR_BOUND: Duration = Duration::from_secs(35);

/// Nothing of the session is left on its guests by JANITOR_BOUND after
/// `cut_at` (session clock), the last heartbeat a cut-off guest heard.
fn assert_janitor_done(session: &Recorded, events: &[Event], cut_at: u64) {
    let since_cut = || Duration::from_nanos(session.now() - cut_at);
    assert_nothing_left(events, JANITOR_BOUND.saturating_sub(since_cut()));
    eprintln!(
        "janitor: nothing left {:.2?} after the cut (bound {JANITOR_BOUND:?})",
        since_cut()
    );
}

/// The pid of the tool itself (its command line starts with `command`),
/// not of the gate that names it among its arguments.
fn tool_pid(command: &str) -> Option<String> {
    processes_naming(command).into_iter().find_map(|line| {
        let (pid, args) = line.split_once(": ")?;
        args.starts_with(command).then(|| pid.to_string())
    })
}

#[test]
fn every_process_of_a_guest_killed_mid_phase_fails_its_copies_and_nothing_more() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let guests = format!("{}{}", quick_guest(1, ""), quick_guest(2, ""));
    let plan = write_plan(
        dir.path(),
        &plan_text(
            &guests,
            &(cpu("long", 8, &["g1", "g2"]) + &cpu("after", 2, &["g1", "g2"])),
        ),
    );
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "both copies run", SESSION_LIMIT, |e| {
        count(e, "run_started") == 2
    });
    let killed = session.now();
    kill_guest(2);
    wait_for(&session.recording, "g2 lost", SESSION_LIMIT, |e| {
        runs_of(e, "g2").len() == 1
    });
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    // Its connection closes with its sshd; keepalives (1 s × 3) are the
    // slower way to notice.
    assert_took(
        "guest killed: g2 lost",
        killed,
        lost_at(&events, "g2"),
        LOST_BOUND,
    );
    assert_later_copy_failed_at_once(&events, "g2");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        outcomes(&events),
        [PhaseOutcome::Partial, PhaseOutcome::Partial],
        "{stderr}"
    );
    let g2 = runs_of(&events, "g2");
    // The copy was killed with its guest: its sshd may still pass on the
    // copy's death by SIGKILL before it dies itself, or the connection goes
    // first. Either is the truth; the copy is failed, not completed.
    assert!(
        failed_with(&g2[0], "guest lost at") || failed_with(&g2[0], "killed by SIGKILL"),
        "{g2:?}"
    );
    // The next phase does not wait for the dead guest: its copy fails at once.
    assert!(failed_with(&g2[1], "guest lost at"), "{g2:?}");
    assert_eq!(
        runs_of(&events, "g1"),
        [RunOutcome::Completed, RunOutcome::Completed]
    );
    assert_eq!(guest_states(&events, "g2"), ["connecting", "ready", "lost"]);
    assert_eq!(
        session_end_reason(&events).as_deref(),
        Some("the plan ran to its end")
    );
    // g1 is cleaned at once; g2's janitor died with its sshd, so its folder
    // goes at the next connection's sweep.
    let (g1_events, g2_dir): (Vec<Event>, PathBuf) = {
        let folders = common::testbed::session_folders(&events);
        let g2 = folders.iter().find(|(g, _)| g == "g2").expect("g2 folder");
        let g1_only: Vec<Event> = events
            .iter()
            .filter(|e| !matches!(e, Event::GuestState { guest, .. } if guest == "g2"))
            .cloned()
            .collect();
        (g1_only, g2.1.clone())
    };
    assert_nothing_left(&g1_events, Duration::from_secs(10));
    restore();
    // Old enough for the sweep (it spares folders under 10 s old).
    std::thread::sleep(Duration::from_secs(11));
    let swept = Command::new(exe())
        .arg("check")
        .arg(&plan)
        .output_within(COMMAND_LIMIT);
    assert!(
        swept.status.success(),
        "{}",
        String::from_utf8_lossy(&swept.stdout)
    );
    assert!(!g2_dir.exists(), "{} survived the sweep", g2_dir.display());
}

#[test]
fn a_link_cut_mid_phase_loses_the_guest_within_its_keepalive_and_the_night_goes_on() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let guests = format!("{}{}", quick_guest(1, ""), quick_guest(2, ""));
    let plan = write_plan(
        dir.path(),
        &plan_text(
            &guests,
            &(cpu("long", 10, &["g1", "g2"]) + &cpu("after", 2, &["g1", "g2"])),
        ),
    );
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "both copies run", SESSION_LIMIT, |e| {
        count(e, "run_started") == 2
    });
    let cut = LinkCut::new(2);
    let cut_at = session.now();
    wait_for(&session.recording, "g2's copy ends", SESSION_LIMIT, |e| {
        runs_of(e, "g2").len() == 1
    });
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    assert_took(
        "link cut mid-phase: g2 lost",
        cut_at,
        lost_at(&events, "g2"),
        LOST_BOUND,
    );
    assert_later_copy_failed_at_once(&events, "g2");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        outcomes(&events),
        [PhaseOutcome::Partial, PhaseOutcome::Partial]
    );
    let g2 = runs_of(&events, "g2");
    assert!(failed_with(&g2[0], "keepalives unanswered"), "{g2:?}");
    assert!(failed_with(&g2[1], "guest lost at"), "{g2:?}");
    assert_eq!(
        runs_of(&events, "g1"),
        [RunOutcome::Completed, RunOutcome::Completed]
    );
    assert!(stderr.contains("g2 lost at"), "{stderr}");
    // g2's janitor heard its last heartbeat at the cut and removes the
    // folder itself, the link still cut (its sshd never saw the connection
    // close; the link back, a reset would end the session and the janitor
    // with it before its patience).
    assert_janitor_done(&session, &events, cut_at);
    drop(cut);
}

#[test]
fn a_link_cut_between_phases_and_restored_later_is_reconnected() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let guests = format!(
        "{}{}",
        quick_guest(1, ""),
        quick_guest(
            2,
            "reconnect = true\nreconnect_attempts = 8\nreconnect_backoff = \"1s\"\n"
        )
    );
    let plan = write_plan(
        dir.path(),
        &plan_text(
            &guests,
            &(cpu("first", 2, &["g1", "g2"])
                + &cpu("cut", 2, &["g1", "g2"])
                + &cpu("host", 3, &["host"])
                + &cpu("back", 2, &["g1", "g2"])),
        ),
    );
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "phase 1 ends", SESSION_LIMIT, |e| {
        phase_ended(e, 0)
    });
    let cut = LinkCut::new(2);
    let cut_at = session.now();
    wait_for(&session.recording, "phase 2 ends", SESSION_LIMIT, |e| {
        phase_ended(e, 1)
    });
    drop(cut);
    let (status, elapsed, stderr) = session.wait(SESSION_LIMIT);
    eprintln!("link cut between phases, restored: session took {elapsed:?} after phase 2");
    let events = session.events();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(
        outcomes(&events),
        [
            PhaseOutcome::Completed,
            PhaseOutcome::Partial,
            PhaseOutcome::Completed,
            PhaseOutcome::Completed
        ],
        "{stderr}"
    );
    let g2 = runs_of(&events, "g2");
    assert_eq!(g2[0], RunOutcome::Completed);
    assert!(matches!(g2[1], RunOutcome::Failed { .. }), "{g2:?}");
    assert_eq!(g2[2], RunOutcome::Completed, "{g2:?}");
    let states = guest_states(&events, "g2");
    assert!(
        states
            .windows(3)
            .any(|w| w == ["lost", "reconnecting", "ready"])
            || states.contains(&"reconnecting") && states.last() == Some(&"closed"),
        "{states:?}"
    );
    // The first connection's folder went with its janitor (its last
    // heartbeat at the cut), the second's at the session's end.
    assert_janitor_done(&session, &events, cut_at);
}

#[test]
fn a_guest_that_does_not_come_back_uses_its_reconnect_attempts_and_its_copies_fail() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let guests = format!(
        "{}{}",
        quick_guest(1, ""),
        quick_guest(
            2,
            "reconnect = true\nreconnect_attempts = 2\nreconnect_backoff = \"1s\"\n"
        )
    );
    let plan = write_plan(
        dir.path(),
        &plan_text(
            &guests,
            &(cpu("before", 4, &["g1", "g2"]) + &cpu("after", 1, &["g1", "g2"])),
        ),
    );
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "both copies run", SESSION_LIMIT, |e| {
        count(e, "run_started") == 2
    });
    // Its sshd and everything else gone, and not started again.
    kill_guest(2);
    let ended = session.wait(SESSION_LIMIT);
    restore();
    let (status, _, stderr) = ended;
    let events = session.events();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let states = guest_states(&events, "g2");
    assert_eq!(
        states.iter().filter(|s| **s == "reconnecting").count(),
        2,
        "{states:?}"
    );
    assert!(!states.ends_with(&["ready"]), "{states:?}");
    assert!(
        events.iter().any(|e| matches!(e, Event::Log { text, .. }
            if text.starts_with("g2: not reconnected after 2 attempts"))),
        "no word of the attempts running out: {stderr}"
    );
    let g2 = runs_of(&events, "g2");
    assert_eq!(g2.len(), 2, "{g2:?}");
    assert!(matches!(g2[1], RunOutcome::Failed { .. }), "{g2:?}");
    // Its copy waited for the attempts (1 s, then 2 s, each refused at
    // once) and not much more.
    let (_, ended) = run_times(&events, "g2")[1];
    assert_took(
        "g2's copy in the next phase failed, its attempts used",
        phase_started_at(&events, 1),
        ended,
        Duration::from_secs(1 + 2 + 1),
    );
    assert_eq!(
        runs_of(&events, "g1"),
        [RunOutcome::Completed, RunOutcome::Completed]
    );
}

/// A `noexec` /tmp in a guest's own mount namespace (its sshd's, which
/// every session of it shares), taken away again even when the test fails.
struct NoexecTmp(String);

impl NoexecTmp {
    fn on(i: usize) -> Self {
        let pid = std::fs::read_to_string(format!("{STATE}/g{i}/sshd.pid"))
            .expect("the guest's sshd")
            .trim()
            .to_string();
        let mounted = Command::new("nsenter")
            .args([
                "-t",
                &pid,
                "-m",
                "mount",
                "-t",
                "tmpfs",
                "-o",
                "noexec",
                "vmbench-noexec",
                "/tmp",
            ])
            .status_within(COMMAND_LIMIT);
        assert!(mounted.success(), "mount in g{i}'s namespace");
        NoexecTmp(pid)
    }
}

impl Drop for NoexecTmp {
    fn drop(&mut self) {
        let _ = Command::new("nsenter")
            .args(["-t", &self.0, "-m", "umount", "/tmp"])
            .status();
    }
}

#[test]
fn a_guest_where_the_agent_cannot_run_is_read_over_sftp_and_says_why() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let _noexec = NoexecTmp::on(2);
    let plan = write_plan(
        dir.path(),
        &plan_text(&quick_guest(2, ""), &cpu("host", 4, &["host"])),
    );
    let mut session = record(dir.path(), &plan);
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        events.iter().any(|e| matches!(e, Event::Log { text, .. }
            if text.starts_with("g2: its counters are read over SFTP: vmbench's agent cannot run there"))),
        "no word of the fallback: {stderr}"
    );
    // Its own counters came all the same, tick after tick, and no agent's.
    let reader = vmbench::store::Reader::open(&session.recording).expect("recording");
    let user = reader
        .series
        .iter()
        .find(|s| s.source == "guest:g2" && s.metric == "cpu.user")
        .map(|s| s.id)
        .expect("guest:g2 cpu.user");
    let ticks = reader
        .samples(0, u64::MAX)
        .expect("samples")
        .iter()
        .filter(|s| s.values.iter().any(|(id, _)| *id == user))
        .count();
    assert!(ticks >= 4, "{ticks} ticks of g2's cpu.user");
    assert!(!reader.series.iter().any(|s| s.source == "guest:g2/vmbench"));
}

#[test]
fn sshd_restarted_between_phases_is_reconnected_with_a_new_upload_and_clock() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let guests = quick_guest(
        2,
        "reconnect = true\nreconnect_attempts = 6\nreconnect_backoff = \"1s\"\n",
    );
    let plan = write_plan(
        dir.path(),
        &plan_text(
            &guests,
            &(cpu("before", 2, &["g2"]) + &cpu("host", 4, &["host"]) + &cpu("after", 2, &["g2"])),
        ),
    );
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "phase 2 released", SESSION_LIMIT, |e| {
        phase_released(e, 1)
    });
    kill_guest(2);
    restore();
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        runs_of(&events, "g2"),
        [RunOutcome::Completed, RunOutcome::Completed]
    );
    let states = guest_states(&events, "g2");
    assert!(
        states
            .windows(3)
            .any(|w| w == ["lost", "reconnecting", "ready"]),
        "{states:?}"
    );
    // Two bring-ups, two folders. The second is removed at the end; the
    // first lost its janitor with sshd and is swept at a later connection
    // (the row of a killed guest checks the sweep).
    let folders = common::testbed::session_folders(&events);
    assert_eq!(folders.len(), 2);
    let last = folders.last().expect("second folder").1.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while last.exists() {
        assert!(Instant::now() < deadline, "{} left", last.display());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_reset_vm_is_reconnected_after_it_boots_again() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let vm = format!(
        "[[guest]]\nname = \"q1\"\ntransport = \"ssh\"\ntechnology = \"qemu\"\naddress = \"198.18.0.201\"\n\
         user = \"root\"\nidentity = \"{STATE}/id_ed25519\"\nknown_hosts = \"{STATE}/known_hosts\"\n\
         keepalive = \"1s\"\nkeepalive_count = 3\nreconnect = true\nreconnect_attempts = 8\n\
         reconnect_backoff = \"2s\"\n\n"
    );
    let plan = write_plan(
        dir.path(),
        &plan_text(
            &vm,
            // The host phase outlasts the lost VM's detection (3 s).
            &(cpu("before", 2, &["q1"]) + &cpu("host", 8, &["host"]) + &cpu("after", 2, &["q1"])),
        ),
    );
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "phase 2 released", SESSION_LIMIT, |e| {
        phase_released(e, 1)
    });
    // The reset: QEMU killed and started again (a new boot, a new host key,
    // which the testbed writes to known_hosts as an operator would).
    let pid = std::fs::read_to_string(format!("{STATE}/q1/qemu.pid")).expect("qemu pid");
    let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{}", pid.trim())).exists() {
        assert!(Instant::now() < deadline, "QEMU outlived its SIGKILL");
        std::thread::sleep(Duration::from_millis(50));
    }
    restore();
    let (status, _, stderr) = session.wait(Duration::from_secs(240));
    let events = session.events();
    // Both copies ran: the one after the reset on the reconnected VM.
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        runs_of(&events, "q1"),
        [RunOutcome::Completed, RunOutcome::Completed],
        "{stderr}"
    );
    let states = guest_states(&events, "q1");
    assert!(
        states.contains(&"lost") && states.contains(&"reconnecting"),
        "{states:?}"
    );
    // Inside the VM: no folder of this session, no process naming it (the
    // VM runs under emulation: its janitor may take a moment).
    let deadline = Instant::now() + Duration::from_secs(20);
    for (_, folder) in common::testbed::session_folders(&events) {
        let shown = folder.display().to_string();
        // `[v]`: a glob for ls, a pattern for grep, and never the path
        // itself in this command line, which its own shell would match.
        let pattern = shown.replacen("/tmp/vmbench", "/tmp/[v]mbench", 1);
        loop {
            let out = ssh_to(
                "198.18.0.201",
                &format!(
                    "ls -d {pattern} 2>/dev/null; grep -ls '{pattern}' /proc/[0-9]*/cmdline; true"
                ),
            );
            let left = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "left on q1: {left}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// A guest that answers nothing for longer than its keepalive interval but
/// within its silence limit, while vmbench waits on it in a blocking request
/// (the clock measurement and the start of the next phase's copy), is
/// waited for: its copy runs. libssh2 ends a blocking call when a keepalive
/// falls due ("Timed out waiting on socket") unless keepalives are off for
/// the call; that failed bring-ups and starts at 16 guests on 2 cores.
#[test]
fn a_guest_slow_to_answer_a_start_request_within_its_silence_limit_runs_its_copy() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    // Keepalives every second, lost only after 20 s of silence.
    let g1 = guest(1, &format!("{STATE}/known_hosts"))
        .trim_end()
        .to_string()
        + "\nkeepalive = \"1s\"\nkeepalive_count = 20\n\n";
    let plan = write_plan(
        dir.path(),
        &plan_text(
            &g1,
            &(cpu("on-host", 4, &["host"]) + &cpu("after", 1, &["g1"])),
        ),
    );
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "phase 1 released", SESSION_LIMIT, |e| {
        phase_released(e, 0)
    });
    signal_guest(1, "-STOP");
    let frozen = Stopped(1);
    wait_for(&session.recording, "phase 1 ended", SESSION_LIMIT, |e| {
        phase_ended(e, 0)
    });
    // Past the clock measurement's 3 s, into the start request, for several
    // keepalive intervals.
    std::thread::sleep(Duration::from_secs(7));
    drop(frozen);
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(runs_of(&events, "g1"), [RunOutcome::Completed], "{stderr}");
    assert!(
        !guest_states(&events, "g1").contains(&"lost"),
        "{:?}",
        guest_states(&events, "g1")
    );
}

#[test]
fn a_hung_or_stopped_tool_is_killed_at_the_phase_timeout() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let custom = |name: &str, command: &str| {
        format!(
            "[[benchmark]]\nname = \"{name}\"\nworkload = {{ type = \"custom\", command = [\"sleep\", \"{command}\"], \
             result_regex = \"never\", metric = \"none\", unit = \"-\" }}\nduration = \"1s\"\ntimeout = \"4s\"\n\
             concurrency = [1]\nguests = [\"g1\"]\n\n"
        )
    };
    let plan = write_plan(
        dir.path(),
        &plan_text(
            &quick_guest(1, ""),
            &(custom("hangs", "300.4242")
                + &custom("stopped", "300.4343")
                + &cpu("after", 1, &["g1"])),
        ),
    );
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "phase 2 released", SESSION_LIMIT, |e| {
        phase_released(e, 1)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let stopped = loop {
        if let Some(pid) = tool_pid("sleep 300.4343") {
            break pid;
        }
        assert!(Instant::now() < deadline, "the tool never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("kill").args(["-STOP", &stopped]).status();
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        outcomes(&events),
        [
            PhaseOutcome::TimedOut,
            PhaseOutcome::TimedOut,
            PhaseOutcome::Completed
        ]
    );
    assert!(stderr.contains("timed out after 4s"), "{stderr}");
    assert_killed_at_timeout(&events, "g1", Duration::from_secs(4));
    for marker in ["sleep 300.4242", "sleep 300.4343"] {
        assert_eq!(processes_naming(marker), Vec::<String>::new(), "{marker}");
    }
    assert_nothing_left(&events, Duration::from_secs(10));
}

/// An exec guest whose commands run elsewhere: `ssh` to testbed guest
/// `i`, as `kubectl exec` runs them in a pod (a client killed here leaves
/// its command running there). The prefix quotes its arguments for the
/// remote shell, as ssh joins them with spaces.
fn exec_over_ssh(i: usize) -> String {
    let script = format!(
        "exec ssh -i {STATE}/id_ed25519 -o UserKnownHostsFile={STATE}/known_hosts \
         -o StrictHostKeyChecking=yes -o BatchMode=yes root@198.18.0.{} \
         \"$(for a; do printf \"'%s' \" \"$(printf %s \"$a\" | sed \"s/'/'\\\\\\\\''/g\")\"; done)\"",
        10 + i
    );
    format!(
        "[[guest]]\nname = \"x{i}\"\ntransport = \"exec\"\ntechnology = \"remote\"\n\
         exec = [\"sh\", \"-c\", '''{script}''', \"ssh-exec\"]\nkeepalive = \"1s\"\n\n"
    )
}

#[test]
fn a_hung_tool_on_an_exec_guest_whose_commands_run_elsewhere_is_killed_there() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = format!("300.{}7", std::process::id());
    let benchmarks = format!(
        "[[benchmark]]\nname = \"hangs\"\nworkload = {{ type = \"custom\", command = [\"sleep\", \"{marker}\"], \
         result_regex = \"never\", metric = \"none\", unit = \"-\" }}\nduration = \"1s\"\ntimeout = \"3s\"\n\
         concurrency = [1]\nguests = [\"x1\"]\n\n"
    );
    let plan = write_plan(dir.path(), &plan_text(&exec_over_ssh(1), &benchmarks));
    let mut session = record(dir.path(), &plan);
    // Once released, the copy's own process (vmbench's gate around the
    // tool) stopped: it cannot take its input's end, when the client here
    // goes, as its cue to end.
    wait_for(&session.recording, "phase 1 released", SESSION_LIMIT, |e| {
        phase_released(e, 0)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let gate = loop {
        let found = processes_naming(&format!("sleep {marker}"))
            .into_iter()
            .find(|line| line.contains("workload gate") && !line.contains("ssh"))
            .and_then(|line| Some(line.split_once(':')?.0.to_string()));
        if let Some(pid) = found {
            break pid;
        }
        assert!(Instant::now() < deadline, "the copy never started");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("kill").args(["-STOP", &gate]).status();
    // The ssh client here is killed at the timeout; the copy, in g1, only
    // by the kill sent through the prefix.
    let deadline = Instant::now() + SESSION_LIMIT;
    while !processes_naming(&format!("sleep {marker}")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the hung tool lives on in the guest: {:?}",
            processes_naming(&format!("sleep {marker}"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone_at = session.now();
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(outcomes(&events), [PhaseOutcome::TimedOut], "{stderr}");
    // The timeout counts from the release, before the tool's start: 3 s,
    // the kill's 2 s grace, and no more.
    assert_took(
        "exec guest: the hung tool ended in the guest, after its phase's release",
        released_at(&events, 0),
        gone_at,
        Duration::from_secs(3 + 2),
    );
    assert_nothing_left(&events, Duration::from_secs(10));
}

#[test]
fn a_tool_that_fails_or_is_killed_fails_its_copy_with_its_stderr() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let guests = format!("{}{}", quick_guest(1, ""), quick_guest(2, ""));
    let benchmarks = "[[benchmark]]\nname = \"fails\"\nworkload = { type = \"custom\", command = [\"sh\", \"-c\", \"echo out of cheese >&2; exit 3\"], \
         result_regex = \"never\", metric = \"none\", unit = \"-\" }\nduration = \"1s\"\nconcurrency = [1]\nguests = [\"g1\"]\n\n\
         [[benchmark]]\nname = \"killed\"\nworkload = { type = \"custom\", command = [\"sleep\", \"40.5151\"], \
         result_regex = \"never\", metric = \"none\", unit = \"-\" }\nduration = \"1s\"\ntimeout = \"60s\"\nconcurrency = [1]\nguests = [\"g1\"]\n\n"
        .to_string()
        + &cpu("beside", 3, &["g2"]);
    let plan = write_plan(dir.path(), &plan_text(&guests, &benchmarks));
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "phase 2 released", SESSION_LIMIT, |e| {
        phase_released(e, 1)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = tool_pid("sleep 40.5151") {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            break;
        }
        assert!(Instant::now() < deadline, "the tool never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let g1 = runs_of(&events, "g1");
    assert!(
        failed_with(&g1[0], "exited with status 3: out of cheese"),
        "{g1:?}"
    );
    assert!(failed_with(&g1[1], "killed by signal 9"), "{g1:?}");
    assert_eq!(runs_of(&events, "g2"), [RunOutcome::Completed]);
    assert_nothing_left(&events, Duration::from_secs(10));
}

#[test]
fn a_full_data_directory_fails_that_copy_with_its_reason() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    // Fill g1's data disk (mounted in its own mount namespace) to the brim.
    let fill = ssh_to(
        "198.18.0.11",
        "fallocate -l $(( $(df --output=avail -B1 /srv/vmbench | tail -1) - 4096 )) /srv/vmbench/filler",
    );
    struct Filler;
    impl Drop for Filler {
        fn drop(&mut self) {
            ssh_to("198.18.0.11", "rm -f /srv/vmbench/filler");
        }
    }
    let _filler = Filler;
    assert!(
        fill.status.success(),
        "{}",
        String::from_utf8_lossy(&fill.stderr)
    );
    let guests = format!("{}{}", quick_guest(1, ""), quick_guest(2, ""));
    let benchmarks = "[[benchmark]]\nname = \"disk\"\nworkload = { type = \"disk\", size = \"64MiB\", dir = \"/srv/vmbench\" }\n\
         duration = \"2s\"\nconcurrency = [2]\nguests = [\"g1\", \"g2\"]\n";
    let plan = write_plan(dir.path(), &plan_text(&guests, benchmarks));
    let mut session = record(dir.path(), &plan);
    let (status, _, stderr) = session.wait(SESSION_LIMIT);
    let events = session.events();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let g1 = runs_of(&events, "g1");
    assert!(
        failed_with(&g1[0], "No space left on device"),
        "{g1:?}\n{stderr}"
    );
    assert_eq!(runs_of(&events, "g2"), [RunOutcome::Completed]);
    assert_eq!(outcomes(&events), [PhaseOutcome::Partial]);
    assert_nothing_left(&events, Duration::from_secs(10));
}

#[test]
fn a_full_recording_filesystem_stops_the_session_and_keeps_what_was_committed() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let small = dir.path().join("small");
    std::fs::create_dir(&small).expect("mount point");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&small)
        .status_within(COMMAND_LIMIT);
    assert!(mounted.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    let plan = write_plan(dir.path(), &plan_text("", &cpu("long", 60, &["host"])));
    let recording = small.join("full.vmb");
    let stderr_path = dir.path().join("stderr.txt");
    let mut session = Recorded {
        child: Command::new(exe())
            .arg("record")
            .arg(&plan)
            .arg("-o")
            .arg(&recording)
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .expect("vmbench record starts"),
        recording: recording.clone(),
        stderr: stderr_path,
    };
    wait_for(&recording, "the copy runs", SESSION_LIMIT, |e| {
        count(e, "run_started") == 1
    });
    let pid = session
        .events()
        .iter()
        .find_map(|e| match e {
            Event::RunSpawned { pid, .. } => *pid,
            _ => None,
        })
        .expect("the host copy's pid");
    // Fill what is left of the filesystem.
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "status=none"])
        .arg(format!("of={}", small.join("filler").display()))
        .status();
    let (status, elapsed, stderr) = session.wait(SESSION_LIMIT);
    eprintln!(
        "recording filesystem full: vmbench stopped {elapsed:.2?} after the disk filled (bound {STOP_BOUND:?})"
    );
    // The phase was planned for 60 s: a session that ignored the full disk
    // would still be running. A failed commit is a stop like any other.
    assert!(elapsed <= STOP_BOUND, "took {elapsed:.2?}\n{stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&recording.display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("keeps everything up to"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the host copy {pid} still runs"
    );
    std::fs::remove_file(small.join("filler")).expect("room again");
    // Readable up to its last commit: the copy's start is there.
    let events = events_of(&recording);
    assert!(count(&events, "run_started") == 1, "{events:?}");
    assert_no_host_copies();
}

/// Any stop: vmbench is gone within 5 s (its 4 s wind-down and the
/// recording's close), and a loaded 2-core machine gets 1 s more.
const STOP_BOUND: Duration = Duration::from_secs(6);

/// Asks a running `vmbench record` to stop with `signals` (300 ms apart)
/// and waits for it to exit; the time is taken from the first signal.
fn stop_with(
    session: &mut Recorded,
    signals: &[libc::c_int],
    what: &str,
) -> (ExitStatus, Vec<Event>, Duration) {
    let first = Instant::now();
    for (i, signal) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        session.signal(*signal);
    }
    let (status, _, stderr) = session.wait(Duration::from_secs(30));
    let elapsed = first.elapsed();
    eprintln!("{what}: vmbench exited {elapsed:.2?} after the first signal (bound {STOP_BOUND:?})");
    // Before, a stop in these states hung until kill -9.
    assert!(
        elapsed <= STOP_BOUND,
        "{what}: took {elapsed:.2?}, past {STOP_BOUND:?}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    (status, session.events(), elapsed)
}

/// Where a session is when the stop comes.
#[derive(Debug, Clone, Copy)]
enum State {
    /// A guest's SSH handshake never answers (a TCP listener that says
    /// nothing), so bring-up waits.
    Connecting,
    /// A phase's copies are staged but one guest is frozen (SIGSTOP), so
    /// the barrier waits.
    Barrier,
    /// Copies run on two healthy guests.
    MidPhase,
    /// Copies run, and one guest froze (SIGSTOP) under them: the stop that
    /// needs a second Ctrl-C (on healthy guests the first ends the session
    /// before a second could come).
    MidPhaseFrozen,
}

/// One cell of the stop matrix: a session brought to `state`, stopped with
/// `signals`; it must end within the bound, record why, and leave nothing.
fn stop_in(state: State, signals: &[libc::c_int], cause: &str) {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    let known = format!("{STATE}/known_hosts");
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a silent listener");
    let (guests, benchmarks) = match state {
        State::Connecting => {
            let port = silent.local_addr().expect("port").port();
            let mute = guest(1, &known)
                .replace("name = \"g1\"", "name = \"mute\"")
                .replace("198.18.0.11", "127.0.0.1")
                .replace("user = ", &format!("port = {port}\nuser = "))
                .replace("interface = \"vmbt-g1h\"\n", "")
                .replace("image = \"/var/tmp/vmbench-testbed/g1.img\"\n", "")
                .replace("cgroup = \"/vmbench-testbed/g1\"\n", "");
            (mute, cpu("cpu", 5, &["mute"]))
        }
        State::Barrier => (
            format!("{}{}", guest(1, &known), guest(2, &known)),
            cpu("host", 3, &["host"]) + &cpu("both", 15, &["g1", "g2"]),
        ),
        State::MidPhase | State::MidPhaseFrozen => (
            format!("{}{}", guest(1, &known), guest(2, &known)),
            cpu("long", 15, &["g1", "g2"]),
        ),
    };
    let plan = write_plan(dir.path(), &plan_text(&guests, &benchmarks));
    let mut session = record(dir.path(), &plan);
    let mut thaw = None;
    match state {
        State::Connecting => {
            // Accept the connection and say nothing.
            // Nonblocking, so that a vmbench that never connects fails the
            // test instead of holding it.
            silent.set_nonblocking(true).expect("nonblocking");
            let deadline = Instant::now() + SESSION_LIMIT;
            let _held = loop {
                match silent.accept() {
                    Ok((held, _)) => break held,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "vmbench never connected");
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            std::thread::sleep(Duration::from_millis(300));
            let what = format!("{cause} while connecting");
            let (status, events, _) = stop_with(&mut session, signals, &what);
            check_stopped(status, &events, cause, &what);
            return;
        }
        State::Barrier => {
            wait_for(&session.recording, "phase 1 released", SESSION_LIMIT, |e| {
                phase_released(e, 0)
            });
            signal_guest(2, "-STOP");
            thaw = Some(Stopped(2));
            wait_for(&session.recording, "phase 2 staged", SESSION_LIMIT, |e| {
                count(e, "run_spawned") == 3
            });
            std::thread::sleep(Duration::from_millis(500));
        }
        State::MidPhase | State::MidPhaseFrozen => {
            wait_for(&session.recording, "both copies run", SESSION_LIMIT, |e| {
                count(e, "run_started") == 2
            });
            if matches!(state, State::MidPhaseFrozen) {
                signal_guest(2, "-STOP");
                thaw = Some(Stopped(2));
            }
        }
    }
    let what = format!("{cause} {state:?}");
    let (status, events, elapsed) = stop_with(&mut session, signals, &what);
    check_stopped(status, &events, cause, &what);
    if matches!(state, State::Barrier) && signals.len() == 1 {
        // The frozen guest never answers the wind-down: it is waited for
        // its 4 s, no less, and then the session ends without it.
        let reason = session_end_reason(&events).expect("session_ended");
        assert!(
            reason.contains("the wind-down did not finish within 4 s"),
            "{what}: {reason}"
        );
        assert!(elapsed >= Duration::from_secs(4), "{what}: {elapsed:?}");
    }
    drop(thaw);
    assert_nothing_left(&events, Duration::from_secs(60));
    assert_no_host_copies();
}

fn check_stopped(status: ExitStatus, events: &[Event], cause: &str, what: &str) {
    assert!(
        !status.success(),
        "{what}: a stopped session exits non-zero"
    );
    let reason = session_end_reason(events).expect("session_ended recorded");
    assert!(reason.contains(cause), "{what}: {reason}");
    if cause == "at once" {
        assert_eq!(status.code(), Some(130), "{what}");
    }
}

/// No copy of this test's vmbench runs on the host any more (the host's
/// copies are `<exe> workload ...`; guests run their own uploaded binary).
fn assert_no_host_copies() {
    let needle = format!("{} workload", exe().display());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_naming(&needle);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "left on the host: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigterm_while_connecting_ends_the_session() {
    stop_in(State::Connecting, &[libc::SIGTERM], "SIGTERM");
}

#[test]
fn sighup_while_connecting_ends_the_session() {
    stop_in(State::Connecting, &[libc::SIGHUP], "SIGHUP");
}

#[test]
fn a_double_sigint_while_connecting_ends_the_session_at_once() {
    stop_in(State::Connecting, &[libc::SIGINT, libc::SIGINT], "at once");
}

#[test]
fn sigterm_at_the_barrier_with_a_frozen_guest_ends_the_session() {
    stop_in(State::Barrier, &[libc::SIGTERM], "SIGTERM");
}

#[test]
fn sighup_at_the_barrier_with_a_frozen_guest_ends_the_session() {
    stop_in(State::Barrier, &[libc::SIGHUP], "SIGHUP");
}

#[test]
fn a_double_sigint_at_the_barrier_ends_the_session_at_once() {
    stop_in(State::Barrier, &[libc::SIGINT, libc::SIGINT], "at once");
}

#[test]
fn sigterm_mid_phase_ends_the_session() {
    stop_in(State::MidPhase, &[libc::SIGTERM], "SIGTERM");
}

#[test]
fn sighup_mid_phase_ends_the_session() {
    stop_in(State::MidPhase, &[libc::SIGHUP], "SIGHUP");
}

#[test]
fn a_double_sigint_mid_phase_with_a_frozen_guest_ends_the_session_at_once() {
    stop_in(
        State::MidPhaseFrozen,
        &[libc::SIGINT, libc::SIGINT],
        "at once",
    );
}

/// The hang this issue was filed for: a link cut mid-phase, then SIGTERM.
#[test]
fn sigterm_mid_phase_with_a_cut_link_ends_the_session_within_seconds() {
    let _turn = testbed();
    let dir = tempfile::tempdir().expect("tempdir");
    // Default keepalive (5 s × 3): the guest is not yet lost when the stop comes.
    let known = format!("{STATE}/known_hosts");
    let guests = format!("{}{}", guest(1, &known), guest(2, &known));
    let plan = write_plan(
        dir.path(),
        &plan_text(&guests, &cpu("long", 15, &["g1", "g2"])),
    );
    let mut session = record(dir.path(), &plan);
    wait_for(&session.recording, "both copies run", SESSION_LIMIT, |e| {
        count(e, "run_started") == 2
    });
    let cut = LinkCut::new(2);
    let cut_at = session.now();
    std::thread::sleep(Duration::from_secs(1));
    let (status, events, _) = stop_with(
        &mut session,
        &[libc::SIGTERM],
        "SIGTERM mid-phase, link cut",
    );
    assert_eq!(status.code(), Some(1));
    let reason = session_end_reason(&events).expect("session_ended recorded");
    assert!(reason.contains("SIGTERM"), "{reason}");
    assert_eq!(runs_of(&events, "g1"), [RunOutcome::Cancelled]);
    assert!(matches!(
        runs_of(&events, "g2")[..],
        [RunOutcome::Failed { .. }]
    ));
    // g2's janitor heard its last heartbeat at the cut (its patience is
    // 30 s: twice the 15 s silence limit); it ends the copy too, the link
    // still cut.
    assert_janitor_done(&session, &events, cut_at);
    drop(cut);
    assert_no_host_copies();
}
