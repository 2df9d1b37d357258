//! Technology against technology, and what the data can resolve: each
//! pair's difference with Welch's interval, the smallest difference each
//! comparison could have detected, and the repetitions needed to tell two
//! apart at the spread observed.

use serde::Serialize;

use super::text::{TextTable, loss_text, percent};
use super::{Cell, Matrix};
use crate::stats::{Loss, MAX_REPETITIONS, repetitions_to_tell_apart};

/// One comparison in one row: `other` against `reference`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub workload: String,
    pub metric: String,
    pub guests: u32,
    pub reference: String,
    pub other: String,
    /// How much worse `other` is than `reference`, in % of the reference.
    pub loss: Option<Loss>,
    /// The smallest difference this data could have called significant at
    /// 95 %: the interval's half-width, in % of the reference.
    pub detectable_pct: Option<f64>,
    /// Repetitions each side needs to tell them apart (95 %, 80 % power) if
    /// the difference and spreads are what was observed.
    pub repetitions_needed: Option<usize>,
    /// Repetitions each side has now.
    pub n: (usize, usize),
}

impl Comparison {
    /// Where it is and what it found, as both views print them.
    fn cells(&self) -> Vec<String> {
        vec![
            self.workload.clone(),
            self.metric.clone(),
            self.guests.to_string(),
            format!("{} vs {}", self.other, self.reference),
            self.loss.as_ref().map_or_else(|| "-".into(), loss_text),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pairwise {
    pub comparisons: Vec<Comparison>,
    pub with_baseline: bool,
}

fn compare(row: &super::Row, reference: &Cell, other: &Cell, higher_is_better: bool) -> Comparison {
    let loss = Loss::between(&reference.aggregate, &other.aggregate, higher_is_better);
    Comparison {
        workload: row.workload.clone(),
        metric: row.metric.clone(),
        guests: row.concurrency,
        reference: reference.technology.clone(),
        other: other.technology.clone(),
        loss,
        detectable_pct: loss.and_then(|l| l.ci),
        repetitions_needed: repetitions_to_tell_apart(&reference.aggregate, &other.aggregate),
        n: (reference.aggregate.n, other.aggregate.n),
    }
}

impl Pairwise {
    /// Every pair of technologies in each row; with `with_baseline` the
    /// comparisons against the baseline too (the resolution view), without
    /// it only technology against technology.
    pub fn build(matrix: &Matrix, with_baseline: bool) -> Pairwise {
        let mut comparisons = Vec::new();
        for row in &matrix.rows {
            let cells: Vec<&Cell> = row
                .cells
                .iter()
                .flatten()
                .filter(|c| with_baseline || c.technology != matrix.baseline)
                .collect();
            for (i, reference) in cells.iter().enumerate() {
                for other in &cells[i + 1..] {
                    comparisons.push(compare(row, reference, other, row.higher_is_better));
                }
            }
            // Where the baseline did not run this many copies, the matrix
            // compares with the most it ran below: so does this view.
            let baseline_here = cells.iter().any(|c| c.technology == matrix.baseline);
            if with_baseline && !baseline_here {
                for other in &cells {
                    let Some(k) = other.baseline_concurrency else {
                        continue;
                    };
                    let reference = matrix
                        .rows
                        .iter()
                        .filter(|r| {
                            r.workload == row.workload
                                && r.metric == row.metric
                                && r.concurrency == k
                        })
                        .flat_map(|r| r.cells.iter().flatten())
                        .find(|c| c.technology == matrix.baseline);
                    if let Some(reference) = reference {
                        let mut c = compare(row, reference, other, row.higher_is_better);
                        c.reference = format!("{} ×{k}", matrix.baseline);
                        comparisons.push(c);
                    }
                }
            }
        }
        Pairwise {
            comparisons,
            with_baseline,
        }
    }

    /// Technology against technology: the loss of each from the other.
    pub fn text(&self) -> TextTable {
        let header = ["workload", "metric", "guests", "comparison", "% loss", "n"]
            .map(String::from)
            .to_vec();
        let rows = self
            .comparisons
            .iter()
            .map(|c| {
                let mut cells = c.cells();
                cells.push(format!("{}/{}", c.n.1, c.n.0));
                cells
            })
            .collect();
        let mut notes = vec![
            "A vs B: how much worse A is than B, % of B ± 95 % CI (Welch's t); ~ not \
             significant; n: repetitions of A/B."
                .to_string(),
        ];
        if self.comparisons.is_empty() {
            notes.push("Fewer than two technologies besides the baseline: nothing to pair.".into());
        }
        TextTable {
            title: "Technology against technology".into(),
            header,
            rows,
            right_from: 4,
            notes,
        }
    }

    /// What the data resolves: per comparison, the smallest detectable
    /// difference and the repetitions needed.
    pub fn resolution_text(&self) -> TextTable {
        let header = [
            "workload",
            "metric",
            "guests",
            "comparison",
            "% loss",
            "detectable at 95 %",
            "n now",
            "n needed",
        ]
        .map(String::from)
        .to_vec();
        let rows = self
            .comparisons
            .iter()
            .map(|c| {
                let mut cells = c.cells();
                cells.extend([
                    c.detectable_pct
                        .map_or_else(|| "- (n < 2)".into(), |d| format!("{} %", percent(d))),
                    format!("{}/{}", c.n.1, c.n.0),
                    match (c.repetitions_needed, c.loss) {
                        (Some(n), _) => n.to_string(),
                        (None, Some(l)) if l.ci.is_some() && l.percent != 0.0 => {
                            format!("> {MAX_REPETITIONS}")
                        }
                        _ => "-".into(),
                    },
                ]);
                cells
            })
            .collect();
        TextTable {
            title: "What the data can resolve".into(),
            header,
            rows,
            right_from: 4,
            notes: vec![
                "detectable: the smallest difference these repetitions could call significant \
                 (the interval's half-width); n needed: repetitions on each side to tell the two \
                 apart at 95 % with 80 % power, if the difference and spreads are as observed \
                 (- without 2+ repetitions on both sides)."
                    .into(),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Options;
    use crate::report::fixtures::results;

    /// Two hypervisors 5.5 % apart at 2 guests, 2 repetitions each: not yet
    /// significant (± 6.69 %, Welch's t with scipy 1.17's quantiles), and
    /// 3 repetitions each would tell them apart at the spread seen.
    #[test]
    fn technologies_are_compared_with_each_other_and_the_repetitions_needed_said() {
        let study = results(&[
            ("bare-metal", 2, &[100.0, 101.0]),
            ("kvm", 2, &[90.0, 92.0]),
            ("xen", 2, &[85.0, 87.0]),
        ]);
        let matrix = Matrix::build(&study, &Options::default());
        let pairs = Pairwise::build(&matrix, false);
        let [xen_vs_kvm] = &pairs.comparisons[..] else {
            panic!("one pair: {:?}", pairs.comparisons)
        };
        assert_eq!(
            (xen_vs_kvm.other.as_str(), xen_vs_kvm.reference.as_str()),
            ("xen", "kvm")
        );
        let loss = xen_vs_kvm.loss.expect("loss");
        assert!((loss.percent - 5.4945054945054945).abs() < 1e-9, "{loss:?}");
        assert!(
            (loss.ci.expect("ci") - 6.686670158893746).abs() < 1e-6,
            "{loss:?}"
        );
        assert!(!loss.significant);
        assert_eq!(xen_vs_kvm.repetitions_needed, Some(3));
        assert_eq!(xen_vs_kvm.detectable_pct, loss.ci);
        assert!(pairs.text().to_table().contains("xen vs kvm"));
        // The resolution view has every technology against the baseline too.
        let all = Pairwise::build(&matrix, true);
        assert_eq!(all.comparisons.len(), 3);
        // Where the baseline ran fewer copies, compared with those, as the
        // matrix does.
        let fewer = results(&[
            ("bare-metal", 1, &[100.0, 101.0]),
            ("kvm", 1, &[90.0, 92.0]),
            ("kvm", 2, &[85.0, 86.0]),
        ]);
        let at2: Vec<Comparison> =
            Pairwise::build(&Matrix::build(&fewer, &Options::default()), true)
                .comparisons
                .into_iter()
                .filter(|c| c.guests == 2)
                .collect();
        assert_eq!(at2.len(), 1, "{at2:?}");
        assert_eq!(at2[0].reference, "bare-metal ×1");
        let table = all.resolution_text().to_table();
        assert!(
            table.contains("kvm vs bare-metal") && table.contains("6.7 %"),
            "{table}"
        );
    }

    #[test]
    fn one_technology_besides_the_baseline_has_nothing_to_pair() {
        let results = results(&[("bare-metal", 1, &[10.0, 11.0]), ("kvm", 1, &[9.0, 9.5])]);
        let pairs = Pairwise::build(&Matrix::build(&results, &Options::default()), false);
        assert!(pairs.comparisons.is_empty());
        assert!(
            pairs
                .text()
                .notes
                .iter()
                .any(|n| n.contains("nothing to pair"))
        );
    }
}
