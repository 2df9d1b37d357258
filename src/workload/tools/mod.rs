//! External benchmark tools, one file each: the command line built from the
//! plan, the oldest version whose output the parser reads, and the parser of
//! its live progress and final result. They all run behind the gate
//! (`vmbench workload gate`), which stamps each output line where it is
//! produced.

pub mod bonnie;
pub mod custom;
pub mod fio;
pub mod iperf3;
pub mod stress_ng;
pub mod sysbench;

use super::Output;

/// Reads a tool's standard output. Never panics on any input.
pub trait ToolParser: Send {
    /// One line, read at `mono_ns` on the copy's clock; the tool was started
    /// at `started_ns` on the same clock.
    fn line(&mut self, line: &str, mono_ns: u64, started_ns: u64) -> Vec<Output>;
}

/// A number after a label in a line: `number_after("eps: 12.5 lat", "eps:")`.
pub fn number_after(line: &str, label: &str) -> Option<f64> {
    let rest = &line[line.find(label)? + label.len()..];
    let word = rest.split_whitespace().next()?;
    word.trim_matches(|c: char| c == '(' || c == ')' || c == ',')
        .parse()
        .ok()
}

pub const SECOND_NS: f64 = 1e9;

/// The zero point of a tool's progress, at its start, the first time only.
pub fn start_once(started: &mut bool, started_ns: u64) -> Vec<Output> {
    if std::mem::replace(started, true) {
        return Vec::new();
    }
    vec![Output::Progress {
        metric: 0,
        mono_ns: started_ns,
        done: 0.0,
    }]
}

/// For tools that report only at their end: nothing done at the start, the
/// whole run's worth at the end, and the tool's own figure.
pub fn whole_run(
    metric: u16,
    started_ns: u64,
    ended_ns: u64,
    done: f64,
    result: Output,
) -> [Output; 3] {
    [
        Output::Progress {
            metric,
            mono_ns: started_ns,
            done: 0.0,
        },
        Output::Progress {
            metric,
            mono_ns: ended_ns.max(started_ns),
            done,
        },
        result,
    ]
}

/// Gathers lines into whole JSON documents by counting braces outside
/// strings, for tools that print multi-line JSON among other text.
#[derive(Default)]
pub struct JsonCollector {
    buffer: String,
    depth: i64,
    in_string: bool,
    escaped: bool,
}

pub enum Collected {
    /// The line is not part of a JSON document.
    Outside,
    Partial,
    Whole(String),
}

/// Beyond this a document is not one a tool would print; start over.
const MAX_DOCUMENT: usize = 16 << 20;

impl JsonCollector {
    pub fn push(&mut self, line: &str) -> Collected {
        if self.depth == 0 && !line.trim_start().starts_with('{') {
            return Collected::Outside;
        }
        self.buffer.push_str(line);
        self.buffer.push('\n');
        for c in line.chars() {
            if self.in_string {
                match (self.escaped, c) {
                    (true, _) => self.escaped = false,
                    (false, '\\') => self.escaped = true,
                    (false, '"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => self.in_string = true,
                '{' => self.depth += 1,
                '}' => self.depth -= 1,
                _ => {}
            }
        }
        if self.depth > 0 && self.buffer.len() <= MAX_DOCUMENT {
            return Collected::Partial;
        }
        let whole = self.depth <= 0;
        let text = std::mem::take(&mut self.buffer);
        *self = JsonCollector::default();
        if whole {
            Collected::Whole(text)
        } else {
            Collected::Partial
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Feeds a captured output file through a parser, one line a second
    /// apart, as if the tool had just printed it.
    pub fn feed(parser: &mut dyn ToolParser, fixture: &str) -> Vec<Output> {
        let path = format!(
            "{}/tests/fixtures/tools/{fixture}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("fixture");
        text.lines()
            .enumerate()
            .flat_map(|(i, line)| parser.line(line, 1_000_000_000 + i as u64 * 1000, 1_000_000_000))
            .collect()
    }

    /// (time, cumulative done) of every progress point.
    pub fn progress_of(outputs: &[Output]) -> Vec<(u64, f64)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Progress { mono_ns, done, .. } => Some((*mono_ns, *done)),
                _ => None,
            })
            .collect()
    }

    /// (metric, value) of every result.
    pub fn results_of(outputs: &[Output]) -> Vec<(String, f64)> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Result { metric, value, .. } => Some((metric.clone(), *value)),
                _ => None,
            })
            .collect()
    }

    /// Arbitrary bytes never make a parser panic.
    pub fn never_panics(parser: &mut dyn ToolParser) {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..(state % 120) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                const ALPHABET: &[u8] =
                    b" 0123456789.-[]SUMsecKbitsGBytes:eps()/\tabcdefghijklmnopqrstuvwxyz";
                bytes.push(ALPHABET[(state % ALPHABET.len() as u64) as usize]);
            }
            let line = String::from_utf8_lossy(&bytes);
            parser.line(&line, state % 1_000_000, state % 1000);
        }
    }

    #[test]
    fn numbers_are_found_after_their_labels() {
        assert_eq!(
            number_after("[ 1s ] thds: 1 eps: 1755.00 lat", "eps:"),
            Some(1755.0)
        );
        assert_eq!(number_after("(3987.09 MiB/sec)", "("), Some(3987.09));
        assert_eq!(number_after("eps:", "eps:"), None);
        assert_eq!(number_after("nothing", "eps:"), None);
    }
}
