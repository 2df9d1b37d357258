//! Helpers the end-to-end test files share.
// Each test file uses its own part of them.
#![allow(dead_code)]

pub mod recorded;
pub mod testbed;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmbench::app::{Bus, Consumer, Live};
use vmbench::plan::LoadedPlan;

pub fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vmbench"))
}

pub fn drain_until_finished(consumer: &mut Consumer, bus: &Bus, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !consumer.finished() {
        assert!(
            Instant::now() < deadline,
            "the session did not finish within {limit:?}"
        );
        if let Ok(msg) = bus.rx.recv_timeout(Duration::from_millis(100)) {
            consumer.take(msg);
        }
    }
}

/// Runs a plan to its end, started at once, and closes its recording.
pub fn run_live(plan: &Path, recording: &Path, limit: Duration) -> Consumer {
    let plan = LoadedPlan::from_file(plan).expect("test plan");
    let (live, mut consumer, bus) =
        Live::start(&plan, recording, true, exe()).expect("live session");
    drain_until_finished(&mut consumer, &bus, limit);
    live.shutdown();
    consumer.close().expect("recording closes");
    consumer
}

/// A chart is well-formed SVG with something drawn in it.
pub fn assert_valid_svg(path: &Path) {
    let text = std::fs::read_to_string(path).expect("chart");
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{}: not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let shapes = doc
        .descendants()
        .filter(|n| matches!(n.tag_name().name(), "rect" | "polyline" | "line" | "circle"))
        .count();
    assert!(shapes > 10, "{}: {shapes} shapes", path.display());
}

/// A child's stderr as lines sent on as they come, read to its end on a
/// thread of its own (so that the child never blocks on a full pipe).
pub fn stderr_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// How long any one command a test runs may take (a whole recorded
/// session included): past it the test fails instead of holding CI.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(300);

/// Waits for `child` to exit; past `limit` it is killed and the test fails.
pub fn wait_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    wait_or_kill(child, limit)
        .unwrap_or_else(|| panic!("pid {} did not exit within {limit:?}", child.id()))
}

/// Waits for `child` to exit, or kills it past `limit` (None): for a
/// clean-up that must not panic (one already under way aborts the tests).
pub fn wait_or_kill(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `Command::output` and `status` with a deadline: past `limit` the
/// command is killed and the test fails.
pub trait Bounded {
    fn output_within(&mut self, limit: Duration) -> std::process::Output;
    fn status_within(&mut self, limit: Duration) -> std::process::ExitStatus;
}

impl Bounded for std::process::Command {
    fn output_within(&mut self, limit: Duration) -> std::process::Output {
        use std::io::Read;
        use std::process::Stdio;
        // As `output` does: nothing to read on stdin.
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{:?} does not start: {e}", self.get_program()));
        let deadline = Instant::now() + limit;
        // Read on threads of their own, so that a full pipe never blocks it;
        // a daemon it left holding the pipe must not hold the test either.
        let drain = |mut pipe: Box<dyn Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                let _ = tx.send(bytes);
            });
            rx
        };
        let stdout = drain(Box::new(child.stdout.take().expect("piped")));
        let stderr = drain(Box::new(child.stderr.take().expect("piped")));
        let status = wait_within(&mut child, limit);
        let read = |rx: std::sync::mpsc::Receiver<Vec<u8>>| {
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!(
                        "{:?}: its output stayed open past {limit:?}",
                        self.get_program()
                    )
                })
        };
        std::process::Output {
            status,
            stdout: read(stdout),
            stderr: read(stderr),
        }
    }

    fn status_within(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self
            .spawn()
            .unwrap_or_else(|e| panic!("{:?} does not start: {e}", self.get_program()));
        wait_within(&mut child, limit)
    }
}
