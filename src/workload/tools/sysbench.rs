//! sysbench 1.0: `cpu` (events per second), `memory` (MiB per second) and
//! `fileio` (read and written MiB per second, on files it prepares in the
//! plan's folder and removes afterwards). Live progress from
//! `--report-interval=1` lines, counted from "Threads started!", the result
//! from its closing statistics.

use super::{SECOND_NS, ToolParser, number_after};
use crate::event::MetricDef;
use crate::workload::Output;

pub const MIN_VERSION: (u32, u32) = (1, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Test {
    Cpu,
    Memory,
    Fileio,
}

/// sysbench's `--file-test-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    Seqwr,
    Seqrd,
    Rndrd,
    Rndwr,
    Rndrw,
}

/// sysbench memory's `--memory-access-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    Seq,
    Rnd,
}

pub struct Options<'a> {
    pub test: Test,
    pub threads: u32,
    pub seconds: u64,
    pub file_mode: FileMode,
    pub file_size: u64,
    pub dir: &'a std::path::Path,
    pub access_mode: Option<AccessMode>,
    pub block_size: Option<u64>,
}

pub fn argv(o: &Options) -> Vec<String> {
    let common = format!(
        "--threads={} --time={} --report-interval=1",
        o.threads, o.seconds
    );
    match o.test {
        Test::Cpu => format!("sysbench cpu {common} run")
            .split(' ')
            .map(String::from)
            .collect(),
        // Bounded by time, not by a total that a fast machine reaches first.
        Test::Memory => {
            let mut argv: Vec<String> =
                format!("sysbench memory {common} --memory-total-size=1000T")
                    .split(' ')
                    .map(String::from)
                    .collect();
            if let Some(mode) = o.access_mode {
                argv.push(format!("--memory-access-mode={mode:?}").to_lowercase());
            }
            if let Some(bytes) = o.block_size {
                argv.push(format!("--memory-block-size={bytes}"));
            }
            argv.push("run".into());
            argv
        }
        Test::Fileio => {
            let files = format!(
                "--file-total-size={} --file-num=4 --file-extra-flags=direct",
                o.file_size
            );
            let mode = format!("{:?}", o.file_mode).to_lowercase();
            let dir = crate::transport::shell_quote(&o.dir.display().to_string());
            // Its files are made before and removed after the timed run.
            let script = format!(
                "cd {dir} && sysbench fileio {files} prepare >/dev/null && \
                 sysbench fileio {files} --file-test-mode={mode} {common} run; \
                 status=$?; sysbench fileio {files} cleanup >/dev/null; exit $status"
            );
            vec!["sh".into(), "-c".into(), script]
        }
    }
}

pub fn metrics(test: Test) -> Vec<MetricDef> {
    let metric = |name: &str, unit: &str| MetricDef {
        name: name.into(),
        unit: unit.into(),
        scale: 1.0,
        higher_is_better: true,
        result_is_total: false,
    };
    match test {
        Test::Cpu => vec![metric("events", "events/s")],
        Test::Memory => vec![metric("memory", "MiB/s")],
        Test::Fileio => vec![metric("read", "MiB/s"), metric("write", "MiB/s")],
    }
}

pub struct Parser {
    test: Test,
    done: Vec<f64>,
    threads_started: Option<u64>,
}

impl Parser {
    pub fn new(test: Test) -> Self {
        Parser {
            test,
            done: vec![0.0; metrics(test).len()],
            threads_started: None,
        }
    }

    /// This second's rate of each metric from an interval line.
    fn rates(&self, line: &str) -> Vec<Option<f64>> {
        match self.test {
            Test::Cpu => vec![number_after(line, "eps:")],
            Test::Memory => vec![number_after(line, "]")],
            Test::Fileio => vec![number_after(line, "reads:"), number_after(line, "writes:")],
        }
    }

    /// The closing figure of each metric, from a summary line.
    fn result(&self, line: &str) -> Option<(usize, f64)> {
        match self.test {
            Test::Cpu => number_after(line, "events per second:").map(|v| (0, v)),
            Test::Memory if line.contains("MiB transferred") => {
                number_after(line, "(").map(|v| (0, v))
            }
            Test::Memory => None,
            Test::Fileio => number_after(line, "read, MiB/s:")
                .map(|v| (0, v))
                .or_else(|| number_after(line, "written, MiB/s:").map(|v| (1, v))),
        }
    }
}

impl ToolParser for Parser {
    fn line(&mut self, line: &str, mono_ns: u64, _started_ns: u64) -> Vec<Output> {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("FATAL:") {
            return vec![Output::Failed(format!("sysbench: {}", rest.trim()))];
        }
        // Intervals count from here, after its set-up (fileio's files).
        if trimmed == "Threads started!" {
            self.threads_started = Some(mono_ns);
            return (0..self.done.len() as u16)
                .map(|metric| Output::Progress {
                    metric,
                    mono_ns,
                    done: 0.0,
                })
                .collect();
        }
        let mut out = Vec::new();
        // "[ 3s ] thds: 1 eps: 712.95 ..." or "[ 2s ] 3929.41 MiB/sec"
        if let Some(interval) = trimmed.strip_prefix('[') {
            let (Some(base), Some(seconds)) = (
                self.threads_started,
                interval
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.trim_end_matches('s').parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0),
            ) else {
                return out;
            };
            let at = base.saturating_add((seconds.min(1e9) * SECOND_NS) as u64);
            for (metric, rate) in self.rates(trimmed).into_iter().enumerate() {
                if let Some(rate) = rate.filter(|r| r.is_finite() && *r >= 0.0) {
                    // Reports come once a second and give that second's rate.
                    self.done[metric] += rate;
                    out.push(Output::Progress {
                        metric: metric as u16,
                        mono_ns: at,
                        done: self.done[metric],
                    });
                }
            }
            return out;
        }
        if let Some((metric, value)) = self.result(trimmed).filter(|(_, v)| v.is_finite()) {
            let def = &metrics(self.test)[metric];
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
    use crate::workload::tools::tests::{feed, never_panics, progress_of, results_of};

    fn results(outputs: &[Output]) -> Vec<f64> {
        results_of(outputs).into_iter().map(|r| r.1).collect()
    }

    #[test]
    fn cpu_output_gives_progress_each_second_and_the_result() {
        let outputs = feed(&mut Parser::new(Test::Cpu), "sysbench-1.0.20-cpu.txt");
        let progress = progress_of(&outputs);
        // Counted from the "Threads started!" line, a second per report.
        let base = progress[0].0;
        let expected = [
            (base, 0.0),
            (base + 1_000_000_000, 1755.0),
            (base + 2_000_000_000, 2268.87),
            (base + 3_000_000_000, 2981.82),
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
    fn fileio_gives_read_and_written_mib_per_second() {
        let outputs = feed(
            &mut Parser::new(Test::Fileio),
            "sysbench-1.0.20-fileio-rndrw.txt",
        );
        let results: Vec<(&str, f64)> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Result { metric, value, .. } => Some((metric.as_str(), *value)),
                _ => None,
            })
            .collect();
        assert_eq!(results, [("read", 123.50), ("write", 82.33)]);
        let last_write = outputs.iter().rev().find_map(|o| match o {
            Output::Progress {
                metric: 1, done, ..
            } => Some(*done),
            _ => None,
        });
        assert!(last_write.is_some_and(|d| (d - (86.67 + 81.39 + 79.02)).abs() < 1e-9));
    }

    #[test]
    fn the_fileio_command_prepares_runs_and_cleans_up_in_the_folder() {
        let argv = argv(&Options {
            test: Test::Fileio,
            threads: 1,
            seconds: 5,
            file_mode: FileMode::Rndrw,
            file_size: 64 << 20,
            dir: std::path::Path::new("/srv/my data"),
            access_mode: None,
            block_size: None,
        });
        assert_eq!(argv[..2], ["sh", "-c"]);
        assert!(
            argv[2].starts_with("cd '/srv/my data' && sysbench fileio"),
            "{}",
            argv[2]
        );
        assert!(argv[2].contains("--file-test-mode=rndrw --threads=1 --time=5"));
        assert!(argv[2].contains("cleanup"));
    }

    #[test]
    fn memory_takes_its_access_mode_and_block_size() {
        let options = |access_mode, block_size| Options {
            test: Test::Memory,
            threads: 1,
            seconds: 5,
            file_mode: FileMode::Rndrw,
            file_size: 0,
            dir: std::path::Path::new("/"),
            access_mode,
            block_size,
        };
        assert_eq!(
            argv(&options(Some(AccessMode::Rnd), Some(64 << 20))).join(" "),
            "sysbench memory --threads=1 --time=5 --report-interval=1 --memory-total-size=1000T \
             --memory-access-mode=rnd --memory-block-size=67108864 run"
        );
        assert_eq!(
            argv(&options(None, None)).join(" "),
            "sysbench memory --threads=1 --time=5 --report-interval=1 --memory-total-size=1000T run"
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        never_panics(&mut Parser::new(Test::Cpu));
        never_panics(&mut Parser::new(Test::Memory));
        never_panics(&mut Parser::new(Test::Fileio));
    }
}
