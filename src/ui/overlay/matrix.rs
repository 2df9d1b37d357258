//! The `r` overlay: the report's % loss matrix over the phases so far,
//! with the guards that would refuse the report named under it.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table, Widget};

use crate::model::Session;
use crate::report;
use crate::results::{DEFAULT_SKEW_BOUND, Results};
use crate::ui::theme::Theme;
use crate::ui::widgets::pane_block;

/// The loss matrix as of the latest ended phase, built when a phase ends
/// rather than on every frame.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    matrix: Option<(usize, report::Matrix)>,
}

impl PartialEq for Derived {
    /// A cache of what the session says: two views differ by their state,
    /// not by how much of it they have computed.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Derived {
    /// Builds the matrix again if a phase has ended since it was built.
    pub fn refresh(&mut self, session: &Session) {
        let ended = session.results.phases.len();
        if self.matrix.as_ref().is_none_or(|(n, _)| *n != ended) {
            let results = Results::of_session(session, "this session", DEFAULT_SKEW_BOUND);
            let matrix = report::Matrix::build(&results, &report::Options::default());
            self.matrix = Some((ended, matrix));
        }
    }
}

/// The report's loss matrix over this session's phases so far.
pub fn render(buf: &mut Buffer, area: Rect, derived: &Derived, theme: &Theme) {
    let options = report::Options::default();
    Clear.render(area, buf);
    let Some((_, matrix)) = &derived.matrix else {
        return;
    };
    let block = pane_block(
        format!(" results: % loss from {} ", options.baseline),
        theme,
        true,
    );
    let inner = block.inner(area);
    block.render(area, buf);
    let header = matrix.header();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    let rows: Vec<Row> = matrix
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                Cell::from(row.workload.clone()),
                Cell::from(row.metric.clone()),
                Cell::from(row.unit.clone()),
                Cell::from(format!("{:>6}", row.concurrency)),
            ];
            let names = [&row.workload, &row.metric, &row.unit];
            for (w, name) in widths.iter_mut().zip(names) {
                *w = (*w).max(name.chars().count());
            }
            for (i, (cell, tech)) in row.cells.iter().zip(&matrix.technologies).enumerate() {
                let (text, colour) = match cell {
                    None => ("-".to_string(), theme.dim.0),
                    Some(c) => {
                        let colour = match c.loss {
                            Some(l) if !l.significant => theme.dim.0,
                            Some(l) if l.percent > 0.0 => theme.warn.0,
                            Some(_) => theme.good.0,
                            None => theme.accent.0,
                        };
                        (c.text(*tech == matrix.baseline), colour)
                    }
                };
                widths[4 + i] = widths[4 + i].max(text.chars().count());
                cells.push(Cell::from(text).style(Style::new().fg(colour)));
            }
            Row::new(cells)
        })
        .collect();
    let left_out = matrix.excluded.len();
    let mut notes = vec![Line::styled(
        "~ not significant (95 %, Welch's t)   (…) no baseline yet   vs×k the baseline's copies",
        Style::new().fg(theme.dim.0),
    )];
    if left_out > 0 {
        notes.push(Line::styled(
            format!("{left_out} phase result(s) left out: `vmbench report` says why"),
            Style::new().fg(theme.warn.0),
        ));
    }
    for m in &matrix.mismatches {
        notes.push(Line::styled(
            format!("differs: {}", m.describe()),
            Style::new().fg(theme.bad.0),
        ));
    }
    for v in &matrix.validity {
        notes.push(Line::styled(v.clone(), Style::new().fg(theme.bad.0)));
    }
    for r in &matrix.remarks {
        notes.push(Line::styled(r.clone(), Style::new().fg(theme.dim.0)));
    }
    let [table_area, notes_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(notes.len() as u16)]).areas(inner);
    if matrix.rows.is_empty() {
        Paragraph::new("No phase has ended yet; the matrix fills in as phases end.")
            .style(Style::new().fg(theme.dim.0))
            .render(table_area, buf);
    } else {
        let table = Table::new(rows, widths.iter().map(|w| Constraint::Length(*w as u16)))
            .header(
                Row::new(header).style(Style::new().fg(theme.dim.0).add_modifier(Modifier::BOLD)),
            )
            .column_spacing(2);
        Widget::render(table, table_area, buf);
    }
    Paragraph::new(notes).render(notes_area, buf);
}

#[cfg(test)]
mod tests {
    use crate::model::Session;
    use crate::model::tests::test_header;
    use crate::ui::Overlay;
    use crate::ui::fixtures::{SIZES, draw, live_view, report_session_events};

    #[test]
    fn the_loss_matrix_fills_in_as_phases_end() {
        let events = report_session_events();
        let mut session = Session::new(test_header());
        // Before the guests' phases: the baseline alone.
        for e in &events[..60] {
            session.apply(e);
        }
        let mut view = live_view();
        view.overlay = Overlay::Results;
        view.derived.refresh(&session);
        insta::assert_snapshot!("baseline_only", draw(&session, &view, 100, 16).backend());
        for e in &events[60..] {
            session.apply(e);
        }
        view.derived.refresh(&session);
        for (w, h) in SIZES {
            let name = format!("with_loss_{w}x{h}");
            insta::assert_snapshot!(name, draw(&session, &view, w, h).backend());
        }
    }
}
