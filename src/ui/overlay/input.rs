//! A line being typed: a note for the recording, where to go, a filter or
//! a command. A line longer than the box (an error said in it) wraps.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::widgets::{Clear, Paragraph};

use crate::ui::theme::Theme;
use crate::ui::widgets::{centered, pane_block};

pub fn render(frame: &mut Frame, area: Rect, theme: &Theme, title: &str, text: &str) {
    let longest = title.chars().count().max(text.chars().count() + 1) as u16;
    let width = (longest + 4).max(60).min(area.width);
    let rows = (text.chars().count() as u16).div_ceil(width.saturating_sub(2).max(1));
    let popup = centered(area, width, rows.clamp(1, 4) + 2);
    frame.render_widget(Clear, popup);
    let block = pane_block(title.to_string(), theme, true);
    let inner = block.inner(popup);
    frame.render_widget(
        Paragraph::new(text.to_string())
            .wrap(ratatui::widgets::Wrap { trim: false })
            .block(block),
        popup,
    );
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
        // An unknown command is answered in full, however narrow the screen.
        view.overlay = Overlay::Palette(
            "? no command \"zz\"; phase, time, guest, tech, filter, note, zoom, pan, window, \
             sort, theme, help, quit exist"
                .into(),
        );
        let screen = format!("{:?}", draw(&session(), &view, 80, 24).backend().buffer());
        assert!(screen.contains("help, quit exist"), "{screen}");
    }
}
