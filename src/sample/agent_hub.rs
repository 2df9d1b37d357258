//! Every guest's agent, read by one thread. The agents tick on the host's
//! grid, so a tick's lines from all guests arrive together and one wake-up
//! takes them all. A thread per guest woke once per guest and tick, and on
//! a 2-core VM those wake-ups (three per guest-tick: its reader, the
//! session's owner, the recorder), not the reading, were most of what
//! guest sampling cost the host.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

use super::agent::AgentStream;
use super::agent_link::{Agent, is_timeout};
use crate::bus::EventSink;
use crate::event::{Clock, Event, LogLevel};

/// The longest the hub sleeps: how soon it sees a guest it was told to
/// stop reading when no agent has written.
const LONGEST_SLEEP: Duration = Duration::from_millis(250);

/// The thread that reads every guest's agent; cheap to clone.
#[derive(Clone)]
pub struct AgentHub {
    adopt: Sender<Adopted>,
    /// A byte here wakes the hub to take a new agent at once.
    waker: std::sync::Arc<UnixStream>,
}

/// An agent handed to the hub, until `stop` says so (or its sender goes).
struct Adopted {
    guest: String,
    agent: Agent,
    stop: Receiver<()>,
    /// Told (or dropped) when the hub lets go of the agent: its owner may
    /// then close the agent's session, or start another agent.
    done: Sender<Broke>,
}

/// An agent whose stream ended or broke (said in the log): what its owner
/// needs to start another on the same guest and hand it back.
pub struct Broke {
    pub stop: Receiver<()>,
    pub stream: AgentStream,
    /// Given up for saying nothing: its process may live on, stopped.
    pub silent: bool,
}

impl AgentHub {
    /// Starts the hub's thread; it ends once every handle is dropped and
    /// every agent let go.
    pub fn start(clock: Clock, sink: EventSink) -> io::Result<AgentHub> {
        let (adopt, adopted) = channel();
        let (waker, wakes) = UnixStream::pair()?;
        wakes.set_nonblocking(true)?;
        std::thread::Builder::new()
            .name("agents".into())
            .spawn(move || run(adopted, wakes, clock, sink))?;
        Ok(AgentHub {
            adopt,
            waker: std::sync::Arc::new(waker),
        })
    }

    /// Reads `agent` until `stop` fires or its sender is dropped, the bus
    /// closes or the stream ends (a warning says why). The receiver
    /// returned disconnects once the hub has let go of the agent because it
    /// was told to stop, and says `Broke` when the agent ended or broke.
    pub fn adopt(&self, guest: String, agent: Agent, stop: Receiver<()>) -> Receiver<Broke> {
        let (done, let_go) = channel();
        let adopted = Adopted {
            guest,
            agent,
            stop,
            done,
        };
        // A hub that has gone drops the agent with the message: let go.
        if self.adopt.send(adopted).is_ok() {
            let _ = (&*self.waker).write(&[1]);
        }
        let_go
    }
}

/// An agent being read.
struct Member {
    adopted: Adopted,
    last_heartbeat: Instant,
    /// When it last wrote anything: an agent stopped (SIGSTOP, a hung
    /// read) on a session still open writes nothing and says nothing.
    last_heard: Instant,
    /// Given up for its silence: it may live on, stopped.
    silent: bool,
}

impl Member {
    fn new(adopted: Adopted) -> Self {
        Member {
            adopted,
            last_heartbeat: Instant::now(),
            last_heard: Instant::now(),
            silent: false,
        }
    }

    /// Lets go of a broken agent, handing its owner what another needs;
    /// its channel is closed first, on this thread, so that the owner's
    /// next use of the session meets no call of the hub's.
    fn broke(self) {
        let Adopted {
            agent, stop, done, ..
        } = self.adopted;
        let Agent { pipe, stream, .. } = agent;
        pipe.close();
        let silent = self.silent;
        let _ = done.send(Broke {
            stop,
            stream,
            silent,
        });
    }

    /// A log line about this agent, in order with its samples.
    fn say(&self, clock: &Clock, level: LogLevel, text: String, out: &mut Vec<Event>) {
        out.push(Event::Log {
            t: clock.now(),
            level,
            text: format!("{}: {text}", self.adopted.guest),
        });
    }

    fn stopped(&self, clock: &Clock, why: String, out: &mut Vec<Event>) -> bool {
        let text = format!("guest-side sampling stopped: {why}");
        self.say(clock, LogLevel::Warn, text, out);
        false
    }

    /// Decodes bytes read into events; false (said) when the stream is bad.
    fn take(&mut self, bytes: &[u8], clock: &Clock, out: &mut Vec<Event>) -> bool {
        self.last_heard = Instant::now();
        let stream = &mut self.adopted.agent.stream;
        match stream.take(bytes, clock) {
            Ok((defs, samples)) => {
                out.extend(defs.into_iter().map(Event::SeriesDefined));
                out.extend(samples.into_iter().map(Event::Sample));
                let (errors, notes) = (stream.take_errors(), stream.take_notes());
                for text in errors {
                    self.say(clock, LogLevel::Warn, text, out);
                }
                for text in notes {
                    self.say(clock, LogLevel::Info, text, out);
                }
                true
            }
            Err(e) => self.stopped(clock, format!("{e:#}"), out),
        }
    }

    /// Reads all the agent has written, including what libssh2 holds
    /// already (which no poll sees); false (said) once it has ended or
    /// its stream broke.
    fn read(&mut self, buf: &mut [u8], clock: &Clock, out: &mut Vec<Event>) -> bool {
        loop {
            match self.adopted.agent.pipe.read(buf) {
                Ok(0) => {
                    let why = self.adopted.agent.pipe.ended_why();
                    return self.stopped(clock, format!("the agent ended{why}"), out);
                }
                Ok(n) => {
                    if !self.take(&buf[..n], clock, out) {
                        return false;
                    }
                }
                Err(e) if is_timeout(&e) => return true,
                Err(e) => return self.stopped(clock, e.to_string(), out),
            }
        }
    }

    /// Tells the agent the host still listens (an agent that hears nothing
    /// ends by itself), and gives up on one that has written nothing for
    /// its silence limit; false (said) when either fails.
    fn heartbeat(&mut self, buf: &mut [u8], clock: &Clock, out: &mut Vec<Event>) -> bool {
        let (heartbeat, silence) = (self.adopted.agent.heartbeat, self.adopted.agent.silence);
        // What waits is read first: this thread may have been the slow one.
        if self.last_heard.elapsed() > silence {
            if !self.read(buf, clock, out) {
                return false;
            }
            if self.last_heard.elapsed() > silence {
                self.silent = true;
                let why = format!("the agent said nothing for {} s", silence.as_secs());
                return self.stopped(clock, why, out);
            }
        }
        if self.last_heartbeat.elapsed() < heartbeat {
            return true;
        }
        self.last_heartbeat = Instant::now();
        // A write may read what has arrived meanwhile into libssh2's own
        // buffers, so it is taken at once.
        match self.adopted.agent.pipe.heartbeat() {
            Err(e) if !is_timeout(&e) => self.stopped(clock, e.to_string(), out),
            _ => self.read(buf, clock, out),
        }
    }
}

fn run(adopted: Receiver<Adopted>, wakes: UnixStream, clock: Clock, sink: EventSink) {
    let mut members: Vec<Member> = Vec::new();
    let mut handles_left = true;
    let mut buf = vec![0u8; 64 << 10];
    let mut events = Vec::new();
    loop {
        // New agents, and what they said while starting.
        while handles_left {
            match adopted.try_recv() {
                Ok(mut a) => {
                    a.agent.pipe.set_nonblocking();
                    let first = std::mem::take(&mut a.agent.first);
                    let mut member = Member::new(a);
                    if member.take(&first, &clock, &mut events)
                        && member.read(&mut buf, &clock, &mut events)
                    {
                        members.push(member);
                    } else {
                        member.broke();
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => handles_left = false,
            }
        }
        let mut drained = [0u8; 64];
        while matches!((&wakes).read(&mut drained), Ok(n) if n > 0) {}
        // Told to stop: dropped, which its owner sees as such.
        members.retain(|m| matches!(m.adopted.stop.try_recv(), Err(TryRecvError::Empty)));
        members = keep_working(members, |m| m.heartbeat(&mut buf, &clock, &mut events));
        for event in events.drain(..) {
            if !sink.send(event) {
                return;
            }
        }
        if !handles_left && members.is_empty() {
            return;
        }
        let mut fds: Vec<libc::pollfd> = std::iter::once(wakes.as_raw_fd())
            .chain(members.iter().map(|m| m.adopted.agent.pipe.fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of pollfd of the length given.
        let ready = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                LONGEST_SLEEP.as_millis() as i32,
            )
        };
        if ready <= 0 {
            continue;
        }
        let mut index = 0;
        members = keep_working(members, |m| {
            index += 1;
            fds[index].revents == 0 || m.read(&mut buf, &clock, &mut events)
        });
    }
}

/// Keeps the members `working` holds true of; lets the others go as broken.
fn keep_working(members: Vec<Member>, mut working: impl FnMut(&mut Member) -> bool) -> Vec<Member> {
    let mut kept = Vec::with_capacity(members.len());
    for mut member in members {
        if working(&mut member) {
            kept.push(member);
        } else {
            member.broke();
        }
    }
    kept
}
