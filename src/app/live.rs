//! A live session on the screen: the operator's keys and the signals
//! steer the orchestrator (start, skip, abort, stop), and the screen stays
//! after the plan's end until `q`.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Result, bail};

use super::session::{self, SessionOptions, Started, report_failures};
use super::stop::{self, StopStep};
use super::terminal::{self, Next, Steer};
use super::{Consumer, Live};
use crate::event::{Event, LogLevel};
use crate::orchestrate::{Control, StopCause};
use crate::plan::LoadedPlan;
use crate::ui::keys::Action;
use crate::ui::{Feed, View};

struct LiveSteer {
    live: Option<Live>,
}

impl LiveSteer {
    /// A stop asked for by a key or a signal; the second ends at once.
    fn stop(&mut self, cause: StopCause, consumer: &mut Consumer) -> Next {
        let Some(live) = &mut self.live else {
            return Next::Close;
        };
        match live.request_stop(cause, consumer) {
            StopStep::WindDown(_) => Next::CloseWhenFinished,
            StopStep::AtOnce => {
                let path = consumer
                    .recording_path()
                    .map_or_else(String::new, |p| p.display().to_string());
                live.end_at_once(consumer);
                let _ = ratatui::try_restore();
                stderr_line!("vmbench: ended at once; recording: {path}");
                crate::provision::teardown_active();
                std::process::exit(stop::AT_ONCE_STATUS);
            }
        }
    }
}

impl Steer for LiveSteer {
    fn act(&mut self, action: Action, view: &mut View, consumer: &mut Consumer) -> Next {
        let Some(live) = &self.live else {
            // The plan is over; the screen stays until q.
            return if action == Action::Quit {
                Next::Close
            } else {
                Next::Stay
            };
        };
        let control = match action {
            Action::Start => Control::Start,
            Action::Skip => Control::Skip,
            Action::Abort => Control::Abort,
            Action::Quit => return self.stop(StopCause::Operator, consumer),
            Action::Pause => {
                view.display_paused = !view.display_paused;
                return Next::Stay;
            }
            _ => return Next::Stay,
        };
        if let Feed::Live { waiting, .. } = &mut view.feed {
            *waiting = false;
        }
        let _ = live.control.send(control);
        Next::Stay
    }

    fn signal(&mut self, signal: i32, _view: &mut View, consumer: &mut Consumer) -> Next {
        // A hang-up after the terminal was found gone is the same event.
        let hangup_again = signal == libc::SIGHUP
            && self
                .live
                .as_ref()
                .and_then(|l| l.stopping.cause())
                .is_some_and(|c| c == stop::cause_of(libc::SIGHUP));
        if hangup_again {
            return Next::CloseWhenFinished;
        }
        self.stop(stop::cause_of(signal), consumer)
    }

    fn terminal_lost(&mut self, consumer: &mut Consumer) -> Next {
        match self.live.as_ref().map(|l| l.stopping.cause()) {
            // Already stopping (a SIGHUP came first): not a second request.
            Some(Some(_)) => Next::CloseWhenFinished,
            Some(None) => self.stop(stop::cause_of(libc::SIGHUP), consumer),
            None => Next::Close,
        }
    }

    fn tick(&mut self, consumer: &mut Consumer) -> Next {
        let Some(live) = &mut self.live else {
            return Next::Stay;
        };
        if live.watch_stop(consumer) {
            Next::Close
        } else if live.stopping.cause().is_some() {
            Next::CloseWhenFinished
        } else {
            Next::Stay
        }
    }

    fn note(&mut self, text: String, consumer: &mut Consumer) {
        if let Some(live) = &self.live {
            live.note(consumer, text);
        }
    }

    fn finished(&mut self, view: &mut View, consumer: &mut Consumer) {
        if let Some(live) = self.live.take() {
            live.shutdown();
        }
        let path = consumer.recording_path().map(|p| p.display().to_string());
        let text = match consumer.close() {
            Ok(()) => format!(
                "plan finished; recording saved to {} (q quits)",
                path.unwrap_or_default()
            ),
            Err(e) => format!("plan finished; the recording could not be closed: {e:#}"),
        };
        let t = consumer.session.now;
        consumer.session.apply(&Event::Log {
            t,
            level: LogLevel::Info,
            text,
        });
        view.finished = true;
    }
}

/// Runs `plan` on the screen (started at once with `start`, else on the
/// operator's `s`), recording it; the exit code says how it went.
pub fn on_screen(
    plan: LoadedPlan,
    start: bool,
    options: &SessionOptions,
    settings: &crate::config::Settings,
) -> Result<ExitCode> {
    if !std::io::stdout().is_terminal() {
        bail!("the TUI needs a terminal; `vmbench record` runs a plan without a screen");
    }
    // Fleets are made before the screen is taken (progress on stderr) and
    // removed when `started` goes, after the rest of the session.
    let started = session::start(plan, options, start)?;
    let Started {
        path,
        live,
        mut consumer,
        bus,
        ..
    } = started;
    let mut view = View::new(Feed::Live { waiting: !start });
    settings.apply(&mut view);
    let mut steer = LiveSteer { live: Some(live) };
    let result = terminal::run(
        &mut consumer,
        None,
        &bus.rx,
        bus.tx,
        &settings.theme,
        &mut view,
        &mut steer,
    );
    if !view.finished {
        steer.finished(&mut view, &mut consumer);
    }
    result?;
    stderr_line!("recording: {}", path.display());
    report_failures(&consumer)
}
