//! The top line: plan, phase, time, feed, and what vmbench itself costs
//! the host, so that an operator sees the observer's share live.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::theme::Theme;
use super::{Feed, View, Writer};
use crate::format::{clock, speed};
use crate::model::Session;

pub fn render(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme, view: &View) {
    let newest = session.phases.len().checked_sub(1);
    let state = if session.current_phase().is_some() {
        session.phase_label(newest.unwrap_or(0))
    } else if session.ended.is_some() || view.finished {
        "finished".to_string()
    } else if matches!(view.feed, Feed::Live { waiting: true, .. }) && session.phases.is_empty() {
        "waiting: press s to start".to_string()
    } else if let Some(last) = newest {
        format!("after {}", session.phase_label(last))
    } else {
        "waiting".to_string()
    };
    let feed = match &view.feed {
        Feed::Live { .. } => "LIVE".to_string(),
        Feed::Replay {
            speed: pace,
            paused,
            end,
            writer,
        } => format!(
            "REPLAY {}{} {}/{}{}",
            if *paused { "paused " } else { "" },
            speed(*pace),
            clock(session.now),
            clock(*end),
            match writer {
                Writer::Finished => "",
                Writer::Writing => " following",
                Writer::Gone => " writer gone",
            }
        ),
    };
    let dim = Style::new().fg(theme.dim.0);
    let mut spans = vec![
        Span::styled(
            " vmbench ",
            Style::new().fg(theme.title.0).add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            session.header.plan_name.clone(),
            Style::new().fg(theme.accent.0),
        ),
        Span::raw("  "),
        Span::raw(state),
        Span::raw("  "),
        Span::styled(format!("{} elapsed", clock(session.now)), dim),
        Span::raw("  "),
        Span::styled(format!("{} left", clock(session.remaining())), dim),
        Span::raw("  "),
        Span::styled(
            feed,
            Style::new().fg(theme.accent.0).add_modifier(Modifier::BOLD),
        ),
    ];
    if view.display_paused {
        spans.push(Span::styled(
            " DISPLAY PAUSED",
            Style::new().fg(theme.warn.0).add_modifier(Modifier::BOLD),
        ));
    }
    let line = Line::from(spans);
    let used = line.width();
    line.render(area, buf);
    // vmbench's own CPU, on the right when there is room for it.
    if let Some(own) = session.process_cpu_percent("vmbench") {
        let cost = format!(" vmbench itself {own:.1}% cpu ");
        let room = area.width as usize;
        if used + cost.chars().count() < room {
            let width = cost.chars().count() as u16;
            Span::styled(cost, dim).render(
                Rect {
                    x: area.right() - width,
                    width,
                    ..area
                },
                buf,
            );
        }
    }
}
