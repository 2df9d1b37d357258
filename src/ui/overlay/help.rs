//! The key table, printed from the one in keys.rs: in two columns when
//! one does not fit the screen's height.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Widget};

use crate::ui::View;
use crate::ui::keys::bindings_for;
use crate::ui::theme::Theme;
use crate::ui::widgets::{centered, pane_block};

const COLUMN: u16 = 64;

pub fn render(buf: &mut Buffer, area: Rect, theme: &Theme, view: &View) {
    let lines: Vec<Line> = bindings_for(view.is_replay())
        .map(|b| {
            Line::from(vec![
                Span::styled(
                    format!(" {:<8}", b.label),
                    Style::new().fg(theme.accent.0).add_modifier(Modifier::BOLD),
                ),
                Span::raw(b.what),
            ])
        })
        .collect();
    // Two narrower columns when one is taller than the screen.
    let (columns, width) = if lines.len() as u16 + 2 > area.height {
        (2, COLUMN.min(area.width.saturating_sub(2) / 2))
    } else {
        (1, COLUMN)
    };
    let per_column = lines.len().div_ceil(columns);
    let popup = centered(area, width * columns as u16 + 2, per_column as u16 + 2);
    Clear.render(popup, buf);
    let block = pane_block(" keys (Esc closes) ".into(), theme, true);
    let inner = block.inner(popup);
    block.render(popup, buf);
    let areas = Layout::horizontal(vec![Constraint::Length(width); columns]).split(inner);
    for (chunk, column) in lines.chunks(per_column.max(1)).zip(areas.iter()) {
        Paragraph::new(chunk.to_vec()).render(*column, buf);
    }
}
