//! The session's SSH machines (guests and hypervisor hosts): each is
//! connected, prepared and sampled on a thread of its own from the start
//! of the session, so that phases find their guests ready and one
//! unreachable guest holds up nobody else. The pool knows machines by
//! their `Endpoint`; what samples each is handed to it (`SamplingHook`).
//!
//! A guest whose connection breaks is marked lost at once (its copies end
//! as failed, its sampler stops); later phases fail its copies at once, or
//! connect it again first when the plan asks for `reconnect`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::quiet::Quiet;
use crate::bus::EventSink;
use crate::event::{Clock, Event, GuestInfo, GuestState, LogLevel, Nanos};
use crate::format::clock as clock_text;
use crate::transport::{self, Endpoint, Liveness, Reached, Remote, Shell, exec, ssh};

type Slot = Option<Result<Remote, String>>;

/// The longest a phase waits for a guest still being brought up (each of
/// its steps has its own timeout; this bounds them together).
pub const BRING_UP_LIMIT: Duration = Duration::from_secs(120);

/// When and why a guest was lost; shared with its link's session thread.
type LostAt = Arc<Mutex<Option<(Nanos, String)>>>;

/// How far a clock can drift from another: the kernel lets NTP slew
/// CLOCK_MONOTONIC by at most 500 ppm.
const MAX_DRIFT_PPM: u64 = 500;

/// Longer than a command with a plain shell takes on a busy 2-core host
/// (some 20 ms); a `.bashrc` that starts pyenv takes 150 ms on its own.
const SLOW_COMMAND: std::time::Duration = std::time::Duration::from_millis(100);

/// How many guests' clocks are measured at once before a phase.
const CLOCKS_AT_ONCE: usize = 4;

/// A guest clock's offset from this host's, measured at `at` (session time)
/// to within `uncertainty`.
#[derive(Clone, Copy)]
struct Measured {
    offset: i64,
    uncertainty: u64,
    at: crate::event::Nanos,
}

struct Member {
    endpoint: Endpoint,
    slot: watch::Receiver<Slot>,
    lost: LostAt,
    stop_sampler: Sender<()>,
    thread: JoinHandle<()>,
}

pub struct GuestPool {
    members: HashMap<String, Member>,
    /// Each guest's clock as last measured, again before a phase or (where
    /// that failed) at bring-up.
    clocks: HashMap<String, Measured>,
    /// Guests whose connection thread could not even be started.
    unstarted: HashMap<String, String>,
    ctx: PoolContext,
}

/// What starts sampling a machine once it is ready: called on the
/// machine's thread before it counts as settled (so that the sampler's
/// handshake is not inside a phase); what it returns then samples on that
/// thread until told to stop. None: the machine is not sampled.
pub type SamplingHook = Arc<
    dyn Fn(&Endpoint, &GuestInfo) -> Option<Box<dyn FnOnce(Receiver<()>) + Send>> + Send + Sync,
>;

#[derive(Clone)]
pub struct PoolContext {
    /// Where the machines were named (the plan's file), for error messages.
    pub plan_origin: String,
    pub clock: Clock,
    pub sink: EventSink,
    /// The vmbench binary put on each guest.
    pub exe: PathBuf,
    pub sampling: Option<SamplingHook>,
    /// Guests' slow commands have been warned of (once a session, however
    /// often guests are connected again).
    pub slow_commands_said: Arc<std::sync::atomic::AtomicBool>,
}

impl PoolContext {
    fn state(&self, guest: &str, state: GuestState) {
        self.sink.send(Event::GuestState {
            t: self.clock.now(),
            guest: guest.to_string(),
            state,
        });
    }

    pub fn log(&self, level: LogLevel, text: String) {
        self.sink.send(Event::Log {
            t: self.clock.now(),
            level,
            text,
        });
    }
}

impl GuestPool {
    /// Starts every machine's bring-up at once; each is announced as
    /// connecting, in the order given, before any reports back.
    pub fn start(machines: Vec<Endpoint>, ctx: &PoolContext) -> Self {
        let mut pool = GuestPool {
            members: HashMap::new(),
            clocks: HashMap::new(),
            unstarted: HashMap::new(),
            ctx: ctx.clone(),
        };
        let quiet = Quiet::new(machines.len());
        for machine in &machines {
            ctx.state(&machine.name, GuestState::Connecting);
        }
        for machine in machines {
            pool.connect(machine, quiet.clone());
        }
        pool
    }

    /// Starts a guest's connection thread: bring-up, then its sampler.
    fn connect(&mut self, machine: Endpoint, quiet: Quiet) {
        let name = machine.name.clone();
        let (tx, rx) = watch::channel(None);
        let (stop_tx, stop_rx) = channel();
        let lost: LostAt = Arc::default();
        let ctx = self.ctx.clone();
        let on_lost = {
            let (ctx, lost, stop, name) =
                (ctx.clone(), lost.clone(), stop_tx.clone(), name.clone());
            move |reason: String| {
                let t = ctx.clock.now();
                *lost.lock().unwrap_or_else(|e| e.into_inner()) = Some((t, reason.clone()));
                let _ = stop.send(());
                ctx.log(
                    LogLevel::Error,
                    format!("{name} lost at {}: {reason}", clock_text(t)),
                );
                ctx.state(&name, GuestState::Lost { reason });
            }
        };
        let thread_machine = machine.clone();
        let thread_quiet = quiet.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("guest-{name}"))
            .spawn(move || {
                let machine = thread_machine;
                let remote = bring_up(&machine, &ctx, &thread_quiet, Box::new(on_lost));
                match &remote {
                    Ok(r) => ctx.state(
                        &machine.name,
                        GuestState::Ready {
                            info: Box::new((*r.info).clone()),
                        },
                    ),
                    Err(reason) => ctx.state(
                        &machine.name,
                        GuestState::Failed {
                            reason: reason.clone(),
                        },
                    ),
                }
                // The sampler's session opens before the guest counts as
                // settled, so that its handshake is not inside a phase.
                let sampler = match (&remote, &ctx.sampling) {
                    (Ok(r), Some(hook)) => hook(&machine, &r.info),
                    _ => None,
                };
                let _ = tx.send(Some(remote));
                if let Some(sample) = sampler {
                    sample(stop_rx);
                }
            });
        match spawned {
            Ok(thread) => {
                self.members.insert(
                    name,
                    Member {
                        endpoint: machine,
                        slot: rx,
                        lost,
                        stop_sampler: stop_tx,
                        thread,
                    },
                );
            }
            Err(e) => {
                // Its turn at the quiet barrier is given up, so that the
                // others do not wait for a guest that never arrives.
                quiet.leave();
                self.unstarted.insert(name, format!("no thread: {e}"));
            }
        }
    }

    /// Waits until every guest's connection attempt is over, so that no
    /// upload or handshake runs beside a measured phase, or until
    /// `BRING_UP_LIMIT`; the number still unsettled then is returned (a
    /// phase then fails their copies with that reason).
    pub async fn settle(&mut self) -> usize {
        let all = async {
            for member in self.members.values_mut() {
                let _ = member.slot.wait_for(Option::is_some).await;
            }
        };
        let _ = tokio::time::timeout(BRING_UP_LIMIT, all).await;
        self.unsettled()
    }

    pub fn unsettled(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.slot.borrow().is_none())
            .count()
    }

    /// The guest, once its connection attempt is over; Err says why it
    /// cannot take a copy (failed, or lost and when).
    pub async fn get(&mut self, name: &str) -> Result<Remote, String> {
        if let Some(why) = self.unstarted.get(name) {
            return Err(format!("guest unreachable: {why}"));
        }
        let Some(member) = self.members.get_mut(name) else {
            return Err(format!("{name} is not an SSH guest"));
        };
        let settled = tokio::time::timeout(BRING_UP_LIMIT, member.slot.wait_for(Option::is_some));
        let remote = match settled.await {
            Ok(Ok(slot)) => slot.clone().unwrap_or_else(|| Err("not connected".into())),
            Ok(Err(_)) => Err("its connection thread ended".into()),
            Err(_) => Err(format!(
                "still connecting after {} s",
                BRING_UP_LIMIT.as_secs()
            )),
        }
        .map_err(|why| format!("guest unreachable: {why}"))?;
        match remote.link.liveness() {
            Liveness::Up => Ok(remote),
            Liveness::Lost(why) => {
                let at = member
                    .lost
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                Err(match at {
                    Some((t, _)) => format!("guest lost at {}: {why}", clock_text(t)),
                    None => format!("guest lost: {why}"),
                })
            }
        }
    }

    /// Connects again, before a phase, each of `names` that was lost and
    /// whose plan entry asks for `reconnect`: up to its attempts, waiting
    /// its back-off (doubling) before each. Returns when each is ready or
    /// has used its attempts; each attempt is bounded by `BRING_UP_LIMIT`.
    pub async fn revive(&mut self, names: &[&str]) {
        for name in names {
            let Some(member) = self.members.get(*name) else {
                continue;
            };
            let machine = member.endpoint.clone();
            let liveness = machine.policy;
            // Lost, or not connected at all (a bring-up that failed, an
            // earlier phase's attempts that all failed): tried again.
            let down = match member.slot.borrow().as_ref() {
                Some(Ok(remote)) => remote.link.liveness() != Liveness::Up,
                Some(Err(_)) => true,
                None => false,
            };
            if !down || liveness.reconnect_attempts == 0 {
                continue;
            }
            let mut wait = liveness.reconnect_backoff;
            let mut reconnected = false;
            for attempt in 1..=liveness.reconnect_attempts {
                self.ctx.state(name, GuestState::Reconnecting { attempt });
                tokio::time::sleep(wait).await;
                wait *= 2;
                self.retire(name);
                self.connect(machine.clone(), Quiet::new(1));
                let ready = match self.members.get_mut(*name) {
                    Some(m) => matches!(
                        tokio::time::timeout(BRING_UP_LIMIT, m.slot.wait_for(Option::is_some))
                            .await
                            .as_ref()
                            .map(|slot| slot.as_deref()),
                        Ok(Ok(Some(Ok(_))))
                    ),
                    None => false,
                };
                if ready {
                    self.ctx.log(
                        LogLevel::Info,
                        format!("{name} reconnected (attempt {attempt})"),
                    );
                    reconnected = true;
                    break;
                }
            }
            if !reconnected {
                self.ctx.log(
                    LogLevel::Warn,
                    format!(
                        "{name}: not reconnected after {} attempts; its copies in this phase fail \
                         (the next phase tries again)",
                        liveness.reconnect_attempts
                    ),
                );
            }
        }
    }

    /// Measures the clock offset of each of `names` that is up again, on
    /// its open session, a few at a time: a clock that drifts over a long
    /// night is followed, and each copy's stamps are converted with the
    /// offset measured just before its phase. Recorded as `guest_clock`
    /// with the drift since bring-up.
    pub async fn remeasure_clocks(&mut self, names: &[&str]) {
        let mut measuring = tokio::task::JoinSet::new();
        // Each measurement starts vmbench on its guest: 64 at once on a
        // 2-core testbed took longer than a call's timeout for most of
        // them, and a round trip measured under that load is no measure.
        let turns = Arc::new(tokio::sync::Semaphore::new(CLOCKS_AT_ONCE));
        for name in names {
            let Some(member) = self.members.get(*name) else {
                continue;
            };
            let Some(Ok(remote)) = member.slot.borrow().clone() else {
                continue;
            };
            let Ok(vmbench) = remote.info.vmbench.clone() else {
                continue;
            };
            // A bring-up measurement stands in until one succeeds again; it
            // is counted from the session's start, which came before it.
            if let (Some(offset), Some(rtt)) =
                (remote.info.clock_offset_ns, remote.info.clock_rtt_ns)
            {
                self.clocks.entry(name.to_string()).or_insert(Measured {
                    offset,
                    uncertainty: rtt / 2,
                    at: 0,
                });
            }
            // Measured again even where bring-up could not: drift counts
            // from the first offset known.
            let initial = remote.info.clock_offset_ns;
            if remote.link.liveness() != Liveness::Up {
                continue;
            }
            let name = name.to_string();
            let Ok(turn) = turns.clone().acquire_owned().await else {
                continue;
            };
            measuring.spawn_blocking(move || {
                let measured = remote.link.measure_clock(&vmbench);
                drop(turn);
                (name, initial, measured)
            });
        }
        while let Some(joined) = measuring.join_next().await {
            let Ok((name, initial, measured)) = joined else {
                self.ctx.log(
                    LogLevel::Warn,
                    "a clock measurement's thread failed; that guest's last offset stands".into(),
                );
                continue;
            };
            match measured {
                Ok((offset, uncertainty)) => {
                    let at = self.ctx.clock.now();
                    let drift = initial.map_or(0, |i| offset - i);
                    let since = self.clocks.get(&name).copied();
                    self.clocks.insert(
                        name.clone(),
                        Measured {
                            offset,
                            uncertainty,
                            at,
                        },
                    );
                    // Drift beyond what both measurements allow is news.
                    if let Some(before) = since
                        && (offset - before.offset).unsigned_abs()
                            > uncertainty + before.uncertainty
                    {
                        self.ctx.log(
                            LogLevel::Info,
                            format!(
                                "{name}: clock moved {:+.3} ms since it was last measured \
                                 ({:+.3} ms since bring-up; ±{:.3} ms now)",
                                (offset - before.offset) as f64 / 1e6,
                                drift as f64 / 1e6,
                                uncertainty as f64 / 1e6
                            ),
                        );
                    }
                    self.ctx.sink.send(Event::GuestClock {
                        t: at,
                        guest: name,
                        offset_ns: offset,
                        uncertainty_ns: uncertainty,
                        drift_ns: drift,
                    });
                }
                Err(why) => self.ctx.log(
                    LogLevel::Warn,
                    format!(
                        "{name}: clock not measured again ({why}); its last offset stands, its \
                         uncertainty grown by the most a clock drifts since ({MAX_DRIFT_PPM} ppm)"
                    ),
                ),
            }
        }
    }

    /// A guest's clock offset as last measured, and how far off it may be
    /// now: its measurement's uncertainty plus the most the clock can have
    /// drifted since (a few microseconds right after a measurement; much
    /// more when measurements failed for an hour).
    pub fn clock_of(&self, name: &str) -> Option<(i64, u64)> {
        let m = self.clocks.get(name)?;
        let since = self.ctx.clock.now().saturating_sub(m.at);
        Some((m.offset, m.uncertainty + since / 1_000_000 * MAX_DRIFT_PPM))
    }

    /// Takes a lost guest's member out of the pool; its threads end on
    /// their own (the link is gone, the sampler was told to stop).
    fn retire(&mut self, name: &str) {
        self.clocks.remove(name);
        if let Some(member) = self.members.remove(name) {
            let _ = member.stop_sampler.send(());
            drop(member.thread);
        }
    }

    /// Closes every guest's session (removing what was put there) and stops
    /// the guest samplers; waits for all of it until `deadline`. A guest
    /// that has not closed by then (silent, its link cut) is named in the
    /// log and left: its folder goes at its next connection's sweep.
    pub fn close(self, deadline: Instant) {
        let remotes: Vec<(String, Remote)> = self
            .members
            .iter()
            .filter_map(|(name, m)| {
                let slot = m.slot.borrow();
                let remote = slot.as_ref()?.as_ref().ok()?.clone();
                Some((name.clone(), remote))
            })
            .collect();
        for (_, remote) in &remotes {
            remote.link.close();
        }
        for member in self.members.values() {
            let _ = member.stop_sampler.send(());
        }
        let mut names: Vec<&String> = Vec::new();
        for (name, remote) in &remotes {
            let lost = remote.link.liveness() != Liveness::Up;
            if remote.link.wait_closed(deadline) {
                if !lost {
                    names.push(name);
                }
            } else {
                self.ctx.log(
                    LogLevel::Warn,
                    format!(
                        "{name}: not closed within the stop's deadline (the guest is silent); \
                         vmbench's folder there is removed at its next connection"
                    ),
                );
            }
        }
        for member in self.members.into_values() {
            while !member.thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // A guest that failed or was lost keeps that as its last state.
        names.sort();
        for name in names {
            self.ctx.state(name, GuestState::Closed);
        }
    }
}

fn bring_up(
    machine: &Endpoint,
    ctx: &PoolContext,
    quiet: &Quiet,
    on_lost: Box<dyn FnOnce(String) + Send>,
) -> Result<Remote, String> {
    if machine.exec.is_some() {
        let (shell, reached) = exec::connect(machine).inspect_err(|_| quiet.leave())?;
        let (info, janitor) = prepare(&shell, reached, machine, ctx, quiet)?;
        let link = exec::spawn_link(shell, &machine.name, janitor, machine.policy, on_lost)
            .map_err(|e| format!("no thread for the link: {e}"))?;
        return Ok(Remote {
            link,
            info: Arc::new(info),
        });
    }
    let connection = match ssh::connect(machine, ssh::UnknownKey::Refuse) {
        Ok(c) => c,
        Err(e) => {
            quiet.leave();
            return Err(e.describe(&ctx.plan_origin, &machine.address));
        }
    };
    let (info, janitor) = prepare(
        &connection.session,
        connection.reached(),
        machine,
        ctx,
        quiet,
    )?;
    let link = ssh::spawn_link(connection, &machine.name, janitor, machine.policy, on_lost)
        .map_err(|e| format!("no thread for the session: {e}"))?;
    Ok(Remote {
        link,
        info: Arc::new(info),
    })
}

/// Puts vmbench on a machine just reached, saying so when it came from
/// the machine's own cache.
fn prepare<S: Shell>(
    shell: &S,
    reached: Reached,
    machine: &Endpoint,
    ctx: &PoolContext,
    quiet: &Quiet,
) -> Result<(GuestInfo, Option<S::Janitor>), String> {
    let transport::Prepared {
        info,
        janitor,
        from_cache,
        first_command,
    } = transport::prepare(shell, reached, &machine.socket_text(), &ctx.exe, quiet)
        .map_err(|e| format!("{e:#}"))?;
    if first_command > SLOW_COMMAND
        && !ctx
            .slow_commands_said
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        ctx.log(
            LogLevel::Warn,
            format!(
                "{}: a command took {} ms to run there (a shell and a few tools): its shell reads \
                 start-up files for every command, as bash reads ~/.bashrc over SSH (one that \
                 starts pyenv or conda costs some 0.15 s). vmbench runs a command per copy and \
                 per clock measurement, so with many guests that is most of bring-up and of the \
                 time between phases: make non-interactive shells return early (`case $- in \
                 *i*) ;; *) return;; esac` at the top of ~/.bashrc)",
                machine.name,
                first_command.as_millis()
            ),
        );
    }
    if from_cache {
        ctx.log(
            LogLevel::Info,
            format!(
                "{}: vmbench taken from the guest's own cache (same checksum), not sent again",
                machine.name
            ),
        );
    }
    Ok((info, janitor))
}
