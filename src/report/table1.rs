//! The study's Table 1: technologies as rows, each workload's % loss from
//! the baseline at one number of guests as columns.

use serde::Serialize;

use super::text::TextTable;
use super::{Cell, Matrix};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table1 {
    pub baseline: String,
    pub technologies: Vec<String>,
    pub columns: Vec<Column>,
    /// Workload metrics that did not run at the number of guests asked for.
    pub missing: Vec<String>,
}

/// One workload metric at one number of guests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub workload: String,
    pub metric: String,
    pub unit: String,
    pub guests: u32,
    /// Aligned with [`Table1::technologies`].
    pub cells: Vec<Option<Cell>>,
}

impl Table1 {
    /// At `guests` concurrent guests, or where not given, at the most each
    /// workload metric ran with.
    pub fn build(matrix: &Matrix, guests: Option<u32>) -> Table1 {
        let mut columns: Vec<Column> = Vec::new();
        let mut missing = Vec::new();
        for row in &matrix.rows {
            if columns
                .iter()
                .any(|c| c.workload == row.workload && c.metric == row.metric)
                || missing.contains(&format!("{} {}", row.workload, row.metric))
            {
                continue;
            }
            let levels = matrix
                .rows
                .iter()
                .filter(|r| r.workload == row.workload && r.metric == row.metric);
            // Without a number asked for: the most guests it ran with, as the
            // study's table; a technology that did not run that many is
            // named under the table.
            let chosen = match guests {
                Some(n) => levels.into_iter().find(|r| r.concurrency == n),
                None => levels.max_by_key(|r| r.concurrency),
            };
            match chosen {
                Some(r) => columns.push(Column {
                    workload: r.workload.clone(),
                    metric: r.metric.clone(),
                    unit: r.unit.clone(),
                    guests: r.concurrency,
                    cells: r.cells.clone(),
                }),
                None => missing.push(format!("{} {}", row.workload, row.metric)),
            }
        }
        Table1 {
            baseline: matrix.baseline.clone(),
            technologies: matrix.technologies.clone(),
            columns,
            missing,
        }
    }

    pub fn text(&self, guests: Option<u32>) -> TextTable {
        let mut header = vec!["technology".to_string()];
        header.extend(
            self.columns
                .iter()
                .map(|c| format!("{} {} ×{}", c.workload, c.metric, c.guests)),
        );
        let rows = self
            .technologies
            .iter()
            .enumerate()
            .map(|(i, tech)| {
                let mut cells = vec![if *tech == self.baseline {
                    format!("{tech} (baseline)")
                } else {
                    tech.clone()
                }];
                cells.extend(self.columns.iter().map(|c| {
                    c.cells[i]
                        .as_ref()
                        .map_or_else(|| "-".into(), |cell| cell.text(*tech == self.baseline))
                }));
                cells
            })
            .collect();
        let mut notes = vec![
            "The baseline's row: its aggregate, mean ± 95 % CI. Others: % loss from the baseline \
             ± 95 % CI; ~ not significant."
                .to_string(),
        ];
        if let Some(n) = guests {
            notes.extend(
                self.missing
                    .iter()
                    .map(|m| format!("{m}: not run with {n} guests")),
            );
        }
        for column in &self.columns {
            let absent: Vec<&str> = self
                .technologies
                .iter()
                .zip(&column.cells)
                .filter(|(t, cell)| cell.is_none() && **t != self.baseline)
                .map(|(t, _)| t.as_str())
                .collect();
            if !absent.is_empty() {
                notes.push(format!(
                    "{} {}: {} did not run with {} guests (--guests N compares at another number)",
                    column.workload,
                    column.metric,
                    absent.join(", "),
                    column.guests
                ));
            }
        }
        TextTable {
            title: match guests {
                Some(n) => format!(
                    "% loss from {} with {n} guest{}",
                    self.baseline,
                    if n == 1 { "" } else { "s" }
                ),
                None => format!(
                    "% loss from {} with the most guests each workload ran on",
                    self.baseline
                ),
            },
            header,
            rows,
            right_from: 1,
            notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Options;
    use crate::report::fixtures::results;

    #[test]
    fn technologies_are_rows_at_the_most_guests_or_the_number_asked() {
        let results = results(&[
            ("bare-metal", 1, &[100.0, 100.0]),
            ("bare-metal", 2, &[100.0, 100.0]),
            ("kvm", 1, &[95.0, 95.0]),
            ("kvm", 2, &[90.0, 90.0]),
            ("xen", 2, &[80.0, 80.0]),
            // Past where xen ran: not the default column.
            ("kvm", 3, &[85.0, 85.0]),
        ]);
        let matrix = Matrix::build(&results, &Options::default());
        // By default the most guests: 3, where only kvm ran (against the
        // baseline's 2), and xen is named as not having run it.
        let most = Table1::build(&matrix, None);
        assert_eq!(most.columns.len(), 1);
        assert_eq!(most.columns[0].guests, 3);
        let table = most.text(None);
        assert_eq!(table.header, ["technology", "cpu score ×3"]);
        assert!(table.rows[1][1].contains("vs×2"), "{:?}", table.rows);
        assert!(
            table
                .notes
                .iter()
                .any(|n| n.contains("xen did not run with 3 guests")),
            "{:?}",
            table.notes
        );
        let two = Table1::build(&matrix, Some(2)).text(Some(2));
        // Aggregates 200 against 180 and 160: 10 % and 20 % lost.
        let cells: Vec<&str> = two.rows.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(
            cells,
            ["200.0 ± 0.0 n=2", "10.0 ± 0.0 % n=2", "20.0 ± 0.0 % n=2"]
        );
        let one = Table1::build(&matrix, Some(1));
        assert_eq!(one.columns[0].guests, 1);
        let text = one.text(Some(1)).to_table();
        assert!(
            text.contains("% loss from bare-metal with 1 guest\n"),
            "{text}"
        );
        // xen did not run with one guest.
        assert_eq!(one.text(Some(1)).rows[2][1], "-");
        let none = Table1::build(&matrix, Some(4));
        assert!(none.columns.is_empty());
        assert_eq!(none.missing, ["cpu score"]);
    }
}
