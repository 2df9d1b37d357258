//! A live session without a screen (`vmbench record`): what happens is
//! echoed on stderr, a progress line, and the same recording.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::Consumer;
use super::session::{self, SessionOptions, Started, report_failures};
use super::stop::{self, StopStep};
use crate::bus::Msg;
use crate::event::{Event, GuestState, LogLevel};
use crate::format::{clock, figure};
use crate::plan::LoadedPlan;

/// How often headless progress is printed when stderr is not a terminal.
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(5);

/// Runs `plan` without a screen: progress, warnings and each phase's
/// result on stderr (one line each when stderr is not a terminal), the
/// same recording as on the screen.
pub fn headless(plan: LoadedPlan, options: &SessionOptions) -> Result<ExitCode> {
    let name = plan.plan.name.clone();
    // Its fleets go when `started` does, after the rest of the session.
    let started = session::start(plan, options, true)?;
    let Started {
        path,
        mut live,
        mut consumer,
        bus,
        metrics,
        ..
    } = started;
    if let Some(bound) = metrics {
        stderr_line!("vmbench: metrics at http://{bound}/metrics");
    }
    drop(bus.tx);
    let tty = std::io::stderr().is_terminal();
    stderr_line!(
        "vmbench: recording plan {:?} ({} phases, about {}) to {}",
        name,
        consumer.session.header.schedule.len(),
        clock(consumer.session.remaining()),
        path.display()
    );
    let mut last_progress = Instant::now();
    while !consumer.finished() {
        match bus.rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Msg::Event(event)) => {
                let echo = headless_echo(&event, &consumer.session);
                let ended = if let Event::PhaseEnded { phase, .. } = &event {
                    Some(*phase)
                } else {
                    None
                };
                consumer.apply(event);
                if let Some(line) = echo {
                    if tty {
                        stderr!("\r\x1b[2K");
                    }
                    stderr_line!("{line}");
                }
                if let Some(phase) = ended {
                    for line in phase_result_lines(&consumer, phase) {
                        if tty {
                            stderr!("\r\x1b[2K");
                        }
                        stderr_line!("{line}");
                    }
                }
            }
            Ok(msg) => {
                if let Some(Msg::Signal(signal)) = consumer.take(msg) {
                    if live.request_stop(stop::cause_of(signal), &mut consumer) == StopStep::AtOnce
                    {
                        live.end_at_once(&mut consumer);
                        stderr_line!("\nvmbench: ended at once; recording: {}", path.display());
                        crate::provision::teardown_active();
                        std::process::exit(stop::AT_ONCE_STATUS);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if live.watch_stop(&mut consumer) {
            break;
        }
        let every = if tty {
            Duration::from_millis(500)
        } else {
            PROGRESS_LINE_EVERY
        };
        if last_progress.elapsed() >= every {
            last_progress = Instant::now();
            let line = progress_line(&consumer, tty);
            if tty {
                stderr!("\r\x1b[2K{line}");
            } else {
                stderr_line!("{line}");
            }
        }
    }
    if tty {
        stderr!("\n");
    }
    live.shutdown();
    consumer.close()?;
    stderr_line!("vmbench: recording saved to {}", path.display());
    report_failures(&consumer)
}

/// Warnings, errors and guests' changes of state are echoed as they happen.
fn headless_echo(event: &Event, session: &crate::model::Session) -> Option<String> {
    match event {
        Event::Log { t, level, text } if *level != LogLevel::Info => {
            let level = if *level == LogLevel::Warn {
                "warning"
            } else {
                "error"
            };
            Some(format!("[{}] {level}: {text}", clock(*t)))
        }
        Event::GuestState { t, guest, state } => {
            let state = match state {
                GuestState::Connecting => "connecting".to_string(),
                GuestState::Ready { info } => format!(
                    "ready ({} {}, connected in {:.0} ms)",
                    info.arch, info.kernel, info.connect_ms
                ),
                GuestState::Failed { reason } => format!("failed: {reason}"),
                GuestState::Lost { reason } => format!("LOST: {reason}"),
                GuestState::Reconnecting { attempt } => format!("reconnecting (attempt {attempt})"),
                GuestState::Closed => "closed".to_string(),
            };
            let what = if session.hosts().contains(&guest.as_str()) {
                "host"
            } else {
                "guest"
            };
            Some(format!(
                "[{}] {what} {}: {state}",
                clock(*t),
                session.guest_label(guest)
            ))
        }
        Event::SessionEnded { t, reason } if !reason.is_empty() => {
            Some(format!("[{}] session ended: {reason}", clock(*t)))
        }
        _ => None,
    }
}

/// The phase's result as computed once when it ended: the same figures and
/// verdict as the TUI's table, the export and the report.
fn phase_result_lines(consumer: &Consumer, phase: u32) -> Vec<String> {
    let session = &consumer.session;
    session
        .results
        .phases
        .iter()
        .filter(|r| r.phase == phase + 1)
        .map(|r| {
            let verdict = r
                .flag
                .as_ref()
                .map_or_else(|| "ok".to_string(), |f| format!("left out: {f}"));
            format!(
                "phase {}/{} {} x{} rep {}: {} all copies {}, per copy {}, {} of {} copies \
                 measured, skew {}, {}; {verdict}",
                r.phase,
                session.header.schedule.len(),
                r.benchmark,
                r.concurrency,
                r.repetition,
                r.metric,
                figure(r.aggregate, &r.unit),
                figure(r.per_guest_mean, &r.unit),
                r.contributing,
                r.copies,
                crate::format::skew_with_clock(r.skew_ms, r.clock_uncertainty_ms),
                r.outcome,
            )
        })
        .collect()
}

fn progress_line(consumer: &Consumer, bar: bool) -> String {
    let session = &consumer.session;
    let total: u64 = session
        .header
        .schedule
        .iter()
        .map(|p| p.duration)
        .sum::<u64>()
        .max(1);
    let left = session.remaining();
    let done = 1.0 - left as f64 / total as f64;
    let phase = session
        .current_phase()
        .map(|p| {
            format!(
                "phase {}/{} {} x{} rep {}",
                p.id + 1,
                session.header.schedule.len(),
                p.benchmark,
                p.concurrency,
                p.repetition
            )
        })
        .unwrap_or_else(|| "between phases".into());
    let gauge = if bar {
        let filled = (done.clamp(0.0, 1.0) * 24.0).round() as usize;
        format!("[{}{}] ", "#".repeat(filled), "-".repeat(24 - filled))
    } else {
        String::new()
    };
    format!(
        "{gauge}{:>3.0}% {phase}  elapsed {}  left {}",
        done * 100.0,
        clock(session.now),
        clock(left)
    )
}
