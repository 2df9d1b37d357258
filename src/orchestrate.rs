//! Running a plan: phases of benchmark × concurrency × repetition, each
//! released at one instant once every copy is set up, ended by the copies, a
//! timeout or the operator. Nothing is left running afterwards.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc::Sender;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::bus::EventSink;
use crate::event::{Clock, Event, LogLevel, PhaseOutcome, RunId, RunOutcome};
use crate::plan::{Plan, PlannedPhase};
use crate::sample::SamplerCommand;
use crate::workload::{LaunchContext, Output, OutputParser, builtin};

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
}

enum CopyMsg {
    Output(usize, Result<Option<Output>, String>),
    Exited {
        index: usize,
        status: std::io::Result<ExitStatus>,
        stderr_tail: Vec<String>,
    },
}

struct Copy {
    run: RunId,
    guest: String,
    pid: Option<u32>,
    stdin: Option<ChildStdin>,
    ready: bool,
    exited: bool,
    cancelled: bool,
    failure: Option<String>,
}

/// How a phase ended, and what the operator wants next.
enum After {
    Continue,
    Hold,
    Quit,
}

impl Orchestrator {
    fn emit(&self, event: Event) {
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
    async fn wait_for_start(&self, control: &mut UnboundedReceiver<Control>) -> bool {
        loop {
            match control.recv().await {
                Some(Control::Start) => return true,
                Some(Control::Quit) | None => return false,
                Some(_) => {}
            }
        }
    }

    pub async fn run(self, mut control: UnboundedReceiver<Control>, autostart: bool) -> Result<()> {
        if !autostart {
            self.log(LogLevel::Info, "ready: press s to start the plan");
            if !self.wait_for_start(&mut control).await {
                self.emit(Event::SessionEnded {
                    t: self.clock.now(),
                });
                return Ok(());
            }
        }
        let mut receiver: Option<NetReceiver> = None;
        let mut next_run: RunId = 0;
        for (index, planned) in self.schedule.iter().enumerate() {
            let bench = &self.plan.benchmarks[planned.benchmark];
            self.emit(Event::PhaseStarted {
                t: self.clock.now(),
                phase: index as u32,
                benchmark: planned.name.clone(),
                workload: planned.workload.clone(),
                concurrency: planned.concurrency,
                repetition: planned.repetition,
                duration: planned.duration,
            });
            let mut sink_addr = None;
            if bench.workload.needs_net_sink() {
                if receiver.is_none() {
                    match NetReceiver::start(&self.exe).await {
                        Ok(r) => receiver = Some(r),
                        Err(e) => self.log(LogLevel::Error, format!("network receiver: {e:#}")),
                    }
                }
                sink_addr = receiver.as_ref().map(|r| r.addr);
            }
            let (outcome, after) = self
                .run_phase(
                    index as u32,
                    planned,
                    sink_addr,
                    &mut next_run,
                    &mut control,
                )
                .await;
            self.emit(Event::PhaseEnded {
                t: self.clock.now(),
                phase: index as u32,
                outcome,
            });
            match after {
                After::Continue => {}
                After::Quit => break,
                After::Hold => {
                    self.log(
                        LogLevel::Warn,
                        "phase aborted; the plan is held: press s to go on, q to quit",
                    );
                    if !self.wait_for_start(&mut control).await {
                        break;
                    }
                }
            }
        }
        if let Some(r) = receiver {
            r.stop().await;
        }
        self.emit(Event::SessionEnded {
            t: self.clock.now(),
        });
        Ok(())
    }

    fn spawn_copy(&self, argv: &[String]) -> std::io::Result<Child> {
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        command.spawn()
    }

    async fn run_phase(
        &self,
        phase: u32,
        planned: &PlannedPhase,
        net_sink: Option<SocketAddr>,
        next_run: &mut RunId,
        control: &mut UnboundedReceiver<Control>,
    ) -> (PhaseOutcome, After) {
        let bench = &self.plan.benchmarks[planned.benchmark];
        let guests = self.plan.guests_of(bench);
        let ctx = LaunchContext {
            exe: self.exe.clone(),
            duration: bench.duration.0,
            net_sink,
        };
        let argv = bench.workload.command(&ctx);
        let (tx, mut rx) = unbounded_channel();
        let mut copies = Vec::new();
        for index in 0..planned.concurrency as usize {
            let guest = guests[index % guests.len()];
            let run = *next_run;
            *next_run += 1;
            let spawned = self.spawn_copy(&argv);
            let pid = spawned.as_ref().ok().and_then(Child::id);
            self.emit(Event::RunSpawned {
                t: self.clock.now(),
                run,
                phase,
                copy: index as u32,
                guest: guest.name.get_ref().clone(),
                technology: guest.technology.clone(),
                pid,
                metrics: bench.workload.metrics(),
            });
            let mut copy = Copy {
                run,
                guest: guest.name.get_ref().clone(),
                pid,
                stdin: None,
                ready: false,
                exited: false,
                cancelled: false,
                failure: None,
            };
            match spawned {
                Ok(mut child) => {
                    if let Some(pid) = pid {
                        let _ = self.sampler.send(SamplerCommand::Watch { run, pid });
                    }
                    copy.stdin = child.stdin.take();
                    tokio::spawn(watch_copy(
                        index,
                        child,
                        bench.workload.parser(),
                        tx.clone(),
                    ));
                }
                Err(e) => {
                    copy.exited = true;
                    let reason = format!("cannot start {}: {e}", argv[0]);
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
            release(&mut copies);
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

    /// Kills every copy's process group and waits for each to be reaped.
    async fn stop_copies(&self, copies: &mut [Copy], rx: &mut UnboundedReceiver<CopyMsg>) {
        for copy in copies.iter_mut().filter(|c| !c.exited) {
            copy.stdin = None;
            if let Some(pid) = copy.pid {
                // SAFETY: signals the process group this orchestrator created.
                unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
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

    fn handle(&self, msg: CopyMsg, copies: &mut [Copy]) {
        match msg {
            CopyMsg::Output(index, parsed) => {
                let copy = &mut copies[index];
                let run = copy.run;
                match parsed {
                    Ok(None) => {}
                    Ok(Some(Output::Ready)) => copy.ready = true,
                    Ok(Some(Output::Started { mono_ns })) => self.emit(Event::RunStarted {
                        t: self.clock.from_monotonic(mono_ns),
                        run,
                    }),
                    Ok(Some(Output::Progress {
                        metric,
                        mono_ns,
                        done,
                    })) => self.emit(Event::Progress {
                        t: self.clock.from_monotonic(mono_ns),
                        run,
                        metric,
                        done,
                    }),
                    Ok(Some(Output::Result {
                        metric,
                        value,
                        unit,
                    })) => self.emit(Event::RunResult {
                        t: self.clock.now(),
                        run,
                        metric,
                        value,
                        unit,
                    }),
                    Ok(Some(Output::Note(text))) => {
                        self.log(LogLevel::Info, format!("{} run {run}: {text}", copy.guest))
                    }
                    Ok(Some(Output::Failed(reason))) => {
                        self.log(
                            LogLevel::Error,
                            format!("{} run {run}: {reason}", copy.guest),
                        );
                        copy.failure = Some(reason);
                    }
                    Err(e) => self.log(LogLevel::Warn, format!("{} run {run}: {e}", copy.guest)),
                }
            }
            CopyMsg::Exited {
                index,
                status,
                stderr_tail,
            } => {
                let copy = &mut copies[index];
                copy.exited = true;
                copy.stdin = None;
                let outcome = match (&copy.failure, status) {
                    _ if copy.cancelled => RunOutcome::Cancelled,
                    (Some(reason), _) => RunOutcome::Failed {
                        reason: reason.clone(),
                    },
                    (None, Ok(s)) if s.success() => RunOutcome::Completed,
                    (None, status) => {
                        let how = match status {
                            Ok(s) => describe_exit(s),
                            Err(e) => format!("could not be waited for: {e}"),
                        };
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

/// Releases every waiting copy with one byte each, in a tight loop of plain
/// write(2)s so that the release itself adds as little skew as possible.
fn release(copies: &mut [Copy]) {
    for copy in copies.iter_mut().filter(|c| c.ready && !c.exited) {
        if let Some(stdin) = &copy.stdin {
            let byte = [b'\n'];
            // SAFETY: writes one byte to a pipe this process owns.
            unsafe { libc::write(stdin.as_raw_fd(), byte.as_ptr().cast(), 1) };
        }
    }
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
    let status = child.wait().await;
    let _ = tx.send(CopyMsg::Exited {
        index,
        status,
        stderr_tail: tail.into(),
    });
}

/// The receiving end of `net` copies, started once per session.
struct NetReceiver {
    child: Child,
    addr: SocketAddr,
}

impl NetReceiver {
    async fn start(exe: &std::path::Path) -> Result<Self> {
        let mut command = Command::new(exe);
        command
            .args(["workload", "net-sink", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        die_with_parent(&mut command);
        let mut child = command.spawn().context("starting the receiver")?;
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
