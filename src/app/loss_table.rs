//! The loss matrix the `r` overlay shows, built by `report` from the
//! session's results when a phase has ended (not on every frame) and handed
//! to the screen as text and tones.

use crate::model::Session;
use crate::report::{Matrix, Options};
use crate::results::{DEFAULT_SKEW_BOUND, Results};
use crate::ui::{LossTable, Tone};

/// Builds the table again if a phase has ended since it was built.
pub fn refresh(table: &mut LossTable, session: &Session) {
    let ended = session.results.phases.len();
    if table.built_from != Some(ended) {
        let results = Results::of_session(session, "this session", DEFAULT_SKEW_BOUND);
        let matrix = Matrix::build(&results, &Options::default());
        *table = loss_table(&matrix, ended);
    }
}

fn loss_table(matrix: &Matrix, built_from: usize) -> LossTable {
    let rows = matrix
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                (row.workload.clone(), Tone::Plain),
                (row.metric.clone(), Tone::Plain),
                (row.unit.clone(), Tone::Plain),
                (format!("{:>6}", row.concurrency), Tone::Plain),
            ];
            for (cell, tech) in row.cells.iter().zip(&matrix.technologies) {
                cells.push(match cell {
                    None => ("-".to_string(), Tone::Dim),
                    Some(c) => {
                        let tone = match c.loss {
                            Some(l) if !l.significant => Tone::Dim,
                            Some(l) if l.percent > 0.0 => Tone::Warn,
                            Some(_) => Tone::Good,
                            None => Tone::Accent,
                        };
                        (c.text(*tech == matrix.baseline), tone)
                    }
                });
            }
            cells
        })
        .collect();
    let mut notes = vec![(
        "~ not significant (95 %, Welch's t)   (…) no baseline yet   vs×k the baseline's copies"
            .to_string(),
        Tone::Dim,
    )];
    let left_out = matrix.excluded.len();
    if left_out > 0 {
        notes.push((
            format!("{left_out} phase result(s) left out: `vmbench report` says why"),
            Tone::Warn,
        ));
    }
    notes.extend(
        matrix
            .mismatches
            .iter()
            .map(|m| (format!("differs: {}", m.describe()), Tone::Bad)),
    );
    notes.extend(matrix.validity.iter().map(|v| (v.clone(), Tone::Bad)));
    notes.extend(matrix.remarks.iter().map(|r| (r.clone(), Tone::Dim)));
    LossTable {
        built_from: Some(built_from),
        baseline: Options::default().baseline,
        header: matrix.header(),
        rows,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::refresh;
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
        refresh(&mut view.loss_table, &session);
        insta::assert_snapshot!("baseline_only", draw(&session, &view, 100, 16).backend());
        for e in &events[60..] {
            session.apply(e);
        }
        refresh(&mut view.loss_table, &session);
        for (w, h) in SIZES {
            let name = format!("with_loss_{w}x{h}");
            insta::assert_snapshot!(name, draw(&session, &view, w, h).backend());
        }
    }
}
