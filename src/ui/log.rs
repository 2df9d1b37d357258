//! The log pane: the latest entries (phases starting and ending, guests'
//! connections, warnings, faults, notes), coloured by level, scrollable
//! back through the session's history.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::View;
use super::theme::Theme;
use crate::event::LogLevel;
use crate::format::clock;
use crate::model::{LogKind, LogLine, Session};

pub fn level_colour(level: LogLevel, theme: &Theme) -> Color {
    match level {
        LogLevel::Info => theme.text.0,
        LogLevel::Warn => theme.warn.0,
        LogLevel::Error => theme.bad.0,
    }
}

/// One entry on one line: time, a mark for its kind, its text.
pub fn entry_line<'a>(line: &LogLine, theme: &Theme) -> Line<'a> {
    let mark = match line.kind {
        LogKind::Message => " ",
        LogKind::Phase => "▸",
        LogKind::Guest => "●",
        LogKind::Note => "◆",
    };
    Line::from(vec![
        Span::styled(format!(" {} ", clock(line.t)), Style::new().fg(theme.dim.0)),
        Span::styled(format!("{mark} "), Style::new().fg(theme.accent.0)),
        Span::styled(
            line.text.clone(),
            Style::new().fg(level_colour(line.level, theme)),
        ),
    ])
}

/// The line under the log pane: the latest event, whatever is scrolled.
pub fn render_latest(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme) {
    if let Some(line) = session.log.back() {
        entry_line(line, theme).render(area, buf);
    }
}

pub fn render(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme, view: &View) {
    if area.height == 0 {
        return;
    }
    let rows = area.height as u64 - 1;
    let total = session.log_total;
    let oldest = total - session.log.len() as u64;
    // The newest entry is on the line below the pane; a scrolled pane
    // keeps its place, and shows a full page at the top.
    let newest = total.saturating_sub(1);
    let end = view
        .log_end
        .unwrap_or(newest)
        .min(newest)
        .max((oldest + rows).min(newest));
    let below = newest - end;
    let title = if view.log_end.is_some() {
        format!("─ log · {below} newer below (End: latest) ")
    } else if session.log.len() == 1 {
        "─ log · 1 entry ".to_string()
    } else {
        format!("─ log · {} entries (PgUp PgDn) ", session.log.len())
    };
    let rule = format!(
        "{title}{}",
        "─".repeat((area.width as usize).saturating_sub(title.chars().count()))
    );
    Span::styled(rule, Style::new().fg(theme.border.0)).render(Rect { height: 1, ..area }, buf);
    let first = end.saturating_sub(rows).max(oldest);
    let ring = |n: u64| (n - oldest) as usize;
    for (row, line) in session.log.range(ring(first)..ring(end)).enumerate() {
        entry_line(line, theme).render(
            Rect {
                y: area.y + 1 + row as u16,
                height: 1,
                ..area
            },
            buf,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{Event, LogLevel};
    use crate::ui::fixtures::{live_view, session};

    fn screen_text(session: &crate::model::Session, view: &crate::ui::View) -> String {
        crate::ui::fixtures::screen_text(session, view, 100, 30)
    }

    #[test]
    fn the_log_holds_phases_and_guests_and_scrolls_back() {
        let mut session = session();
        for i in 0..20 {
            session.apply(&Event::Log {
                t: 9_000_000_000 + i,
                level: if i == 19 {
                    LogLevel::Error
                } else {
                    LogLevel::Info
                },
                text: format!("entry {i}"),
            });
        }
        let mut view = live_view();
        let latest = screen_text(&session, &view);
        assert!(latest.contains("entry 19"));
        assert!(!latest.contains("phase 1/"), "{latest}");
        // Scrolled back to the start: the fixture's phases started and ended.
        view.log_end = Some(0);
        let oldest = screen_text(&session, &view);
        assert!(
            oldest.contains("▸ phase 1/6 cpu ×2 rep 1 started"),
            "{oldest}"
        );
        assert!(oldest.contains("newer below"), "{oldest}");
        // The line under the pane still shows the latest event.
        let lines: Vec<&str> = oldest.lines().collect();
        assert!(lines[lines.len() - 2].contains("entry 19"), "{oldest}");
        // Not scrolled, the pane ends just before it.
        let pane_end = latest.lines().collect::<Vec<_>>()[lines.len() - 3].to_string();
        assert!(pane_end.contains("entry 18"), "{latest}");
        // Scrolled, it holds its place while entries arrive.
        view.log_end = Some(10);
        let before = screen_text(&session, &view);
        session.apply(&Event::Log {
            t: 9_500_000_000,
            level: LogLevel::Info,
            text: "entry 20".into(),
        });
        let after = screen_text(&session, &view);
        let pane = |screen: &str| -> Vec<String> {
            let lines: Vec<&str> = screen.lines().collect();
            let top = lines
                .iter()
                .position(|l| l.starts_with("─ log"))
                .expect("pane");
            lines[top + 1..lines.len() - 2]
                .iter()
                .map(|l| l.to_string())
                .collect()
        };
        assert_eq!(pane(&before), pane(&after));
        assert!(after.contains("newer below"));
    }
}
