//! Start skew of N copies on testbed guests, judged like for like: every
//! launcher's copies print their start on the same clock (the namespace
//! guests share this host's CLOCK_MONOTONIC), and the skew is the spread of
//! those raw stamps. vmbench's barrier against parallel-ssh opening its
//! connections, and against parallel-ssh over already-open ControlMaster
//! connections (its best case: no handshake left in the launch).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use vmbench::event::Event;
use vmbench::model::Session;
use vmbench::store::Reader;

use crate::{median, testbed};

const REPETITIONS: usize = 7;

/// Per phase of the recording: its copies, the spread of their raw start
/// stamps, and the skew vmbench recorded (from converted stamps) with the
/// clock uncertainty it adds to it, in milliseconds.
struct PhaseSkew {
    copies: u32,
    raw_ms: f64,
    recorded_ms: f64,
    uncertainty_ms: f64,
}

fn recorded_skews(path: &Path) -> Vec<PhaseSkew> {
    let reader = Reader::open(path).expect("recording");
    let events = reader.events(0, u64::MAX).expect("events");
    let mut session = Session::new(reader.header.clone());
    let mut raw = HashMap::new();
    for event in &events {
        session.apply(event);
        if let Event::RunStarted {
            run,
            machine_ns: Some(ns),
            ..
        } = event
        {
            raw.insert(*run, *ns);
        }
    }
    let results = &session.results;
    session
        .phases
        .iter()
        .filter_map(|p| {
            let stamps: Vec<u64> = p.runs.iter().filter_map(|r| raw.get(r).copied()).collect();
            if stamps.len() != p.runs.len() {
                return None;
            }
            // Results number phases from 1, as the user sees them.
            let result = results.phases.iter().find(|r| r.phase == p.id + 1)?;
            Some(PhaseSkew {
                copies: p.concurrency,
                raw_ms: (stamps.iter().max()? - stamps.iter().min()?) as f64 / 1e6,
                recorded_ms: result.skew_ms?,
                uncertainty_ms: result.clock_uncertainty_ms.unwrap_or(0.0),
            })
        })
        .collect()
}

/// parallel-ssh starting the same copy on the first n guests: the spread of
/// the copies' own start stamps. `extra` are ssh options for every guest.
fn parallel_ssh_skew_ms(dir: &Path, exe: &str, n: usize, extra: &[String]) -> Option<f64> {
    let hosts = dir.join(format!("hosts-{n}"));
    let list: String = (1..=n).map(|i| testbed::address(i) + "\n").collect();
    std::fs::write(&hosts, list).ok()?;
    let mut command = Command::new("parallel-ssh");
    command
        .arg("-h")
        .arg(&hosts)
        .args(["-l", "root", "-p", "64", "-t", "60", "-i"]);
    for option in testbed::ssh_options().iter().chain(extra) {
        command.args(["-x", option]);
    }
    let out = command
        .arg(format!("{exe} workload cpu --duration-ms 1000"))
        .output()
        .ok()?;
    let starts: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"kind\":\"start\""))
        .filter_map(|l| {
            let value: serde_json::Value = serde_json::from_str(l).ok()?;
            value["mono_ns"].as_u64()
        })
        .collect();
    if starts.len() != n {
        return None;
    }
    Some((starts.iter().max()? - starts.iter().min()?) as f64 / 1e6)
}

/// What to do with a ControlMaster connection to each of the first n guests.
#[derive(Clone, Copy)]
enum Master {
    Open,
    /// Whether it is there to be used (`ssh -O check`).
    Check,
    Exit,
}

fn control_masters(n: usize, control_path: &str, what: Master) -> bool {
    (1..=n).all(|i| {
        let mut ssh = Command::new("ssh");
        ssh.args(testbed::ssh_options())
            .arg(format!("-oControlPath={control_path}"));
        match what {
            Master::Open => ssh.args(["-MNf", "-oControlPersist=600"]),
            Master::Check => ssh.args(["-O", "check"]),
            Master::Exit => ssh.args(["-O", "exit"]),
        };
        ssh.arg(format!("root@{}", testbed::address(i)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

pub fn bench_skew(dir: &Path, many: usize) {
    let exe = env!("CARGO_BIN_EXE_vmbench");
    let plan = dir.join("skew.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"skew\"\n{}[[benchmark]]\nname = \"cpu\"\nworkload = {{ type = \"cpu\" }}\n\
             duration = \"1s\"\nconcurrency = [2, {many}]\nrepetitions = {REPETITIONS}\n",
            testbed::guests(many)
        ),
    )
    .expect("plan");
    let out = dir.join("skew.vmb");
    let status = Command::new(exe)
        .arg("record")
        .arg(&plan)
        .arg("-o")
        .arg(&out)
        .stderr(Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        println!("start skew: the vmbench session failed");
        return;
    }
    let skews = recorded_skews(&out);
    // %C is a hash of the connection: short enough for a socket path.
    let control_path = format!("{}/cm-%C", dir.display());
    // A run that did not go over its master fails (and is not counted):
    // ssh falls back to a connection of its own, which this proxy refuses.
    let control = [
        format!("-oControlPath={control_path}"),
        "-oControlMaster=no".to_string(),
        "-oProxyCommand=false".to_string(),
    ];
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    for n in [2, many] {
        let ours: Vec<&PhaseSkew> = skews.iter().filter(|s| s.copies as usize == n).collect();
        let cold: Vec<f64> = (0..REPETITIONS)
            .filter_map(|_| parallel_ssh_skew_ms(dir, exe, n, &[]))
            .collect();
        let warm: Vec<f64> = if control_masters(n, &control_path, Master::Open)
            && control_masters(n, &control_path, Master::Check)
        {
            (0..REPETITIONS)
                .filter_map(|_| parallel_ssh_skew_ms(dir, exe, n, &control))
                .collect()
        } else {
            Vec::new()
        };
        control_masters(n, &control_path, Master::Exit);
        if ours.is_empty() || cold.is_empty() || warm.is_empty() {
            println!(
                "start skew of {n} guests: not measured (vmbench phases {}, parallel-ssh runs {} cold, {} over ControlMaster; is pssh installed?)",
                ours.len(),
                cold.len(),
                warm.len()
            );
            continue;
        }
        let raw = median(ours.iter().map(|s| s.raw_ms).collect());
        let recorded = median(ours.iter().map(|s| s.recorded_ms).collect());
        let uncertainty = median(ours.iter().map(|s| s.uncertainty_ms).collect());
        let (cold, warm) = (median(cold), median(warm));
        println!(
            "start skew of {n} guests on {cores} cores, raw stamps of one clock, median of {REPETITIONS}: \
             vmbench {raw:.3} ms (recorded as {recorded:.3} ms jitter ± {uncertainty:.3} ms clock), \
             parallel-ssh {cold:.1} ms ({:.0}× vmbench's), over open ControlMaster connections {warm:.1} ms ({:.0}×)",
            cold / raw.max(1e-6),
            warm / raw.max(1e-6)
        );
    }
}
