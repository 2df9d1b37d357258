//! A guest's own counters, as seen from inside it: read by vmbench's agent
//! there (started again when it ends), else over SFTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::bus::EventSink;
use crate::event::{Clock, Event, GuestInfo, LogLevel};
use crate::plan::{Guest, GuestSampling};
use crate::sample::SeriesIds;
use crate::sample::agent::AgentStream;
use crate::sample::agent_hub::{AgentHub, Broke};
use crate::sample::agent_link::{Agent, AgentCommand};
use crate::sample::{GuestSampler, run_guest_sampler};
use crate::transport::{Endpoint, SamplingHook, Shell, exec, ssh};

/// What sampling the session's SSH machines needs to know.
pub(super) struct SamplingContext {
    pub plan_origin: String,
    pub clock: Clock,
    pub sink: EventSink,
    pub ids: SeriesIds,
    pub interval: Duration,
    /// Each `[[host]]`'s guests, as its agent is given them (TOML).
    pub host_seen: HashMap<String, String>,
    /// The plan's entry of each machine, by name.
    pub guests: HashMap<String, Guest>,
    /// The one thread that reads every guest's agent; None when it could
    /// not be started (said in the log: guests' own counters are then left out).
    pub agents: Option<AgentHub>,
}

impl SamplingContext {
    /// The pool's hook that starts sampling each of `machines` once it is
    /// ready, as its plan entry asks.
    pub fn start(machines: &[Guest], mut ctx: SamplingContext) -> SamplingHook {
        ctx.agents = AgentHub::start(ctx.clock, ctx.sink.clone())
            .map_err(|e| {
                ctx.log(
                    LogLevel::Warn,
                    format!("no thread to read the guests' agents ({e}): guest-side counters are left out"),
                )
            })
            .ok();
        ctx.guests = machines
            .iter()
            .map(|g| (g.name().to_string(), g.clone()))
            .collect();
        let ctx = Arc::new(ctx);
        Arc::new(move |endpoint: &Endpoint, info: &GuestInfo| {
            let guest = ctx.guests.get(&endpoint.name)?.clone();
            if guest.sampling == GuestSampling::Off {
                return None;
            }
            match open_sampler(&guest, endpoint, &ctx, info) {
                Ok(sampler) => {
                    let (ctx, info) = (ctx.clone(), info.clone());
                    let sample: Box<dyn FnOnce(Receiver<()>) + Send> = Box::new(move |stop| {
                        let agents = ctx.agents.clone();
                        sample_guest(sampler, &guest, &ctx, &info, agents, stop);
                    });
                    Some(sample)
                }
                Err(e) => {
                    ctx.log(
                        LogLevel::Warn,
                        format!("{}: no guest-side counters: {e}", guest.name()),
                    );
                    None
                }
            }
        })
    }

    fn log(&self, level: LogLevel, text: String) {
        self.sink.send(Event::Log {
            t: self.clock.now(),
            level,
            text,
        });
    }
}

/// What guest-side sampling goes through: an SSH session of its own (the
/// copies' is never used), or an exec guest's command.
enum SamplerLink {
    Ssh(ssh::Connection),
    Exec(exec::Shell),
}

impl SamplerLink {
    fn run(&self, script: &str) -> anyhow::Result<(i32, String, String)> {
        match self {
            SamplerLink::Ssh(connection) => {
                // A session handed back by the hub, which reads without blocking.
                connection.session.set_blocking(true);
                ssh::run(&connection.session, script)
            }
            SamplerLink::Exec(shell) => shell.run(script),
        }
    }
}

/// How a guest's own counters come: its agent's stream, or SFTP reads.
enum Sampling {
    Agent(Agent),
    Sftp(GuestSampler),
}

/// How long a new agent may take to say its first tick (one that cannot
/// run says so at once; 2 of 64 starting beside a 64-guest bring-up on 2
/// cores took over 10 s)...
const AGENT_PATIENCE: Duration = Duration::from_secs(30);

/// ...and how many start at once: each starts a 10 MB binary, and 64 at
/// once on a 2-core testbed left some silent past that patience (the
/// wait for a turn counts against none).
static AGENT_STARTS: ssh::Slots = ssh::Slots::new(4);

/// Guest-side counters come over a second session, so that sampling never
/// waits behind a benchmark's output or a barrier: from vmbench's agent on
/// the guest where it runs, else over SFTP (said in the log). An exec
/// guest's come from its agent only: it has no SFTP.
fn open_sampler(
    guest: &Guest,
    endpoint: &Endpoint,
    ctx: &SamplingContext,
    info: &GuestInfo,
) -> Result<(SamplerLink, Sampling), String> {
    if let Some(prefix) = &endpoint.exec {
        let link = SamplerLink::Exec(exec::Shell::new(prefix.clone()));
        let stream = AgentStream::new(guest.name(), ctx.ids.clone());
        return start_agent(&link, guest, ctx, info, stream)
            .map(|agent| (link, Sampling::Agent(agent)))
            .map_err(|why| {
                format!("vmbench's agent cannot run there ({why}), and an exec guest has no SFTP")
            });
    }
    let connect = || {
        ssh::connect(endpoint, ssh::UnknownKey::Refuse)
            .map_err(|e| e.describe(&ctx.plan_origin, &endpoint.address))
    };
    let link = SamplerLink::Ssh(connect()?);
    // A hypervisor host is read by its agent only: over SFTP it would pass
    // for a guest, and what it sees of its guests needs the agent.
    if ctx.host_seen.contains_key(guest.name()) {
        let stream = AgentStream::for_host(guest.name(), ctx.ids.clone());
        return start_agent(&link, guest, ctx, info, stream)
            .map(|agent| (link, Sampling::Agent(agent)))
            .map_err(|why| format!("vmbench's agent cannot run there ({why})"));
    }
    if guest.sampling == GuestSampling::Agent {
        let stream = AgentStream::new(guest.name(), ctx.ids.clone());
        let started = start_agent(&link, guest, ctx, info, stream);
        match started {
            Ok(agent) => return Ok((link, Sampling::Agent(agent))),
            Err(why) => ctx.log(
                LogLevel::Warn,
                format!(
                    "{}: its counters are read over SFTP: vmbench's agent cannot run there ({why})",
                    guest.name()
                ),
            ),
        }
    }
    // A session of its own: the agent's may be left in any state.
    let connection = match link {
        SamplerLink::Ssh(connection) if guest.sampling != GuestSampling::Agent => connection,
        _ => connect()?,
    };
    let sampler = GuestSampler::open(
        &connection.session,
        guest.name(),
        ctx.ids.clone(),
        shares_this_hosts_kernel(info),
    )
    .map_err(|e| format!("{e:#}"))?;
    Ok((SamplerLink::Ssh(connection), Sampling::Sftp(sampler)))
}

/// Whether the guest runs on this host's kernel (a namespace, a container),
/// so that its disks are only those its mounts are on.
fn shares_this_hosts_kernel(info: &GuestInfo) -> bool {
    crate::sample::own_disks::shares_this_hosts_kernel(info.boot_id.as_deref())
}

/// Starts vmbench's agent on a guest or a hypervisor host, ticking on
/// this host's grid.
fn start_agent(
    link: &SamplerLink,
    guest: &Guest,
    ctx: &SamplingContext,
    info: &GuestInfo,
    stream: AgentStream,
) -> Result<Agent, String> {
    let vmbench = info.vmbench.as_ref().map_err(|why| why.clone())?;
    let command = AgentCommand {
        vmbench,
        interval: ctx.interval,
        // This host samples at multiples of the interval of its clock; the
        // guest's clock is ahead of it by the offset.
        grid_phase: info
            .clock_offset_ns
            .map(|offset| offset.rem_euclid(ctx.interval.as_nanos().max(1) as i64) as u64),
        silence: super::endpoint_of(guest).policy.silence_limit(),
        host_seen: ctx.host_seen.get(guest.name()).cloned(),
        mounted_disks_only: shares_this_hosts_kernel(info),
    };
    let _turn = AGENT_STARTS.take();
    match link {
        SamplerLink::Ssh(connection) => {
            Agent::start(&connection.session, &command, stream, AGENT_PATIENCE)
        }
        SamplerLink::Exec(shell) => Agent::start_exec(shell, &command, stream, AGENT_PATIENCE),
    }
    .map_err(|e| format!("{e:#}"))
}

/// How many times a guest's agent is started again after it ended or broke
/// in one session, and the pause before the first time (doubled each time
/// after): an agent killed on the guest (an OOM kill, an operator) costs a
/// second or two of its counters, not the rest of the night.
const AGENT_RESTARTS: u32 = 3;
const AGENT_RESTART_PAUSE: Duration = Duration::from_secs(1);

/// Samples a guest from inside until `stop` fires or its sender goes:
/// its agent read by the hub (started again when it ends), or SFTP
/// reads on this thread. The sampler's session closes when this returns.
fn sample_guest(
    (link, sampling): (SamplerLink, Sampling),
    guest: &Guest,
    ctx: &SamplingContext,
    info: &GuestInfo,
    agents: Option<AgentHub>,
    stop: Receiver<()>,
) {
    let name = guest.name().to_string();
    let agent = match sampling {
        Sampling::Sftp(sampler) => {
            let sink = ctx.sink.clone();
            return run_guest_sampler(sampler, name, ctx.clock, ctx.interval, sink, stop);
        }
        Sampling::Agent(agent) => agent,
    };
    let Some(agents) = agents else {
        return;
    };
    let (mut agent, mut stop) = (agent, stop);
    let mut pause = AGENT_RESTART_PAUSE;
    for restart in 1.. {
        // Disconnected: the hub let go because it was told to stop.
        let Ok(Broke {
            stop: back,
            mut stream,
            silent,
        }) = agents.adopt(name.clone(), agent, stop).recv()
        else {
            return;
        };
        if restart > AGENT_RESTARTS {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "{name}: its agent ended {restart} times; its own counters are left out from here"
                ),
            );
            return;
        }
        // A stop during the pause ends it.
        if !matches!(back.recv_timeout(pause), Err(RecvTimeoutError::Timeout)) {
            return;
        }
        pause *= 2;
        // An agent given up for its silence may live on, stopped or hung,
        // where its closed channel cannot reach it: ended, if that pid is
        // still an agent (one that ended may have passed its pid on).
        if let (true, Some(pid)) = (silent, stream.pid()) {
            let end = format!(
                "grep -qa -- --interval-ns /proc/{pid}/cmdline 2>/dev/null && kill -9 {pid}"
            );
            if let Err(e) = link.run(&end) {
                ctx.log(
                    LogLevel::Warn,
                    format!("{name}: its silent agent (pid {pid}) could not be ended: {e:#}"),
                );
            }
        }
        stream.restart();
        match start_agent(&link, guest, ctx, info, stream) {
            Ok(again) => {
                ctx.log(
                    LogLevel::Info,
                    format!("{name}: its agent was started again ({restart} of {AGENT_RESTARTS})"),
                );
                (agent, stop) = (again, back);
            }
            Err(e) => {
                ctx.log(
                    LogLevel::Warn,
                    format!(
                        "{name}: its agent could not be started again ({e}); its own counters are \
                         left out from here"
                    ),
                );
                return;
            }
        }
    }
}
