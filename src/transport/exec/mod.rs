//! Reaching a guest through a command that runs a command inside it:
//! `ip netns exec g1`, `nsenter -t PID -a`, `runsc exec ID`, `lxc-attach -n
//! NAME --`, `kubectl exec -i POD --`. Containers and pods mostly have no
//! sshd; this gives them everything the SSH link gives: the upload, a
//! staged start released at the barrier, kill, liveness, the clock offset
//! and the agent.
//!
//! Every command is `PREFIX sh -c SCRIPT`, a child of this host in its own
//! process group (`Shell`). How this host reaches the guest back is
//! `address.rs`; the link's thread, its kills and its liveness probes are
//! `link.rs`; the folder's janitor is `janitor.rs`.

mod address;
mod janitor;
mod link;

pub use address::connect;
pub use janitor::Janitor;
pub use link::spawn_link;

use std::io::{BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::shell::clock_rounds;
use super::{kill_group, shell_quote};

/// How long a short command through the prefix may take: starting a
/// process in a namespace takes milliseconds, `kubectl exec` a second.
const RUN_PATIENCE: Duration = Duration::from_secs(15);
/// A kill, or the janitor's last word when the link ends: a guest that
/// hangs must not hold up a stop.
const SHORT: Duration = Duration::from_secs(2);

/// The command line that runs a command inside a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    prefix: Vec<String>,
}

impl Shell {
    pub fn new(prefix: Vec<String>) -> Self {
        Shell { prefix }
    }

    /// The prefix as a shell would read it, for messages.
    pub fn describe(&self) -> String {
        super::shell_command(&self.prefix)
    }

    /// `PREFIX sh -c SCRIPT` in its own process group, so that a kill
    /// reaches what it starts here.
    fn command(&self, script: &str) -> Command {
        let mut command = Command::new(&self.prefix[0]);
        command
            .args(&self.prefix[1..])
            .args(["sh", "-c", script])
            .process_group(0);
        command
    }

    /// A command that is killed when the thread that started it ends (as
    /// the baseline's are). A prefix that forks (`nsenter -p`) leaves what
    /// it forked to end on its own cue: its input closed.
    fn owned(&self, script: &str) -> Command {
        let mut command = self.command(script);
        // SAFETY: die_with_parent only calls prctl, async-signal-safe.
        unsafe { command.pre_exec(super::die_with_parent) };
        command
    }

    /// Starts `script` with its output piped, tied to this thread.
    pub fn start_owned(&self, script: &str, stdin: Stdio) -> Result<Child> {
        self.owned(script)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.prefix[0]))
    }

    /// Runs `script`, feeding it `input`, to its end or until `patience`
    /// has passed (then its group is killed): (exit code, stdout, stderr).
    fn run_fed(
        &self,
        script: &str,
        input: Option<&[u8]>,
        patience: Duration,
    ) -> Result<(i32, String, String)> {
        let deadline = Instant::now() + patience;
        let stdin = if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = self.start_owned(script, stdin)?;
        let out = read_all(child.stdout.take());
        let err = read_all(child.stderr.take());
        let feeder = match (input, child.stdin.take()) {
            (Some(bytes), Some(mut stdin)) => {
                let bytes = bytes.to_vec();
                // A guest that stops reading fails the write once its
                // group is killed at the deadline.
                Some(std::thread::spawn(move || stdin.write_all(&bytes)))
            }
            _ => None,
        };
        let status = wait_within(&mut child, deadline);
        let fed = feeder.map(|f| f.join().unwrap_or(Ok(())));
        let (out, err) = (joined(out), joined(err));
        let status = status.map_err(|e| anyhow!("{e}{}", stderr_note(&err)))?;
        if let Some(Err(e)) = fed {
            bail!("writing to it: {e}{}", stderr_note(&err));
        }
        Ok((status.code().unwrap_or(-1), out, err))
    }
}

fn read_all(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn joined(reader: std::thread::JoinHandle<String>) -> String {
    reader.join().unwrap_or_default()
}

/// The last line of a command's stderr, as " (line)", or nothing.
fn stderr_note(err: &str) -> String {
    match err.trim().lines().last() {
        Some(line) => format!(" ({})", line.trim()),
        None => String::new(),
    }
}

/// Waits for `child` until `deadline`; past it, kills its group (not yet
/// reaped: this is its only waiter) and says so.
fn wait_within(child: &mut Child, deadline: Instant) -> Result<ExitStatus, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.wait();
                return Err("no answer in time; killed".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    }
}

/// Kills `child`'s group unless disarmed by `deadline`: for talks with a
/// command whose reads would otherwise block for ever. Disarmed (dropped)
/// before the child is reaped, so the group it kills is the child's.
struct Watchdog {
    _disarm: Sender<()>,
}

impl Watchdog {
    fn new(child: &Child, deadline: Instant) -> Self {
        let (disarm, disarmed) = channel::<()>();
        let pgid = child.id();
        std::thread::spawn(move || {
            let wait = deadline.saturating_duration_since(Instant::now());
            if disarmed.recv_timeout(wait) == Err(RecvTimeoutError::Timeout) {
                kill_group(pgid);
            }
        });
        Watchdog { _disarm: disarm }
    }
}

impl super::Shell for Shell {
    type Janitor = Janitor;

    fn run(&self, script: &str) -> Result<(i32, String, String)> {
        self.run_fed(script, None, RUN_PATIENCE)
    }

    fn run_within(&self, script: &str, patience: Duration) -> Result<(i32, String, String)> {
        self.run_fed(script, None, patience)
    }

    fn upload(&self, path: &str, bytes: &[u8]) -> Result<()> {
        // A pipe into a namespace moves hundreds of MB/s; through a pod's
        // API server a few: the wait grows with the file.
        let patience = RUN_PATIENCE + Duration::from_secs(bytes.len() as u64 >> 20);
        let script = format!("cat > {}", shell_quote(path));
        let (code, _, err) = self.run_fed(&script, Some(bytes), patience)?;
        if code != 0 {
            bail!("`cat` there exited with status {code}{}", stderr_note(&err));
        }
        Ok(())
    }

    fn measure_clock(&self, vmbench: &str, deadline: Instant) -> Result<(i64, u64)> {
        let script = format!("exec {} workload clock", shell_quote(vmbench));
        let mut child = self.start_owned(&script, Stdio::piped())?;
        let err = read_all(child.stderr.take());
        let watchdog = Watchdog::new(&child, deadline + SHORT);
        let best = match (child.stdin.take(), child.stdout.take()) {
            (Some(mut stdin), Some(stdout)) => {
                clock_rounds(&mut BufReader::new(stdout), &mut stdin, deadline)
            }
            _ => Err(anyhow!("no pipes to the clock probe")),
        };
        drop(watchdog);
        let _ = wait_within(&mut child, Instant::now() + SHORT);
        best.map_err(|e| anyhow!("{e}{}", stderr_note(&joined(err))))
    }

    fn start_janitor(&self, dir: &str, patience: Duration) -> Result<Janitor> {
        Janitor::start(self, dir, patience)
    }

    fn finish_janitor(janitor: Janitor) {
        janitor.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_command_gives_its_status_and_output_and_a_hung_one_is_killed_in_time() {
        let shell = Shell::new(vec!["env".into()]);
        let (code, out, err) = shell
            .run_fed("echo out; echo err >&2; exit 3", None, RUN_PATIENCE)
            .expect("runs");
        assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
        let (_, out, _) = shell
            .run_fed("cat", Some(b"fed"), RUN_PATIENCE)
            .expect("runs");
        assert_eq!(out, "fed");
        let began = Instant::now();
        let hung = shell.run_fed("sleep 30", None, Duration::from_millis(300));
        assert!(hung.is_err_and(|e| e.to_string().contains("killed")));
        // Its deadline and a loaded machine's margin, not the sleep's 30 s.
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
    }
}
