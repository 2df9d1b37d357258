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
    let ids: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::RunSpawned { run, guest: g, .. } if g == guest => Some(*run),
            _ => None,
        })
        .collect();
    ids.iter()
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
