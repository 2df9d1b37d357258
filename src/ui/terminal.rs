//! The full-screen loop: one owner of state (the consumer), every input one
//! message on the bus, a frame drawn at most ten times a second.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::Result;
use ratatui::crossterm::event::{Event as TermEvent, KeyCode, KeyEventKind};

use super::keys::{Action, action_for};
use super::theme::Theme;
use super::{Overlay, View, panes, render};
use crate::app::Consumer;
use crate::bus::Msg;

const FRAME: Duration = Duration::from_millis(100);

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
}

pub fn run(
    consumer: &mut Consumer,
    rx: &Receiver<Msg>,
    tx: Sender<Msg>,
    theme: &Theme,
    view: &mut View,
    steer: &mut dyn Steer,
) -> Result<()> {
    let mut terminal = ratatui::init();
    std::thread::Builder::new()
        .name("input".into())
        .spawn(move || {
            while let Ok(event) = ratatui::crossterm::event::read() {
                if tx.send(Msg::Terminal(event)).is_err() {
                    break;
                }
            }
        })?;
    let result = (|| -> Result<()> {
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
            let due = last_draw.map_or(Instant::now(), |t| t + FRAME);
            if dirty && Instant::now() >= due && !terminal_gone {
                let drawn = terminal.draw(|frame| render(frame, &consumer.session, theme, view));
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
                        handle_key(key, consumer, view, steer)
                    }
                    Some(Msg::Signal(signal)) => steer.signal(signal, view, consumer),
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
    let _ = ratatui::try_restore();
    result
}

fn handle_key(
    key: ratatui::crossterm::event::KeyEvent,
    consumer: &mut Consumer,
    view: &mut View,
    steer: &mut dyn Steer,
) -> Next {
    if let Overlay::Note(text) = &mut view.overlay {
        match key.code {
            KeyCode::Enter => {
                let text = std::mem::take(text);
                view.overlay = Overlay::None;
                if !text.trim().is_empty() {
                    steer.note(text, consumer);
                }
            }
            KeyCode::Esc => view.overlay = Overlay::None,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            _ => {}
        }
        return Next::Stay;
    }
    let Some(action) = action_for(key, view.is_replay()) else {
        return Next::Stay;
    };
    let count = panes(&consumer.session).len().max(1);
    match action {
        Action::Help => view.overlay.toggle(Overlay::Help),
        Action::Results => view.overlay.toggle(Overlay::Results),
        Action::Overhead => view.overlay.toggle(Overlay::Overhead),
        Action::Close => view.overlay = Overlay::None,
        Action::NextPane => view.selected = (view.selected + 1) % count,
        Action::PrevPane => view.selected = (view.selected + count - 1) % count,
        Action::Detail => {
            if let Some(pane) = panes(&consumer.session).get(view.selected) {
                view.overlay = Overlay::Detail(*pane);
            }
        }
        Action::Note => view.overlay = Overlay::Note(String::new()),
        _ => return steer.act(action, view, consumer),
    }
    Next::Stay
}
