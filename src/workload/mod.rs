//! Benchmarks: for each, the command line it builds from the plan and the
//! parser of what it prints. Built-in workloads run as separate processes of
//! this binary so that N copies behave like N guests.

pub mod builtin;
pub mod gate;
pub mod tools;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::MetricDef;

/// A workload as a plan names it, with its parameters.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum WorkloadSpec {
    /// A fixed integer and floating-point kernel; operations per second.
    Cpu,
    /// Sequential write, then read back, of a data set; MB/s.
    Disk {
        /// Upper bound of the data set; half the duration bounds each pass.
        #[serde(default = "default_disk_size")]
        size: ByteSize,
        #[serde(default = "default_disk_dir")]
        dir: PathBuf,
        #[serde(default = "default_block_size")]
        block_size: ByteSize,
    },
    /// A TCP stream over loopback to a receiver that vmbench starts; Gbit/s.
    Net {
        #[serde(default = "default_block_size")]
        buffer: ByteSize,
    },
    /// sysbench 1.0 `cpu` (events/s), `memory` (MiB/s) or `fileio` (read
    /// and written MiB/s on files in `dir`).
    Sysbench {
        test: tools::sysbench::Test,
        #[serde(default = "one")]
        threads: u32,
        /// fileio only: `seqwr`, `seqrd`, `rndrd`, `rndwr` or `rndrw`.
        #[serde(default = "rndrw")]
        file_mode: tools::sysbench::FileMode,
        /// fileio only: the total size of its files.
        #[serde(default = "default_disk_size")]
        size: ByteSize,
        /// fileio only: where its files go.
        #[serde(default = "default_disk_dir")]
        dir: PathBuf,
        /// memory only: `seq` (sysbench's default) or `rnd`, whose random
        /// accesses over a large block walk the page tables as a virtual
        /// machine's memory makes them costly.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_mode: Option<tools::sysbench::AccessMode>,
        /// memory only: the block each thread works through (sysbench's
        /// default 1 KiB stays in the cache).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        block_size: Option<ByteSize>,
    },
    /// An iperf3 client against a server vmbench starts on this host (one
    /// port per copy), or against `server`; Gbit/s as the receiver counted.
    Iperf3 {
        /// Socket buffer (`-w`), e.g. "256KiB" as in the study.
        #[serde(default)]
        window: Option<ByteSize>,
        /// Parallel streams (`-P`).
        #[serde(default = "one")]
        parallel: u32,
        #[serde(default = "outbound")]
        direction: tools::iperf3::Direction,
        /// A server of your own instead of the ones vmbench starts.
        #[serde(default)]
        server: Option<SocketAddr>,
    },
    /// fio with a preset (`seq-read`, `seq-write`, `rand-read`,
    /// `rand-write`) on files in `dir`, or a job file already on the guest;
    /// MB/s.
    Fio {
        #[serde(default)]
        preset: Option<tools::fio::Preset>,
        #[serde(default)]
        job_file: Option<PathBuf>,
        #[serde(default = "default_disk_size")]
        size: ByteSize,
        /// Default 1MiB for sequential, 4KiB for random presets.
        #[serde(default)]
        block_size: Option<ByteSize>,
        #[serde(default = "default_disk_dir")]
        dir: PathBuf,
        #[serde(default = "one")]
        jobs: u32,
    },
    /// bonnie++ block write and read in `dir`; MB/s. `size` defaults to
    /// twice the machine's RAM, as in the study.
    #[serde(rename = "bonnie++", alias = "bonnie")]
    Bonnie {
        #[serde(default)]
        size: Option<ByteSize>,
        #[serde(default = "default_disk_dir")]
        dir: PathBuf,
    },
    /// A command of your own; its figure is read from its output by
    /// `result_regex` (first capture group) or `json_pointer`.
    Custom {
        /// The program and its arguments, e.g. ["dd", "if=/dev/zero", ...].
        #[serde(deserialize_with = "non_empty_command")]
        command: Vec<String>,
        #[serde(default)]
        result_regex: Option<Pattern>,
        #[serde(default)]
        json_pointer: Option<String>,
        metric: String,
        unit: String,
        #[serde(default = "yes")]
        higher_is_better: bool,
    },
    /// One stress-ng stressor (`cpu`, `vm`, `matrix`, ...); bogo-ops/s.
    StressNg {
        stressor: Stressor,
        #[serde(default = "one")]
        workers: u32,
    },
}

fn one() -> u32 {
    1
}

fn yes() -> bool {
    true
}

fn non_empty_command<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let command = Vec::<String>::deserialize(d)?;
    if command.first().is_none_or(|program| program.is_empty()) {
        return Err(serde::de::Error::custom(
            "command must name a program, e.g. [\"dd\", \"if=/dev/zero\", \"of=/dev/null\"]",
        ));
    }
    Ok(command)
}

/// A regular expression from the plan, checked when the plan is read.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text)
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("not a regular expression: {e}")))
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

fn rndrw() -> tools::sysbench::FileMode {
    tools::sysbench::FileMode::Rndrw
}

fn outbound() -> tools::iperf3::Direction {
    tools::iperf3::Direction::Outbound
}

/// A stress-ng stressor name; it becomes an option (`--cpu`), so only
/// letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stressor(pub String);

impl<'de> Deserialize<'de> for Stressor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        let valid = !name.is_empty()
            && !name.starts_with('-')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if valid {
            Ok(Stressor(name))
        } else {
            Err(serde::de::Error::custom(format!(
                "{name:?} is not a stress-ng stressor name (letters, digits, dashes)"
            )))
        }
    }
}

fn default_disk_size() -> ByteSize {
    ByteSize(256 << 20)
}

fn default_disk_dir() -> PathBuf {
    // /var/tmp is disk-backed where /tmp is often tmpfs.
    PathBuf::from("/var/tmp")
}

fn default_block_size() -> ByteSize {
    ByteSize(1 << 20)
}

/// Which of the study's figures a workload's results belong in. The
/// default is there for an empty CSV file's header only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadClass {
    /// A score against the number of guests (CPU, memory, anything else).
    #[default]
    Score,
    /// Network, from the guest out.
    NetOut,
    /// Network, into the guest.
    NetIn,
    /// Disk read and write.
    Disk,
}

/// A unit enum's name as plans spell it (`inbound`, `seq-read`).
fn name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// What a copy needs to know beyond the plan to build its command line.
#[derive(Debug, Clone)]
pub struct LaunchContext {
    pub exe: PathBuf,
    pub duration: Duration,
    /// Where `net` copies send to, and where an iperf3 copy's server listens.
    pub net_sink: Option<SocketAddr>,
}

/// What a workload's output means, one line at a time.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Set up and waiting at the barrier.
    Ready,
    Started {
        mono_ns: u64,
    },
    Progress {
        metric: u16,
        mono_ns: u64,
        done: f64,
    },
    Result {
        metric: String,
        value: f64,
        unit: String,
    },
    Note(String),
    Failed(String),
    /// The version an external tool reported before the barrier.
    Version {
        tool: String,
        text: String,
    },
}

/// Turns a workload's output lines into [`Output`]s. Never panics on any input:
/// a line it cannot read is an error naming the line.
pub trait OutputParser: Send {
    fn parse_line(&mut self, line: &str) -> Result<Vec<Output>, String>;
}

impl WorkloadSpec {
    pub fn label(&self) -> &'static str {
        match self {
            WorkloadSpec::Cpu => "cpu",
            WorkloadSpec::Disk { .. } => "disk",
            WorkloadSpec::Net { .. } => "net",
            WorkloadSpec::Sysbench { .. } => "sysbench",
            WorkloadSpec::Iperf3 { .. } => "iperf3",
            WorkloadSpec::StressNg { .. } => "stress-ng",
            WorkloadSpec::Fio { .. } => "fio",
            WorkloadSpec::Bonnie { .. } => "bonnie++",
            WorkloadSpec::Custom { .. } => "custom",
        }
    }

    /// What the comparison calls this workload, and which of the study's
    /// figures it belongs in. Runs of the same key are compared across
    /// technologies, so the key holds what changes the measurement's meaning
    /// (a test, a direction) and leaves the rest to [`Self::fingerprint`].
    pub fn comparison(&self) -> (String, WorkloadClass) {
        match self {
            WorkloadSpec::Cpu => ("cpu".into(), WorkloadClass::Score),
            WorkloadSpec::Disk { .. } => ("disk".into(), WorkloadClass::Disk),
            WorkloadSpec::Net { .. } => ("net".into(), WorkloadClass::NetOut),
            WorkloadSpec::Sysbench {
                test,
                file_mode,
                access_mode,
                ..
            } => match test {
                tools::sysbench::Test::Fileio => (
                    format!("sysbench fileio {}", name(file_mode)),
                    WorkloadClass::Disk,
                ),
                tools::sysbench::Test::Memory => (
                    match access_mode {
                        Some(tools::sysbench::AccessMode::Rnd) => "sysbench memory rnd".into(),
                        _ => "sysbench memory".into(),
                    },
                    WorkloadClass::Score,
                ),
                _ => (format!("sysbench {}", name(test)), WorkloadClass::Score),
            },
            WorkloadSpec::Iperf3 { direction, .. } => (
                format!("iperf3 {}", name(direction)),
                match direction {
                    tools::iperf3::Direction::Outbound => WorkloadClass::NetOut,
                    tools::iperf3::Direction::Inbound => WorkloadClass::NetIn,
                },
            ),
            WorkloadSpec::Fio {
                preset, job_file, ..
            } => {
                let what = match (preset, job_file) {
                    (Some(p), _) => name(p),
                    (None, Some(file)) => file.file_name().map_or_else(
                        || file.display().to_string(),
                        |f| f.to_string_lossy().into_owned(),
                    ),
                    (None, None) => "job".into(),
                };
                (format!("fio {what}"), WorkloadClass::Disk)
            }
            WorkloadSpec::Bonnie { .. } => ("bonnie++".into(), WorkloadClass::Disk),
            WorkloadSpec::StressNg { stressor, .. } => {
                (format!("stress-ng {}", stressor.0), WorkloadClass::Score)
            }
            WorkloadSpec::Custom { metric, .. } => {
                (format!("custom {metric}"), WorkloadClass::Score)
            }
        }
    }

    /// The parameters that must match for runs to be pooled or compared,
    /// by name. Where a copy keeps its files and which server it talks to
    /// necessarily differ between a host and its guests, so they are left out.
    pub fn parameters(&self) -> Vec<(String, String)> {
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(self) else {
            return Vec::new();
        };
        fields
            .into_iter()
            .filter(|(key, _)| !matches!(key.as_str(), "type" | "dir" | "server"))
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (key, text)
            })
            .collect()
    }

    pub fn metrics(&self) -> Vec<MetricDef> {
        match self {
            WorkloadSpec::Sysbench { test, .. } => tools::sysbench::metrics(*test),
            WorkloadSpec::Iperf3 { .. } => tools::iperf3::metrics(),
            WorkloadSpec::StressNg { .. } => tools::stress_ng::metrics(),
            WorkloadSpec::Fio { .. } => tools::fio::metrics(),
            WorkloadSpec::Bonnie { .. } => tools::bonnie::metrics(),
            WorkloadSpec::Custom {
                metric,
                unit,
                higher_is_better,
                ..
            } => tools::custom::metrics(metric, unit, *higher_is_better),
            builtin => builtin::metrics(builtin),
        }
    }

    /// Needs a receiver on this host: the built-in sink, or an iperf3 server
    /// per copy when the plan names none.
    pub fn needs_net_sink(&self) -> bool {
        matches!(
            self,
            WorkloadSpec::Net { .. } | WorkloadSpec::Iperf3 { server: None, .. }
        )
    }

    /// The oldest version of its tool whose output vmbench reads.
    pub fn min_version(&self) -> Option<(u32, u32)> {
        Some(match self {
            WorkloadSpec::Sysbench { .. } => tools::sysbench::MIN_VERSION,
            WorkloadSpec::Iperf3 { .. } => tools::iperf3::MIN_VERSION,
            WorkloadSpec::StressNg { .. } => tools::stress_ng::MIN_VERSION,
            WorkloadSpec::Fio { .. } => tools::fio::MIN_VERSION,
            WorkloadSpec::Bonnie { .. } => tools::bonnie::MIN_VERSION,
            _ => return None,
        })
    }

    /// Bytes a copy of a run-to-completion workload moves: bonnie++
    /// writes its data set, rewrites it (reading it too) and reads it back,
    /// about four passes. None for workloads that stop at their duration,
    /// and where the data set is the guest's RAM (unknown here).
    pub fn bytes_to_completion(&self) -> Option<u64> {
        match self {
            WorkloadSpec::Bonnie {
                size: Some(size), ..
            } => Some(size.0 * 4),
            _ => None,
        }
    }

    /// The folder a copy writes its data set in and its size in bytes (None:
    /// twice the machine's RAM, bonnie++'s default).
    pub fn data_set(&self) -> Option<(&Path, Option<u64>)> {
        match self {
            WorkloadSpec::Disk { size, dir, .. } => Some((dir, Some(size.0))),
            WorkloadSpec::Fio {
                job_file: None,
                size,
                dir,
                jobs,
                ..
            } => Some((dir, Some(size.0 * u64::from(*jobs)))),
            WorkloadSpec::Bonnie { size, dir } => Some((dir, size.map(|s| s.0))),
            WorkloadSpec::Sysbench {
                test: tools::sysbench::Test::Fileio,
                size,
                dir,
                ..
            } => Some((dir, Some(size.0))),
            _ => None,
        }
    }

    /// Whether its data goes through the page cache of the machine it runs
    /// on (bonnie++); the others open their files with direct I/O, so on
    /// bare metal RAM cannot stand in for the disk (in a guest, the host may
    /// still cache the virtual disk).
    pub fn goes_through_page_cache(&self) -> bool {
        matches!(self, WorkloadSpec::Bonnie { .. })
    }

    /// Which external program the workload runs, if any.
    pub fn tool(&self) -> Option<&'static str> {
        match self {
            WorkloadSpec::Sysbench { .. } => Some("sysbench"),
            WorkloadSpec::Iperf3 { .. } => Some("iperf3"),
            WorkloadSpec::StressNg { .. } => Some("stress-ng"),
            WorkloadSpec::Fio { .. } => Some("fio"),
            WorkloadSpec::Bonnie { .. } => Some("bonnie++"),
            _ => None,
        }
    }

    pub fn command(&self, ctx: &LaunchContext) -> Vec<String> {
        let seconds = ctx.duration.as_secs().max(1);
        let (tool_argv, min_version) = match self {
            WorkloadSpec::Sysbench {
                test,
                threads,
                file_mode,
                size,
                dir,
                access_mode,
                block_size,
            } => (
                tools::sysbench::argv(&tools::sysbench::Options {
                    test: *test,
                    threads: *threads,
                    seconds,
                    file_mode: *file_mode,
                    file_size: size.0,
                    dir,
                    access_mode: *access_mode,
                    block_size: block_size.map(|b| b.0),
                }),
                tools::sysbench::MIN_VERSION,
            ),
            WorkloadSpec::Iperf3 {
                window,
                parallel,
                direction,
                server,
            } => {
                let server = server.or(ctx.net_sink).unwrap_or_else(|| {
                    SocketAddr::from(([127, 0, 0, 1], tools::iperf3::BASE_PORT))
                });
                let options = tools::iperf3::Options {
                    server,
                    seconds,
                    parallel: *parallel,
                    window: window.map(|w| w.0),
                    direction: *direction,
                };
                (tools::iperf3::argv(&options), tools::iperf3::MIN_VERSION)
            }
            WorkloadSpec::StressNg { stressor, workers } => (
                tools::stress_ng::argv(&stressor.0, *workers, seconds),
                tools::stress_ng::MIN_VERSION,
            ),
            WorkloadSpec::Fio {
                preset,
                job_file,
                size,
                block_size,
                dir,
                jobs,
            } => {
                let argv = match (job_file, preset) {
                    (Some(path), _) => tools::fio::job_file_argv(path),
                    (None, preset) => {
                        let preset = preset.unwrap_or(tools::fio::Preset::SeqWrite);
                        tools::fio::argv(&tools::fio::Options {
                            preset,
                            size: size.0,
                            block_size: block_size.map_or(preset.default_block_size(), |b| b.0),
                            dir,
                            jobs: *jobs,
                            seconds,
                        })
                    }
                };
                (argv, tools::fio::MIN_VERSION)
            }
            WorkloadSpec::Bonnie { size, dir } => (
                tools::bonnie::argv(dir, size.map(|s| (s.0 >> 20).max(1))),
                tools::bonnie::MIN_VERSION,
            ),
            WorkloadSpec::Custom { command, .. } => {
                // No version to ask an arbitrary command for.
                let mut argv = vec![
                    ctx.exe.display().to_string(),
                    "workload".into(),
                    "gate".into(),
                    "--".into(),
                ];
                argv.extend(command.iter().cloned());
                return argv;
            }
            builtin => return builtin::command(builtin, ctx),
        };
        let mut argv = vec![
            ctx.exe.display().to_string(),
            "workload".into(),
            "gate".into(),
            "--probe".into(),
            format!("{} --version", self.tool().unwrap_or(&tool_argv[0])),
            "--min-version".into(),
            format!("{}.{}", min_version.0, min_version.1),
            "--".into(),
        ];
        argv.extend(tool_argv);
        argv
    }

    pub fn parser(&self) -> Box<dyn OutputParser> {
        let tool: Option<Box<dyn tools::ToolParser>> = match self {
            WorkloadSpec::Sysbench { test, .. } => {
                Some(Box::new(tools::sysbench::Parser::new(*test)))
            }
            WorkloadSpec::Iperf3 { parallel, .. } => {
                Some(Box::new(tools::iperf3::Parser::new(*parallel)))
            }
            WorkloadSpec::StressNg { .. } => Some(Box::new(tools::stress_ng::Parser::default())),
            WorkloadSpec::Fio { .. } => Some(Box::new(tools::fio::Parser::default())),
            WorkloadSpec::Bonnie { .. } => Some(Box::new(tools::bonnie::Parser::default())),
            WorkloadSpec::Custom {
                result_regex,
                json_pointer,
                metric,
                unit,
                ..
            } => {
                let extract = match (result_regex, json_pointer) {
                    (Some(re), _) => tools::custom::Extract::Regex(re.0.clone()),
                    (None, Some(pointer)) => tools::custom::Extract::JsonPointer(pointer.clone()),
                    (None, None) => tools::custom::Extract::Regex(
                        regex::Regex::new(r"^\s*([-+0-9.eE]+)\s*$").expect("a valid pattern"),
                    ),
                };
                Some(Box::new(tools::custom::Parser::new(extract, metric, unit)))
            }
            _ => None,
        };
        Box::new(builtin::LineParser::new(self.metrics(), tool))
    }
}

/// A size in bytes, written as `4096`, `"64KiB"`, `"256MiB"`, `"4GB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("invalid size {text:?}; write it like \"64KiB\" or \"4GB\""))?;
        let multiplier: u64 = match unit.trim() {
            "" | "B" => 1,
            "k" | "K" | "kB" | "KB" => 1000,
            "KiB" | "Ki" => 1 << 10,
            "M" | "MB" => 1_000_000,
            "MiB" | "Mi" => 1 << 20,
            "G" | "GB" => 1_000_000_000,
            "GiB" | "Gi" => 1 << 30,
            "T" | "TB" => 1_000_000_000_000,
            "TiB" | "Ti" => 1 << 40,
            other => return Err(format!("unknown size unit {other:?} in {text:?}")),
        };
        let bytes = number * multiplier as f64;
        if !(1.0..=u64::MAX as f64).contains(&bytes) {
            return Err(format!("size {text:?} is out of range"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0 % size == 0 {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) if n > 0 => Ok(ByteSize(n as u64)),
            Raw::Bytes(n) => Err(serde::de::Error::custom(format!(
                "size {n} must be positive"
            ))),
            Raw::Text(t) => ByteSize::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// The study's rule for disk figures: a data set under twice the machine's
/// RAM can sit in its caches, so its figure may be partly memory's. What to
/// say when a data set of `bytes` breaks it on a machine with `ram` bytes.
pub fn small_data_set(bytes: u64, ram: u64) -> Option<String> {
    (ram > 0 && bytes < 2 * ram).then(|| {
        format!(
            "its data set ({} MiB) is under twice the RAM ({} MiB), the study's rule for disk \
             figures: caches can hold it, so its figure may be partly memory's",
            bytes >> 20,
            ram >> 20
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_both_unit_families() {
        assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
        assert_eq!(ByteSize::parse("64KiB"), Ok(ByteSize(65536)));
        assert_eq!(ByteSize::parse("4GB"), Ok(ByteSize(4_000_000_000)));
        assert_eq!(ByteSize::parse("1.5GiB"), Ok(ByteSize(3 << 29)));
        assert!(ByteSize::parse("12 parsecs").is_err());
        assert!(ByteSize::parse("").is_err());
        assert_eq!(ByteSize(256 << 20).to_string(), "256MiB");
    }
}
