//! The janitor of vmbench's folder on an exec guest
//! (`shell::janitor_script`), a child of this host. It is not tied to the
//! thread that started it: when vmbench dies its input ends and it cleans
//! up, which is the point of it; and it is never killed, only waited for.

use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::super::ExecEnd;
use super::super::shell::janitor_script;
use super::{SHORT, Shell};

pub struct Janitor {
    /// Taken when it is let go (finished, or dropped with a lost link).
    child: Option<Child>,
    stdin: Option<ChildStdin>,
}

impl Janitor {
    pub(super) fn start(shell: &Shell, dir: &str, patience: Duration) -> Result<Self> {
        let mut child = shell
            .command(&janitor_script(dir, patience))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start `{}`", shell.describe()))?;
        let stdin = child.stdin.take();
        Ok(Janitor {
            child: Some(child),
            stdin,
        })
    }

    /// Tells it the host is still there; Err when it has ended (its guest
    /// gone, or it was killed there).
    pub(super) fn heartbeat(&mut self) -> Result<(), String> {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
            return Err(format!(
                "the command that keeps vmbench's folder there ended ({})",
                ExecEnd::of_status(status).describe()
            ));
        }
        if let Some(stdin) = self.stdin.as_mut() {
            stdin
                .write_all(b"\n")
                .map_err(|e| format!("the folder's janitor stopped listening: {e}"))?;
        }
        Ok(())
    }

    /// Ends its input and waits a little for it to clean up; one slower
    /// than that cleans up all the same, reaped in the background.
    pub fn finish(mut self) {
        self.stdin = None;
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + SHORT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        reap_later(child);
    }
}

impl Drop for Janitor {
    /// Let go without `finish` (a lost link): its input ends, and it is
    /// reaped whenever it is done.
    fn drop(&mut self) {
        self.stdin = None;
        if let Some(child) = self.child.take() {
            reap_later(child);
        }
    }
}

fn reap_later(mut child: Child) {
    std::thread::spawn(move || child.wait());
}
