//! A recording on the screen (`vmbench replay`): one, or two side by side
//! (A/B), steered by the operator's keys; the two sides of an A/B replay
//! start each phase together.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::replay::phase_gate;
use super::terminal::{self, Next, Seek, Steer};
use super::{Consumer, Replay, ReplayControl};
use crate::bus::Msg;
use crate::input::InputError;
use crate::ui::keys::Action;
use crate::ui::{Feed, View};

const SEEK_STEP: i64 = 10_000_000_000;
pub const MIN_SPEED: f64 = 0.25;
pub const MAX_SPEED: f64 = 64.0;

/// Steers one replay, or the two of an A/B replay together.
struct ReplaySteer {
    replays: Vec<Replay>,
    /// Where B's messages go (as `Side` messages on A's bus), and whether it
    /// is followed, for a B opened by `:compare`.
    forward: std::sync::mpsc::Sender<Msg>,
    follow: bool,
    /// The recording shown (A's), for a comparison opened later.
    paths: Vec<std::path::PathBuf>,
    /// A B side opened by `:compare`, until the screen takes it.
    opened: Option<Consumer>,
    /// The phase gate last given to both sides.
    gate: Option<usize>,
    /// When each side's phases started (from the recordings, then as they
    /// are followed): a time typed for A is taken to the same offset into
    /// the same phase of B, not to the same session time (B's phases fall
    /// elsewhere).
    phase_starts: [Vec<crate::event::Nanos>; 2],
}

/// Opens recording B beside the one on screen: its messages reach the one
/// loop as `Side` messages on `forward`.
fn open_side(
    path: &Path,
    speed: f64,
    follow: bool,
    forward: std::sync::mpsc::Sender<Msg>,
) -> Result<(Replay, Consumer)> {
    let (replay, consumer, bus) = Replay::open(path, speed, follow)?;
    std::thread::Builder::new()
        .name("replay-b".into())
        .spawn(move || {
            while let Ok(msg) = bus.rx.recv() {
                if forward.send(Msg::Side(Box::new(msg))).is_err() {
                    break;
                }
            }
        })?;
    Ok((replay, consumer))
}

/// When each phase of a recording started.
fn phase_starts(path: &Path) -> Vec<crate::event::Nanos> {
    crate::store::Reader::open(path)
        .and_then(|r| r.events(0, u64::MAX))
        .map(|events| {
            events
                .iter()
                .filter_map(|e| match e {
                    crate::event::Event::PhaseStarted { t, .. } => Some(*t),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where session time `t` of one side falls on the other: the same offset
/// into the same phase (by number), given both sides' phase starts; before
/// the first phase, or past the other side's last, the same time.
pub fn aligned_time(
    t: crate::event::Nanos,
    starts: &[crate::event::Nanos],
    other_starts: &[crate::event::Nanos],
) -> crate::event::Nanos {
    match starts.iter().rposition(|s| *s <= t) {
        Some(i) if i < other_starts.len() => other_starts[i] + (t - starts[i]),
        _ => t,
    }
}

impl ReplaySteer {
    fn send(&self, command: ReplayControl) {
        for replay in &self.replays {
            let _ = replay.control.send(command);
        }
    }
}

impl Steer for ReplaySteer {
    fn act(&mut self, action: Action, view: &mut View, _consumer: &mut Consumer) -> Next {
        let Feed::Replay { speed, paused, .. } = &mut view.feed else {
            return Next::Stay;
        };
        let command = match action {
            Action::Quit => return Next::Close,
            Action::Pause => {
                *paused = !*paused;
                ReplayControl::SetPaused(*paused)
            }
            Action::SeekBack => ReplayControl::Seek(-SEEK_STEP),
            Action::SeekForward => ReplayControl::Seek(SEEK_STEP),
            Action::Slower | Action::Faster => {
                let factor = if action == Action::Faster { 2.0 } else { 0.5 };
                *speed = (*speed * factor).clamp(MIN_SPEED, MAX_SPEED);
                ReplayControl::Speed(*speed)
            }
            _ => return Next::Stay,
        };
        self.send(command);
        Next::Stay
    }

    fn align(&mut self, a: &Consumer, b: &Consumer) {
        for (side, consumer) in [a, b].into_iter().enumerate() {
            if consumer.session.phases.len() > self.phase_starts[side].len() {
                self.phase_starts[side] =
                    consumer.session.phases.iter().map(|p| p.started).collect();
            }
        }
        let gate = phase_gate(a, b);
        if gate != self.gate {
            self.gate = gate;
            self.send(ReplayControl::Gate(gate));
        }
    }

    fn signal(&mut self, _signal: i32, _view: &mut View, _consumer: &mut Consumer) -> Next {
        Next::Close
    }

    fn terminal_lost(&mut self, _consumer: &mut Consumer) -> Next {
        Next::Close
    }

    fn tick(&mut self, _consumer: &mut Consumer) -> Next {
        Next::Stay
    }

    fn note(&mut self, _text: String, _consumer: &mut Consumer) {}

    fn finished(&mut self, view: &mut View, _consumer: &mut Consumer) {
        view.finished = true;
    }

    fn compare(&mut self, path: &Path, view: &View, a: &Consumer) -> Result<(), String> {
        if self.replays.len() > 1 {
            return Err("a recording is beside this one already".into());
        }
        let Feed::Replay { speed, paused, .. } = view.feed else {
            return Err("a comparison is a replay's".into());
        };
        let (replay, consumer) = open_side(path, speed, self.follow, self.forward.clone())
            .map_err(|e| format!("{e:#}"))?;
        self.phase_starts = [phase_starts(&self.paths[0]), phase_starts(path)];
        // B goes to where A is: the same offset into the same phase.
        let [on_a, on_b] = &self.phase_starts;
        let _ = replay.control.send(ReplayControl::SeekTo(aligned_time(
            a.session.now,
            on_a,
            on_b,
        )));
        let _ = replay.control.send(ReplayControl::SetPaused(paused));
        self.replays.push(replay);
        self.gate = None;
        self.opened = Some(consumer);
        Ok(())
    }

    fn new_side(&mut self) -> Option<Consumer> {
        self.opened.take()
    }

    fn seek(&mut self, to: Seek, _view: &mut View, _consumer: &mut Consumer) -> bool {
        if let (Seek::Time(t), [a, b]) = (to, self.replays.as_slice()) {
            let _ = a.control.send(ReplayControl::SeekTo(t));
            let [on_a, on_b] = &self.phase_starts;
            let _ = b
                .control
                .send(ReplayControl::SeekTo(aligned_time(t, on_a, on_b)));
            return true;
        }
        let command = match to {
            Seek::Phases(by) => ReplayControl::SeekPhases(by),
            Seek::Phase(number) => ReplayControl::SeekPhase(number),
            Seek::Time(t) => ReplayControl::SeekTo(t),
            Seek::End => ReplayControl::SeekEnd,
        };
        self.send(command);
        true
    }
}

/// Shows the recording at `path` (beside `versus`, A/B) on the screen at
/// `speed`, following it as it is written with `follow`.
pub fn on_screen(
    path: &Path,
    versus: Option<&Path>,
    speed: f64,
    follow: bool,
    settings: &crate::config::Settings,
) -> Result<ExitCode> {
    if !(MIN_SPEED..=MAX_SPEED).contains(&speed) {
        return Err(InputError {
            file: "--speed".into(),
            line: 0,
            column: 0,
            field: "speed".into(),
            message: format!("{speed} is outside {MIN_SPEED}..{MAX_SPEED}"),
        }
        .into());
    }
    if !std::io::stdout().is_terminal() {
        bail!("the TUI needs a terminal; `vmbench export` reads a recording without a screen");
    }
    let (replay, mut consumer, bus) = Replay::open(path, speed, follow)?;
    let mut replays = vec![replay];
    let other = match versus {
        Some(b_path) => {
            let (b_replay, b_consumer) = open_side(b_path, speed, follow, bus.tx.clone())?;
            replays.push(b_replay);
            Some(b_consumer)
        }
        None => None,
    };
    crate::app::stop::forward_signals(bus.tx.clone())
        .context("listening for SIGINT, SIGTERM and SIGHUP")?;
    let mut view = View::new(Feed::Replay {
        speed,
        paused: false,
        end: replays[0].end,
        writer: crate::store::Writer::Finished,
    });
    settings.apply(&mut view);
    let mut steer = ReplaySteer {
        replays,
        forward: bus.tx.clone(),
        follow,
        paths: vec![path.to_path_buf()],
        opened: None,
        gate: None,
        // Read from the recordings only for A/B, where seeks use them.
        phase_starts: match versus {
            Some(b) => [phase_starts(path), phase_starts(b)],
            None => Default::default(),
        },
    };
    terminal::run(
        &mut consumer,
        other,
        &bus.rx,
        bus.tx,
        &settings.theme,
        &mut view,
        &mut steer,
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::aligned_time;

    #[test]
    fn a_time_on_one_side_is_the_same_offset_into_the_same_phase_on_the_other() {
        let s = 1_000_000_000;
        // A's phases start at 10 s and 40 s, B's at 12 s and 55 s.
        let (a, b) = ([10 * s, 40 * s], [12 * s, 55 * s]);
        assert_eq!(aligned_time(45 * s, &a, &b), 60 * s);
        assert_eq!(aligned_time(10 * s, &a, &b), 12 * s);
        // Before the first phase: the same time.
        assert_eq!(aligned_time(5 * s, &a, &b), 5 * s);
        // A phase B does not have: the same time.
        assert_eq!(aligned_time(45 * s, &a, &b[..1]), 45 * s);
    }
}
