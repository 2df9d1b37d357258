//! Why a loss: beside each technology's loss, what the host and the guests
//! saw in those phases — CPU stolen from the guests, this host's CPUs busy,
//! what the host spent per unit the guests saw, the busiest disk — and the
//! likely cause it points to.

use serde::Serialize;

use super::Matrix;
use super::text::{TextTable, loss_text};
use crate::results::Results;
use crate::stats::{Loss, Summary};

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
    /// This host's CPUs in the baseline's phases of the same row: a host as
    /// busy under bare metal is no cause of a technology's loss.
    pub baseline_host_busy_pct: Option<f64>,
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
    Summary::of(&values.collect::<Vec<_>>()).map(|s| s.mean)
}

impl Why {
    pub fn build(results: &Results, matrix: &Matrix, include_skewed: bool) -> Why {
        let mut rows = Vec::new();
        for row in &matrix.rows {
            let phases_of = |technology: &str, concurrency: u32| -> Vec<(&str, u32)> {
                results
                    .phases
                    .iter()
                    .filter(|p| {
                        p.workload == row.workload
                            && p.metric == row.metric
                            && p.concurrency == concurrency
                            && p.technology == technology
                            && p.counts(include_skewed)
                    })
                    .map(|p| (p.source.as_str(), p.phase))
                    .collect()
            };
            let loads_of = |phases: &[(&str, u32)]| -> Vec<&crate::results::PhaseLoad> {
                results
                    .loads
                    .iter()
                    .filter(|l| phases.contains(&(l.source.as_str(), l.phase)))
                    .collect()
            };
            for cell in row.cells.iter().flatten() {
                if cell.technology == matrix.baseline {
                    continue;
                }
                let phases = phases_of(&cell.technology, row.concurrency);
                let loads = loads_of(&phases);
                let baseline_host_busy_pct = mean(
                    loads_of(&phases_of(
                        &matrix.baseline,
                        cell.baseline_concurrency.unwrap_or(row.concurrency),
                    ))
                    .iter()
                    .filter_map(|l| l.host_busy_pct),
                );
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
                // A cause is named for a loss, not for a gain or a difference
                // that cannot be told from noise.
                let lost = cell
                    .loss
                    .is_some_and(|l| l.percent > 0.0 && (l.significant || l.ci.is_none()));
                if let Some(s) = steal_pct.filter(|s| lost && *s >= STEAL_PCT) {
                    hints.push(format!("the guests had {s:.0} % of their CPU time stolen"));
                }
                let bare_metal_as_busy = baseline_host_busy_pct.is_some_and(|b| b >= HOST_BUSY_PCT);
                if let Some(b) =
                    host_busy_pct.filter(|b| lost && *b >= HOST_BUSY_PCT && !bare_metal_as_busy)
                {
                    hints.push(format!("this host's CPUs were {b:.0} % busy"));
                }
                if let Some(r) = host_per_guest_cpu.filter(|r| lost && *r >= HOST_PER_GUEST_CPU) {
                    hints.push(format!("the host spent {r:.2}× the CPU its guests saw"));
                }
                if let Some((device, busy)) = busiest_disk
                    .as_ref()
                    .filter(|d| lost && d.1 >= DISK_BUSY_PCT)
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
                    baseline_host_busy_pct,
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
            "under bare metal",
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
                    pct(r.baseline_host_busy_pct),
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
                 hypervisor (their /proc/stat); host busy: all of this host's CPUs (under bare \
                 metal: in the baseline's phases of the row, so a host as busy there is not named \
                 as a cause); host ÷ guest CPU: what the host spent on the guests per unit they \
                 saw; busiest disk: this host's disk busiest in those phases (io_ms). Named as a \
                 likely cause of a loss (not of a gain or of a difference lost in noise) from \
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
                vmbench_cpu_pct: None,
                agent_cpu_pct: None,
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

    /// A gain has no cause to name, and a host as busy under bare metal is
    /// no cause of a technology's loss.
    #[test]
    fn no_cause_is_named_for_a_gain_or_a_load_bare_metal_shared() {
        let mut results = results(&[
            ("bare-metal", 2, &[100.0, 100.0]),
            ("lxc", 2, &[110.0, 112.0]),
            ("kvm", 2, &[80.0, 82.0]),
        ]);
        // Phases 1-2 bare metal, 3-4 lxc, 5-6 kvm: all with the host busy,
        // and the guests robbed of CPU.
        for phase in 1..=6 {
            results.loads.push(PhaseLoad {
                source: "s".into(),
                phase,
                steal_pct: Some(30.0),
                host_busy_pct: Some(99.0),
                busiest_disk: None,
                vmbench_cpu_pct: None,
                agent_cpu_pct: None,
            });
        }
        let matrix = Matrix::build(&results, &Options::default());
        let why = Why::build(&results, &matrix, false);
        let hints = |t: &str| {
            why.rows
                .iter()
                .find(|r| r.technology == t)
                .map(|r| r.hints.clone())
                .expect("row")
        };
        assert!(hints("lxc").is_empty(), "{:?}", hints("lxc"));
        assert_eq!(
            hints("kvm"),
            ["the guests had 30 % of their CPU time stolen"]
        );
        assert_eq!(why.rows[1].baseline_host_busy_pct, Some(99.0));
    }
}
