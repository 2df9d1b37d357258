//! iperf3: the client runs on the guest (or the host, for the baseline) and
//! a server that vmbench starts on the host, one port per concurrent copy,
//! since an iperf3 server serves one client at a time. Text output with
//! `-f k --forceflush`: rates in whole Kbit/s, a line per second per stream
//! and `[SUM]` lines with several streams; the result is the receiver's
//! figure of the closing summary, whose lines end with their side.

use std::net::SocketAddr;

use super::{SECOND_NS, ToolParser, start_once};
use crate::event::MetricDef;
use crate::workload::Output;

/// `--forceflush` appeared in 3.1.
pub const MIN_VERSION: (u32, u32) = (3, 1);
/// The first port of the servers vmbench starts; copy i uses BASE_PORT + i.
pub const BASE_PORT: u16 = 5201;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Guest to server.
    Outbound,
    /// Server to guest (`-R`).
    Inbound,
}

pub struct Options {
    pub server: SocketAddr,
    pub seconds: u64,
    pub parallel: u32,
    pub window: Option<u64>,
    pub direction: Direction,
}

pub fn argv(o: &Options) -> Vec<String> {
    let mut argv: Vec<String> = [
        "iperf3",
        "-c",
        &o.server.ip().to_string(),
        "-p",
        &o.server.port().to_string(),
        "-t",
        &o.seconds.to_string(),
        "-i",
        "1",
        "-f",
        "k",
        "--forceflush",
        "-P",
        &o.parallel.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(window) = o.window {
        argv.extend(["-w".to_string(), window.to_string()]);
    }
    if o.direction == Direction::Inbound {
        argv.push("-R".to_string());
    }
    argv
}

/// The server for one copy: one client, then it exits.
pub fn server_argv(listen: SocketAddr) -> Vec<String> {
    vec![
        "iperf3".into(),
        "-s".into(),
        "-1".into(),
        "-B".into(),
        listen.ip().to_string(),
        "-p".into(),
        listen.port().to_string(),
        // Its "listening" line must reach vmbench through a pipe at once.
        "--forceflush".into(),
    ]
}

pub fn metrics() -> Vec<MetricDef> {
    vec![MetricDef {
        name: "throughput".into(),
        unit: "Gbit/s".into(),
        // Progress is counted in bits.
        scale: 1e-9,
        higher_is_better: true,
        result_is_total: true,
    }]
}

pub struct Parser {
    parallel: u32,
    done_bits: f64,
    started: bool,
}

impl Parser {
    pub fn new(parallel: u32) -> Self {
        Parser {
            parallel,
            done_bits: 0.0,
            started: false,
        }
    }
}

/// "[SUM]   1.00-2.00   sec  2.26 GBytes  19467420 Kbits/sec ..." →
/// (stream, start, end, Kbit/s, rest of the line).
fn interval_line(line: &str) -> Option<(&str, f64, f64, f64, &str)> {
    let line = line.trim();
    let close = line.find(']')?;
    let stream = line.get(1..close)?.trim();
    let mut words = line.get(close + 1..)?.split_whitespace();
    let (start, end) = words.next()?.split_once('-')?;
    let (start, end): (f64, f64) = (start.parse().ok()?, end.parse().ok()?);
    if words.next()? != "sec" {
        return None;
    }
    let words: Vec<&str> = words.collect();
    let unit = words.iter().position(|w| *w == "Kbits/sec")?;
    let rate: f64 = words.get(unit.checked_sub(1)?)?.parse().ok()?;
    let tail = line.rsplit("Kbits/sec").next().unwrap_or("");
    let valid = [start, end, rate]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0);
    (valid && end >= start).then_some((stream, start, end, rate, tail))
}

impl ToolParser for Parser {
    fn line(&mut self, line: &str, _mono_ns: u64, started_ns: u64) -> Vec<Output> {
        let mut out = start_once(&mut self.started, started_ns);
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("iperf3: error -") {
            out.push(Output::Failed(format!("iperf3: {}", rest.trim())));
            return out;
        }
        let Some((stream, start, end, kbits, tail)) = interval_line(trimmed) else {
            return out;
        };
        // With several streams only the [SUM] lines count, once.
        let counted = if self.parallel > 1 {
            stream == "SUM"
        } else {
            stream != "SUM"
        };
        if !counted {
            return out;
        }
        // The closing summary's lines name their side; interval lines do not.
        let side = tail.split_whitespace().last().unwrap_or("");
        if side == "sender" || side == "receiver" {
            if side == "receiver" {
                out.push(Output::Result {
                    metric: "throughput".into(),
                    value: kbits / 1e6,
                    unit: "Gbit/s".into(),
                });
            }
        } else {
            self.done_bits += kbits * 1e3 * (end - start);
            out.push(Output::Progress {
                metric: 0,
                mono_ns: started_ns.saturating_add((end.min(1e9) * SECOND_NS) as u64),
                done: self.done_bits,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::tools::tests::{feed, never_panics, progress_of, results_of};

    fn summary(outputs: &[Output]) -> (Vec<(u64, f64)>, Vec<f64>) {
        let results = results_of(outputs).into_iter().map(|r| r.1).collect();
        (progress_of(outputs), results)
    }

    #[test]
    fn one_stream_counts_each_second_and_reports_the_receiver() {
        let outputs = feed(&mut Parser::new(1), "iperf3-3.12-single.txt");
        let (progress, results) = summary(&outputs);
        assert_eq!(progress.len(), 4, "{progress:?}");
        assert_eq!(progress[1], (2_000_000_000, 9_713_094_000.0));
        assert_eq!(progress[3].0, 4_000_000_000);
        assert!((progress[3].1 - 44_352_437_000.0).abs() < 1.0);
        assert_eq!(results, [14.758519]);
    }

    #[test]
    fn several_streams_count_only_the_sums() {
        let outputs = feed(&mut Parser::new(5), "iperf3-3.12-parallel-reverse.txt");
        let (progress, results) = summary(&outputs);
        assert_eq!(progress.len(), 4, "{progress:?}");
        assert_eq!(results, [17.376774]);
    }

    #[test]
    fn a_refused_connection_fails_the_copy() {
        let outputs = feed(&mut Parser::new(1), "iperf3-3.12-refused.txt");
        assert!(
            outputs.iter().any(
                |o| matches!(o, Output::Failed(m) if m.contains("unable to connect to server"))
            )
        );
    }

    #[test]
    fn the_command_line_carries_window_streams_and_direction() {
        let argv = argv(&Options {
            server: "198.18.0.1:5203".parse().expect("address"),
            seconds: 900,
            parallel: 5,
            window: Some(256 << 10),
            direction: Direction::Inbound,
        });
        assert_eq!(
            argv.join(" "),
            "iperf3 -c 198.18.0.1 -p 5203 -t 900 -i 1 -f k --forceflush -P 5 -w 262144 -R"
        );
    }

    #[test]
    fn arbitrary_input_never_panics() {
        never_panics(&mut Parser::new(1));
        never_panics(&mut Parser::new(5));
    }
}
