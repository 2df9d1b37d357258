//! Running a plan: phases of benchmark × concurrency × repetition, each
//! released at one instant once every copy is set up, ended by the copies, a
//! timeout or the operator. Nothing is left running afterwards.

mod adaptive;
mod endpoint;
mod guest_sampling;
mod servers;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::bus::EventSink;
use crate::event::{Clock, Event, LogLevel, PhaseOutcome, RunId, RunOutcome};
use crate::format::clock as clock_text;
use crate::model::Session;
use crate::plan::{HostSeenGuests, Order, Plan, PlannedPhase, Transport};
use crate::sample::{SamplerCommand, SeriesIds};
use crate::transport::{ExecEnd, ExecId, ExecOutput, Link, local};
use crate::transport::{GuestPool, PoolContext};
use crate::workload::{LaunchContext, Output, OutputParser, WorkloadSpec, tools};
pub use endpoint::endpoint_of;
use guest_sampling::SamplingContext;
use servers::{NetReceiver, ToolServer};

/// What the operator (or a signal) asks of a running plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Start,
    /// End the current phase now and go on with the next.
    Skip,
    /// End the current phase now and hold the plan until Start.
    Abort,
    /// End the session: copies killed, guests closed.
    Quit(StopCause),
}

/// Why a session was stopped before its plan ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    Operator,
    Signal(&'static str),
    RecordingFailed,
}

impl StopCause {
    pub fn text(self) -> String {
        match self {
            StopCause::Operator => "stopped by the operator".into(),
            StopCause::Signal(name) => format!("stopped by {name}"),
            StopCause::RecordingFailed => "stopped: the recording could not be written".into(),
        }
    }
}

/// The `session_ended` reason of a session whose plan ran out.
pub const PLAN_COMPLETED: &str = "the plan ran to its end";

/// How long copies may take to set up and reach the barrier.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long killed copies may take to report their end; one that has not
/// by then (its guest went silent) is recorded as failed and left.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long closing the guests may take at the end of a session.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);
const STDERR_TAIL: usize = 12;

pub struct Orchestrator {
    pub plan: Plan,
    pub schedule: Vec<PlannedPhase>,
    pub clock: Clock,
    pub sink: EventSink,
    pub sampler: Sender<SamplerCommand>,
    pub exe: PathBuf,
    pub plan_origin: String,
    pub series_ids: SeriesIds,
    /// The phases and runs so far, folded from what this orchestrator
    /// emits: adaptive repetition judges the spread of their results.
    pub results: std::sync::Mutex<Session>,
    /// What the plan became on this host (what discovery found of its
    /// guests, concurrency levels that follow the core count), logged at
    /// the start.
    pub resolved: Vec<String>,
    /// What in the plan may make its figures mean less than they say on
    /// this host, warned of at the start.
    pub doubts: Vec<String>,
}

enum CopyMsg {
    Output(usize, Result<Vec<Output>, String>),
    Exited {
        index: usize,
        end: ExecEnd,
        stderr_tail: Vec<String>,
    },
}

/// A copy of the phase's benchmark, on this host or a guest: the same to
/// the orchestrator either way.
struct Copy {
    run: RunId,
    guest: String,
    /// How it is reached; None when it never started.
    exec: Option<(Link, ExecId)>,
    /// The machine's monotonic clock minus this host's.
    clock_offset_ns: i64,
    ready: bool,
    exited: bool,
    cancelled: bool,
    failure: Option<String>,
}

/// A copy started: how to reach it, its machine's clock offset, and for
/// network workloads the kind of path its traffic takes on this host.
struct Launched {
    link: Link,
    exec: crate::transport::Exec,
    clock_offset_ns: i64,
    clock_uncertainty: Option<crate::event::Nanos>,
    path: Option<String>,
}

/// Where copies run: the session's guests, and the network receivers that
/// `net` copies send to, one per address this host is reached at.
struct Targets {
    host: local::Link,
    pool: GuestPool,
    receivers: HashMap<IpAddr, NetReceiver>,
    /// Servers started for one phase's copies (iperf3), stopped after it.
    servers: Vec<ToolServer>,
    /// (benchmark, guest) already warned of a data set the page cache holds.
    warned: std::collections::HashSet<(String, String)>,
}

/// How a phase ended, and what the operator wants next.
enum After {
    Continue,
    Hold,
    Quit(StopCause),
}

impl Orchestrator {
    fn emit(&self, event: Event) {
        if let Ok(mut session) = self.results.lock() {
            session.apply(&event);
        }
        self.sink.send(event);
    }

    fn log(&self, level: LogLevel, text: impl Into<String>) {
        self.emit(Event::Log {
            t: self.clock.now(),
            level,
            text: text.into(),
        });
    }

    /// Waits for the operator's Start; false when told to quit instead.
    async fn wait_for_start(&self, control: &mut UnboundedReceiver<Control>, prompt: bool) -> bool {
        if prompt {
            self.log(LogLevel::Info, "ready: press s to start the plan");
        }
        loop {
            match control.recv().await {
                Some(Control::Start) => return true,
                Some(Control::Quit(_)) | None => return false,
                Some(_) => {}
            }
        }
    }

    pub async fn run(self, mut control: UnboundedReceiver<Control>, autostart: bool) -> Result<()> {
        for line in &self.resolved {
            self.log(LogLevel::Info, line.clone());
        }
        for line in &self.doubts {
            self.log(LogLevel::Warn, line.clone());
        }
        // Guests connect while the operator reads the screen. Hypervisor
        // hosts are brought up as guests are (they take no copy), so that
        // the first phase waits for them too.
        let machines: Vec<crate::plan::Guest> = self
            .plan
            .guests
            .iter()
            .filter(|g| g.transport.is_remote())
            .cloned()
            .chain(self.plan.hosts.iter().map(crate::plan::Host::as_connection))
            .collect();
        let sampling = SamplingContext::start(
            &machines,
            SamplingContext {
                plan_origin: self.plan_origin.clone(),
                clock: self.clock,
                sink: self.sink.clone(),
                ids: self.series_ids.clone(),
                interval: self.plan.interval.get(),
                host_seen: self
                    .plan
                    .hosts
                    .iter()
                    .map(|host| {
                        let guests = HostSeenGuests::on(&self.plan, host.name());
                        // Plan values always serialize.
                        let text = toml::to_string(&guests).unwrap_or_default();
                        (host.name().to_string(), text)
                    })
                    .collect(),
                guests: HashMap::new(),
                agents: None,
            },
        );
        let pool = GuestPool::start(
            machines.iter().map(endpoint_of).collect(),
            &PoolContext {
                plan_origin: self.plan_origin.clone(),
                clock: self.clock,
                sink: self.sink.clone(),
                exe: self.exe.clone(),
                sampling: Some(sampling),
                slow_commands_said: Default::default(),
            },
        );
        let mut targets = Targets {
            host: local::Link::default(),
            pool,
            receivers: HashMap::new(),
            servers: Vec::new(),
            warned: Default::default(),
        };
        let mut stopped: Option<StopCause> = None;
        if autostart || self.wait_for_start(&mut control, true).await {
            let unsettled = targets.pool.unsettled();
            if unsettled > 0 {
                self.log(
                    LogLevel::Info,
                    format!("waiting for {unsettled} guest(s) to connect before the first phase"),
                );
            }
            tokio::select! {
                unsettled = targets.pool.settle() => {
                    if unsettled > 0 {
                        self.log(
                            LogLevel::Warn,
                            format!(
                                "{unsettled} guest(s) still connecting after {} s: the plan starts \
                                 without them (their copies fail until they are ready)",
                                crate::transport::pool::BRING_UP_LIMIT.as_secs()
                            ),
                        );
                    }
                    stopped = self.run_schedule(&mut targets, &mut control).await;
                }
                cmd = control.recv() => if let Some((_, After::Quit(cause))) = interrupted(cmd) {
                    self.log(LogLevel::Warn, "stopped while guests were connecting");
                    stopped = Some(cause);
                },
            }
        } else {
            stopped = Some(StopCause::Operator);
        }
        for (_, r) in targets.receivers.drain() {
            r.stop().await;
        }
        let pool = targets.pool;
        // Closing waits for each guest's cleanup (blocking work), bounded.
        let deadline = Instant::now() + CLOSE_GRACE;
        let _ = tokio::task::spawn_blocking(move || pool.close(deadline)).await;
        self.emit(Event::SessionEnded {
            t: self.clock.now(),
            reason: stopped.map_or(PLAN_COMPLETED.into(), StopCause::text),
        });
        Ok(())
    }

    /// Runs the phases; Some(cause) when the session was stopped early.
    async fn run_schedule(
        &self,
        targets: &mut Targets,
        control: &mut UnboundedReceiver<Control>,
    ) -> Option<StopCause> {
        let mut next_run: RunId = 0;
        let mut queue: VecDeque<PlannedPhase> = self.schedule.iter().cloned().collect();
        let mut shuffle = fastrand::Rng::with_seed(self.plan.seed.unwrap_or(0).wrapping_add(1));
        if self.plan.order == Order::Random {
            self.log(
                LogLevel::Info,
                format!(
                    "phases in random order, seed {} (give `seed = {0}` in the plan to repeat it)",
                    self.plan.seed.unwrap_or(0)
                ),
            );
        }
        let mut index = 0usize;
        while let Some(planned) = queue.pop_front() {
            let planned = &planned;
            self.emit(Event::PhaseStarted {
                t: self.clock.now(),
                phase: index as u32,
                benchmark: planned.name.clone(),
                workload: planned.workload.clone(),
                concurrency: planned.concurrency,
                repetition: planned.repetition,
                duration: planned.duration,
            });
            let (outcome, after) = self
                .run_phase(index as u32, planned, targets, &mut next_run, control)
                .await;
            self.emit(Event::PhaseEnded {
                t: self.clock.now(),
                phase: index as u32,
                outcome,
            });
            index += 1;
            if matches!(after, After::Continue)
                && let Some(more) = self.another_repetition(planned, &queue)
            {
                // Planned order keeps a level's repetitions together.
                let at = match self.plan.order {
                    Order::Planned => 0,
                    Order::Random => shuffle.usize(..=queue.len()),
                };
                queue.insert(at, more);
            }
            match after {
                After::Continue => {}
                After::Quit(cause) => return Some(cause),
                After::Hold => {
                    self.log(
                        LogLevel::Warn,
                        "phase aborted; the plan is held: press s to go on, q to quit",
                    );
                    if !self.wait_for_start(control, false).await {
                        return Some(StopCause::Operator);
                    }
                }
            }
        }
        None
    }

    /// Says once per benchmark and guest when a disk workload's data set is
    /// under twice the guest's RAM (the study's rule for bonnie++): what
    /// does not go around the guest's caches, and what the host caches
    /// under a virtual disk, can then be memory's as much as the disk's.
    fn warn_of_small_data_set(
        &self,
        bench: &crate::plan::Benchmark,
        guest: &str,
        ram: Option<u64>,
        warned: &mut std::collections::HashSet<(String, String)>,
    ) {
        let (Some((_, Some(bytes))), Some(ram)) = (bench.workload.data_set(), ram) else {
            return;
        };
        let Some(why) = crate::workload::small_data_set(bytes, ram) else {
            return;
        };
        if warned.insert((bench.name.clone(), guest.into())) {
            self.log(LogLevel::Warn, format!("{guest}: {}: {why}", bench.name));
        }
    }

    /// The network receiver for copies that reach this host at `ip`,
    /// started on first use.
    async fn net_sink(
        &self,
        receivers: &mut HashMap<IpAddr, NetReceiver>,
        ip: IpAddr,
    ) -> Result<SocketAddr, String> {
        if let Some(r) = receivers.get(&ip) {
            return Ok(r.addr);
        }
        let r = NetReceiver::start(&self.exe, ip)
            .await
            .map_err(|e| format!("network receiver on {ip}: {e:#}"))?;
        let addr = r.addr;
        receivers.insert(ip, r);
        Ok(addr)
    }

    /// Starts one copy on a guest: how to reach it and the clock offset of
    /// its machine, or why it could not start.
    async fn launch(
        &self,
        index: usize,
        run: RunId,
        guest: &crate::plan::Guest,
        bench: &crate::plan::Benchmark,
        targets: &mut Targets,
        tx: &UnboundedSender<CopyMsg>,
    ) -> Result<Launched, String> {
        let (link, exe, sink_ip, (clock_offset_ns, clock_uncertainty), ram) = match guest.transport
        {
            Transport::Local => (
                Link::Local(targets.host.clone()),
                self.exe.clone(),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                // The host's own clock: no offset, no uncertainty.
                (0, Some(0)),
                // Workloads with direct I/O bypass this host's page cache:
                // its RAM decides only what bonnie++ measures.
                bench.workload.goes_through_page_cache().then(|| {
                    self.results
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .header
                        .host
                        .memory_bytes
                }),
            ),
            Transport::Ssh | Transport::Exec => {
                let remote = targets.pool.get(guest.name()).await?;
                let exe = PathBuf::from(remote.info.vmbench.clone()?);
                // The offset measured just before this phase, if it was.
                let clock = match targets.pool.clock_of(guest.name()) {
                    Some((offset, uncertainty)) => (offset, Some(uncertainty)),
                    None => (
                        remote.info.clock_offset_ns.unwrap_or(0),
                        remote.info.clock_rtt_ns.map(|rtt| rtt / 2),
                    ),
                };
                let ram = remote.info.shape.as_ref().map(|s| s.memory_bytes);
                (
                    Link::Guest(remote.link),
                    exe,
                    remote.info.local_ip,
                    clock,
                    ram,
                )
            }
        };
        self.warn_of_small_data_set(bench, guest.name(), ram, &mut targets.warned);
        let net_sink = match &bench.workload {
            WorkloadSpec::Iperf3 { server: None, .. } => {
                let listen = SocketAddr::new(sink_ip, tools::iperf3::BASE_PORT + index as u16);
                let server = ToolServer::start(&tools::iperf3::server_argv(listen))
                    .await
                    .map_err(|e| format!("iperf3 server on this host at {listen}: {e:#}"))?;
                targets.servers.push(server);
                Some(listen)
            }
            workload if workload.needs_net_sink() => {
                Some(self.net_sink(&mut targets.receivers, sink_ip).await?)
            }
            _ => None,
        };
        let ctx = LaunchContext {
            exe,
            duration: bench.duration.0,
            net_sink,
        };
        let argv = bench.workload.command(&ctx);
        let (out_tx, out_rx) = unbounded_channel();
        let exec = link.exec(&argv, out_tx)?;
        if let Some(pid) = exec.pid {
            let _ = self.sampler.send(SamplerCommand::Watch { run, pid });
        }
        tokio::spawn(watch_copy(
            index,
            out_rx,
            bench.workload.parser(),
            tx.clone(),
        ));
        Ok(Launched {
            link,
            exec,
            clock_offset_ns,
            clock_uncertainty,
            path: net_sink.and_then(|addr| servers::path_to(addr.ip())),
        })
    }

    async fn run_phase(
        &self,
        phase: u32,
        planned: &PlannedPhase,
        targets: &mut Targets,
        next_run: &mut RunId,
        control: &mut UnboundedReceiver<Control>,
    ) -> (PhaseOutcome, After) {
        let bench = &self.plan.benchmarks[planned.benchmark];
        let guests = self.plan.guests_of_phase(planned);
        // The guests that take a copy (copy i on guest i mod len): those
        // lost that may come back are connected again first, and each one's
        // clock is measured again; the operator can stop that wait like any
        // other. A guest without a copy is measured before the next phase
        // it takes one in (at 64 guests, ×1 measured all 64: some 5 s).
        let names: Vec<&str> = guests
            .iter()
            .take(planned.concurrency as usize)
            .map(|g| g.name())
            .collect();
        {
            let pool = &mut targets.pool;
            let revive = async {
                pool.revive(&names).await;
                pool.remeasure_clocks(&names).await;
            };
            tokio::pin!(revive);
            loop {
                tokio::select! {
                    _ = &mut revive => break,
                    cmd = control.recv() => if let Some(stop) = interrupted(cmd) {
                        return stop;
                    },
                }
            }
        }
        let (tx, mut rx) = unbounded_channel();
        let mut copies = Vec::new();
        for index in 0..planned.concurrency as usize {
            let guest = guests[index % guests.len()];
            let run = *next_run;
            *next_run += 1;
            let launched = self.launch(index, run, guest, bench, targets, &tx).await;
            let (pid, path, clock_uncertainty) =
                launched.as_ref().map_or((None, None, None), |l| {
                    (l.exec.pid, l.path.clone(), l.clock_uncertainty)
                });
            self.emit(Event::RunSpawned {
                t: self.clock.now(),
                run,
                phase,
                copy: index as u32,
                guest: guest.name().to_string(),
                technology: guest.technology.clone(),
                pid,
                metrics: bench.workload.metrics(),
                path,
                clock_uncertainty,
            });
            let mut copy = Copy {
                run,
                guest: guest.name().to_string(),
                exec: None,
                clock_offset_ns: 0,
                ready: false,
                exited: false,
                cancelled: false,
                failure: None,
            };
            match launched {
                Ok(launched) => {
                    copy.exec = Some((launched.link, launched.exec.id));
                    copy.clock_offset_ns = launched.clock_offset_ns;
                }
                Err(reason) => {
                    copy.exited = true;
                    self.log(
                        LogLevel::Error,
                        format!("{} run {run}: {reason}", copy.guest),
                    );
                    copy.failure = Some(reason.clone());
                    self.emit(Event::RunEnded {
                        t: self.clock.now(),
                        run,
                        outcome: RunOutcome::Failed { reason },
                    });
                }
            }
            copies.push(copy);
        }
        drop(tx);

        // The barrier: every copy set up (or gone) before any is released.
        let mut stop = self
            .pump(&mut copies, &mut rx, control, SETUP_TIMEOUT, |c| {
                c.ready || c.exited
            })
            .await
            .map_err(|()| {
                format!(
                    "phase {}: copies not ready after {}s",
                    phase + 1,
                    SETUP_TIMEOUT.as_secs()
                )
            });
        let timeout = bench.timeout_for(planned.concurrency);
        if let Ok(None) = stop {
            let start_at = self.release(&mut copies);
            self.emit(Event::PhaseReleased {
                t: self.clock.from_monotonic(start_at),
                phase,
            });
            stop = self
                .pump(&mut copies, &mut rx, control, timeout, |c| c.exited)
                .await
                .map_err(|()| {
                    format!(
                        "phase {} timed out after {}",
                        phase + 1,
                        humantime::format_duration(timeout)
                    )
                });
        }
        let (outcome, after) = match stop {
            Ok(None) => (None, After::Continue),
            Ok(Some((outcome, after))) => (Some(outcome), after),
            Err(text) => {
                self.log(LogLevel::Error, text);
                (Some(PhaseOutcome::TimedOut), After::Continue)
            }
        };
        if outcome.is_some() {
            self.stop_copies(&mut copies, &mut rx).await;
        }
        for copy in &copies {
            let _ = self.sampler.send(SamplerCommand::Unwatch { run: copy.run });
        }
        for server in targets.servers.drain(..) {
            server.stop().await;
        }
        let failed = copies.iter().filter(|c| c.failure.is_some()).count();
        let outcome = outcome.unwrap_or(match failed {
            0 => PhaseOutcome::Completed,
            n if n == copies.len() => PhaseOutcome::Failed,
            _ => PhaseOutcome::Partial,
        });
        (outcome, after)
    }

    /// Handles copies' messages until every copy satisfies `settled`. Returns
    /// what the operator asked for if they interrupted, Err on timeout.
    async fn pump(
        &self,
        copies: &mut [Copy],
        rx: &mut UnboundedReceiver<CopyMsg>,
        control: &mut UnboundedReceiver<Control>,
        timeout: Duration,
        settled: fn(&Copy) -> bool,
    ) -> Result<Option<(PhaseOutcome, After)>, ()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !copies.iter().all(settled) {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg, copies),
                    None => break,
                },
                cmd = control.recv() => if let Some(stop) = interrupted(cmd) {
                    return Ok(Some(stop));
                },
                _ = tokio::time::sleep_until(deadline) => return Err(()),
            }
        }
        Ok(None)
    }

    /// Kills every copy's process group, here or on its guest, and waits
    /// for each to report its end, for at most `KILL_GRACE`: a copy whose
    /// guest went silent is recorded as failed rather than waited for.
    async fn stop_copies(&self, copies: &mut [Copy], rx: &mut UnboundedReceiver<CopyMsg>) {
        for copy in copies.iter_mut().filter(|c| !c.exited) {
            if let Some((link, id)) = &copy.exec {
                link.kill(*id);
            }
            copy.cancelled = true;
        }
        let deadline = tokio::time::Instant::now() + KILL_GRACE;
        while copies.iter().any(|c| !c.exited) {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg, copies),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        for copy in copies.iter_mut().filter(|c| !c.exited) {
            copy.exited = true;
            let reason = format!(
                "did not end within {} s of being killed (its guest does not answer)",
                KILL_GRACE.as_secs()
            );
            self.log(
                LogLevel::Error,
                format!("{} run {}: {reason}", copy.guest, copy.run),
            );
            copy.failure = Some(reason.clone());
            self.emit(Event::RunEnded {
                t: self.clock.now(),
                run: copy.run,
                outcome: RunOutcome::Failed { reason },
            });
        }
    }

    /// Releases every waiting copy with a start instant on its own clock, so
    /// that all begin together whatever order the releases arrive in.
    /// Returns the instant on this host's monotonic clock. A copy whose
    /// release cannot be delivered fails and is killed.
    fn release(&self, copies: &mut [Copy]) -> u64 {
        let start_at = crate::event::monotonic_ns() + release_lead(copies).as_nanos() as u64;
        for copy in copies.iter_mut().filter(|c| c.ready && !c.exited) {
            let Some((link, id)) = &copy.exec else {
                continue;
            };
            let at = (start_at as i64 + copy.clock_offset_ns).max(0);
            if let Err(why) = link.write(*id, &format!("at {at}\n")) {
                let reason = format!("its release could not be delivered: {why}");
                self.log(
                    LogLevel::Error,
                    format!("{} run {}: {reason}", copy.guest, copy.run),
                );
                link.kill(*id);
                copy.failure = Some(reason);
            }
        }
        start_at
    }

    fn handle_output(&self, copy: &mut Copy, output: Output) {
        let run = copy.run;
        // A copy's clock readings are its machine's monotonic clock; moved
        // onto this host's by the offset measured for that machine.
        let offset = copy.clock_offset_ns;
        let on_host = |machine_ns: u64| {
            self.clock
                .from_monotonic((machine_ns as i64 - offset).max(0) as u64)
        };
        match output {
            Output::Ready => copy.ready = true,
            Output::Started { mono_ns } => self.emit(Event::RunStarted {
                t: on_host(mono_ns),
                run,
                machine_ns: Some(mono_ns),
            }),
            Output::Progress {
                metric,
                mono_ns,
                done,
            } => self.emit(Event::Progress {
                t: on_host(mono_ns),
                run,
                metric,
                done,
            }),
            Output::Result {
                metric,
                value,
                unit,
            } => self.emit(Event::RunResult {
                t: self.clock.now(),
                run,
                metric,
                value,
                unit,
            }),
            Output::Note(text) => {
                self.log(LogLevel::Info, format!("{} run {run}: {text}", copy.guest))
            }
            Output::Failed(reason) => {
                self.log(
                    LogLevel::Error,
                    format!("{} run {run}: {reason}", copy.guest),
                );
                copy.failure = Some(reason);
            }
            Output::Version { tool, text } => self.emit(Event::RunTool {
                t: self.clock.now(),
                run,
                tool,
                version: text,
            }),
        }
    }

    fn handle(&self, msg: CopyMsg, copies: &mut [Copy]) {
        match msg {
            CopyMsg::Output(index, Err(e)) => {
                let copy = &copies[index];
                self.log(
                    LogLevel::Warn,
                    format!("{} run {}: {e}", copy.guest, copy.run),
                );
            }
            CopyMsg::Output(index, Ok(outputs)) => {
                for output in outputs {
                    self.handle_output(&mut copies[index], output);
                }
            }
            CopyMsg::Exited {
                index,
                end,
                stderr_tail,
            } => {
                let copy = &mut copies[index];
                if copy.exited {
                    return;
                }
                copy.exited = true;
                copy.exec = None;
                let outcome = match (&copy.failure, end) {
                    (_, ExecEnd::Lost(why)) => {
                        // A lost guest is a failure even if the copy was
                        // being cancelled: its end was never seen.
                        let reason =
                            format!("guest lost at {}: {why}", clock_text(self.clock.now()));
                        copy.failure = Some(reason.clone());
                        RunOutcome::Failed { reason }
                    }
                    _ if copy.cancelled => RunOutcome::Cancelled,
                    (Some(reason), _) => RunOutcome::Failed {
                        reason: reason.clone(),
                    },
                    (None, end) if end.success() => RunOutcome::Completed,
                    (None, end) => {
                        let tail = stderr_tail.join(" | ");
                        let how = end.describe();
                        let reason = if tail.is_empty() {
                            how
                        } else {
                            format!("{how}: {tail}")
                        };
                        copy.failure = Some(reason.clone());
                        RunOutcome::Failed { reason }
                    }
                };
                self.emit(Event::RunEnded {
                    t: self.clock.now(),
                    run: copy.run,
                    outcome,
                });
            }
        }
    }
}

fn interrupted(cmd: Option<Control>) -> Option<(PhaseOutcome, After)> {
    match cmd {
        Some(Control::Skip) => Some((PhaseOutcome::Skipped, After::Continue)),
        Some(Control::Abort) => Some((PhaseOutcome::Aborted, After::Hold)),
        Some(Control::Quit(cause)) => Some((PhaseOutcome::Aborted, After::Quit(cause))),
        // The front end has gone: nobody is left to steer.
        None => Some((PhaseOutcome::Aborted, After::Quit(StopCause::Operator))),
        Some(Control::Start) => None,
    }
}

/// How far ahead of now the copies are told to start: long enough for the
/// release to reach every copy (a wake-up, an SSH round, a scheduler slot per
/// guest on a busy host), short enough not to matter to a phase.
fn release_lead(copies: &[Copy]) -> Duration {
    let remote = copies
        .iter()
        .filter(|c| matches!(c.exec, Some((Link::Guest(_), _))))
        .count() as u32;
    Duration::from_millis(20) + Duration::from_millis(4) * remote
}

/// Parses a copy's output (its clock readings still its machine's). Exactly
/// one `Exited` is sent, even when the output ends without one.
async fn watch_copy(
    index: usize,
    mut output: UnboundedReceiver<ExecOutput>,
    mut parser: Box<dyn OutputParser>,
    tx: UnboundedSender<CopyMsg>,
) {
    let mut tail: VecDeque<String> = VecDeque::new();
    while let Some(item) = output.recv().await {
        match item {
            ExecOutput::Stdout(line) => {
                let _ = tx.send(CopyMsg::Output(index, parser.parse_line(&line)));
            }
            ExecOutput::Stderr(line) => {
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            ExecOutput::Exited(end) => {
                let _ = tx.send(CopyMsg::Exited {
                    index,
                    end,
                    stderr_tail: tail.into(),
                });
                return;
            }
        }
    }
    let _ = tx.send(CopyMsg::Exited {
        index,
        end: ExecEnd::Lost("its output ended without an exit status".into()),
        stderr_tail: tail.into(),
    });
}
