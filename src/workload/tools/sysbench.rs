//! sysbench 1.0: `cpu` (events per second) and `memory` (MiB per second).
//! Live progress from `--report-interval=1` lines, the result from its
//! closing statistics.

use super::{SECOND_NS, ToolParser, number_after};
use crate::event::MetricDef;
use crate::workload::Output;

pub const MIN_VERSION: (u32, u32) = (1, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Test {
    Cpu,
    Memory,
}

pub fn argv(test: Test, threads: u32, seconds: u64) -> Vec<String> {
    let mut argv = vec![
        "sysbench".to_string(),
        match test {
            Test::Cpu => "cpu",
            Test::Memory => "memory",
        }
        .to_string(),
        format!("--threads={threads}"),
        format!("--time={seconds}"),
        "--report-interval=1".to_string(),
    ];
    if test == Test::Memory {
        // Bounded by time, not by a total that a fast machine reaches first.
        argv.push("--memory-total-size=1000T".to_string());
    }
    argv.push("run".to_string());
    argv
}

pub fn metrics(test: Test) -> Vec<MetricDef> {
    vec![match test {
        Test::Cpu => MetricDef {
            name: "events".into(),
            unit: "events/s".into(),
            scale: 1.0,
            higher_is_better: true,
        },
        Test::Memory => MetricDef {
            name: "memory".into(),
            unit: "MiB/s".into(),
            scale: 1.0,
            higher_is_better: true,
        },
    }]
}

pub struct Parser {
    test: Test,
    done: f64,
    started: bool,
}

impl Parser {
    pub fn new(test: Test) -> Self {
        Parser {
            test,
            done: 0.0,
            started: false,
        }
    }
}

impl ToolParser for Parser {
    fn line(&mut self, line: &str, _mono_ns: u64, started_ns: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(Output::Progress {
                metric: 0,
                mono_ns: started_ns,
                done: 0.0,
            });
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("FATAL:") {
            out.push(Output::Failed(format!("sysbench: {}", rest.trim())));
            return out;
        }
        // "[ 3s ] thds: 1 eps: 712.95 ..." or "[ 2s ] 3929.41 MiB/sec"
        if let Some(interval) = trimmed.strip_prefix('[') {
            let Some(seconds) = interval
                .split_whitespace()
                .next()
                .and_then(|w| w.trim_end_matches('s').parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
            else {
                return out;
            };
            let rate = match self.test {
                Test::Cpu => number_after(trimmed, "eps:"),
                Test::Memory => number_after(trimmed, "]"),
            };
            if let Some(rate) = rate.filter(|r| r.is_finite() && *r >= 0.0) {
                // Reports come once a second and give that second's rate.
                self.done += rate;
                out.push(Output::Progress {
                    metric: 0,
                    mono_ns: started_ns.saturating_add((seconds.min(1e9) * SECOND_NS) as u64),
                    done: self.done,
                });
            }
            return out;
        }
        let result = match self.test {
            Test::Cpu => number_after(trimmed, "events per second:"),
            Test::Memory if trimmed.contains("MiB transferred") => number_after(trimmed, "("),
            Test::Memory => None,
        };
        if let Some(value) = result.filter(|v| v.is_finite()) {
            let def = &metrics(self.test)[0];
            out.push(Output::Result {
                metric: def.name.clone(),
                value,
                unit: def.unit.clone(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::tools::tests::{feed, never_panics};

    fn results(outputs: &[Output]) -> Vec<f64> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Result { value, .. } => Some(*value),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn cpu_output_gives_progress_each_second_and_the_result() {
        let outputs = feed(&mut Parser::new(Test::Cpu), "sysbench-1.0.20-cpu.txt");
        let progress: Vec<(u64, f64)> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Progress { mono_ns, done, .. } => Some((*mono_ns, *done)),
                _ => None,
            })
            .collect();
        let expected = [
            (1_000_000_000, 0.0),
            (2_000_000_000, 1755.0),
            (3_000_000_000, 2268.87),
            (4_000_000_000, 2981.82),
        ];
        assert_eq!(progress.len(), expected.len());
        for ((t, done), (want_t, want)) in progress.iter().zip(expected) {
            assert_eq!(*t, want_t);
            assert!((done - want).abs() < 1e-6, "{done} vs {want}");
        }
        assert_eq!(results(&outputs), [994.14]);
    }

    #[test]
    fn memory_output_gives_mib_per_second() {
        let outputs = feed(&mut Parser::new(Test::Memory), "sysbench-1.0.20-memory.txt");
        assert_eq!(results(&outputs), [3987.09]);
    }

    #[test]
    fn a_fatal_error_fails_the_copy() {
        let outputs = feed(&mut Parser::new(Test::Cpu), "sysbench-1.0.20-bad-test.txt");
        assert!(
            outputs
                .iter()
                .any(|o| matches!(o, Output::Failed(m) if m.contains("Cannot find benchmark")))
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        never_panics(&mut Parser::new(Test::Cpu));
        never_panics(&mut Parser::new(Test::Memory));
    }
}
