//! The last line: the keys of this screen (all of them are in `?`).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::View;
use super::keys::{Action, Binding, bindings_for};
use super::theme::Theme;

/// As many of the screen's footer keys as fit, always ending with help
/// and quit (the help lists the rest).
pub fn render(buf: &mut Buffer, area: Rect, theme: &Theme, view: &View) {
    // The window key says which window the charts show.
    let window = match view.cursor {
        Some(i) => format!("phase #{}", i + 1),
        None => view.window.name(),
    };
    let key = |b: &Binding| {
        let hint = match b.action {
            Action::Window => window.clone(),
            _ => b.hint.to_string(),
        };
        [
            Span::styled(
                format!(" {} ", view.keys.label(b).split(' ').next().unwrap_or("")),
                Style::new().fg(theme.accent.0).add_modifier(Modifier::BOLD),
            ),
            Span::styled(hint, Style::new().fg(theme.dim.0)),
        ]
    };
    let (last, first): (Vec<&Binding>, Vec<&Binding>) = bindings_for(view.is_replay())
        .filter(|b| b.in_footer)
        .partition(|b| matches!(b.action, Action::Help | Action::Quit));
    let last: Vec<Span> = last.into_iter().flat_map(key).collect();
    // What narrows the screen comes first: the filter and the zoom; what
    // the last command did before anything.
    let mut spans = Vec::new();
    let marked = Style::new().fg(theme.warn.0).add_modifier(Modifier::BOLD);
    if let Some(status) = &view.status {
        spans.push(Span::styled(
            format!(" {status} "),
            Style::new().fg(theme.accent.0),
        ));
    }
    if let Some(filter) = &view.filter {
        spans.push(Span::styled(format!(" /{} ", filter.text), marked));
    }
    if let Some(span) = view.zoom {
        let clock = crate::format::clock;
        let text = match view.pan {
            0 => format!(" zoom {} ", clock(span)),
            back => format!(" zoom {} −{} ", clock(span), clock(back)),
        };
        spans.push(Span::styled(text, marked));
    }
    // Help and quit stay on the line: what comes first is cut to fit.
    let last_width: usize = last.iter().map(Span::width).sum();
    let mut taken = 0;
    let allowed = (area.width as usize).saturating_sub(last_width);
    for span in &mut spans {
        let left = allowed.saturating_sub(taken);
        if span.width() > left {
            let cut: String = span.content.chars().take(left.saturating_sub(1)).collect();
            span.content = match left {
                0 => String::new(),
                _ => format!("{cut}…"),
            }
            .into();
        }
        taken += span.width();
    }
    let room = allowed.saturating_sub(taken);
    let mut used = 0;
    for pair in first.into_iter().map(key) {
        let width: usize = pair.iter().map(Span::width).sum();
        if used + width > room {
            break;
        }
        used += width;
        spans.extend(pair);
    }
    spans.extend(last);
    Line::from(spans).render(area, buf);
}

#[cfg(test)]
mod tests {
    use crate::ui::fixtures::{SIZES, draw, live_view, session};

    #[test]
    fn help_and_quit_stay_on_the_line_at_every_size() {
        for (w, h) in SIZES {
            let terminal = draw(&session(), &live_view(), w, h);
            let buffer = terminal.backend().buffer();
            let last: String = (0..w).map(|x| buffer[(x, h - 1)].symbol()).collect();
            assert!(
                last.contains("? help") && last.contains("q quit"),
                "{w}: {last}"
            );
        }
        // A long status and filter are cut, not help and quit.
        let mut view = live_view();
        view.status = Some(format!(
            "view kept: recordings/{} and 12 more files",
            "x".repeat(80)
        ));
        view.filter =
            crate::ui::filter::Filter::parse("a-rather-long-guest-regex").expect("parses");
        let terminal = draw(&session(), &view, 80, 24);
        let buffer = terminal.backend().buffer();
        let last: String = (0..80).map(|x| buffer[(x, 23)].symbol()).collect();
        assert!(last.contains("? help") && last.contains("q quit"), "{last}");
    }
}
