//! Wiring a session together: producers (sampler + orchestrator, or a
//! recording) feed the bus; one consumer folds events into the model and
//! hands them to the recorder. The TUI and headless front ends drive it.

mod export_view;
pub mod headless;
pub mod live;
pub mod loss_table;
mod pointer;
mod prompt;
pub mod replay;
pub mod replay_screen;
pub mod session;
pub mod stop;
pub mod terminal;

pub use replay::{Replay, ReplayControl};

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tokio::sync::mpsc::UnboundedSender;

use crate::bus::{EventSink, Msg};
use crate::event::{Clock, Event, LogLevel, Nanos, RunOutcome};
use crate::header::{Header, HostSpecs};
use crate::model::Session;
use crate::orchestrate::{Control, Orchestrator, StopCause};
use crate::plan::{LoadedPlan, Order};
use crate::sample::{HostSampler, SamplerCommand, SeriesIds, run_host_sampler};
use crate::store::Recorder;

/// `recordings/<plan>-<UTC time>.vmb`.
pub fn default_recording_path(plan_name: &str) -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "");
    let safe: String = plan_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from("recordings").join(format!("{safe}-{}.vmb", stamp.trim_end_matches('Z')))
}

/// The single consumer of the bus.
pub struct Consumer {
    pub session: Session,
    recorder: Option<Recorder>,
    pub producer_result: Option<Result<(), String>>,
    pub failed_runs: usize,
    pub recorder_error: Option<String>,
    /// A replayed recording's latest end and writer, as its producer last said.
    pub recording: Option<(Nanos, crate::store::Writer)>,
}

impl Consumer {
    pub fn new(session: Session, recorder: Option<Recorder>) -> Self {
        Consumer {
            session,
            recorder,
            producer_result: None,
            failed_runs: 0,
            recorder_error: None,
            recording: None,
        }
    }

    pub fn apply(&mut self, event: Event) {
        if let Event::RunEnded {
            outcome: RunOutcome::Failed { .. },
            ..
        } = &event
        {
            self.failed_runs += 1;
        }
        self.session.apply(&event);
        if let Some(recorder) = &self.recorder
            && recorder.record(event).is_err()
        {
            self.recorder_failed();
        }
    }

    /// The recorder stopped (a full disk, an I/O error): its reason, what
    /// the file keeps, and a log line. The front end then stops the session,
    /// since a benchmark nobody records is a night lost unseen.
    fn recorder_failed(&mut self) {
        let Some(recorder) = self.recorder.take() else {
            return;
        };
        let path = recorder.path().display().to_string();
        let kept = recorder.committed_until();
        let cause = match recorder.close() {
            Err(e) => format!("{e:#}"),
            Ok(()) => "its writer stopped".into(),
        };
        let text = format!(
            "the recording {path} cannot be written ({cause}); it keeps everything up to {} \
             (its last commit) and stays readable; the session is stopped",
            crate::format::clock(kept)
        );
        self.recorder_error = Some(text.clone());
        let t = self.session.now;
        self.session.apply(&Event::Log {
            t,
            level: LogLevel::Error,
            text,
        });
    }

    /// Ends the session from the front end when its producer cannot (a
    /// wind-down past its deadline, a second interrupt): `session_ended`
    /// with the reason, unless the producer wrote one already.
    pub fn end_without_producer(&mut self, reason: String) {
        if self.session.ended.is_none() {
            let t = self.session.now;
            self.apply(Event::SessionEnded { t, reason });
        }
        self.producer_result.get_or_insert(Ok(()));
    }

    /// Takes one message; a terminal event or a signal is handed back to
    /// the caller.
    pub fn take(&mut self, msg: Msg) -> Option<Msg> {
        match msg {
            Msg::Event(event) => self.apply(event),
            Msg::Terminal(_) | Msg::Signal(_) | Msg::Side(_) => return Some(msg),
            Msg::ProducerDone(result) => self.producer_result = Some(result),
            Msg::Recording { end, writer } => self.recording = Some((end, writer)),
            Msg::Scrape(reply) => {
                let _ = reply.send(crate::metrics::exposition(&self.session));
            }
            Msg::Reset => {
                let header = self.session.header.clone();
                self.session = Session::new(header);
            }
        }
        None
    }

    pub fn finished(&self) -> bool {
        self.producer_result.is_some()
    }

    /// Closes the recording: everything queued is written and committed.
    pub fn close(&mut self) -> Result<()> {
        match self.recorder.take() {
            Some(recorder) => {
                let path = recorder.path().display().to_string();
                recorder.close().with_context(|| format!("closing {path}"))
            }
            None => Ok(()),
        }
    }

    pub fn recording_path(&self) -> Option<&Path> {
        self.recorder.as_ref().map(|r| r.path())
    }
}

/// The consumer's end of the bus, and a sender for front-end input.
pub struct Bus {
    pub rx: Receiver<Msg>,
    pub tx: Sender<Msg>,
}

/// A running live session: what the front end needs to steer it.
pub struct Live {
    pub clock: Clock,
    pub control: UnboundedSender<Control>,
    sampler: Sender<SamplerCommand>,
    threads: Vec<JoinHandle<()>>,
    pub stopping: stop::Stopping,
}

impl Live {
    /// Starts sampling and the plan; returns the bus's receiving end and a
    /// sender for front-end input. `exe` is the vmbench binary that runs the
    /// workload copies.
    pub fn start(
        plan: &LoadedPlan,
        recording: &Path,
        autostart: bool,
        exe: PathBuf,
    ) -> Result<(Live, Consumer, Bus)> {
        let clock = Clock::start();
        let started_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let host = HostSpecs::of_this_host();
        let mut plan = plan.clone();
        if plan.plan.order == Order::Random && plan.plan.seed.is_none() {
            plan.plan.seed = Some(fastrand::u64(..));
        }
        let mut resolved: Vec<String> = crate::discover::fill_in(&mut plan.plan)
            .into_iter()
            .map(|line| format!("discovered {line}"))
            .collect();
        resolved.extend(plan.plan.core_relative_levels(host.logical_cores));
        let doubts = plan.plan.crowding_warnings(host.logical_cores);
        let plan = &plan;
        let schedule = plan.plan.schedule(host.logical_cores);
        let header = Header::new(plan, host, started_unix_ns, &clock, schedule.clone());
        let recorder = Recorder::create(recording, &header)?;
        let (tx, rx) = channel();
        let sink = EventSink::new(tx.clone());
        let series_ids = SeriesIds::default();
        let mut sampler =
            HostSampler::new(series_ids.clone()).context("opening /proc for the host sampler")?;
        // A guest on another `[[host]]` is seen by the agent there.
        let here = |g: &&crate::plan::Guest| g.host.is_none() && g.has_host_identity();
        for guest in plan.plan.guests.iter().filter(here) {
            sampler.watch_guest(guest);
        }
        let (sampler_tx, sampler_rx) = channel();
        let interval = plan.plan.interval.get();
        let sampler_sink = sink.clone();
        let mut threads = vec![
            std::thread::Builder::new()
                .name("sampler".into())
                .spawn(move || {
                    run_host_sampler(sampler, clock, interval, sampler_sink, sampler_rx)
                })?,
        ];
        let (control_tx, control_rx) = tokio::sync::mpsc::unbounded_channel();
        let orchestrator = Orchestrator {
            plan: plan.plan.clone(),
            schedule,
            clock,
            sink: sink.clone(),
            sampler: sampler_tx.clone(),
            exe,
            plan_origin: plan.origin.clone(),
            series_ids,
            results: std::sync::Mutex::new(Session::new(header.clone())),
            resolved,
            doubts,
        };
        stop::forward_signals(tx.clone()).context("listening for SIGINT, SIGTERM and SIGHUP")?;
        threads.push(
            std::thread::Builder::new()
                .name("orchestrator".into())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => return sink.done(Err(format!("starting the runtime: {e}"))),
                    };
                    let clock = orchestrator.clock;
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        runtime.block_on(orchestrator.run(control_rx, autostart))
                    }));
                    // Dropping the runtime drops every copy it held:
                    // kill_on_drop ends them, so a panic leaves none running.
                    drop(runtime);
                    let result = match ran {
                        Ok(result) => result.map_err(|e| format!("{e:#}")),
                        Err(panic) => {
                            let what = panic
                                .downcast_ref::<String>()
                                .map(String::as_str)
                                .or_else(|| panic.downcast_ref::<&str>().copied())
                                .unwrap_or("a panic");
                            let reason = format!("vmbench's orchestrator failed ({what})");
                            sink.send(Event::SessionEnded {
                                t: clock.now(),
                                reason: reason.clone(),
                            });
                            Err(reason)
                        }
                    };
                    sink.done(result);
                })?,
        );
        let consumer = Consumer::new(Session::new(header), Some(recorder));
        Ok((
            Live {
                clock,
                control: control_tx,
                sampler: sampler_tx,
                threads,
                stopping: stop::Stopping::default(),
            },
            consumer,
            Bus { rx, tx },
        ))
    }

    pub fn note(&self, consumer: &mut Consumer, text: String) {
        consumer.apply(Event::Note {
            t: self.clock.now(),
            text,
        });
    }

    /// Asks the session to stop (first request) or says that it must end
    /// at once (second request).
    pub fn request_stop(&mut self, cause: StopCause, consumer: &mut Consumer) -> stop::StopStep {
        let step = self.stopping.request(cause);
        if let stop::StopStep::WindDown(cause) = step {
            let _ = self.control.send(Control::Quit(cause));
            let t = self.clock.now();
            consumer.apply(Event::Log {
                t,
                level: LogLevel::Warn,
                text: format!(
                    "{}: copies are being killed and guests closed (again to end at once)",
                    cause.text()
                ),
            });
        }
        step
    }

    /// Asks for a stop when the recording failed; true when the session
    /// should end now (a wind-down past its deadline).
    pub fn watch_stop(&mut self, consumer: &mut Consumer) -> bool {
        if consumer.recorder_error.is_some() && self.stopping.cause().is_none() {
            self.request_stop(StopCause::RecordingFailed, consumer);
        }
        if self.stopping.overdue() && !consumer.finished() {
            let cause = self.stopping.cause().unwrap_or(StopCause::Operator);
            consumer.end_without_producer(format!(
                "{}; the wind-down did not finish within {} s (a guest does not answer), \
                 so the session was ended without it",
                cause.text(),
                stop::WIND_DOWN.as_secs()
            ));
            return true;
        }
        false
    }

    /// Ends at once after a second stop request: `session_ended` written,
    /// the recording closed. The caller exits the process (which takes the
    /// host's copies with it; guests' copies end when their SSH session
    /// does).
    pub fn end_at_once(&mut self, consumer: &mut Consumer) {
        let cause = self.stopping.cause().unwrap_or(StopCause::Operator);
        consumer.end_without_producer(format!(
            "{}; then ended at once by a second request",
            cause.text()
        ));
        let _ = consumer.close();
    }

    /// Stops the sampler after the plan has ended and waits for the
    /// threads, for at most a second: one stuck on a silent guest is left
    /// to end with the process.
    pub fn shutdown(self) {
        let _ = self.control.send(Control::Quit(StopCause::Operator));
        let _ = self.sampler.send(SamplerCommand::Stop);
        let deadline = Instant::now() + Duration::from_secs(1);
        for thread in self.threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}
