//! The built-in workloads, both sides: the child that does the work (run as
//! `vmbench workload cpu|disk|net|net-sink`, hidden from the main help) and the
//! parser of the JSON lines it prints.

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::tools::ToolParser;
use super::{LaunchContext, Output, OutputParser, WorkloadSpec};
use crate::event::{MetricDef, monotonic_ns};

/// One line of a built-in workload's output.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    Ready,
    Listening {
        addr: SocketAddr,
    },
    Start {
        mono_ns: u64,
    },
    Progress {
        metric: String,
        mono_ns: u64,
        done: f64,
    },
    Result {
        metric: String,
        value: f64,
        unit: String,
    },
    Note {
        message: String,
    },
    Error {
        message: String,
    },
    /// The version an external tool reported, read before the barrier.
    Version {
        tool: String,
        text: String,
    },
    /// One line of an external tool's standard output, stamped when read.
    Tool {
        mono_ns: u64,
        line: String,
    },
}

pub(crate) fn emit(line: &Line) {
    let text = serde_json::to_string(line).expect("protocol lines always serialize");
    let mut out = io::stdout().lock();
    // A parent that went away is not this process's problem to report.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn metric(name: &str, unit: &str, scale: f64) -> MetricDef {
    MetricDef {
        name: name.to_string(),
        unit: unit.to_string(),
        scale,
        higher_is_better: true,
        result_is_total: false,
    }
}

pub fn metrics(spec: &WorkloadSpec) -> Vec<MetricDef> {
    match spec {
        WorkloadSpec::Cpu => vec![metric("cpu", "ops/s", 1.0)],
        WorkloadSpec::Disk { .. } => {
            vec![metric("write", "MB/s", 1e-6), metric("read", "MB/s", 1e-6)]
        }
        WorkloadSpec::Net { .. } => vec![metric("send", "Gbit/s", 8e-9)],
        // External tools describe their own metrics (tools/).
        _ => Vec::new(),
    }
}

pub fn command(spec: &WorkloadSpec, ctx: &LaunchContext) -> Vec<String> {
    let mut argv = vec![
        ctx.exe.display().to_string(),
        "workload".into(),
        spec.label().into(),
        "--gate".into(),
        "--duration-ms".into(),
        ctx.duration.as_millis().to_string(),
    ];
    match spec {
        WorkloadSpec::Disk {
            size,
            dir,
            block_size,
        } => {
            argv.extend(["--size".into(), size.0.to_string()]);
            argv.extend(["--dir".into(), dir.display().to_string()]);
            argv.extend(["--block-size".into(), block_size.0.to_string()]);
        }
        WorkloadSpec::Net { buffer } => {
            argv.extend(["--buffer".into(), buffer.0.to_string()]);
            if let Some(addr) = ctx.net_sink {
                argv.extend(["--connect".into(), addr.to_string()]);
            }
        }
        // cpu takes no options; external tools build their own commands.
        _ => {}
    }
    argv
}

/// Reads the JSON-line protocol that built-in workloads and the gate speak;
/// an external tool's relayed lines go to its own parser.
pub struct LineParser {
    metrics: Vec<MetricDef>,
    tool: Option<Box<dyn ToolParser>>,
    started_ns: u64,
}

impl LineParser {
    pub fn new(metrics: Vec<MetricDef>, tool: Option<Box<dyn ToolParser>>) -> Self {
        LineParser {
            metrics,
            tool,
            started_ns: 0,
        }
    }
}

impl OutputParser for LineParser {
    fn parse_line(&mut self, line: &str) -> Result<Vec<Output>, String> {
        if line.trim().is_empty() {
            return Ok(Vec::new());
        }
        let parsed: Line =
            serde_json::from_str(line).map_err(|e| format!("unreadable line {line:?}: {e}"))?;
        Ok(vec![match parsed {
            Line::Ready => Output::Ready,
            Line::Listening { addr } => Output::Note(format!("listening on {addr}")),
            Line::Start { mono_ns } => {
                self.started_ns = mono_ns;
                Output::Started { mono_ns }
            }
            Line::Progress {
                metric,
                mono_ns,
                done,
            } => {
                let index = self
                    .metrics
                    .iter()
                    .position(|m| m.name == metric)
                    .ok_or_else(|| format!("progress of unknown metric {metric:?}"))?;
                Output::Progress {
                    metric: index as u16,
                    mono_ns,
                    done,
                }
            }
            Line::Result {
                metric,
                value,
                unit,
            } => Output::Result {
                metric,
                value,
                unit,
            },
            Line::Note { message } => Output::Note(message),
            Line::Error { message } => Output::Failed(message),
            Line::Version { tool, text } => Output::Version { tool, text },
            Line::Tool { mono_ns, line } => {
                return Ok(match &mut self.tool {
                    Some(tool) => tool.line(&line, mono_ns, self.started_ns),
                    None => Vec::new(),
                });
            }
        }])
    }
}

/// Waits at the barrier for the orchestrator's release line: empty (go now)
/// or `at NS`, a CLOCK_MONOTONIC instant of this machine to start at. A
/// start instant lets every copy, here or on any guest, wake in its own
/// kernel at the same moment, however long the release took to arrive.
/// False when the orchestrator closed the pipe instead (the phase was
/// cancelled before it began).
pub(crate) fn wait_at_gate(gate: bool) -> bool {
    if !gate {
        return true;
    }
    emit(&Line::Ready);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match io::stdin().lock().read(&mut byte) {
            Ok(1) if byte[0] == b'\n' => break,
            Ok(1) => line.push(byte[0]),
            _ => return false,
        }
    }
    // The orchestrator keeps stdin open while the copy runs; its end means the
    // orchestrator (or the SSH connection to it) is gone, and so is the copy.
    // Started before the start instant, so that it costs the start nothing.
    // The whole process group goes, an external tool started by the gate too.
    std::thread::spawn(|| {
        let mut rest = [0u8; 64];
        while matches!(io::stdin().lock().read(&mut rest), Ok(n) if n > 0) {}
        // Only a group this process leads (as vmbench starts every copy) is
        // its own to kill; run by hand inside a shell's group, it just ends.
        // SAFETY: getpgrp/getpid cannot fail; killpg signals our own group.
        unsafe {
            if libc::getpgrp() == libc::getpid() {
                libc::killpg(libc::getpgrp(), libc::SIGKILL);
            }
        }
        std::process::exit(3);
    });
    if let Some(at) = std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.strip_prefix("at "))
        .and_then(|ns| ns.trim().parse::<u64>().ok())
    {
        sleep_until_monotonic(at);
    }
    true
}

fn sleep_until_monotonic(at_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (at_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (at_ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: clock_nanosleep reads the timespec it is given; with
    // TIMER_ABSTIME no remainder is written. EINTR is retried.
    while unsafe {
        libc::clock_nanosleep(
            libc::CLOCK_MONOTONIC,
            libc::TIMER_ABSTIME,
            &ts,
            std::ptr::null_mut(),
        )
    } == libc::EINTR
    {}
}

/// Answers each line on stdin with this machine's CLOCK_MONOTONIC in
/// nanoseconds, so that the orchestrator can measure a guest's clock offset.
pub fn run_clock() -> Result<()> {
    let mut out = io::stdout().lock();
    for line in io::stdin().lock().lines() {
        line?;
        writeln!(out, "{}", monotonic_ns())?;
        out.flush()?;
    }
    Ok(())
}

/// Reports cumulative progress of one metric about once a second, plus the
/// first and last points exactly, so that windows can be cut precisely.
struct Progress<'a> {
    metric: &'a str,
    next_report: u64,
}

const REPORT_EVERY_NS: u64 = 1_000_000_000;

impl<'a> Progress<'a> {
    fn begin(metric: &'a str) -> (Self, u64) {
        let now = monotonic_ns();
        emit(&Line::Progress {
            metric: metric.to_string(),
            mono_ns: now,
            done: 0.0,
        });
        (
            Progress {
                metric,
                next_report: now + REPORT_EVERY_NS,
            },
            now,
        )
    }

    fn tick(&mut self, now: u64, done: f64) {
        if now >= self.next_report {
            self.report(now, done);
            self.next_report = now + REPORT_EVERY_NS;
        }
    }

    fn report(&self, now: u64, done: f64) {
        emit(&Line::Progress {
            metric: self.metric.to_string(),
            mono_ns: now,
            done,
        });
    }

    fn finish(self, done: f64, unit: &str, scale: f64, started: u64) -> u64 {
        let now = monotonic_ns();
        self.report(now, done);
        let seconds = (now - started) as f64 / 1e9;
        emit(&Line::Result {
            metric: self.metric.to_string(),
            value: if seconds > 0.0 {
                done / seconds * scale
            } else {
                0.0
            },
            unit: unit.to_string(),
        });
        now
    }
}

/// Runs a child-side workload and turns any failure into an `error` line.
pub fn run_child(body: impl FnOnce() -> Result<()>) -> i32 {
    match body() {
        Ok(()) => 0,
        Err(e) => {
            emit(&Line::Error {
                message: format!("{e:#}"),
            });
            1
        }
    }
}

const CPU_BLOCK: u64 = 4096;

/// One block of the CPU kernel: integer mixing feeding a floating-point
/// recurrence, so both units work and nothing folds away at compile time.
fn cpu_block(state: &mut (u64, f64)) {
    let (mut x, mut f) = *state;
    for _ in 0..CPU_BLOCK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        f = f.mul_add(0.999_999_9, (x & 0xffff) as f64 * 1e-6);
    }
    *state = (x, std::hint::black_box(f));
}

pub fn run_cpu(duration: Duration, gate: bool) -> Result<()> {
    if !wait_at_gate(gate) {
        return Ok(());
    }
    let (mut progress, started) = Progress::begin("cpu");
    emit(&Line::Start { mono_ns: started });
    let deadline = started + duration.as_nanos() as u64;
    let mut state = (0x9E37_79B9_7F4A_7C15u64, 1.0f64);
    let mut ops = 0u64;
    loop {
        cpu_block(&mut state);
        ops += CPU_BLOCK;
        let now = monotonic_ns();
        if now >= deadline {
            break;
        }
        progress.tick(now, ops as f64);
    }
    progress.finish(ops as f64, "ops/s", 1.0, started);
    Ok(())
}

/// A buffer aligned for O_DIRECT, filled with bytes no device can compress.
fn aligned_buffer(size: usize) -> (Vec<u8>, usize) {
    const ALIGN: usize = 4096;
    let mut storage = vec![0u8; size + ALIGN];
    let offset = storage.as_ptr().align_offset(ALIGN);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for chunk in storage[offset..offset + size].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    (storage, offset)
}

fn open_data_file(path: &Path, direct: bool) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path)
}

pub fn run_disk(
    duration: Duration,
    gate: bool,
    size: u64,
    dir: &Path,
    block_size: usize,
) -> Result<()> {
    if block_size == 0 || block_size % 4096 != 0 {
        bail!("block size {block_size} must be a positive multiple of 4096");
    }
    let path = dir.join(format!("vmbench-disk-{}.dat", std::process::id()));
    let (file, direct) = match open_data_file(&path, true) {
        Ok(f) => (f, true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            // tmpfs and some others refuse O_DIRECT; a cache drop stands in.
            let _ = std::fs::remove_file(&path);
            (
                open_data_file(&path, false)
                    .with_context(|| format!("creating {}", path.display()))?,
                false,
            )
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    // Unlinked at once: the data set vanishes with the process, even on kill -9.
    std::fs::remove_file(&path).with_context(|| format!("unlinking {}", path.display()))?;
    if !direct {
        emit(&Line::Note {
            message: format!(
                "{} refuses O_DIRECT; reading after fsync and a page-cache drop",
                dir.display()
            ),
        });
    }
    let (storage, offset) = aligned_buffer(block_size);
    let block = &storage[offset..offset + block_size];
    let pass_budget = duration.as_nanos() as u64 / 2;
    let mut written = 0u64;
    if !wait_at_gate(gate) {
        return Ok(());
    }
    let (mut progress, started) = Progress::begin("write");
    emit(&Line::Start { mono_ns: started });
    use std::os::unix::fs::FileExt;
    while written < size && monotonic_ns() - started < pass_budget {
        let n = file
            .write_at(block, written)
            .with_context(|| format!("writing {}", path.display()))?;
        written += n as u64;
        progress.tick(monotonic_ns(), written as f64);
    }
    file.sync_all()
        .with_context(|| format!("fsync of {}", path.display()))?;
    progress.finish(written as f64, "MB/s", 1e-6, started);
    if !direct {
        use std::os::fd::AsRawFd;
        // SAFETY: advisory call on a descriptor this function owns.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    let mut read_block = storage;
    let (mut progress, started) = Progress::begin("read");
    let mut read = 0u64;
    while read < written && monotonic_ns() - started < pass_budget {
        let n = file
            .read_at(&mut read_block[offset..offset + block_size], read)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        read += n as u64;
        progress.tick(monotonic_ns(), read as f64);
    }
    progress.finish(read as f64, "MB/s", 1e-6, started);
    Ok(())
}

pub fn run_net(duration: Duration, gate: bool, connect: SocketAddr, buffer: usize) -> Result<()> {
    let mut stream = TcpStream::connect(connect)
        .with_context(|| format!("connecting to the receiver at {connect}"))?;
    let (storage, offset) = aligned_buffer(buffer);
    let block = &storage[offset..offset + buffer];
    if !wait_at_gate(gate) {
        return Ok(());
    }
    let (mut progress, started) = Progress::begin("send");
    emit(&Line::Start { mono_ns: started });
    let deadline = started + duration.as_nanos() as u64;
    let mut sent = 0u64;
    loop {
        let now = monotonic_ns();
        if now >= deadline {
            break;
        }
        progress.tick(now, sent as f64);
        sent += stream.write(block).context("sending to the receiver")? as u64;
    }
    // The stream ends when the receiver has drained it, so bytes still in
    // socket buffers are not counted as sent faster than they arrived.
    stream
        .shutdown(std::net::Shutdown::Write)
        .context("closing the stream")?;
    let mut ack = [0u8; 8];
    stream
        .read_exact(&mut ack)
        .context("waiting for the receiver's count")?;
    let received = u64::from_le_bytes(ack);
    if received != sent {
        bail!("the receiver counted {received} bytes, {sent} were sent");
    }
    progress.finish(received as f64, "Gbit/s", 8e-9, started);
    Ok(())
}

/// The receiver of `net` copies: drains every connection and answers with the
/// byte count when the sender closes its side.
pub fn run_net_sink(listen: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    emit(&Line::Listening {
        addr: listener.local_addr()?,
    });
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 256 << 10];
            let mut total = 0u64;
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n as u64,
                    Err(_) => return,
                }
            }
            let _ = stream.write_all(&total.to_le_bytes());
        });
    }
    Ok(())
}

/// Reads the receiver's address from the first line it prints.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    match serde_json::from_str::<Line>(line) {
        Ok(Line::Listening { addr }) => Some(addr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_fixture(name: &str, spec: &WorkloadSpec) -> Vec<Output> {
        let path = format!(
            "{}/tests/fixtures/workload/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut parser = LineParser::new(metrics(spec), None);
        text.lines()
            .flat_map(|l| {
                parser
                    .parse_line(l)
                    .unwrap_or_else(|e| panic!("{path}: {e}"))
            })
            .collect()
    }

    #[test]
    fn captured_cpu_output_gives_start_progress_and_result() {
        let out = parse_fixture("cpu.jsonl", &WorkloadSpec::Cpu);
        assert!(matches!(out[0], Output::Progress { metric: 0, done, .. } if done == 0.0));
        assert!(out.iter().any(|o| matches!(o, Output::Started { .. })));
        let Some(Output::Result {
            metric,
            value,
            unit,
        }) = out.last()
        else {
            panic!("no result in {out:?}");
        };
        assert_eq!((metric.as_str(), unit.as_str()), ("cpu", "ops/s"));
        assert!(*value > 0.0);
    }

    #[test]
    fn captured_disk_output_has_write_then_read() {
        let spec: WorkloadSpec = toml::from_str::<toml::Table>("w = { type = \"disk\" }")
            .expect("toml")
            .remove("w")
            .expect("w")
            .try_into()
            .expect("disk spec");
        let out = parse_fixture("disk.jsonl", &spec);
        let results: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                Output::Result { metric, .. } => Some(metric.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(results, vec!["write", "read"]);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Progress { metric: 1, .. }))
        );
    }

    #[test]
    fn captured_errors_become_failures() {
        let out = parse_fixture("disk-error.jsonl", &WorkloadSpec::Cpu);
        assert!(matches!(&out[0], Output::Failed(m) if m.contains("No such file")));
        let sink = std::fs::read_to_string(format!(
            "{}/tests/fixtures/workload/net-sink.jsonl",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture");
        assert!(parse_listening(sink.trim()).is_some_and(|a| a.ip().is_loopback()));
    }

    #[test]
    fn arbitrary_input_is_an_error_never_a_panic() {
        let mut parser = LineParser::new(metrics(&WorkloadSpec::Cpu), None);
        let mut x = 0x1234_5678_9abc_def0u64;
        for len in 0..2000 {
            let line: String = (0..len % 97)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b"{}[]\":,0123456789.eE-+kindprogressmetric \\u"[(x % 43) as usize])
                })
                .collect();
            let _ = parser.parse_line(&line);
        }
        assert!(
            parser
                .parse_line("{\"kind\":\"progress\",\"metric\":\"nope\",\"mono_ns\":1,\"done\":1}")
                .is_err()
        );
        assert!(parser.parse_line("not json").is_err());
    }
}
