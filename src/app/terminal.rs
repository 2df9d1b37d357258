//! The full-screen loop: one owner of state (the consumer), every input one
//! message on the bus, a frame drawn at most ten times a second.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::Result;
use ratatui::crossterm::event::{Event as TermEvent, KeyEventKind};

use super::Consumer;
use crate::bus::Msg;
use crate::event::Nanos;
use crate::ui::keys::{Action, action_for};
use crate::ui::theme::Theme;
use crate::ui::{Overlay, View, panes, render};

const FRAME: Duration = Duration::from_millis(100);
/// How far PgUp and PgDn move the log, in wheel turns (3 entries each).
const LOG_PAGE: i64 = 2;

/// What a key asks of the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Stay,
    Close,
    /// Close once the producer has wound down (live: copies killed and reaped).
    CloseWhenFinished,
}

/// What the front end asks of whatever produces the session.
pub trait Steer {
    fn act(&mut self, action: Action, view: &mut View, consumer: &mut Consumer) -> Next;
    /// SIGINT, SIGTERM or SIGHUP arrived.
    fn signal(&mut self, signal: i32, view: &mut View, consumer: &mut Consumer) -> Next;
    /// The terminal cannot be drawn on any more: a hang-up, whether or not
    /// a SIGHUP came (or comes) with it.
    fn terminal_lost(&mut self, consumer: &mut Consumer) -> Next;
    /// Called every turn of the loop: deadlines and failures that need no
    /// input (a stop past its deadline, a recording that failed).
    fn tick(&mut self, consumer: &mut Consumer) -> Next;
    /// Records a note typed by the operator.
    fn note(&mut self, text: String, consumer: &mut Consumer);
    /// Called once when the producer says it has finished.
    fn finished(&mut self, view: &mut View, consumer: &mut Consumer);
    /// Called every turn of an A/B replay's loop with both sides: the side
    /// ahead waits at a phase's start for the other.
    fn align(&mut self, _a: &Consumer, _b: &Consumer) {}
    /// Opens recording `path` beside the session (`:compare`); the screen
    /// takes it from `new_side`. Err says why not (live: there is no B).
    fn compare(
        &mut self,
        _path: &std::path::Path,
        _view: &View,
        _consumer: &Consumer,
    ) -> Result<(), String> {
        Err("a comparison is a replay's: vmbench replay A.vmb B.vmb".into())
    }
    /// A B side just opened, once.
    fn new_side(&mut self) -> Option<Consumer> {
        None
    }
    /// Moves the session to another place in time; false when the session
    /// cannot move (live), and the screen's phase cursor moves instead.
    fn seek(&mut self, _to: Seek, _view: &mut View, _consumer: &mut Consumer) -> bool {
        false
    }
}

/// Where the operator asked to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// So many phases back (negative) or on from the one shown.
    Phases(isize),
    /// The phase of this number (1 is the first).
    Phase(u32),
    /// A session time.
    Time(Nanos),
    /// The newest there is.
    End,
}

impl Seek {
    /// `12` is phase 12; `1:05:00`, `65:00`, `90s`, `2m` and `1h` are times.
    pub fn parse(text: &str) -> Option<Seek> {
        let text = text.trim();
        if let Ok(phase) = text.parse::<u32>() {
            return (phase > 0).then_some(Seek::Phase(phase));
        }
        let seconds: u64 = if text.contains(':') {
            let parts: Vec<u64> = text
                .split(':')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            if parts.len() > 3 || parts[1..].iter().any(|p| *p >= 60) {
                return None;
            }
            parts
                .iter()
                .try_fold(0u64, |acc, p| acc.checked_mul(60)?.checked_add(*p))?
        } else {
            let units = [('s', 1), ('m', 60), ('h', 3600)];
            let (number, per) = units
                .iter()
                .find_map(|(suffix, per)| Some((text.strip_suffix(*suffix)?, *per)))?;
            number.trim().parse::<u64>().ok()?.checked_mul(per)?
        };
        seconds.checked_mul(1_000_000_000).map(Seek::Time)
    }
}

/// Runs the screen over one session, or two side by side (`other`, fed
/// by `Msg::Side`).
pub fn run(
    consumer: &mut Consumer,
    mut other: Option<Consumer>,
    rx: &Receiver<Msg>,
    tx: Sender<Msg>,
    theme: &Theme,
    view: &mut View,
    steer: &mut dyn Steer,
) -> Result<()> {
    // `:theme` changes it for this screen only.
    let mut theme = theme.clone();
    let mut terminal = ratatui::init();
    // A panic gives the mouse back too (ratatui's hook restores the rest).
    let restore = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        capture_mouse(false);
        restore(info);
    }));
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            while let Ok(event) = ratatui::crossterm::event::read() {
                if tx.send(Msg::Terminal(event)).is_err() {
                    break;
                }
            }
        })?;
    let mut mouse_on = false;
    let result = (|| -> Result<()> {
        let mut screen = ratatui::layout::Rect::default();
        let mut last_draw: Option<Instant> = None;
        let mut dirty = true;
        let mut closing = false;
        let mut terminal_gone = false;
        loop {
            match steer.tick(consumer) {
                Next::Stay => {}
                Next::Close => return Ok(()),
                Next::CloseWhenFinished => closing = true,
            }
            if closing && consumer.finished() {
                return Ok(());
            }
            if let Some(b) = steer.new_side() {
                // The A/B screen has no copy panes to select.
                view.selected = view.selected.min(3);
                other = Some(b);
                dirty = true;
            }
            if let Some(b) = &other {
                steer.align(consumer, b);
            }
            if view.mouse != mouse_on && !terminal_gone {
                mouse_on = view.mouse;
                capture_mouse(mouse_on);
            }
            let due = last_draw.map_or(Instant::now(), |t| t + FRAME);
            if dirty && Instant::now() >= due && !terminal_gone {
                if view.overlay == Overlay::Results {
                    super::loss_table::refresh(&mut view.loss_table, &consumer.session);
                }
                view.feed.set_recording(consumer.recording);
                let drawn = terminal.draw(|frame| match &other {
                    Some(b) => crate::ui::pair::render(
                        frame,
                        &consumer.session,
                        &b.session,
                        b.recording,
                        &theme,
                        view,
                    ),
                    None => render(frame, &consumer.session, &theme, view),
                });
                if let Ok(frame) = &drawn {
                    screen = frame.area;
                }
                if drawn.is_err() {
                    // The terminal went away (closed before SIGHUP arrived,
                    // or without one): a hang-up, and no more drawing.
                    terminal_gone = true;
                    match steer.terminal_lost(consumer) {
                        Next::Stay => {}
                        Next::Close => return Ok(()),
                        Next::CloseWhenFinished => closing = true,
                    }
                }
                last_draw = Some(Instant::now());
                dirty = false;
            }
            let wait = if dirty {
                due.saturating_duration_since(Instant::now())
            } else {
                FRAME
            };
            let msg = match rx.recv_timeout(wait) {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            let mut next = Some(msg);
            while let Some(msg) = next {
                let was_finished = consumer.finished();
                let input = matches!(msg, Msg::Terminal(_) | Msg::Signal(_));
                let asked = match consumer.take(msg) {
                    Some(Msg::Terminal(TermEvent::Key(key)))
                        if key.kind != KeyEventKind::Release =>
                    {
                        view.status = None;
                        handle_key(key, consumer, view, &mut theme, steer, screen)
                    }
                    // The A/B screen is laid out otherwise: no clicks there.
                    Some(Msg::Terminal(TermEvent::Mouse(event))) if other.is_none() => {
                        super::pointer::handle(event, consumer, view, steer, screen);
                        Next::Stay
                    }
                    Some(Msg::Signal(signal)) => steer.signal(signal, view, consumer),
                    Some(Msg::Side(inner)) => {
                        if let Some(b) = other.as_mut() {
                            b.take(*inner);
                        }
                        Next::Stay
                    }
                    _ => Next::Stay,
                };
                match asked {
                    Next::Stay => {}
                    Next::Close => return Ok(()),
                    Next::CloseWhenFinished => closing = true,
                }
                if input {
                    // Input redraws at once, even when the display is paused.
                    last_draw = None;
                    dirty = true;
                }
                if !was_finished && consumer.finished() {
                    steer.finished(view, consumer);
                }
                next = rx.try_recv().ok();
            }
            dirty |= !view.display_paused;
        }
    })();
    // A terminal that went away cannot be restored, and needs not be.
    if mouse_on {
        capture_mouse(false);
    }
    let _ = ratatui::try_restore();
    result
}

/// Takes the mouse's events from the terminal, or gives them back (so that
/// it selects text). Best effort: a terminal without a mouse ignores it.
fn capture_mouse(on: bool) {
    use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
    let mut out = std::io::stdout();
    let _ = if on {
        ratatui::crossterm::execute!(out, EnableMouseCapture)
    } else {
        ratatui::crossterm::execute!(out, DisableMouseCapture)
    };
}

fn handle_key(
    key: ratatui::crossterm::event::KeyEvent,
    consumer: &mut Consumer,
    view: &mut View,
    theme: &mut Theme,
    steer: &mut dyn Steer,
    screen: ratatui::layout::Rect,
) -> Next {
    if let Some(next) = super::prompt::typing(key, consumer, view, theme, steer, screen) {
        return next;
    }
    let Some(action) = action_for(key, view.is_replay(), &view.keys) else {
        return Next::Stay;
    };
    let count = panes(&consumer.session, view).len().max(1);
    match action {
        Action::Help => view.overlay.toggle(Overlay::Help),
        Action::Results => view.overlay.toggle(Overlay::Results),
        Action::Overhead => view.overlay.toggle(Overlay::Overhead),
        Action::Distribution => view.overlay.toggle(Overlay::Distribution),
        Action::Layout => {
            if let Some(layout) = key
                .code
                .as_char()
                .and_then(|c| c.to_digit(10))
                .and_then(crate::ui::ScreenLayout::numbered)
            {
                view.layout = layout;
            }
        }
        Action::Mouse => view.mouse = !view.mouse,
        Action::ExportView => export_view(consumer, view, theme, screen),
        Action::Close if view.overlay == Overlay::None => view.cursor = None,
        Action::Close => view.overlay = Overlay::None,
        Action::NextPane => view.selected = (view.selected + 1) % count,
        Action::PrevPane => view.selected = (view.selected + count - 1) % count,
        Action::Detail => {
            if let Some(pane) = panes(&consumer.session, view).get(view.selected) {
                view.overlay = Overlay::Detail(*pane);
            }
        }
        Action::Note => view.overlay = Overlay::Note(String::new()),
        Action::Goto => view.overlay = Overlay::Goto(String::new()),
        Action::Palette => view.overlay = Overlay::Palette(String::new()),
        // Empty, so that `/` and Enter clear the filter (the footer shows it).
        Action::Filter => view.overlay = Overlay::Filter(String::new()),
        Action::ZoomIn => view.zoom(&consumer.session, -1),
        Action::ZoomOut => view.zoom(&consumer.session, 1),
        Action::PanBack => view.pan(&consumer.session, -1),
        Action::PanForward => view.pan(&consumer.session, 1),
        Action::PrevPhase => go(Seek::Phases(-1), consumer, view, steer),
        Action::NextPhase => go(Seek::Phases(1), consumer, view, steer),
        Action::Window => view.window = view.window.next(),
        Action::NetUnits => view.net_bits = !view.net_bits,
        Action::SortLeft => view.sort = view.sort.step(-1),
        Action::SortRight => view.sort = view.sort.step(1),
        Action::LogOlder => super::pointer::scroll_log(consumer, view, -LOG_PAGE),
        Action::LogNewer => super::pointer::scroll_log(consumer, view, LOG_PAGE),
        Action::LogLatest => view.log_end = None,
        Action::RecordingEnd => go(Seek::End, consumer, view, steer),
        _ => return steer.act(action, view, consumer),
    }
    Next::Stay
}

/// Keeps what is on screen in ./recordings/, saying where in the footer.
pub(super) fn export_view(
    consumer: &Consumer,
    view: &mut View,
    theme: &Theme,
    screen: ratatui::layout::Rect,
) {
    let folder = std::path::Path::new("recordings");
    view.status = Some(
        match super::export_view::write(&consumer.session, view, theme, screen, folder) {
            Ok(files) => format!(
                "view kept: {} and {} more files",
                files
                    .first()
                    .map_or(String::new(), |f| f.display().to_string()),
                files.len().saturating_sub(1)
            ),
            Err(e) => format!("view not kept: {e:#}"),
        },
    );
}

/// Goes somewhere in time: the producer moves (replay), or else the
/// phase cursor does (live: the charts and results show that phase).
pub(super) fn go(to: Seek, consumer: &mut Consumer, view: &mut View, steer: &mut dyn Steer) {
    if steer.seek(to, view, consumer) {
        // The model is rebuilt from the recording: the log's numbers too.
        view.cursor = None;
        view.log_end = None;
        return;
    }
    let session = &consumer.session;
    match to {
        Seek::Phases(by) => view.step_cursor(session, by),
        Seek::Phase(number) => {
            view.cursor = session.phases.iter().position(|p| p.id + 1 == number);
        }
        Seek::Time(t) => {
            view.cursor = session.phases.iter().rposition(|p| p.started <= t);
        }
        Seek::End => view.cursor = None,
    }
    // A copy pane selected in another phase is not there any more.
    view.selected = view
        .selected
        .min(panes(session, view).len().saturating_sub(1));
}

#[cfg(test)]
mod tests {
    use super::Seek;

    #[test]
    fn places_are_typed_as_a_phase_number_or_a_time() {
        let s = 1_000_000_000;
        assert_eq!(Seek::parse("12"), Some(Seek::Phase(12)));
        assert_eq!(Seek::parse(" 1:05:00 "), Some(Seek::Time(3900 * s)));
        assert_eq!(Seek::parse("65:00"), Some(Seek::Time(3900 * s)));
        assert_eq!(Seek::parse("90s"), Some(Seek::Time(90 * s)));
        assert_eq!(Seek::parse("2m"), Some(Seek::Time(120 * s)));
        assert_eq!(Seek::parse("1h"), Some(Seek::Time(3600 * s)));
        for bad in [
            "0",
            "",
            "1:75",
            "ten",
            "5x",
            "1:2:3:4",
            "5é",
            "²",
            "99999999999999h",
        ] {
            assert_eq!(Seek::parse(bad), None, "{bad:?}");
        }
    }
}
