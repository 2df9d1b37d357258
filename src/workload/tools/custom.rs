//! A command of your own: its result is taken from its standard output by a
//! regular expression (the first capture group, else the whole match) or by
//! a JSON pointer into a JSON document it prints; the last match stands.
//! It reports nothing while it runs, so its progress is its whole run.

use super::{Collected, JsonCollector, SECOND_NS, ToolParser, whole_run};
use crate::event::MetricDef;
use crate::workload::Output;

#[derive(Debug, Clone)]
pub enum Extract {
    Regex(regex::Regex),
    JsonPointer(String),
}

pub fn metrics(name: &str, unit: &str, higher_is_better: bool) -> Vec<MetricDef> {
    vec![MetricDef {
        name: name.into(),
        unit: unit.into(),
        scale: 1.0,
        higher_is_better,
        result_is_total: false,
    }]
}

pub struct Parser {
    extract: Extract,
    metric: String,
    unit: String,
    json: JsonCollector,
}

impl Parser {
    pub fn new(extract: Extract, metric: &str, unit: &str) -> Self {
        Parser {
            extract,
            metric: metric.into(),
            unit: unit.into(),
            json: JsonCollector::default(),
        }
    }

    fn value(&mut self, line: &str) -> Option<f64> {
        match &self.extract {
            Extract::Regex(re) => {
                let caps = re.captures(line)?;
                let text = caps.get(1).or_else(|| caps.get(0))?.as_str();
                text.trim().parse().ok()
            }
            Extract::JsonPointer(pointer) => {
                let Collected::Whole(text) = self.json.push(line) else {
                    return None;
                };
                let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
                let found = doc.pointer(pointer)?;
                found
                    .as_f64()
                    .or_else(|| found.as_str().and_then(|s| s.trim().parse().ok()))
            }
        }
    }
}

impl ToolParser for Parser {
    fn line(&mut self, line: &str, mono_ns: u64, started_ns: u64) -> Vec<Output> {
        let Some(value) = self.value(line).filter(|v| v.is_finite()) else {
            return Vec::new();
        };
        let seconds = mono_ns.saturating_sub(started_ns) as f64 / SECOND_NS;
        let result = Output::Result {
            metric: self.metric.clone(),
            value,
            unit: self.unit.clone(),
        };
        whole_run(0, started_ns, mono_ns, value * seconds, result).to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::tools::tests::{never_panics, results_of};

    fn results(parser: &mut Parser, lines: &[&str]) -> Vec<f64> {
        let outputs: Vec<Output> = lines
            .iter()
            .flat_map(|l| parser.line(l, 3_000_000_000, 1_000_000_000))
            .collect();
        results_of(&outputs).into_iter().map(|r| r.1).collect()
    }

    #[test]
    fn a_regex_takes_its_first_group() {
        let re = regex::Regex::new(r"copied, [0-9.]+ s, ([0-9.]+) MB/s").expect("regex");
        let mut parser = Parser::new(Extract::Regex(re), "dd", "MB/s");
        let dd = "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 2.1 s, 511 MB/s";
        assert_eq!(results(&mut parser, &["noise", dd]), [511.0]);
    }

    #[test]
    fn a_json_pointer_reads_a_multi_line_document() {
        let mut parser = Parser::new(Extract::JsonPointer("/end/sum/bps".into()), "bps", "bit/s");
        let lines = [
            "{",
            "  \"end\": { \"sum\": {",
            "    \"bps\": 9.5e9 } }",
            "}",
        ];
        assert_eq!(results(&mut parser, &lines), [9.5e9]);
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let re = regex::Regex::new(r"([0-9.]+)").expect("regex");
        never_panics(&mut Parser::new(Extract::Regex(re), "x", "u"));
        never_panics(&mut Parser::new(
            Extract::JsonPointer("/a".into()),
            "x",
            "u",
        ));
    }
}
