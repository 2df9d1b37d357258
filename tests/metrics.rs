//! Live metrics scraped by a real Prometheus server (Debian's `prometheus`,
//! started here on 127.0.0.1): what PromQL answers over its HTTP API is
//! what vmbench itself recorded.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmbench::store::Reader;

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A GET over plain HTTP/1.1: (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant PromQL query: each result's labels and value.
fn query(port: u16, promql: &str) -> Vec<(serde_json::Value, f64)> {
    let path = format!("/api/v1/query?query={}", percent_encoded(promql));
    let Some((200, body)) = get(port, &path) else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_str(&body).expect("Prometheus answers JSON");
    json["data"]["result"]
        .as_array()
        .map(|results| {
            results
                .iter()
                .filter_map(|r| {
                    let value = r["value"][1].as_str()?.parse().ok()?;
                    Some((r["metric"].clone(), value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `check` gives something, for at most `limit`.
fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The rate of this host's cpu.user ticks over [from, to] (unix seconds),
/// as vmbench's own recording has it.
fn recorded_rate(recording: &Path, from: f64, to: f64) -> f64 {
    let reader = Reader::open(recording).expect("recording");
    let started = reader.header.started_unix_ns as f64 / 1e9;
    let id = reader
        .series
        .iter()
        .find(|s| s.source == "host" && s.metric == "cpu.user")
        .expect("host cpu.user")
        .id;
    let points: Vec<(f64, f64)> = reader
        .samples(0, u64::MAX)
        .expect("samples")
        .iter()
        .filter_map(|s| {
            let value = s.values.iter().find(|(i, _)| *i == id)?.1;
            Some((started + s.t as f64 / 1e9, value as f64))
        })
        .filter(|(t, _)| (from..=to).contains(t))
        .collect();
    let (first, last) = (
        points.first().expect("points"),
        points.last().expect("points"),
    );
    (last.1 - first.1) / (last.0 - first.0)
}

#[test]
fn a_real_prometheus_scrapes_a_live_session_and_agrees_with_its_recording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "name = \"scraped\"\ninterval = \"1s\"\n[[guest]]\nname = \"host\"\ntransport = \"local\"\n\
         technology = \"bare-metal\"\n[[benchmark]]\nname = \"first\"\nworkload = { type = \"cpu\" }\n\
         duration = \"2s\"\nconcurrency = [1]\n[[benchmark]]\nname = \"cpu\"\nworkload = { type = \"cpu\" }\n\
         duration = \"30s\"\nconcurrency = [1]\n",
    )
    .expect("plan");
    let recording = dir.path().join("scraped.vmb");
    let mut vmbench = Command::new(common::exe())
        .args([
            "record",
            plan.to_str().expect("utf-8"),
            "-o",
            recording.to_str().expect("utf-8"),
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmbench records");
    // Where it serves, as it says on its first lines.
    let mut lines = BufReader::new(vmbench.stderr.take().expect("stderr")).lines();
    let target = eventually(Duration::from_secs(30), "vmbench says where", || {
        let line = lines.next()?.ok()?;
        Some(
            line.split_once("metrics at http://")?
                .1
                .trim_end_matches("/metrics")
                .to_string(),
        )
    });
    // The rest of its progress lines are read and let go.
    std::thread::spawn(move || for _ in lines {});
    let mut vmbench = Running(vmbench);

    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: vmbench\n    \
             static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("config");
    let prometheus = Running(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts (Debian's prometheus package)"),
    );
    eventually(Duration::from_secs(60), "Prometheus is ready", || {
        matches!(get(port, "/-/ready"), Some((200, _))).then_some(())
    });
    // The target is up, and the phase is seen running.
    eventually(Duration::from_secs(60), "the cpu phase is scraped", || {
        query(port, "vmbench_phase{benchmark=\"cpu\"}")
            .first()
            .filter(|(labels, value)| *value == 1.0 && labels["job"] == "vmbench")
            .map(|_| ())
    });
    let (labels, up) = query(port, "up{job=\"vmbench\"}").pop().expect("up");
    assert_eq!(up, 1.0, "{labels}");
    // The first phase has ended, the second has not.
    let (labels, ended) = query(port, "vmbench_phases_ended_total")
        .pop()
        .expect("vmbench_phases_ended_total");
    assert_eq!(ended, 1.0, "{labels}");
    // A counter as a counter: Prometheus's rate of this host's user time
    // over 10 s, against vmbench's own recording over the same 10 s.
    std::thread::sleep(Duration::from_secs(12));
    let rates = query(
        port,
        "rate(vmbench_counter_total{source=\"host\",metric=\"cpu.user\"}[10s])",
    );
    let asked = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let (labels, scraped) = rates.first().cloned().expect("a rate");
    assert_eq!(labels["unit"], "ticks");
    assert!(labels["guest"].is_null(), "{labels}");
    let work = query(
        port,
        "vmbench_copy_work_total{guest=\"host\",technology=\"bare-metal\"}",
    );
    assert!(!work.is_empty(), "the running copy's work is exposed");
    drop(prometheus);
    let status = common::wait_within(&mut vmbench.0, common::COMMAND_LIMIT);
    assert!(status.success());
    let own = recorded_rate(&recording, asked - 10.0, asked);
    // One core busy with the copy: some 100 ticks a second, whoever counts.
    assert!(own > 50.0, "vmbench recorded {own} ticks/s");
    assert!(
        (scraped - own).abs() / own < 0.25,
        "Prometheus: {scraped:.1} ticks/s, vmbench's recording: {own:.1} ticks/s"
    );
}
