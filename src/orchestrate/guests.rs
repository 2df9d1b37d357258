//! The session's SSH guests: each is connected, prepared and sampled on a
//! thread of its own from the start of the session, so that phases find
//! their guests ready and one unreachable guest holds up nobody else.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use crate::bus::EventSink;
use crate::event::{Clock, Event, GuestState, LogLevel};
use crate::plan::{Guest, Plan, Transport};
use crate::sample::{GuestSampler, SeriesIds, run_guest_sampler};
use crate::transport::{self, Remote, ssh};

type Slot = Option<Result<Remote, String>>;

pub struct GuestPool {
    ready: HashMap<String, watch::Receiver<Slot>>,
    stop_samplers: Vec<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

pub struct PoolContext {
    pub plan_origin: String,
    pub clock: Clock,
    pub sink: EventSink,
    pub ids: SeriesIds,
    pub interval: Duration,
    /// The vmbench binary put on each guest.
    pub exe: PathBuf,
}

impl GuestPool {
    pub fn start(plan: &Plan, ctx: &PoolContext) -> Self {
        let mut pool = GuestPool {
            ready: HashMap::new(),
            stop_samplers: Vec::new(),
            threads: Vec::new(),
        };
        let ssh_guests: Vec<&Guest> = plan
            .guests
            .iter()
            .filter(|g| g.transport == Transport::Ssh)
            .collect();
        let quiet = Arc::new(Barrier::new(ssh_guests.len()));
        // Announced in plan order, before any connection reports back.
        for guest in &ssh_guests {
            ctx.sink.send(Event::GuestState {
                t: ctx.clock.now(),
                guest: guest.name().to_string(),
                state: GuestState::Connecting,
            });
        }
        for guest in ssh_guests {
            let quiet = quiet.clone();
            let (tx, rx) = watch::channel(None);
            let (stop_tx, stop_rx) = channel();
            let guest = guest.clone();
            let name = guest.name().to_string();
            let origin = ctx.plan_origin.clone();
            let exe = ctx.exe.clone();
            let (clock, sink, ids, interval) =
                (ctx.clock, ctx.sink.clone(), ctx.ids.clone(), ctx.interval);
            let spawned = std::thread::Builder::new()
                .name(format!("guest-{name}"))
                .spawn(move || {
                    let state = |state| {
                        sink.send(Event::GuestState {
                            t: clock.now(),
                            guest: guest.name().to_string(),
                            state,
                        });
                    };
                    let remote = bring_up(&guest, &origin, &exe, &quiet);
                    match &remote {
                        Ok(r) => state(GuestState::Ready {
                            info: (*r.info).clone(),
                        }),
                        Err(reason) => state(GuestState::Failed {
                            reason: reason.clone(),
                        }),
                    }
                    // The sampler's session opens before the guest counts as
                    // settled, so that its handshake is not inside a phase.
                    let sampler = remote
                        .is_ok()
                        .then(|| open_sampler(&guest, &origin, ids))
                        .map(|opened| {
                            opened.map_err(|e| {
                                sink.send(Event::Log {
                                    t: clock.now(),
                                    level: LogLevel::Warn,
                                    text: format!("{}: no guest-side counters: {e}", guest.name()),
                                });
                            })
                        });
                    let _ = tx.send(Some(remote));
                    if let Some(Ok((_connection, sampler))) = sampler {
                        let name = guest.name().to_string();
                        run_guest_sampler(sampler, name, clock, interval, sink.clone(), stop_rx);
                    }
                });
            match spawned {
                Ok(handle) => {
                    pool.threads.push(handle);
                    pool.stop_samplers.push(stop_tx);
                    pool.ready.insert(name, rx);
                }
                Err(e) => {
                    let (tx, rx) = watch::channel(Some(Err(format!("no thread: {e}"))));
                    drop(tx);
                    pool.ready.insert(name, rx);
                }
            }
        }
        pool
    }

    /// Waits until every guest's connection attempt is over, so that no
    /// upload or handshake runs beside a measured phase.
    pub async fn settle(&mut self) {
        for rx in self.ready.values_mut() {
            let _ = rx.wait_for(Option::is_some).await;
        }
    }

    pub fn unsettled(&self) -> usize {
        self.ready
            .values()
            .filter(|rx| rx.borrow().is_none())
            .count()
    }

    /// The guest, once its connection attempt is over.
    pub async fn get(&mut self, name: &str) -> Result<Remote, String> {
        let Some(rx) = self.ready.get_mut(name) else {
            return Err(format!("{name} is not an SSH guest"));
        };
        match rx.wait_for(Option::is_some).await {
            Ok(slot) => slot.clone().unwrap_or_else(|| Err("not connected".into())),
            Err(_) => Err("its connection thread ended".into()),
        }
    }

    /// Closes every guest's session (removing what was put there) and stops
    /// the guest samplers; waits for all of it.
    pub fn close(mut self, clock: Clock, sink: &EventSink) {
        for rx in self.ready.values_mut() {
            if let Some(Ok(remote)) = rx.borrow().as_ref() {
                remote.link.close();
            }
        }
        for rx in self.ready.values_mut() {
            let remote = rx.borrow().as_ref().and_then(|r| r.as_ref().ok()).cloned();
            if let Some(remote) = remote {
                remote.link.wait_closed();
            }
        }
        drop(self.stop_samplers);
        for handle in self.threads {
            let _ = handle.join();
        }
        // A guest that failed keeps its failure as its last state.
        let mut names: Vec<&String> = self
            .ready
            .iter()
            .filter(|(_, rx)| matches!(rx.borrow().as_ref(), Some(Ok(_))))
            .map(|(name, _)| name)
            .collect();
        names.sort();
        for name in names {
            sink.send(Event::GuestState {
                t: clock.now(),
                guest: name.clone(),
                state: GuestState::Closed,
            });
        }
    }
}

fn bring_up(
    guest: &Guest,
    plan_origin: &str,
    exe: &Path,
    quiet: &Barrier,
) -> Result<Remote, String> {
    let host = guest.address.as_deref().unwrap_or_default();
    let connection = match ssh::connect(guest, ssh::UnknownKey::Refuse) {
        Ok(c) => c,
        Err(e) => {
            quiet.wait();
            return Err(e.describe(plan_origin, host));
        }
    };
    let transport::Prepared { info, janitor } =
        transport::prepare(&connection, &guest.endpoint(), exe, quiet)
            .map_err(|e| format!("{e:#}"))?;
    let link = ssh::spawn_link(connection, guest.name(), janitor)
        .map_err(|e| format!("no thread for the session: {e}"))?;
    Ok(Remote {
        link,
        info: Arc::new(info),
    })
}

/// Guest-side counters come over a second session, so that sampling never
/// waits behind a benchmark's output or a barrier.
fn open_sampler(
    guest: &Guest,
    plan_origin: &str,
    ids: SeriesIds,
) -> Result<(ssh::Connection, GuestSampler), String> {
    let connection = ssh::connect(guest, ssh::UnknownKey::Refuse)
        .map_err(|e| e.describe(plan_origin, guest.address.as_deref().unwrap_or_default()))?;
    let sampler =
        GuestSampler::open(&connection.session, guest.name(), ids).map_err(|e| format!("{e:#}"))?;
    Ok((connection, sampler))
}
