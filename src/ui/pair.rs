//! A/B replay: two recordings side by side (the same plan on a KVM host and
//! a Xen host, or before and after a kernel change), each with its own
//! timeline, charts and copies, over one table of per-phase differences.
//! The phase under the cursor is matched by number on both sides.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Span;
use ratatui::widgets::{Block, Cell, Row, Table, TableState, Widget};

use super::theme::Theme;
use super::widgets::pane_block;
use super::{View, Writer, aggregates, copies, footer, header, log, overlay, panes, timeline};
use crate::event::Nanos;
use crate::format::{clock, figure};
use crate::model::Session;
use crate::results::PhaseResult;

/// The B side's view: the A side's, with the phase cursor moved to the
/// phase of the same number (which may sit elsewhere in B's list), and B's
/// own recording's end and writer.
fn view_of_b(a: &Session, b: &Session, view: &View, b_recording: Option<(Nanos, Writer)>) -> View {
    let mut b_view = view.clone();
    b_view.feed.set_recording(b_recording);
    b_view.cursor = view
        .cursor
        .and_then(|i| a.phases.get(i))
        .and_then(|phase| b.phases.iter().position(|p| p.id == phase.id));
    b_view.selected = usize::MAX;
    b_view
}

/// Draws A and B; `b_recording` is B's recording's end and writer as its
/// producer last said.
pub fn render(
    frame: &mut Frame,
    a: &Session,
    b: &Session,
    b_recording: Option<(Nanos, Writer)>,
    theme: &Theme,
    view: &View,
) {
    let area = frame.area();
    frame.render_widget(Block::new().style(Style::new().fg(theme.text.0)), area);
    let b_view = view_of_b(a, b, view, b_recording);
    let height = area.height;
    let compare_height = (a.results.phases.len().max(b.results.phases.len()) as u16 + 3)
        .clamp(4, (height / 4).max(4));
    let [
        header_a,
        header_b,
        timeline_a,
        timeline_b,
        sides,
        compare,
        latest_a,
        latest_b,
        hints,
    ] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(6),
        Constraint::Length(compare_height),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let selected = panes(a, view).get(view.selected).copied();
    let buf = frame.buffer_mut();
    for (side, session, side_view, head, line, latest) in [
        ("A", a, view, header_a, timeline_a, latest_a),
        ("B", b, &b_view, header_b, timeline_b, latest_b),
    ] {
        let [mark, rest] =
            Layout::horizontal([Constraint::Length(2), Constraint::Min(0)]).areas(head);
        let mark_style = Style::new().fg(theme.accent.0).add_modifier(Modifier::BOLD);
        Span::styled(side, mark_style).render(mark, buf);
        header::render(buf, rest, session, theme, side_view);
        let [mark, rest] =
            Layout::horizontal([Constraint::Length(2), Constraint::Min(0)]).areas(line);
        Span::styled(side, mark_style).render(mark, buf);
        timeline::render(buf, rest, session, theme, side_view);
        let [mark, rest] =
            Layout::horizontal([Constraint::Length(2), Constraint::Min(0)]).areas(latest);
        Span::styled(side, mark_style).render(mark, buf);
        log::render_latest(buf, rest, session, theme);
    }
    let [left, right] = Layout::horizontal([Constraint::Ratio(1, 2); 2]).areas(sides);
    for (session, side_view, area, selected) in
        [(a, view, left, selected), (b, &b_view, right, None)]
    {
        let aggregates_height = (area.height * 2 / 5).clamp(6, 22).min(area.height);
        let [top, bottom] =
            Layout::vertical([Constraint::Length(aggregates_height), Constraint::Min(0)])
                .areas(area);
        let window = side_view.chart_window(session);
        aggregates::render(buf, top, session, theme, side_view, selected, window);
        copies::render(buf, bottom, session, theme, side_view, selected, window);
    }
    render_differences(buf, compare, a, b, theme, view);
    footer::render(buf, hints, theme, view);
    overlay::render(frame, a, theme, view, view.chart_window(a));
}

/// A row of the differences table: the same phase, technology and metric
/// on both sides.
struct Difference<'a> {
    a: Option<&'a PhaseResult>,
    b: Option<&'a PhaseResult>,
}

impl Difference<'_> {
    fn any(&self) -> &PhaseResult {
        self.a.or(self.b).expect("one side at least")
    }

    /// B against A in percent, signed so that positive is better for B.
    fn better_percent(&self) -> Option<f64> {
        let (a, b) = (self.a?.aggregate?, self.b?.aggregate?);
        if a == 0.0 {
            return None;
        }
        let change = (b - a) / a * 100.0;
        Some(if self.any().higher_is_better {
            change
        } else {
            -change
        })
    }
}

/// Rows matched by phase number, technology and metric, in A's order and
/// then B's rows that A has not.
fn differences<'a>(a: &'a Session, b: &'a Session) -> Vec<Difference<'a>> {
    let key = |r: &PhaseResult| (r.phase, r.technology.clone(), r.metric.clone());
    let mut rows: Vec<Difference> = a
        .results
        .phases
        .iter()
        .map(|ra| Difference {
            a: Some(ra),
            b: b.results.phases.iter().find(|rb| key(rb) == key(ra)),
        })
        .collect();
    for rb in &b.results.phases {
        if !a.results.phases.iter().any(|ra| key(ra) == key(rb)) {
            rows.push(Difference {
                a: None,
                b: Some(rb),
            });
        }
    }
    rows.sort_by_key(|d| d.any().phase);
    rows
}

fn render_differences(
    buf: &mut Buffer,
    area: Rect,
    a: &Session,
    b: &Session,
    theme: &Theme,
    view: &View,
) {
    let rows = differences(a, b);
    let cursor_phase = view.cursor.and_then(|i| a.phases.get(i)).map(|p| p.id + 1);
    let verdict = |r: Option<&PhaseResult>| {
        r.map_or("—".into(), |r| {
            r.flag
                .as_ref()
                .map_or("ok".into(), crate::results::Flag::short)
        })
    };
    let body: Vec<Row> = rows
        .iter()
        .map(|d| {
            let r = d.any();
            let (change, colour) = match d.better_percent() {
                Some(p) if p >= 0.0 => (format!("B {p:+.1} %"), theme.good.0),
                Some(p) => (format!("B {p:+.1} %"), theme.warn.0),
                None => ("—".into(), theme.dim.0),
            };
            let style = if cursor_phase == Some(r.phase) {
                Style::new().bg(theme.highlight_bg.0)
            } else {
                Style::new()
            };
            Row::new(vec![
                Cell::from(r.phase.to_string()),
                Cell::from(format!("{} ×{}", r.benchmark, r.concurrency)),
                Cell::from(r.technology.clone()),
                Cell::from(r.metric.clone()),
                Cell::from(figure(d.a.and_then(|r| r.aggregate), &r.unit))
                    .style(Style::new().fg(theme.accent.0)),
                Cell::from(figure(d.b.and_then(|r| r.aggregate), &r.unit))
                    .style(Style::new().fg(theme.accent.0)),
                Cell::from(change).style(Style::new().fg(colour)),
                Cell::from(format!("{} │ {}", verdict(d.a), verdict(d.b))),
            ])
            .style(style)
        })
        .collect();
    let chosen = match cursor_phase {
        Some(phase) => rows.iter().position(|d| d.any().phase == phase),
        None => rows.len().checked_sub(1),
    };
    let mut state = TableState::default().with_selected(chosen);
    let header = Row::new([
        "#",
        "bench",
        "technology",
        "metric",
        "A all copies",
        "B all copies",
        "B vs A",
        "verdicts A │ B",
    ])
    .style(Style::new().fg(theme.dim.0).add_modifier(Modifier::BOLD));
    let title = format!(
        " A/B per phase (same phase number): A at {}, B at {} ",
        clock(a.now),
        clock(b.now)
    );
    let table = Table::new(
        body,
        [
            Constraint::Length(3),
            Constraint::Length(14),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(14),
            Constraint::Length(14),
            Constraint::Length(10),
            Constraint::Min(12),
        ],
    )
    .header(header)
    .column_spacing(1)
    .block(pane_block(title, theme, false));
    ratatui::widgets::StatefulWidget::render(table, area, buf, &mut state);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::{session, session_scaled};
    use crate::ui::{Feed, Writer as W};

    #[test]
    fn differences_match_phases_and_say_which_side_is_better() {
        let a = session();
        let b = session_scaled(0.5);
        let rows = differences(&a, &b);
        assert_eq!(rows.len(), a.results.phases.len());
        let first = &rows[0];
        assert!(first.a.is_some() && first.b.is_some());
        let percent = first.better_percent().expect("both measured");
        assert!((percent + 50.0).abs() < 1e-6, "{percent}");
    }

    #[test]
    fn two_recordings_side_by_side_at_every_size() {
        let a = session();
        let b = session_scaled(0.5);
        let mut view = View::new(Feed::Replay {
            speed: 4.0,
            paused: false,
            end: 10_000_000_000,
            writer: W::Finished,
        });
        view.cursor = Some(0);
        for (w, h) in crate::ui::fixtures::SIZES {
            let mut terminal =
                ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).expect("terminal");
            let theme = Theme::built_in("dark").expect("dark");
            terminal
                .draw(|f| render(f, &a, &b, Some((b.now, W::Finished)), &theme, &view))
                .expect("draw");
            insta::assert_snapshot!(format!("ab_{w}x{h}"), terminal.backend());
        }
    }
}
