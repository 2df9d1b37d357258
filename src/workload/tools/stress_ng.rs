//! stress-ng: one stressor with `--metrics --yaml /dev/stdout`; the result
//! is the stressor's bogo-ops per second of real time. It prints nothing
//! while it runs, so its progress is the whole run: nothing at the start,
//! all of its bogo-ops at the end of its wall-clock time.

use super::{SECOND_NS, ToolParser, whole_run};
use crate::event::MetricDef;
use crate::workload::Output;

/// `--yaml` with per-stressor `bogo-ops-per-second-real-time` since 0.09.
pub const MIN_VERSION: (u32, u32) = (0, 9);

pub fn argv(stressor: &str, workers: u32, seconds: u64) -> Vec<String> {
    vec![
        "stress-ng".into(),
        format!("--{stressor}"),
        workers.to_string(),
        "--timeout".into(),
        format!("{seconds}s"),
        "--metrics".into(),
        "--yaml".into(),
        "/dev/stdout".into(),
    ]
}

pub fn metrics() -> Vec<MetricDef> {
    vec![MetricDef {
        name: "bogo-ops".into(),
        unit: "bogo-ops/s".into(),
        scale: 1.0,
        higher_is_better: true,
        result_is_total: false,
    }]
}

#[derive(Default)]
pub struct Parser {
    in_metrics: bool,
    ops: Option<f64>,
    wall: Option<f64>,
    rate: Option<f64>,
}

impl Parser {
    fn value(line: &str, key: &str) -> Option<f64> {
        line.trim()
            .trim_start_matches("- ")
            .strip_prefix(key)?
            .strip_prefix(':')?
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite() && *v >= 0.0)
    }
}

impl ToolParser for Parser {
    fn line(&mut self, line: &str, _mono_ns: u64, started_ns: u64) -> Vec<Output> {
        if line.trim_end() == "metrics:" {
            self.in_metrics = true;
            return Vec::new();
        }
        if !self.in_metrics {
            return Vec::new();
        }
        if let Some(v) = Self::value(line, "bogo-ops") {
            self.ops = Some(v);
        }
        if let Some(v) = Self::value(line, "wall-clock-time") {
            self.wall = Some(v);
        }
        if let Some(v) = Self::value(line, "bogo-ops-per-second-real-time") {
            self.rate = Some(v);
        }
        let (Some(ops), Some(wall), Some(rate)) = (self.ops, self.wall, self.rate) else {
            return Vec::new();
        };
        // One stressor per run: its first complete block is the answer.
        self.in_metrics = false;
        let ended_ns = started_ns.saturating_add((wall.min(1e9) * SECOND_NS) as u64);
        let result = Output::Result {
            metric: "bogo-ops".into(),
            value: rate,
            unit: "bogo-ops/s".into(),
        };
        whole_run(0, started_ns, ended_ns, ops, result).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::tools::tests::{feed, never_panics};

    #[test]
    fn the_yaml_metrics_give_the_whole_run() {
        let outputs = feed(
            &mut Parser::default(),
            "stress-ng-0.15.06-cpu-yaml-stdout.txt",
        );
        assert_eq!(
            outputs,
            [
                Output::Progress {
                    metric: 0,
                    mono_ns: 1_000_000_000,
                    done: 0.0
                },
                Output::Progress {
                    metric: 0,
                    mono_ns: 3_001_852_000,
                    done: 2773.0
                },
                Output::Result {
                    metric: "bogo-ops".into(),
                    value: 1385.217264,
                    unit: "bogo-ops/s".into()
                },
            ]
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        never_panics(&mut Parser::default());
    }
}
