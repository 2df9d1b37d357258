//! Running a plan: phases of benchmark × concurrency × repetition, each
//! released at one instant once every copy is set up, ended by the copies, a
//! timeout or the operator. Nothing is left running afterwards.

mod guests;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::bus::EventSink;
use crate::event::{Clock, Event, LogLevel, PhaseOutcome, RunId, RunOutcome};
use crate::model::Session;
use crate::plan::{Order, Plan, PlannedPhase, Transport};
use crate::results::{DEFAULT_SKEW_BOUND, Results};
use crate::sample::{SamplerCommand, SeriesIds};
use crate::stats::Summary;
use crate::transport::ssh::{ExecId, Link, RemoteOutput};
use crate::transport::{Remote, shell_command};
use crate::workload::{LaunchContext, Output, OutputParser, WorkloadSpec, builtin, tools};
pub use guests::GuestPool;
use guests::PoolContext;

/// What the operator (or a signal) asks of a running plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Start,
    /// End the current phase now and go on with the next.
    Skip,
    /// End the current phase now and hold the plan until Start.
    Abort,
    Quit,
}

/// How long copies may take to set up and reach the barrier.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
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
    /// What discovery found of the plan's guests, logged at the start.
    pub discovered: Vec<String>,
}

enum CopyMsg {
    Output(usize, Result<Vec<Output>, String>),
    Exited {
        index: usize,
        /// Err says how it did not succeed.
        ended: Result<(), String>,
        stderr_tail: Vec<String>,
    },
}

/// How the orchestrator reaches a copy: a child process on this host, or a
/// command on a guest's SSH session.
enum Handle {
    Local {
        pid: Option<u32>,
        stdin: Option<ChildStdin>,
    },
    Remote {
        link: Link,
        id: ExecId,
        /// The guest's monotonic clock minus this host's.
        clock_offset_ns: i64,
    },
    Gone,
}

struct Copy {
    run: RunId,
    guest: String,
    handle: Handle,
    ready: bool,
    exited: bool,
    cancelled: bool,
    failure: Option<String>,
}

/// Where copies run: the session's guests, and the network receivers that
/// `net` copies send to, one per address this host is reached at.
struct Targets {
    pool: GuestPool,
    receivers: HashMap<IpAddr, NetReceiver>,
    /// Servers started for one phase's copies (iperf3), stopped after it.
    servers: Vec<ToolServer>,
}

/// How a phase ended, and what the operator wants next.
enum After {
    Continue,
    Hold,
    Quit,
}

impl Orchestrator {
    fn emit(&self, event: Event) {
        if let Ok(mut session) = self.results.lock() {
            session.apply(&event);
        }
        self.sink.send(event);
    }

    /// Another repetition of a phase whose benchmark repeats until its
    /// figures settle, if their spread is still above the bound.
    fn another_repetition(
        &self,
        done: &PlannedPhase,
        queued: &VecDeque<PlannedPhase>,
    ) -> Option<PlannedPhase> {
        let bench = &self.plan.benchmarks[done.benchmark];
        let (bound, max) = bench.adaptive()?;
        let same =
            |p: &PlannedPhase| p.benchmark == done.benchmark && p.concurrency == done.concurrency;
        if queued.iter().any(same) {
            return None;
        }
        let session = self.results.lock().ok()?;
        let runs = session
            .phases
            .iter()
            .filter(|p| p.benchmark == bench.name && p.concurrency == done.concurrency)
            .count() as u32;
        if runs >= max {
            return None;
        }
        let results = Results::of_session(&session, "", DEFAULT_SKEW_BOUND);
        let mut metrics: Vec<&str> = Vec::new();
        for r in &results.phases {
            if r.benchmark == bench.name && !metrics.contains(&r.metric.as_str()) {
                metrics.push(&r.metric);
            }
        }
        let spreads: Vec<Option<f64>> = metrics
            .iter()
            .map(|metric| {
                let values: Vec<f64> = results
                    .phases
                    .iter()
                    .filter(|r| r.benchmark == bench.name && r.concurrency == done.concurrency)
                    .filter(|r| r.metric == *metric && r.counts(false))
                    .filter_map(|r| r.aggregate)
                    .collect();
                Summary::of(&values).and_then(|s| s.rsd_percent())
            })
            .collect();
        // Too few results to judge count as unsettled.
        let settled = !spreads.is_empty()
            && spreads
                .iter()
                .all(|s| s.is_some_and(|rsd| rsd < bound * 100.0));
        if settled {
            return None;
        }
        let worst = spreads.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
        drop(session);
        self.log(
            LogLevel::Info,
            format!(
                "{} ×{}: relative spread {:.1} % after {runs} run(s), above {} %: one more",
                bench.name,
                done.concurrency,
                worst,
                bound * 100.0
            ),
        );
        Some(PlannedPhase {
            repetition: runs + 1,
            ..done.clone()
        })
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
                Some(Control::Quit) | None => return false,
                Some(_) => {}
            }
        }
    }

    pub async fn run(self, mut control: UnboundedReceiver<Control>, autostart: bool) -> Result<()> {
        for line in &self.discovered {
            self.log(LogLevel::Info, format!("discovered {line}"));
        }
        // Guests connect while the operator reads the screen.
        let pool = GuestPool::start(
            &self.plan,
            &PoolContext {
                plan_origin: self.plan_origin.clone(),
                clock: self.clock,
                sink: self.sink.clone(),
                ids: self.series_ids.clone(),
                interval: self.plan.interval.get(),
                exe: self.exe.clone(),
            },
        );
        let mut targets = Targets {
            pool,
            receivers: HashMap::new(),
            servers: Vec::new(),
        };
        if autostart || self.wait_for_start(&mut control, true).await {
            let unsettled = targets.pool.unsettled();
            if unsettled > 0 {
                self.log(
                    LogLevel::Info,
                    format!("waiting for {unsettled} guest(s) to connect before the first phase"),
                );
            }
            tokio::select! {
                _ = targets.pool.settle() => self.run_schedule(&mut targets, &mut control).await,
                cmd = control.recv() => if interrupted(cmd).is_some() {
                    self.log(LogLevel::Warn, "stopped while guests were connecting");
                },
            }
        }
        for (_, r) in targets.receivers.drain() {
            r.stop().await;
        }
        let pool = targets.pool;
        let (clock, sink) = (self.clock, self.sink.clone());
        // Closing waits for each guest's cleanup, which is blocking work.
        let _ = tokio::task::spawn_blocking(move || pool.close(clock, &sink)).await;
        self.emit(Event::SessionEnded {
            t: self.clock.now(),
        });
        Ok(())
    }

    async fn run_schedule(&self, targets: &mut Targets, control: &mut UnboundedReceiver<Control>) {
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
                After::Quit => break,
                After::Hold => {
                    self.log(
                        LogLevel::Warn,
                        "phase aborted; the plan is held: press s to go on, q to quit",
                    );
                    if !self.wait_for_start(control, false).await {
                        break;
                    }
                }
            }
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

    fn spawn_copy(&self, argv: &[String]) -> std::io::Result<Child> {
        owned_command(argv, Stdio::piped(), Stdio::piped()).spawn()
    }

    /// Starts one copy on a guest and returns how to reach it, or why not.
    async fn launch(
        &self,
        index: usize,
        run: RunId,
        guest: &crate::plan::Guest,
        bench: &crate::plan::Benchmark,
        targets: &mut Targets,
        tx: &UnboundedSender<CopyMsg>,
    ) -> Result<Handle, String> {
        let (remote, exe, sink_ip) = match guest.transport {
            Transport::Local => (None, self.exe.clone(), IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Transport::Ssh => {
                let remote = targets
                    .pool
                    .get(guest.name())
                    .await
                    .map_err(|why| format!("guest unreachable: {why}"))?;
                let exe = PathBuf::from(remote.info.vmbench.clone()?);
                let ip = remote.info.local_ip;
                (Some(remote), exe, ip)
            }
        };
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
        let parser = bench.workload.parser();
        match remote {
            None => {
                let mut child = self
                    .spawn_copy(&argv)
                    .map_err(|e| format!("cannot start {}: {e}", argv[0]))?;
                let pid = child.id();
                if let Some(pid) = pid {
                    let _ = self.sampler.send(SamplerCommand::Watch { run, pid });
                }
                let stdin = child.stdin.take();
                tokio::spawn(watch_copy(index, child, parser, tx.clone()));
                Ok(Handle::Local { pid, stdin })
            }
            Some(Remote { link, info }) => {
                let (out_tx, out_rx) = unbounded_channel();
                let id = link.exec(shell_command(&argv), out_tx);
                let clock_offset_ns = info.clock_offset_ns.unwrap_or(0);
                tokio::spawn(watch_remote(
                    index,
                    out_rx,
                    parser,
                    clock_offset_ns,
                    tx.clone(),
                ));
                Ok(Handle::Remote {
                    link,
                    id,
                    clock_offset_ns,
                })
            }
        }
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
        let guests = self.plan.guests_of(bench);
        let (tx, mut rx) = unbounded_channel();
        let mut copies = Vec::new();
        for index in 0..planned.concurrency as usize {
            let guest = guests[index % guests.len()];
            let run = *next_run;
            *next_run += 1;
            let launched = self.launch(index, run, guest, bench, targets, &tx).await;
            let pid = match &launched {
                Ok(Handle::Local { pid, .. }) => *pid,
                _ => None,
            };
            self.emit(Event::RunSpawned {
                t: self.clock.now(),
                run,
                phase,
                copy: index as u32,
                guest: guest.name().to_string(),
                technology: guest.technology.clone(),
                pid,
                metrics: bench.workload.metrics(),
            });
            let mut copy = Copy {
                run,
                guest: guest.name().to_string(),
                handle: Handle::Gone,
                ready: false,
                exited: false,
                cancelled: false,
                failure: None,
            };
            match launched {
                Ok(handle) => copy.handle = handle,
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
        if let Ok(None) = stop {
            let start_at = release(&copies);
            self.emit(Event::PhaseReleased {
                t: self.clock.from_monotonic(start_at),
                phase,
            });
            stop = self
                .pump(&mut copies, &mut rx, control, bench.timeout(), |c| c.exited)
                .await
                .map_err(|()| {
                    format!(
                        "phase {} timed out after {}",
                        phase + 1,
                        humantime::format_duration(bench.timeout())
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
    /// for each to be reaped.
    async fn stop_copies(&self, copies: &mut [Copy], rx: &mut UnboundedReceiver<CopyMsg>) {
        for copy in copies.iter_mut().filter(|c| !c.exited) {
            match &mut copy.handle {
                Handle::Local { pid, stdin } => {
                    *stdin = None;
                    if let Some(pid) = pid {
                        // SAFETY: signals the process group this orchestrator created.
                        unsafe { libc::killpg(*pid as libc::pid_t, libc::SIGKILL) };
                    }
                }
                Handle::Remote { link, id, .. } => link.kill(*id),
                Handle::Gone => {}
            }
            copy.cancelled = true;
        }
        while copies.iter().any(|c| !c.exited) {
            match rx.recv().await {
                Some(msg) => self.handle(msg, copies),
                None => break,
            }
        }
    }

    fn handle_output(&self, copy: &mut Copy, output: Output) {
        let run = copy.run;
        match output {
            Output::Ready => copy.ready = true,
            Output::Started { mono_ns } => self.emit(Event::RunStarted {
                t: self.clock.from_monotonic(mono_ns),
                run,
            }),
            Output::Progress {
                metric,
                mono_ns,
                done,
            } => self.emit(Event::Progress {
                t: self.clock.from_monotonic(mono_ns),
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
                ended,
                stderr_tail,
            } => {
                let copy = &mut copies[index];
                copy.exited = true;
                copy.handle = Handle::Gone;
                let outcome = match (&copy.failure, ended) {
                    _ if copy.cancelled => RunOutcome::Cancelled,
                    (Some(reason), _) => RunOutcome::Failed {
                        reason: reason.clone(),
                    },
                    (None, Ok(())) => RunOutcome::Completed,
                    (None, Err(how)) => {
                        let tail = stderr_tail.join(" | ");
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

fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => "ended".into(),
    }
}

fn interrupted(cmd: Option<Control>) -> Option<(PhaseOutcome, After)> {
    match cmd {
        Some(Control::Skip) => Some((PhaseOutcome::Skipped, After::Continue)),
        Some(Control::Abort) => Some((PhaseOutcome::Aborted, After::Hold)),
        Some(Control::Quit) | None => Some((PhaseOutcome::Aborted, After::Quit)),
        Some(Control::Start) => None,
    }
}

/// How far ahead of now the copies are told to start: long enough for the
/// release to reach every copy (a wake-up, an SSH round, a scheduler slot per
/// guest on a busy host), short enough not to matter to a phase.
fn release_lead(copies: &[Copy]) -> Duration {
    let remote = copies
        .iter()
        .filter(|c| matches!(c.handle, Handle::Remote { .. }))
        .count() as u32;
    Duration::from_millis(20) + Duration::from_millis(4) * remote
}

/// Releases every waiting copy with a start instant on its own clock, so
/// that all begin together whatever order the releases arrive in. Returns
/// the instant on this host's monotonic clock.
fn release(copies: &[Copy]) -> u64 {
    let start_at = crate::event::monotonic_ns() + release_lead(copies).as_nanos() as u64;
    for copy in copies.iter().filter(|c| c.ready && !c.exited) {
        match &copy.handle {
            Handle::Remote {
                link,
                id,
                clock_offset_ns,
            } => {
                let at = (start_at as i64 + clock_offset_ns).max(0);
                link.write(*id, format!("at {at}\n").as_bytes());
            }
            Handle::Local {
                stdin: Some(stdin), ..
            } => {
                let line = format!("at {start_at}\n");
                // SAFETY: writes a short line to a pipe this process owns;
                // far below PIPE_BUF, so it is written whole or not at all.
                unsafe { libc::write(stdin.as_raw_fd(), line.as_ptr().cast(), line.len()) };
            }
            _ => {}
        }
    }
    start_at
}

/// A child this orchestrator owns: its own process group (so that a kill
/// reaches all it starts), stdout read by vmbench, killed when dropped or
/// when vmbench dies.
fn owned_command(argv: &[String], stdin: Stdio, stderr: Stdio) -> Command {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    die_with_parent(&mut command);
    command
}

/// Makes a child die with the orchestrator's thread, so that even a kill -9
/// of vmbench leaves no benchmark running.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

async fn watch_copy(
    index: usize,
    mut child: Child,
    mut parser: Box<dyn OutputParser>,
    tx: UnboundedSender<CopyMsg>,
) {
    let mut out = child.stdout.take().map(|s| BufReader::new(s).lines());
    let mut err = child.stderr.take().map(|s| BufReader::new(s).lines());
    let mut tail: VecDeque<String> = VecDeque::new();
    while out.is_some() || err.is_some() {
        tokio::select! {
            line = async { out.as_mut().expect("guarded").next_line().await }, if out.is_some() => match line {
                Ok(Some(line)) => { let _ = tx.send(CopyMsg::Output(index, parser.parse_line(&line))); }
                _ => out = None,
            },
            line = async { err.as_mut().expect("guarded").next_line().await }, if err.is_some() => match line {
                Ok(Some(line)) => {
                    if tail.len() == STDERR_TAIL { tail.pop_front(); }
                    tail.push_back(line);
                }
                _ => err = None,
            },
        }
    }
    let ended = match child.wait().await {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(describe_exit(status)),
        Err(e) => Err(format!("could not be waited for: {e}")),
    };
    let _ = tx.send(CopyMsg::Exited {
        index,
        ended,
        stderr_tail: tail.into(),
    });
}

/// Parses a remote copy's output; its clock readings are moved from the
/// guest's monotonic clock onto this host's.
async fn watch_remote(
    index: usize,
    mut output: UnboundedReceiver<RemoteOutput>,
    mut parser: Box<dyn OutputParser>,
    clock_offset_ns: i64,
    tx: UnboundedSender<CopyMsg>,
) {
    let to_host = |guest_ns: u64| (guest_ns as i64 - clock_offset_ns).max(0) as u64;
    let mut tail: VecDeque<String> = VecDeque::new();
    while let Some(item) = output.recv().await {
        match item {
            RemoteOutput::Stdout(line) => {
                let parsed = parser.parse_line(&line).map(|outputs| {
                    outputs
                        .into_iter()
                        .map(|o| match o {
                            Output::Started { mono_ns } => Output::Started {
                                mono_ns: to_host(mono_ns),
                            },
                            Output::Progress {
                                metric,
                                mono_ns,
                                done,
                            } => Output::Progress {
                                metric,
                                mono_ns: to_host(mono_ns),
                                done,
                            },
                            other => other,
                        })
                        .collect()
                });
                let _ = tx.send(CopyMsg::Output(index, parsed));
            }
            RemoteOutput::Stderr(line) => {
                if tail.len() == STDERR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            RemoteOutput::Exited(exit) => {
                let ended = if exit.success() {
                    Ok(())
                } else {
                    Err(exit.describe())
                };
                let _ = tx.send(CopyMsg::Exited {
                    index,
                    ended,
                    stderr_tail: tail.into(),
                });
                return;
            }
        }
    }
}

/// A server a tool's copies need on this host, up once it says it listens.
struct ToolServer {
    child: Child,
}

impl ToolServer {
    async fn start(argv: &[String]) -> Result<Self> {
        let mut child = owned_command(argv, Stdio::null(), Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", argv[0]))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.to_ascii_lowercase().contains("listening") {
                    return true;
                }
            }
            false
        })
        .await;
        if listening != Ok(true) {
            let _ = child.kill().await;
            let mut err = String::new();
            if let Some(stderr) = child.stderr.take() {
                let _ = BufReader::new(stderr).read_to_string(&mut err).await;
            }
            return Err(anyhow!("it did not start listening: {}", last_words(&err)));
        }
        // Its reports are not needed (the client's are), but a full pipe
        // would stall it mid-test.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ToolServer { child })
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn last_words(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(nothing on stderr)")
        .trim()
}

/// The receiving end of `net` copies, started once per session.
struct NetReceiver {
    child: Child,
    addr: SocketAddr,
}

impl NetReceiver {
    async fn start(exe: &std::path::Path, ip: IpAddr) -> Result<Self> {
        let argv = [
            exe.display().to_string(),
            "workload".into(),
            "net-sink".into(),
            "--listen".into(),
            SocketAddr::new(ip, 0).to_string(),
        ];
        let mut child = owned_command(&argv, Stdio::null(), Stdio::null())
            .spawn()
            .context("starting the receiver")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("receiver has no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .context("the receiver did not say where it listens")??
            .ok_or_else(|| anyhow!("the receiver exited before listening"))?;
        let addr = builtin::parse_listening(&first)
            .ok_or_else(|| anyhow!("unexpected receiver output {first:?}"))?;
        Ok(NetReceiver { child, addr })
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
