//! A line being typed: a note for the recording, or where to go.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::widgets::{Clear, Paragraph};

use crate::ui::theme::Theme;
use crate::ui::widgets::{centered, pane_block};

pub fn render(frame: &mut Frame, area: Rect, theme: &Theme, title: &str, text: &str) {
    let width = (title.chars().count() as u16 + 4).max(60);
    let popup = centered(area, width, 3);
    frame.render_widget(Clear, popup);
    let block = pane_block(title.to_string(), theme, true);
    let inner = block.inner(popup);
    frame.render_widget(Paragraph::new(text.to_string()).block(block), popup);
    let cursor_x = inner.x + (text.chars().count() as u16).min(inner.width.saturating_sub(1));
    frame.set_cursor_position((cursor_x, inner.y));
}

#[cfg(test)]
mod tests {
    use crate::ui::Overlay;
    use crate::ui::fixtures::{draw, live_view, session};

    #[test]
    fn a_note_and_a_place_being_typed() {
        let mut view = live_view();
        view.overlay = Overlay::Note("BIOS update on node 3".into());
        insta::assert_snapshot!("note", draw(&session(), &view, 80, 24).backend());
        view.overlay = Overlay::Goto("1:05:00".into());
        insta::assert_snapshot!("goto", draw(&session(), &view, 80, 24).backend());
    }
}
