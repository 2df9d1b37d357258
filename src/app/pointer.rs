//! The mouse on the main screen: a click selects a pane, goes to a phase
//! on the timeline, sorts the copies table by its header or selects a row;
//! the wheel scrolls the log, or the copies. Overlays take no clicks.

use ratatui::crossterm::event::{MouseEvent, MouseEventKind};
use ratatui::layout::Rect;

use super::Consumer;
use super::terminal::{Seek, Steer, go};
use crate::ui::mouse::{Hit, hit};
use crate::ui::{Overlay, View, panes};

/// How many log entries a turn of the wheel moves.
const WHEEL_LOG: u64 = 3;

pub fn handle(
    event: MouseEvent,
    consumer: &mut Consumer,
    view: &mut View,
    steer: &mut dyn Steer,
    screen: Rect,
) {
    if view.overlay != Overlay::None {
        return;
    }
    let at = hit(&consumer.session, view, screen, event.column, event.row);
    match (event.kind, at) {
        (MouseEventKind::Down(_), Some(Hit::Pane(index))) => view.selected = index,
        (MouseEventKind::Down(_), Some(Hit::Phase(index))) => {
            go(Seek::Phase(index as u32 + 1), consumer, view, steer)
        }
        (MouseEventKind::Down(_), Some(Hit::Sort(sort))) => view.sort = sort,
        (MouseEventKind::ScrollUp, Some(Hit::Log)) => scroll_log(consumer, view, -1),
        (MouseEventKind::ScrollDown, Some(Hit::Log)) => scroll_log(consumer, view, 1),
        // The wheel moves through the copies (the host charts stay put).
        (MouseEventKind::ScrollUp | MouseEventKind::ScrollDown, Some(Hit::Pane(index)))
            if index >= 4 =>
        {
            let count = panes(&consumer.session, view).len().max(1);
            view.selected = match event.kind {
                MouseEventKind::ScrollUp => view.selected.saturating_sub(1).max(4),
                _ => (view.selected + 1).min(count - 1),
            };
        }
        _ => {}
    }
}

/// Moves the log pane back (`by` < 0) or forward; forward past the newest
/// follows it again.
pub fn scroll_log(consumer: &Consumer, view: &mut View, by: i64) {
    let session = &consumer.session;
    let newest = session.log_total.saturating_sub(1);
    let oldest = session.log_total - session.log.len() as u64;
    let step = WHEEL_LOG * by.unsigned_abs();
    view.log_end = if by < 0 {
        let end = view.log_end.unwrap_or(newest);
        Some(end.saturating_sub(step).max(oldest + 1))
    } else {
        view.log_end
            .map(|end| end + step)
            .filter(|end| *end < newest)
    };
}
