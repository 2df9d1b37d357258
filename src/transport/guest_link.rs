//! The handle on a guest's link, over SSH or through a command: one
//! thread owns the link and takes commands from this handle; the handle
//! says whether the guest is still there.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::{ExecEnd, ExecId, ExecOutput, Liveness};

/// The first line every command prints on a guest, so that its group can
/// be killed there.
pub(super) const PGID_TAG: &str = "vmbench-pgid ";

/// The script a command runs as on a guest: telling its process first.
/// Over SSH, sshd starts each session's command in a session of its own,
/// so that pid is the group of everything it starts; through a command
/// (`exec`), it is where the prefix runs it as one.
pub(super) fn wrap(command: &str) -> String {
    format!("echo {PGID_TAG}$$; exec {command}")
}

pub(super) enum LinkCommand {
    Exec {
        id: ExecId,
        command: String,
        output: UnboundedSender<ExecOutput>,
    },
    Write {
        id: ExecId,
        bytes: Vec<u8>,
    },
    Kill {
        id: ExecId,
    },
    /// Measure the guest's clock offset again (between phases).
    Clock {
        vmbench: String,
        reply: Sender<Result<(i64, u64), String>>,
    },
    Close,
}

/// A handle on the thread that owns a guest's link; cheap to clone.
#[derive(Clone)]
pub struct GuestLink {
    commands: Sender<LinkCommand>,
    /// Written to after each command, for a thread that waits on more than
    /// the command channel (an SSH session's socket); None when the thread
    /// waits on the channel itself.
    wake: Option<Arc<OwnedFd>>,
    next_id: Arc<std::sync::atomic::AtomicU64>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// Set, once, by the session thread when the connection breaks.
    lost: Arc<Mutex<Option<String>>>,
}

impl GuestLink {
    /// Hands the link to a thread of its own, `run`, which takes commands
    /// from its receiver (and is woken through `wake` when it waits on
    /// more) and returns why the guest was lost, if it was; `on_lost` is
    /// then called once with that, on the thread, after `liveness` says so.
    pub(super) fn spawn(
        thread_name: String,
        wake: Option<Arc<OwnedFd>>,
        run: impl FnOnce(Receiver<LinkCommand>) -> Option<String> + Send + 'static,
        on_lost: Box<dyn FnOnce(String) + Send>,
    ) -> std::io::Result<GuestLink> {
        let (tx, rx) = channel();
        let lost = Arc::new(Mutex::new(None));
        let thread_lost = lost.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || {
                if let Some(why) = run(rx) {
                    *thread_lost.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                    on_lost(why);
                }
            })?;
        Ok(GuestLink {
            commands: tx,
            wake,
            next_id: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            thread: Arc::new(Mutex::new(Some(thread))),
            lost,
        })
    }

    /// False when the link's thread has ended and will take no command.
    fn send(&self, command: LinkCommand) -> Result<(), LinkCommand> {
        self.commands.send(command).map_err(|e| e.0)?;
        if let Some(wake) = &self.wake {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to an eventfd this link owns.
            unsafe {
                libc::write(
                    wake.as_raw_fd(),
                    (&raw const one).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
        }
        Ok(())
    }

    /// Starts `command` in its own process group on the guest; its output
    /// and end come back on `output`. On a lost or closed session the end
    /// comes back at once.
    pub fn exec(&self, command: String, output: UnboundedSender<ExecOutput>) -> ExecId {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let refused = self.send(LinkCommand::Exec {
            id,
            command,
            output,
        });
        if let Err(LinkCommand::Exec { output, .. }) = refused {
            let why = match self.liveness() {
                Liveness::Lost(why) => why,
                Liveness::Up => "the session was closed".into(),
            };
            let _ = output.send(ExecOutput::Exited(ExecEnd::Lost(why)));
        }
        id
    }

    /// Measures the guest's clock offset and its uncertainty (half the
    /// best round trip) again, on the open session; only between phases.
    pub fn measure_clock(&self, vmbench: &str) -> Result<(i64, u64), String> {
        let (reply, answer) = channel();
        self.send(LinkCommand::Clock {
            vmbench: vmbench.to_string(),
            reply,
        })
        .map_err(|_| "the session is closed".to_string())?;
        answer
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| "no answer within 5 s".to_string())?
            .map(|(offset, rtt)| (offset, rtt / 2))
    }

    pub fn liveness(&self) -> Liveness {
        match self.lost.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            Some(why) => Liveness::Lost(why),
            None => Liveness::Up,
        }
    }

    pub fn write(&self, id: ExecId, bytes: &[u8]) {
        let _ = self.send(LinkCommand::Write {
            id,
            bytes: bytes.to_vec(),
        });
    }

    /// Kills the command's whole process group on the guest.
    pub fn kill(&self, id: ExecId) {
        let _ = self.send(LinkCommand::Kill { id });
    }

    /// Asks the session to end: running commands are killed, the janitor
    /// cleans up, the connection is closed.
    pub fn close(&self) {
        let _ = self.send(LinkCommand::Close);
    }

    /// Waits until the session thread has ended, or `deadline` has passed;
    /// true when it ended. A thread still blocked on a silent guest is left
    /// to end with the process.
    pub fn wait_closed(&self, deadline: Instant) -> bool {
        let mut slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        while slot.as_ref().is_some_and(|t| !t.is_finished()) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(thread) = slot.take() {
            let _ = thread.join();
        }
        true
    }
}
