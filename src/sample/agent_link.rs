//! Starting vmbench's agent on a guest or a hypervisor host, and the pipe
//! its stream comes back on: a channel of an SSH session of its own, or a
//! child of this host running it through an exec guest's command.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::agent::AgentStream;
use crate::event::Nanos;

/// How an agent is started on a guest or a hypervisor host.
pub struct AgentCommand<'a> {
    /// Where vmbench was put there.
    pub vmbench: &'a str,
    pub interval: Duration,
    /// Where the host's sampling grid falls on the guest's clock (its
    /// offset modulo the interval), so that its ticks and the host's
    /// coincide.
    pub grid_phase: Option<Nanos>,
    /// How long it may hear no heartbeat before it ends.
    pub silence: Duration,
    /// On a hypervisor host: the guests there, as `[[guest]]` TOML.
    pub host_seen: Option<String>,
    /// The guest shares this host's kernel (see `own_disks`).
    pub mounted_disks_only: bool,
}

impl AgentCommand<'_> {
    fn line(&self) -> String {
        let quote = crate::transport::shell_quote;
        let mut line = format!(
            "exec {} agent --interval-ns {} --silence-ms {}",
            quote(self.vmbench),
            self.interval.as_nanos(),
            self.silence.as_millis()
        );
        if let Some(phase) = self.grid_phase {
            let _ = write!(line, " --grid-phase-ns {phase}");
        }
        if let Some(guests) = &self.host_seen {
            let _ = write!(line, " --host-seen {}", quote(guests));
        }
        if self.mounted_disks_only {
            line.push_str(" --mounted-disks-only");
        }
        line
    }
}

/// What an agent's stream comes back on.
pub enum Pipe {
    /// A channel of the agent's own session (it carries nothing else).
    Ssh {
        session: ssh2::Session,
        channel: ssh2::Channel,
    },
    /// `PREFIX sh -c 'exec vmbench agent ...'`, a child of this host.
    Child {
        child: Child,
        stdin: ChildStdin,
        stdout: ChildStdout,
        stderr: ChildStderr,
    },
}

impl Pipe {
    /// Reads what has come; WouldBlock (or TimedOut) when nothing has.
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Pipe::Ssh { channel, .. } => channel.read(buf),
            Pipe::Child { stdout, .. } => stdout.read(buf),
        }
    }

    /// Tells the agent the host still listens.
    pub(super) fn heartbeat(&mut self) -> io::Result<()> {
        match self {
            // No flush: libssh2's flush throws away what was read and not
            // yet taken.
            Pipe::Ssh { channel, .. } => channel.write_all(b"."),
            Pipe::Child { stdin, .. } => stdin.write_all(b"."),
        }
    }

    /// What to poll for its stream.
    pub(super) fn fd(&self) -> RawFd {
        match self {
            Pipe::Ssh { session, .. } => session.as_raw_fd(),
            Pipe::Child { stdout, .. } => stdout.as_raw_fd(),
        }
    }

    /// From here on, reads and writes never block.
    pub(super) fn set_nonblocking(&mut self) {
        match self {
            Pipe::Ssh { session, .. } => session.set_blocking(false),
            Pipe::Child { stdin, stdout, .. } => {
                nonblocking(stdout.as_raw_fd());
                nonblocking(stdin.as_raw_fd());
            }
        }
    }

    /// Why it ended, from its stderr: " (text)" or nothing.
    pub(super) fn ended_why(&mut self) -> String {
        let mut why = String::new();
        match self {
            Pipe::Ssh { channel, .. } => {
                let _ = channel.stderr().read_to_string(&mut why);
            }
            Pipe::Child { stderr, .. } => {
                nonblocking(stderr.as_raw_fd());
                let _ = stderr.read_to_string(&mut why);
            }
        }
        match why.trim() {
            "" => String::new(),
            text => format!(" ({text})"),
        }
    }

    /// Lets go of the agent (see `Drop`).
    pub(super) fn close(self) {
        drop(self);
    }
}

impl Drop for Pipe {
    /// Its channel closes; or its child here is killed (its group: not
    /// yet reaped) and reaped. An agent elsewhere (in a pod) ends when its
    /// input does.
    fn drop(&mut self) {
        if let Pipe::Child { child, .. } = self {
            crate::transport::kill_group(child.id());
            let _ = child.wait();
        }
    }
}

fn nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor this pipe owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// A started agent: its pipe, and the stream with what it said first.
pub struct Agent {
    pub(super) pipe: Pipe,
    pub(super) stream: AgentStream,
    /// Bytes read while waiting for its first tick.
    pub(super) first: Vec<u8>,
    /// How often the host says it is still listening.
    pub(super) heartbeat: Duration,
    /// How long it may write nothing before it counts as stopped: three
    /// heartbeats unheard (when it ends by itself), and never less than
    /// two ticks of its own.
    pub(super) silence: Duration,
}

impl Agent {
    /// Starts `vmbench agent` on a session of its own and waits (at most
    /// `patience`) for its first tick: an agent that cannot run there
    /// (another architecture, a noexec /tmp) says so here, and the caller
    /// falls back to SFTP.
    pub fn start(
        session: &ssh2::Session,
        command: &AgentCommand,
        stream: AgentStream,
        patience: Duration,
    ) -> Result<Agent> {
        // A session handed back by the hub (which reads without blocking)
        // to start another agent.
        session.set_blocking(true);
        let mut channel = session.channel_session().context("opening a channel")?;
        channel
            .exec(&command.line())
            .context("starting vmbench agent")?;
        // Reads wake at least this often, so that the patience is kept;
        // the session's own timeout is given back after.
        let timeout = session.timeout();
        session.set_timeout(500);
        let mut pipe = Pipe::Ssh {
            session: session.clone(),
            channel,
        };
        let first = first_tick(&mut pipe, patience);
        session.set_timeout(timeout);
        Ok(Agent::started(pipe, first?, command, stream))
    }

    /// Starts `vmbench agent` through an exec guest's command and waits (at
    /// most `patience`) for its first tick.
    pub fn start_exec(
        shell: &crate::transport::exec::Shell,
        command: &AgentCommand,
        stream: AgentStream,
        patience: Duration,
    ) -> Result<Agent> {
        let mut child = shell.start_owned(&command.line(), Stdio::piped())?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            bail!("no pipes to vmbench agent");
        };
        let mut pipe = Pipe::Child {
            child,
            stdin,
            stdout,
            stderr,
        };
        pipe.set_nonblocking();
        match first_tick(&mut pipe, patience) {
            Ok(first) => Ok(Agent::started(pipe, first, command, stream)),
            Err(e) => {
                pipe.close();
                Err(e)
            }
        }
    }

    fn started(pipe: Pipe, first: Vec<u8>, command: &AgentCommand, stream: AgentStream) -> Agent {
        let heartbeat = (command.silence / 3).max(Duration::from_secs(1));
        Agent {
            pipe,
            stream,
            first,
            heartbeat,
            silence: (heartbeat * 3).max(command.interval * 2 + heartbeat),
        }
    }
}

/// Reads until the agent's first whole tick, or fails after `patience`.
fn first_tick(pipe: &mut Pipe, patience: Duration) -> Result<Vec<u8>> {
    let deadline = Instant::now() + patience;
    let mut first = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let whole_tick = |b: &[u8]| {
        b.ends_with(b"\n") && (b.starts_with(b"T ") || b.windows(3).any(|w| w == b"\nT "))
    };
    while !whole_tick(&first) {
        if Instant::now() > deadline {
            bail!("vmbench agent said nothing for {} s", patience.as_secs());
        }
        match pipe.read(&mut buf) {
            Ok(0) => bail!("vmbench agent ended at once{}", pipe.ended_why()),
            Ok(n) => first.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => wait_readable(pipe.fd(), Duration::from_millis(500)),
            Err(e) => return Err(e).context("reading vmbench agent"),
        }
    }
    Ok(first)
}

/// Waits until `fd` has something to read, or `wait` has passed.
fn wait_readable(fd: RawFd, wait: Duration) {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    unsafe { libc::poll(&raw mut poll, 1, wait.as_millis() as i32) };
}

pub(super) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}
