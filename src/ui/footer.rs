//! The last line: the keys of this screen (all of them are in `?`).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::View;
use super::keys::bindings_for;
use super::theme::Theme;

pub fn render(buf: &mut Buffer, area: Rect, theme: &Theme, view: &View) {
    let mut spans = Vec::new();
    for b in bindings_for(view.is_replay()).filter(|b| b.in_footer) {
        spans.push(Span::styled(
            format!(" {} ", b.label.split(' ').next().unwrap_or(b.label)),
            Style::new().fg(theme.accent.0).add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(b.hint, Style::new().fg(theme.dim.0)));
    }
    Line::from(spans).render(area, buf);
}
