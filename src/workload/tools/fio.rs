//! fio: sequential and random read/write presets, or a job file of your own.
//! `--output-format=json --status-interval=1` prints a whole JSON report
//! every second and once more at the end; each report's cumulative bytes
//! are the progress, the last report's bandwidth is the result.

use std::path::Path;

use super::{Collected, JsonCollector, ToolParser, start_once};
use crate::event::MetricDef;
use crate::workload::Output;

/// JSON status reports with `--status-interval` since 2.x.
pub const MIN_VERSION: (u32, u32) = (3, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    SeqRead,
    SeqWrite,
    RandRead,
    RandWrite,
}

impl Preset {
    fn rw(self) -> &'static str {
        match self {
            Preset::SeqRead => "read",
            Preset::SeqWrite => "write",
            Preset::RandRead => "randread",
            Preset::RandWrite => "randwrite",
        }
    }

    /// 1 MiB for streaming, 4 KiB for random I/O, as such tests usually are.
    pub fn default_block_size(self) -> u64 {
        match self {
            Preset::SeqRead | Preset::SeqWrite => 1 << 20,
            Preset::RandRead | Preset::RandWrite => 4 << 10,
        }
    }
}

pub struct Options<'a> {
    pub preset: Preset,
    pub size: u64,
    pub block_size: u64,
    pub dir: &'a Path,
    pub jobs: u32,
    pub seconds: u64,
}

const REPORTING: [&str; 2] = ["--output-format=json", "--status-interval=1"];

pub fn argv(o: &Options) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "fio".into(),
        "--name=vmbench".into(),
        format!("--rw={}", o.preset.rw()),
        format!("--bs={}", o.block_size),
        format!("--size={}", o.size),
        format!("--directory={}", o.dir.display()),
        "--direct=1".into(),
        "--ioengine=psync".into(),
        format!("--runtime={}", o.seconds),
        "--time_based".into(),
        format!("--numjobs={}", o.jobs),
        "--group_reporting".into(),
        // Its data files go when it ends.
        "--unlink=1".into(),
    ];
    argv.extend(REPORTING.map(String::from));
    argv
}

/// A job file already on the guest; vmbench adds only its reporting options.
pub fn job_file_argv(path: &Path) -> Vec<String> {
    let mut argv = vec!["fio".to_string()];
    argv.extend(REPORTING.map(String::from));
    argv.push(path.display().to_string());
    argv
}

pub fn metrics() -> Vec<MetricDef> {
    vec![MetricDef {
        name: "throughput".into(),
        unit: "MB/s".into(),
        // Progress is counted in bytes.
        scale: 1e-6,
        higher_is_better: true,
        result_is_total: false,
    }]
}

#[derive(Default)]
pub struct Parser {
    reports: JsonCollector,
    started: bool,
}

impl Parser {
    /// (bytes moved so far, bandwidth in bytes/s) over every job of a report.
    fn totals(report: &serde_json::Value) -> Option<(f64, f64)> {
        let jobs = report.get("jobs")?.as_array()?;
        let mut bytes = 0.0;
        let mut bandwidth = 0.0;
        for job in jobs {
            for side in ["read", "write"] {
                let side = job.get(side)?;
                bytes += side.get("io_bytes")?.as_f64()?;
                bandwidth += side.get("bw_bytes")?.as_f64()?;
            }
        }
        Some((bytes, bandwidth))
    }
}

impl ToolParser for Parser {
    fn line(&mut self, line: &str, mono_ns: u64, started_ns: u64) -> Vec<Output> {
        let mut out = start_once(&mut self.started, started_ns);
        let text = match self.reports.push(line) {
            Collected::Outside => {
                // Outside a report: fio's own messages.
                if let Some(message) = line.trim().strip_prefix("fio:") {
                    out.push(Output::Failed(format!("fio: {}", message.trim())));
                }
                return out;
            }
            Collected::Partial => return out,
            Collected::Whole(text) => text,
        };
        let Some((bytes, bandwidth)) = serde_json::from_str(&text)
            .ok()
            .and_then(|report: serde_json::Value| Self::totals(&report))
        else {
            return out;
        };
        out.push(Output::Progress {
            metric: 0,
            mono_ns: mono_ns.max(started_ns),
            done: bytes,
        });
        // Each report's figure replaces the last; the final one stands.
        out.push(Output::Result {
            metric: "throughput".into(),
            value: bandwidth / 1e6,
            unit: "MB/s".into(),
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::tools::tests::{feed, never_panics, progress_of, results_of};

    fn figures(outputs: &[Output]) -> (Vec<f64>, Vec<f64>) {
        let done = progress_of(outputs).into_iter().map(|p| p.1).collect();
        let results = results_of(outputs).into_iter().map(|r| r.1).collect();
        (done, results)
    }

    #[test]
    fn status_reports_give_cumulative_bytes_and_the_last_bandwidth() {
        let outputs = feed(&mut Parser::default(), "fio-3.33-seqwrite-status.json");
        let (done, results) = figures(&outputs);
        assert_eq!(
            done,
            [
                0.0,
                415_236_096.0,
                873_463_808.0,
                1_371_537_408.0,
                1_456_472_064.0
            ]
        );
        assert_eq!(results.last(), Some(&485.328911));
    }

    #[test]
    fn grouped_jobs_count_the_groups_sum() {
        // numjobs = 2 with group_reporting: fio sums the two jobs itself
        // into one entry per report; its read io_bytes are the work done.
        let outputs = feed(
            &mut Parser::default(),
            "fio-3.33-randread-2jobs-status.json",
        );
        let (done, results) = figures(&outputs);
        assert_eq!(done, [0.0, 82_640_896.0, 271_343_616.0, 366_440_448.0]);
        assert!(results.last().is_some_and(|r| *r > 0.0));
    }

    /// A job file without group_reporting: each report lists both jobs,
    /// and the work done is their sum (read io_bytes of the two jobs in each
    /// of the four reports of fio 3.33, added by hand).
    #[test]
    fn separately_reported_jobs_are_summed() {
        let outputs = feed(
            &mut Parser::default(),
            "fio-3.33-randread-2jobs-separate-status.json",
        );
        let (done, results) = figures(&outputs);
        assert_eq!(
            done,
            // From 0 at the start, then each report's sum.
            [
                0.0,
                176_529_408.0,
                405_905_408.0,
                603_955_200.0,
                633_888_768.0
            ]
        );
        assert!(results.last().is_some_and(|r| *r > 0.0));
    }

    #[test]
    fn its_errors_fail_the_copy() {
        let outputs = feed(&mut Parser::default(), "fio-3.33-bad-dir.txt");
        assert!(outputs.iter().any(
            |o| matches!(o, Output::Failed(m) if m.contains("/nonexistent/dir is not a directory"))
        ));
    }

    #[test]
    fn arbitrary_input_never_panics() {
        never_panics(&mut Parser::default());
    }
}
