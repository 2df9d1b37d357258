//! The results table: each ended phase's result as computed once when it
//! ended (the same the report and the export read), newest last. The last
//! column is the report's verdict: `ok`, or why the phase is left out. The
//! rows of the phase under the cursor are highlighted and kept in view.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Cell, Row, Table, TableState};

use super::View;
use super::theme::Theme;
use super::widgets::pane_block;
use crate::format::{figure, skew_with_clock};
use crate::model::Session;
use crate::results::Flag;

pub fn render(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme, view: &View) {
    let rows = &session.results.phases;
    let cursor_phase = view
        .cursor
        .and_then(|i| session.phases.get(i))
        .map(|p| p.id + 1);
    let texts: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                format!("{}", r.phase),
                r.benchmark.clone(),
                format!("×{}", r.concurrency),
                format!("{}", r.repetition),
                r.metric.clone(),
                figure(r.aggregate, &r.unit),
                figure(r.per_guest_mean, &r.unit),
                skew_with_clock(r.skew_ms, r.clock_uncertainty_ms),
                r.flag.as_ref().map_or("ok".into(), Flag::short),
            ]
        })
        .collect();
    // "all copies": the sum of the copies' rates while all ran (or of their
    // tools' totals); "per copy": the mean of each copy's own whole-run
    // figure. They differ when copies ran longer than their common window.
    let header = [
        "#",
        "bench",
        "n",
        "rep",
        "metric",
        "all copies",
        "per copy",
        "skew",
        "verdict",
    ];
    // Columns as wide as what they hold: a long name does not stretch
    // one column across the screen.
    let widths: Vec<Constraint> = (0..header.len())
        .map(|c| {
            let widest = texts.iter().map(|t| t[c].chars().count()).max();
            Constraint::Length(widest.unwrap_or(0).max(header[c].chars().count()) as u16)
        })
        .collect();
    let body: Vec<Row> = rows
        .iter()
        .zip(texts)
        .map(|(r, text)| {
            let colour = match &r.flag {
                None => theme.good.0,
                Some(Flag::Skewed { .. }) => theme.warn.0,
                Some(_) => theme.bad.0,
            };
            let [phase, bench, n, rep, metric, all, per, skew, verdict] = text;
            let row_style = if cursor_phase == Some(r.phase) {
                Style::new().bg(theme.highlight_bg.0)
            } else {
                Style::new()
            };
            Row::new(vec![
                Cell::from(phase),
                Cell::from(bench),
                Cell::from(n),
                Cell::from(rep),
                Cell::from(metric),
                Cell::from(all).style(Style::new().fg(theme.accent.0)),
                Cell::from(per),
                Cell::from(skew),
                Cell::from(verdict).style(Style::new().fg(colour)),
            ])
            .style(row_style)
        })
        .collect();
    let chosen = match cursor_phase {
        Some(phase) => rows.iter().position(|r| r.phase == phase),
        // Following: the newest row in view.
        None => rows.len().checked_sub(1),
    };
    // Selected only to scroll it into view; its rows carry their own style.
    let mut state = TableState::default().with_selected(chosen);
    let table = Table::new(body, widths)
        .header(Row::new(header).style(Style::new().fg(theme.dim.0).add_modifier(Modifier::BOLD)))
        .column_spacing(2)
        .block(pane_block(" results ".into(), theme, false));
    ratatui::widgets::StatefulWidget::render(table, area, buf, &mut state);
}

#[cfg(test)]
mod tests {
    use crate::ui::fixtures::{draw, live_view, session};

    #[test]
    fn the_phase_under_the_cursor_is_highlighted_in_the_results() {
        let session = session();
        let mut view = live_view();
        view.cursor = Some(0);
        let theme = crate::ui::theme::Theme::built_in("dark").expect("dark");
        let terminal = draw(&session, &view, 120, 40);
        let buffer = terminal.backend().buffer();
        let highlighted: Vec<String> = (0..40)
            .filter(|&y| buffer[(2, y)].bg == theme.highlight_bg.0)
            .map(|y| (0..120).map(|x| buffer[(x, y)].symbol()).collect())
            .collect();
        assert!(!highlighted.is_empty(), "no row is highlighted");
        assert!(
            highlighted
                .iter()
                .all(|row| row.trim_start_matches('│').trim_start().starts_with('1')),
            "{highlighted:?}"
        );
    }
}
