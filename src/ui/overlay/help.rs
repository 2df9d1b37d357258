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
                    format!(" {:<8}", view.keys.label(b)),
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

#[cfg(test)]
mod tests {
    use crate::ui::fixtures::{SIZES, draw, live_view, session};
    use crate::ui::{Feed, Overlay, View, Writer};

    #[test]
    fn the_key_table_fits_every_size() {
        let replay = View::new(Feed::Replay {
            speed: 1.0,
            paused: false,
            end: 10_000_000_000,
            writer: Writer::Finished,
        });
        for (name, mut view) in [("live", live_view()), ("replay", replay)] {
            view.overlay = Overlay::Help;
            for (w, h) in SIZES {
                let terminal = draw(&session(), &view, w, h);
                let screen: String = terminal
                    .backend()
                    .buffer()
                    .content()
                    .iter()
                    .map(|c| c.symbol())
                    .collect();
                // The last binding of the table is on screen.
                assert!(screen.contains("quit"), "{name} {w}×{h}");
                insta::assert_snapshot!(format!("help_{name}_{w}x{h}"), terminal.backend());
            }
        }
    }
}
