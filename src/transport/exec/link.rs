//! An exec guest's link: one thread that starts its commands, writes their
//! releases, kills them and asks whether the guest is still there.
//!
//! A kill ends the command's process group here, which reaches a command
//! in any namespace of this host, whatever its PID namespace; and, through
//! the prefix, its process in the guest, for prefixes whose command lives
//! elsewhere (a pod, a sandbox). The guest's pid comes on the command's
//! first line; a kill waits a little for it, since the process here is
//! what carries that line.
//!
//! Liveness is asked, not heard: at each keepalive a fresh `PREFIX sh -c :`
//! must come back. `keepalive_count` refusals in a row (a namespace
//! deleted, a container stopped, a pod gone) or one probe unanswered for
//! the silence limit (a hung guest) lose it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::super::endpoint::LinkPolicy;
use super::super::guest_link::{GuestLink, LinkCommand, PGID_TAG, wrap};
use super::super::{ExecEnd, ExecId, ExecOutput, kill_group};
use super::{Janitor, SHORT, Shell, joined, read_all, stderr_note, wait_within};

/// How long a clock measurement between phases may take.
const CLOCK_PATIENCE: Duration = Duration::from_secs(3);

/// Hands the guest's link to its own thread and returns the handle;
/// `janitor` is finished when the link closes. When the guest stops
/// answering, `on_lost` is called once with the reason.
pub fn spawn_link(
    shell: Shell,
    name: &str,
    janitor: Option<Janitor>,
    policy: LinkPolicy,
    on_lost: Box<dyn FnOnce(String) + Send>,
) -> std::io::Result<GuestLink> {
    GuestLink::spawn(
        format!("exec-{name}"),
        None,
        move |rx| Link::new(shell, janitor, policy).run(rx),
        on_lost,
    )
}

/// A command running in the guest.
struct Running {
    /// Its group here.
    pgid: u32,
    stdin: Option<ChildStdin>,
    /// Its pid in the guest, once it has told it.
    guest_pid: Arc<Mutex<Option<u32>>>,
    /// Taken by whoever reports its end: its reader, or the link when the
    /// guest is lost.
    output: Arc<Mutex<Option<UnboundedSender<ExecOutput>>>>,
    /// Set by its reader once its process here is reaped: its group id may
    /// then name another process, and is not signalled any more.
    reaped: Arc<AtomicBool>,
    /// When a kill was asked that has not been carried out yet.
    kill_asked: Option<Instant>,
}

impl Running {
    fn end(&self, end: ExecEnd) {
        if let Some(output) = self.output.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = output.send(ExecOutput::Exited(end));
        }
    }

    fn kill_here(&self) {
        if !self.reaped.load(Ordering::SeqCst) {
            kill_group(self.pgid);
        }
    }

    fn guest_pid(&self) -> Option<u32> {
        *self.guest_pid.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Carries out an asked kill once it can: in the guest as soon as its
    /// pid is known, here then or (no pid coming) after SHORT.
    fn kill_when_due(&mut self, shell: &Shell) {
        let Some(asked) = self.kill_asked else {
            return;
        };
        if let Some(pid) = self.guest_pid() {
            kill_in_guest(shell, pid);
        } else if asked.elapsed() < SHORT && !self.reaped.load(Ordering::SeqCst) {
            return;
        }
        self.kill_here();
        self.kill_asked = None;
    }
}

/// A liveness probe in flight.
struct Probe {
    started: Instant,
    /// Its group here, for a probe that hangs (None: it never started).
    pgid: Option<u32>,
    answer: Receiver<Result<(), String>>,
}

/// A command that ended, and its end when its reader held it back.
type Ended = (ExecId, Option<ExecEnd>);

struct Link {
    shell: Shell,
    janitor: Option<Janitor>,
    policy: LinkPolicy,
    running: HashMap<ExecId, Running>,
    ended_tx: Sender<Ended>,
    ended: Receiver<Ended>,
    /// Ends held back until a probe started after them says whether the
    /// guest is still there: a command that failed before the guest ran
    /// anything is what a guest that has gone looks like.
    unconfirmed: Vec<(Instant, ExecId, ExecEnd)>,
    probe: Option<Probe>,
    probe_due: Instant,
    /// Probes refused in a row.
    refusals: u32,
    closing: bool,
}

impl Link {
    fn new(shell: Shell, janitor: Option<Janitor>, policy: LinkPolicy) -> Self {
        let (ended_tx, ended) = channel();
        Link {
            shell,
            janitor,
            policy,
            running: HashMap::new(),
            ended_tx,
            ended,
            unconfirmed: Vec::new(),
            probe: None,
            probe_due: Instant::now() + policy.keepalive,
            refusals: 0,
            closing: false,
        }
    }

    /// The link's thread: Some(why) when the guest was lost.
    fn run(mut self, commands: Receiver<LinkCommand>) -> Option<String> {
        let keepalive = self.policy.keepalive.max(Duration::from_secs(1));
        let mut lost: Option<String> = None;
        loop {
            let wait = self
                .probe_due
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            let mut next = match commands.recv_timeout(wait) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.closing = true;
                    None
                }
            };
            while let Some(command) = next.take() {
                self.take(command, lost.as_deref());
                next = match commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        self.closing = true;
                        None
                    }
                };
            }
            if self.closing {
                for r in self.running.values_mut() {
                    r.stdin = None;
                    r.kill_asked.get_or_insert_with(Instant::now);
                }
            }
            for r in self.running.values_mut() {
                r.kill_when_due(&self.shell);
            }
            self.settle_ended();
            if lost.is_none() {
                lost = self.check_probe();
            }
            if lost.is_none()
                && Instant::now() >= self.probe_due
                && let Some(j) = self.janitor.as_mut()
                && let Err(why) = j.heartbeat()
            {
                lost = Some(why);
            }
            if let Some(why) = lost {
                for (_, r) in self.running.drain() {
                    r.kill_here();
                    r.end(ExecEnd::Lost(why.clone()));
                }
                return Some(why);
            }
            if self.closing && self.running.is_empty() {
                if let Some(j) = self.janitor.take() {
                    j.finish();
                }
                return None;
            }
            if Instant::now() >= self.probe_due {
                self.probe_due = Instant::now() + keepalive;
                if self.probe.is_none() {
                    self.probe = start_probe(&self.shell);
                }
            }
        }
    }

    fn take(&mut self, command: LinkCommand, lost: Option<&str>) {
        match command {
            LinkCommand::Exec { output, .. } if lost.is_some() => {
                let why = lost.unwrap_or_default().to_string();
                let _ = output.send(ExecOutput::Exited(ExecEnd::Lost(why)));
            }
            LinkCommand::Exec {
                id,
                command,
                output,
            } => match start_command(&self.shell, id, &command, output, &self.ended_tx) {
                Ok(r) => {
                    self.running.insert(id, r);
                }
                Err((output, why)) => {
                    let _ = output.send(ExecOutput::Exited(ExecEnd::Refused(why)));
                }
            },
            // A release line is a few bytes, far below a pipe's buffer.
            LinkCommand::Write { id, bytes } => {
                let failed = self.running.get_mut(&id).and_then(|r| {
                    let stdin = r.stdin.as_mut()?;
                    stdin.write_all(&bytes).err()
                });
                if let Some(e) = failed
                    && let Some(r) = self.running.get_mut(&id)
                {
                    r.stdin = None;
                    r.kill_asked.get_or_insert_with(Instant::now);
                    r.end(ExecEnd::Refused(format!("writing to it: {e}")));
                }
            }
            LinkCommand::Kill { id } => {
                if let Some(r) = self.running.get_mut(&id) {
                    // Its cue to stop, for what reads its input.
                    r.stdin = None;
                    r.kill_asked.get_or_insert_with(Instant::now);
                }
            }
            LinkCommand::Clock { vmbench, reply } => {
                // A command whose end was reported is over, whether or not
                // its reader has told this loop yet.
                let busy = self
                    .running
                    .values()
                    .any(|r| r.output.lock().unwrap_or_else(|e| e.into_inner()).is_some());
                let measured = if busy {
                    Err("commands are running".to_string())
                } else if lost.is_some() {
                    Err("the guest is lost".to_string())
                } else {
                    super::super::Shell::measure_clock(
                        &self.shell,
                        &vmbench,
                        Instant::now() + CLOCK_PATIENCE,
                    )
                    .map_err(|e| format!("{e:#}"))
                };
                let _ = reply.send(measured);
            }
            LinkCommand::Close => self.closing = true,
        }
    }

    /// Takes the ends the readers sent: reported ones leave, held ones
    /// wait for a probe started after them (asked for now).
    fn settle_ended(&mut self) {
        while let Ok((id, held)) = self.ended.try_recv() {
            match held {
                // Its kill, if one was asked, went out before this (see
                // `kill_when_due`, which runs first each turn).
                None => {
                    self.running.remove(&id);
                }
                Some(end) => {
                    self.unconfirmed.push((Instant::now(), id, end));
                    self.probe_due = Instant::now();
                }
            }
        }
    }

    /// What the probe in flight says: Some(why) when the guest is lost.
    /// An answer confirms the held ends that came before the probe.
    fn check_probe(&mut self) -> Option<String> {
        let p = self.probe.as_ref()?;
        let silence_limit = self.policy.silence_limit();
        let answer = match p.answer.try_recv() {
            Ok(answer) => answer,
            Err(TryRecvError::Empty) if p.started.elapsed() > silence_limit => {
                // Not yet reaped (its waiter is still waiting).
                if let Some(pgid) = p.pgid {
                    kill_group(pgid);
                }
                return Some(format!(
                    "the guest did not run a command within {} s",
                    silence_limit.as_secs()
                ));
            }
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => Err("a liveness probe was lost".into()),
        };
        let started = p.started;
        self.probe = None;
        match answer {
            Ok(()) => {
                self.refusals = 0;
                let running = &mut self.running;
                self.unconfirmed.retain(|(at, id, end)| {
                    if *at > started {
                        return true;
                    }
                    if let Some(r) = running.remove(id) {
                        r.end(end.clone());
                    }
                    false
                });
                None
            }
            Err(why) => {
                self.refusals += 1;
                if self.refusals >= self.policy.keepalive_count.max(1) {
                    return Some(why);
                }
                // Asked again at the next keepalive.
                None
            }
        }
    }
}

/// Starts `PREFIX sh -c :` (tied to the link's thread); a thread of its
/// own waits for it. None when it cannot even start (said by the next).
fn start_probe(shell: &Shell) -> Option<Probe> {
    let (tx, answer) = channel();
    let started = Instant::now();
    let prefix = shell.describe();
    let mut child = match shell
        .owned(":")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            let _ = tx.send(Err(format!("cannot start `{prefix}`: {e}")));
            return Some(Probe {
                started,
                pgid: None,
                answer,
            });
        }
    };
    let pgid = Some(child.id());
    let err = read_all(child.stderr.take());
    std::thread::spawn(move || {
        let answer = match child.wait() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!(
                "`{prefix}` no longer runs a command there: {}{}",
                ExecEnd::of_status(status).describe(),
                stderr_note(&joined(err))
            )),
            Err(e) => Err(format!("waiting for a liveness probe: {e}")),
        };
        let _ = tx.send(answer);
    });
    Some(Probe {
        started,
        pgid,
        answer,
    })
}

/// Kills the command's process in the guest, through the prefix: its group
/// where it leads one, else the process itself. Not tied to the link's
/// thread (a stop ends that thread at once), waited for in the background.
fn kill_in_guest(shell: &Shell, pid: u32) {
    let script = format!("kill -KILL -- -{pid} 2>/dev/null || kill -KILL {pid} 2>/dev/null; true");
    if let Ok(mut child) = shell
        .command(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        std::thread::spawn(move || wait_within(&mut child, Instant::now() + SHORT));
    }
}

type Refused = (UnboundedSender<ExecOutput>, String);

/// Starts a command and the reader that streams its output back and
/// reports its end, then tells the link on `ended`.
fn start_command(
    shell: &Shell,
    id: ExecId,
    command: &str,
    output: UnboundedSender<ExecOutput>,
    ended: &Sender<Ended>,
) -> Result<Running, Refused> {
    let mut child = match shell.start_owned(&wrap(command), Stdio::piped()) {
        Ok(child) => child,
        Err(e) => return Err((output, format!("{e:#}"))),
    };
    let running = Running {
        pgid: child.id(),
        stdin: child.stdin.take(),
        guest_pid: Arc::default(),
        output: Arc::new(Mutex::new(Some(output))),
        reaped: Arc::default(),
        kill_asked: None,
    };
    let (guest_pid, output, reaped) = (
        running.guest_pid.clone(),
        running.output.clone(),
        running.reaped.clone(),
    );
    let ended = ended.clone();
    std::thread::spawn(move || {
        let held = relay(child, &guest_pid, &output, &reaped);
        let _ = ended.send((id, held));
    });
    Ok(running)
}

/// Streams a command's output line by line (its first line, its pid in
/// the guest, kept), then reports how it ended, unless the link did
/// already. A command that failed before the guest ran it is not
/// reported: its end is returned, for the link to confirm.
fn relay(
    mut child: Child,
    guest_pid: &Mutex<Option<u32>>,
    output: &Mutex<Option<UnboundedSender<ExecOutput>>>,
    reaped: &AtomicBool,
) -> Option<ExecEnd> {
    let send = |item: ExecOutput| {
        if let Some(output) = output.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = output.send(item);
        }
    };
    let stderr = child.stderr.take();
    std::thread::scope(|scope| {
        let errors = scope.spawn(|| {
            if let Some(stderr) = stderr {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    send(ExecOutput::Stderr(line));
                }
            }
        });
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut known = guest_pid.lock().unwrap_or_else(|e| e.into_inner());
                if known.is_none()
                    && let Some(pid) = line.strip_prefix(PGID_TAG).and_then(|p| p.parse().ok())
                {
                    *known = Some(pid);
                    continue;
                }
                drop(known);
                send(ExecOutput::Stdout(line));
            }
        }
        let _ = errors.join();
    });
    let end = match child.wait() {
        Ok(status) => ExecEnd::of_status(status),
        Err(e) => ExecEnd::Lost(format!("could not be waited for: {e}")),
    };
    reaped.store(true, Ordering::SeqCst);
    let never_ran = guest_pid
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_none();
    if never_ran && !end.success() {
        return Some(end);
    }
    if let Some(output) = output.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = output.send(ExecOutput::Exited(end));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_tells_its_process_first_and_stays_in_this_hosts_group() {
        assert_eq!(wrap("sleep 5"), "echo vmbench-pgid $$; exec sleep 5");
    }
}
