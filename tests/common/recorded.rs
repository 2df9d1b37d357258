//! A `vmbench record` under test and what its recording says: phases'
//! outcomes, each guest's runs and states, how the session ended.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::exe;
use super::testbed::events_of;
use vmbench::event::{Event, GuestState, PhaseOutcome, RunOutcome};

/// A `vmbench record` under test, its stderr kept in a file.
pub struct Recorded {
    pub child: Child,
    pub recording: PathBuf,
    pub stderr: PathBuf,
}

pub fn record(dir: &Path, plan: &Path) -> Recorded {
    let recording = dir.join("fault.vmb");
    let stderr = dir.join("stderr.txt");
    let child = Command::new(exe())
        .arg("record")
        .arg(plan)
        .arg("-o")
        .arg(&recording)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("vmbench record starts");
    Recorded {
        child,
        recording,
        stderr,
    }
}

impl Recorded {
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: signals the child this test started.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// Waits for vmbench to exit; kills it and fails past `limit`.
    pub fn wait(&mut self, limit: Duration) -> (ExitStatus, Duration, String) {
        let began = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                return (status, began.elapsed(), text);
            }
            if began.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                panic!("vmbench did not exit within {limit:?}; its stderr:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn events(&self) -> Vec<Event> {
        events_of(&self.recording)
    }

    /// Now on the session's clock: the instant a test injects a fault, on
    /// the clock of the recording's events (its header names where session
    /// time 0 falls on CLOCK_MONOTONIC).
    pub fn now(&self) -> u64 {
        let origin = vmbench::store::Reader::open(&self.recording)
            .expect("the recording")
            .header
            .monotonic_origin_ns
            .expect("the header names the clock's origin");
        vmbench::event::Clock::starting_at(origin).now()
    }
}

/// Asserts that `what` took at most `bound` (session-clock nanoseconds
/// from `from` to `to`), and prints the time it took.
pub fn assert_took(what: &str, from: u64, to: u64, bound: Duration) {
    let took = Duration::from_nanos(to.saturating_sub(from));
    eprintln!("{what}: {took:.2?} (bound {bound:?})");
    assert!(to >= from, "{what}: ended before it began ({to} < {from})");
    assert!(took <= bound, "{what} took {took:.2?}, past {bound:?}");
}

/// Asserts that each of `guest`'s copies in the phases that timed out was
/// ended within `timeout` + 2 s of its tool's start (the kill's grace, and
/// a loaded 2-core machine): the phase timeout counts from the release,
/// which comes before the tool's start.
pub fn assert_killed_at_timeout(events: &[Event], guest: &str, timeout: Duration) {
    let timed_out: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseEnded {
                phase,
                outcome: PhaseOutcome::TimedOut,
                ..
            } => Some(*phase),
            _ => None,
        })
        .collect();
    let runs: Vec<(u32, u32)> = events
        .iter()
        .filter_map(|e| match e {
            Event::RunSpawned {
                run,
                phase,
                guest: g,
                ..
            } if g == guest && timed_out.contains(phase) => Some((*run, *phase)),
            _ => None,
        })
        .collect();
    assert!(!runs.is_empty(), "no copy of {guest} timed out");
    for (run, phase) in runs {
        let (started, ended) = run_span(events, run);
        let started = started.unwrap_or_else(|| panic!("run {run} never started its tool"));
        assert_took(
            &format!("phase {phase}: {guest}'s hung tool killed after its start"),
            started,
            ended,
            timeout + Duration::from_secs(2),
        );
    }
}

/// A lost guest's copy in the next phase fails as that phase starts (no
/// waiting for the guest), within 1 s.
pub fn assert_later_copy_failed_at_once(events: &[Event], guest: &str) {
    let (_, ended) = run_times(events, guest)[1];
    assert_took(
        &format!("{guest}'s copy in the next phase failed"),
        phase_started_at(events, 1),
        ended,
        Duration::from_secs(1),
    );
}

/// When `guest` was marked lost, on the session clock.
pub fn lost_at(events: &[Event], guest: &str) -> u64 {
    events
        .iter()
        .find_map(|e| match e {
            Event::GuestState {
                t,
                guest: g,
                state: GuestState::Lost { .. },
            } if g == guest => Some(*t),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{guest} was never lost"))
}

/// When each run of `guest` started its tool (None for a copy that never
/// did) and when it ended, in order.
pub fn run_times(events: &[Event], guest: &str) -> Vec<(Option<u64>, u64)> {
    runs_spawned(events, guest)
        .into_iter()
        .map(|id| run_span(events, id))
        .collect()
}

/// The runs of `guest`, in the order they were spawned.
fn runs_spawned(events: &[Event], guest: &str) -> Vec<u32> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::RunSpawned { run, guest: g, .. } if g == guest => Some(*run),
            _ => None,
        })
        .collect()
}

/// When run `id` started its tool (None if it never did) and when it ended.
fn run_span(events: &[Event], id: u32) -> (Option<u64>, u64) {
    let started = events.iter().find_map(|e| match e {
        Event::RunStarted { t, run, .. } if *run == id => Some(*t),
        _ => None,
    });
    let ended = events
        .iter()
        .find_map(|e| match e {
            Event::RunEnded { t, run, .. } if *run == id => Some(*t),
            _ => None,
        })
        .unwrap_or_else(|| panic!("run {id} never ended"));
    (started, ended)
}

/// When the `index`th phase (from 0) started.
pub fn phase_started_at(events: &[Event], index: usize) -> u64 {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseStarted { t, .. } => Some(*t),
            _ => None,
        })
        .nth(index)
        .unwrap_or_else(|| panic!("phase {index} never started"))
}

pub fn count(events: &[Event], kind: &str) -> usize {
    events.iter().filter(|e| e.kind() == kind).count()
}

/// Each phase's outcome, in order.
pub fn outcomes(events: &[Event]) -> Vec<PhaseOutcome> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseEnded { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

/// How each run of `guest` ended, in order.
pub fn runs_of(events: &[Event], guest: &str) -> Vec<RunOutcome> {
    runs_spawned(events, guest)
        .iter()
        .filter_map(|id| {
            events.iter().find_map(|e| match e {
                Event::RunEnded { run, outcome, .. } if run == id => Some(outcome.clone()),
                _ => None,
            })
        })
        .collect()
}

pub fn failed_with(outcome: &RunOutcome, words: &str) -> bool {
    matches!(outcome, RunOutcome::Failed { reason } if reason.contains(words))
}

pub fn session_end_reason(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::SessionEnded { reason, .. } => Some(reason.clone()),
        _ => None,
    })
}

pub fn guest_states(events: &[Event], name: &str) -> Vec<&'static str> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::GuestState { guest, state, .. } if guest == name => Some(match state {
                GuestState::Connecting => "connecting",
                GuestState::Ready { .. } => "ready",
                GuestState::Failed { .. } => "failed",
                GuestState::Lost { .. } => "lost",
                GuestState::Reconnecting { .. } => "reconnecting",
                GuestState::Closed => "closed",
            }),
            _ => None,
        })
        .collect()
}
