//! What opens over the main screen: help, a note or a place being typed,
//! a pane's detail, the loss matrix, the overhead table.

mod detail;
mod help;
mod input;
pub mod matrix;
mod overhead;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};

use super::theme::Theme;
use super::{Overlay, View, Window};
use crate::model::Session;

pub fn render(frame: &mut Frame, session: &Session, theme: &Theme, view: &View, window: Window) {
    let area = frame.area();
    // Overlays leave the header and the bottom line in view.
    let [_, body, _] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    match &view.overlay {
        Overlay::None => {}
        Overlay::Help => help::render(frame.buffer_mut(), area, theme, view),
        Overlay::Note(text) => input::render(
            frame,
            area,
            theme,
            " note (Enter records, Esc cancels) ",
            text,
        ),
        Overlay::Goto(text) => input::render(
            frame,
            area,
            theme,
            " go to phase number or time, e.g. 12, 1:05:00, 90s (Enter) ",
            text,
        ),
        Overlay::Filter(text) => input::render(
            frame,
            area,
            theme,
            " filter: regex, state:lost, tech:gvisor, guest:g1, rate<50%; ! inverts; empty clears ",
            text,
        ),
        Overlay::Palette(text) => {
            let title = crate::ui::palette::palette_title(text);
            input::render(frame, area, theme, &title, text)
        }
        Overlay::Detail(pane) => detail::render(
            frame.buffer_mut(),
            body,
            session,
            theme,
            *pane,
            window,
            view,
        ),
        Overlay::Distribution => {
            crate::ui::distribution::render(frame.buffer_mut(), body, session, theme, view)
        }
        Overlay::Results => matrix::render(frame.buffer_mut(), body, &view.loss_table, theme),
        Overlay::Overhead => {
            overhead::render(frame.buffer_mut(), body, session, theme, view.net_rate())
        }
    }
}
