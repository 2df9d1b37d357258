//! Why a loss: beside each technology's loss, what the host and the guests
//! saw in those phases — CPU stolen from the guests, this host's CPUs busy,
//! what the host spent per unit the guests saw, the busiest disk — and the
//! likely cause it points to.

use serde::Serialize;

use super::Matrix;
use super::text::{TextTable, loss_text};
use crate::results::Results;
use crate::stats::Loss;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhyRow {
    pub workload: String,
    pub metric: String,
    pub guests: u32,
    pub technology: String,
    pub loss: Option<Loss>,
    /// Means over the cell's phases.
    pub steal_pct: Option<f64>,
    pub host_busy_pct: Option<f64>,
    pub host_per_guest_cpu: Option<f64>,
    pub busiest_disk: Option<(String, f64)>,
    pub hints: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Why {
    pub rows: Vec<WhyRow>,
}

/// Beyond these, a figure is worth naming as a cause.
const STEAL_PCT: f64 = 5.0;
const HOST_BUSY_PCT: f64 = 90.0;
const HOST_PER_GUEST_CPU: f64 = 1.2;
const DISK_BUSY_PCT: f64 = 80.0;

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

impl Why {
    pub fn build(results: &Results, matrix: &Matrix, include_skewed: bool) -> Why {
        let mut rows = Vec::new();
        for row in &matrix.rows {
            for cell in row.cells.iter().flatten() {
                if cell.technology == matrix.baseline {
                    continue;
                }
                let phases: Vec<(&str, u32)> = results
                    .phases
                    .iter()
                    .filter(|p| {
                        p.workload == row.workload
                            && p.metric == row.metric
                            && p.concurrency == row.concurrency
                            && p.technology == cell.technology
                            && p.counts(include_skewed)
                    })
                    .map(|p| (p.source.as_str(), p.phase))
                    .collect();
                let loads: Vec<_> = results
                    .loads
                    .iter()
                    .filter(|l| phases.contains(&(l.source.as_str(), l.phase)))
                    .collect();
                let steal_pct = mean(loads.iter().filter_map(|l| l.steal_pct));
                let host_busy_pct = mean(loads.iter().filter_map(|l| l.host_busy_pct));
                let host_per_guest_cpu = mean(
                    results
                        .overhead
                        .iter()
                        .filter(|o| {
                            o.technology == cell.technology
                                && phases.contains(&(o.source.as_str(), o.phase))
                        })
                        .filter_map(|o| o.cpu_ratio),
                );
                let busiest_disk = loads
                    .iter()
                    .filter_map(|l| l.busiest_disk.clone())
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let mut hints = Vec::new();
                if let Some(s) = steal_pct.filter(|s| *s >= STEAL_PCT) {
                    hints.push(format!("the guests had {s:.0} % of their CPU time stolen"));
                }
                if let Some(b) = host_busy_pct.filter(|b| *b >= HOST_BUSY_PCT) {
                    hints.push(format!("this host's CPUs were {b:.0} % busy"));
                }
                if let Some(r) = host_per_guest_cpu.filter(|r| *r >= HOST_PER_GUEST_CPU) {
                    hints.push(format!("the host spent {r:.2}× the CPU its guests saw"));
                }
                if let Some((device, busy)) = busiest_disk.as_ref().filter(|d| d.1 >= DISK_BUSY_PCT)
                {
                    hints.push(format!("{device} was busy {busy:.0} % of the time"));
                }
                rows.push(WhyRow {
                    workload: row.workload.clone(),
                    metric: row.metric.clone(),
                    guests: row.concurrency,
                    technology: cell.technology.clone(),
                    loss: cell.loss,
                    steal_pct,
                    host_busy_pct,
                    host_per_guest_cpu,
                    busiest_disk,
                    hints,
                });
            }
        }
        Why { rows }
    }

    pub fn text(&self) -> TextTable {
        let header = [
            "workload",
            "metric",
            "guests",
            "technology",
            "% loss",
            "steal",
            "host busy",
            "host ÷ guest CPU",
            "busiest disk",
            "likely cause",
        ]
        .map(String::from)
        .to_vec();
        let pct = |v: Option<f64>| v.map_or_else(|| "-".into(), |v| format!("{v:.1} %"));
        let rows = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.workload.clone(),
                    r.metric.clone(),
                    r.guests.to_string(),
                    r.technology.clone(),
                    r.loss.as_ref().map_or_else(|| "-".into(), loss_text),
                    pct(r.steal_pct),
                    pct(r.host_busy_pct),
                    r.host_per_guest_cpu
                        .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
                    r.busiest_disk
                        .as_ref()
                        .map_or_else(|| "-".into(), |(d, b)| format!("{d} {b:.0} %")),
                    if r.hints.is_empty() {
                        "-".into()
                    } else {
                        r.hints.join("; ")
                    },
                ]
            })
            .collect();
        TextTable {
            title: "Why: what the host and guests saw in each cell's phases".into(),
            header,
            rows,
            right_from: 4,
            notes: vec![format!(
                "Means over the cell's phases. steal: the guests' CPU time taken by the \
                 hypervisor (their /proc/stat); host busy: all of this host's CPUs; host ÷ guest \
                 CPU: what the host spent on the guests per unit they saw; busiest disk: this \
                 host's disk busiest in those phases (io_ms). Named as a likely cause from \
                 {STEAL_PCT} % steal, {HOST_BUSY_PCT} % host busy, {HOST_PER_GUEST_CPU}× CPU, \
                 {DISK_BUSY_PCT} % disk busy. Whether a NIC ran near its line rate is not \
                 judged: its speed is not recorded."
            )],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Options;
    use crate::report::fixtures::results;
    use crate::results::{OverheadResult, PhaseLoad};

    #[test]
    fn a_loss_comes_with_what_the_host_saw_in_its_phases() {
        let mut results = results(&[
            ("bare-metal", 2, &[100.0, 100.0]),
            ("kvm", 2, &[80.0, 82.0]),
        ]);
        // kvm's phases are 3 and 4.
        for (phase, steal, disk) in [(3, 10.0, 95.0), (4, 20.0, 85.0)] {
            results.loads.push(PhaseLoad {
                source: "s".into(),
                phase,
                steal_pct: Some(steal),
                host_busy_pct: Some(50.0),
                busiest_disk: Some((format!("sd{phase}"), disk)),
            });
            results.overhead.push(OverheadResult {
                source: "s".into(),
                phase,
                technology: "kvm".into(),
                cpu_ratio: Some(1.5),
                ..OverheadResult::default()
            });
        }
        // Another technology's overhead in the same phase number: not kvm's.
        results.overhead.push(OverheadResult {
            source: "s".into(),
            phase: 3,
            technology: "xen".into(),
            cpu_ratio: Some(9.0),
            ..OverheadResult::default()
        });
        let matrix = Matrix::build(&results, &Options::default());
        let why = Why::build(&results, &matrix, false);
        let [kvm] = &why.rows[..] else {
            panic!("{:?}", why.rows)
        };
        assert_eq!(kvm.steal_pct, Some(15.0));
        assert_eq!(kvm.host_per_guest_cpu, Some(1.5));
        assert_eq!(kvm.busiest_disk, Some(("sd3".to_string(), 95.0)));
        assert_eq!(
            kvm.hints,
            [
                "the guests had 15 % of their CPU time stolen",
                "the host spent 1.50× the CPU its guests saw",
                "sd3 was busy 95 % of the time"
            ]
        );
        assert!(why.text().to_table().contains("15.0 %"));
    }
}
