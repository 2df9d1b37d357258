//! Reaching this host itself (the bare-metal baseline) behind the same
//! interface as an SSH guest: a command runs in its own process group, its
//! output comes back line by line, a release line goes to its stdin and a
//! kill reaches everything it started. The host is never lost.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::UnboundedSender;

use super::{Exec, ExecEnd, ExecId, ExecOutput};

/// A child this session owns: its own process group (so that a kill
/// reaches all it starts), stdout read by vmbench, killed when dropped or
/// when vmbench dies.
pub fn owned_command(argv: &[String], stdin: Stdio, stderr: Stdio) -> Command {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: die_with_parent only calls prctl, async-signal-safe. The
    // death signal makes even a kill -9 of vmbench leave nothing running.
    unsafe { command.pre_exec(super::die_with_parent) };
    command
}

struct Running {
    pgid: u32,
    stdin: Option<std::fs::File>,
}

/// The host's commands; cheap to clone. Commands must be started from the
/// thread that lives as long as the session (the death signal is tied to
/// the thread that spawned the child).
#[derive(Clone, Default)]
pub struct Link {
    running: Arc<Mutex<HashMap<ExecId, Running>>>,
    next_id: Arc<AtomicU64>,
}

impl Link {
    /// Starts `argv` in its own process group; output and end arrive on
    /// `output`. Needs a tokio runtime.
    pub fn exec(
        &self,
        argv: &[String],
        output: UnboundedSender<ExecOutput>,
    ) -> Result<Exec, String> {
        let mut child = owned_command(argv, Stdio::piped(), Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
        let pid = child
            .id()
            .ok_or_else(|| format!("{} ended before it could be watched", argv[0]))?;
        let stdin = child
            .stdin
            .take()
            .and_then(|s| s.into_owned_fd().ok())
            .map(std::fs::File::from);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Running { pgid: pid, stdin });
        tokio::spawn(relay(child, output, self.clone(), id));
        Ok(Exec { id, pid: Some(pid) })
    }

    /// Writes one line to the command's stdin; Err says why it could not.
    pub fn write(&self, id: ExecId, line: &str) -> Result<(), String> {
        let mut running = self.lock();
        let stdin = running
            .get_mut(&id)
            .and_then(|r| r.stdin.as_mut())
            .ok_or("it has already ended")?;
        // Far below PIPE_BUF: written whole or not at all.
        stdin
            .write_all(line.as_bytes())
            .map_err(|e| format!("writing to its stdin: {e}"))
    }

    /// Kills the command's whole process group.
    pub fn kill(&self, id: ExecId) {
        let mut running = self.lock();
        if let Some(r) = running.get_mut(&id) {
            // The copy sees its stdin close too, its own cue to stop.
            r.stdin = None;
            // A group this link created and has not yet reaped (its entry
            // leaves the map when it is reaped).
            super::kill_group(r.pgid);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ExecId, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn relay(mut child: Child, output: UnboundedSender<ExecOutput>, link: Link, id: ExecId) {
    let mut out = child.stdout.take().map(|s| BufReader::new(s).lines());
    let mut err = child.stderr.take().map(|s| BufReader::new(s).lines());
    while out.is_some() || err.is_some() {
        tokio::select! {
            line = async { out.as_mut().expect("guarded").next_line().await }, if out.is_some() => match line {
                Ok(Some(line)) => { let _ = output.send(ExecOutput::Stdout(line)); }
                _ => out = None,
            },
            line = async { err.as_mut().expect("guarded").next_line().await }, if err.is_some() => match line {
                Ok(Some(line)) => { let _ = output.send(ExecOutput::Stderr(line)); }
                _ => err = None,
            },
        }
    }
    let end = match child.wait().await {
        Ok(status) => ExecEnd::of_status(status),
        Err(e) => ExecEnd::Lost(format!("could not be waited for: {e}")),
    };
    link.lock().remove(&id);
    let _ = output.send(ExecOutput::Exited(end));
}
