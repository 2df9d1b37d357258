//! bonnie++: block write and block read of a data set, from the CSV line it
//! prints with `-q`. Its data set defaults, as the study's did, to twice the
//! machine's RAM (bonnie++'s own default when `-s` is not given). It reports
//! only at its end, so each copy's progress is its whole run and the
//! aggregate is the sum of the copies' own figures.

use std::path::Path;

use super::{SECOND_NS, ToolParser, whole_run};
use crate::event::MetricDef;
use crate::workload::Output;

/// The 1.9x CSV layout.
pub const MIN_VERSION: (u32, u32) = (1, 97);

/// Fields of the CSV line (format 1.97/1.98) and the metrics they become.
const PUT_BLOCK: usize = 11;
const GET_BLOCK: usize = 17;

pub fn argv(dir: &Path, size_mib: Option<u64>) -> Vec<String> {
    let mut argv = vec![
        "bonnie++".to_string(),
        "-d".into(),
        dir.display().to_string(),
        "-n".into(),
        "0".into(),
        "-f".into(),
        "-D".into(),
        "-q".into(),
        "-u".into(),
        "root".into(),
    ];
    if let Some(size) = size_mib {
        // bonnie++ refuses a data set under twice the RAM it is told of.
        argv.extend([
            "-s".into(),
            size.to_string(),
            "-r".into(),
            (size / 2).max(1).to_string(),
        ]);
    }
    argv
}

pub fn metrics() -> Vec<MetricDef> {
    let metric = |name: &str| MetricDef {
        name: name.into(),
        unit: "MB/s".into(),
        // Progress is counted in bytes.
        scale: 1e-6,
        higher_is_better: true,
        result_is_total: false,
    };
    vec![metric("write"), metric("read")]
}

#[derive(Default)]
pub struct Parser {
    done: bool,
}

impl ToolParser for Parser {
    fn line(&mut self, line: &str, mono_ns: u64, started_ns: u64) -> Vec<Output> {
        let fields: Vec<&str> = line.trim().split(',').collect();
        let is_result = fields.len() > GET_BLOCK && fields[0].starts_with("1.9");
        if self.done || !is_result {
            return Vec::new();
        }
        self.done = true;
        let seconds = mono_ns.saturating_sub(started_ns) as f64 / SECOND_NS;
        let mut out = Vec::new();
        for (metric, field) in [(0u16, PUT_BLOCK), (1, GET_BLOCK)] {
            let name = if metric == 0 { "write" } else { "read" };
            // K/sec; "+++++" means too fast for bonnie++ to time.
            match fields[field]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
            {
                Some(kib_per_s) => {
                    let bytes_per_s = kib_per_s * 1024.0;
                    let result = Output::Result {
                        metric: name.into(),
                        value: bytes_per_s / 1e6,
                        unit: "MB/s".into(),
                    };
                    let done = bytes_per_s * seconds;
                    out.extend(whole_run(metric, started_ns, mono_ns, done, result));
                }
                None => out.push(Output::Note(format!(
                    "bonnie++ could not time block {name}s ({:?}): the data set is too small \
                     for this machine",
                    fields[field]
                ))),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::tools::tests::{feed, never_panics, results_of};

    #[test]
    fn the_csv_line_gives_block_write_and_says_when_reads_were_too_fast() {
        let outputs = feed(&mut Parser::default(), "bonnie++-2.00a-quiet.csv");
        assert_eq!(
            results_of(&outputs),
            [("write".to_string(), 133_567.0 * 1024.0 / 1e6)]
        );
        assert!(
            outputs
                .iter()
                .any(|o| matches!(o, Output::Note(n) if n.contains("could not time block reads")))
        );
    }

    #[test]
    fn the_usage_text_of_a_failed_run_is_not_a_result() {
        let outputs = feed(&mut Parser::default(), "bonnie++-2.00a-bad-dir.txt");
        assert!(outputs.is_empty(), "{outputs:?}");
    }

    #[test]
    fn the_data_set_is_bonnies_default_unless_given() {
        let dir = Path::new("/srv/vmbench");
        assert!(!argv(dir, None).contains(&"-s".to_string()));
        let sized = argv(dir, Some(4096)).join(" ");
        assert!(sized.ends_with("-s 4096 -r 2048"), "{sized}");
    }

    #[test]
    fn arbitrary_input_never_panics() {
        never_panics(&mut Parser::default());
        never_panics(&mut Parser::default());
    }
}
