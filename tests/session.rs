//! End to end on this host: the real workloads, the real /proc, the real
//! recording; live and replay compared; a crash survived.

mod common;

use common::{Bounded, COMMAND_LIMIT};

use common::{drain_until_finished, exe};

use std::path::{Path, PathBuf};
use std::time::Duration;

use vmbench::app::{Consumer, Replay};
use vmbench::event::{Event, PhaseOutcome};
use vmbench::model::PhaseSummary;
use vmbench::store::{Reader, Writer};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/tests/fixtures/plans/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// Runs `vmbench export` and expects it to succeed.
fn export(recording: &Path, out: &Path) {
    let status = std::process::Command::new(exe())
        .args([
            "export",
            recording.to_str().expect("utf-8"),
            "--csv",
            out.to_str().expect("utf-8"),
        ])
        .status_within(COMMAND_LIMIT);
    assert!(status.success());
}

fn summaries(consumer: &Consumer) -> Vec<(u32, Option<PhaseOutcome>, Option<PhaseSummary>)> {
    consumer
        .session
        .phases
        .iter()
        .map(|p| (p.id, p.ended.map(|e| e.1), p.summary.clone()))
        .collect()
}

#[test]
fn a_live_session_replayed_gives_the_same_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.vmb");
    let live = run_live_for(&fixture("tiny.toml"), &path);
    let live_results = summaries(&live);
    assert_eq!(live_results.len(), 4, "cpu ×1, cpu ×2, disk ×2, net ×2");
    for (id, outcome, summary) in &live_results {
        assert_eq!(
            *outcome,
            Some(PhaseOutcome::Completed),
            "phase {id}: {:?}",
            live.session.log
        );
        let summary = summary.as_ref().expect("summarised");
        assert!(
            summary.skew.is_some_and(|s| s < 50_000_000),
            "phase {id} skew {:?}",
            summary.skew
        );
        for m in &summary.metrics {
            assert!(
                m.aggregate.is_some_and(|a| a > 0.0),
                "phase {id} {}: {m:?}",
                m.metric.name
            );
        }
    }
    assert_eq!(live.failed_runs, 0);

    let (_replay, mut replayed, bus) = Replay::open(&path, 10_000.0, false).expect("replay opens");
    drain_until_finished(&mut replayed, &bus, Duration::from_secs(60));
    assert_eq!(summaries(&replayed), live_results);
    assert_eq!(replayed.session.ended, live.session.ended);
    assert_eq!(
        replayed.recording.map(|(_, writer)| writer),
        Some(Writer::Finished)
    );

    // The host's own counters were sampled throughout.
    let reader = Reader::open(&path).expect("reader");
    let samples = reader.samples(0, u64::MAX).expect("samples");
    let seconds = live.session.ended.expect("ended").0 as f64 / 1e9;
    assert!(
        samples.len() as f64 >= seconds / 0.2 * 0.8,
        "{} samples in {seconds:.1}s",
        samples.len()
    );
    assert!(
        reader
            .series
            .iter()
            .any(|s| s.source.starts_with("run/") && s.metric == "cpu.utime")
    );
}

#[test]
fn export_writes_csv_that_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.vmb");
    run_live_for(&fixture("tiny.toml"), &path);
    let out = dir.path().join("csv");
    export(&path, &out);

    let mut long = csv::Reader::from_path(out.join("samples_long.csv")).expect("long csv");
    assert_eq!(
        long.headers().expect("header").iter().collect::<Vec<_>>(),
        ["t_s", "source", "metric", "unit", "value"]
    );
    let mut last_t = 0.0;
    let mut units = std::collections::HashMap::new();
    for row in long.records() {
        let row = row.expect("row");
        let t: f64 = row[0].parse().expect("t_s is a number");
        assert!(t >= last_t, "timestamps go back: {last_t} then {t}");
        last_t = t;
        let unit = units
            .entry((row[1].to_string(), row[2].to_string()))
            .or_insert_with(|| row[3].to_string());
        assert_eq!(*unit, row[3], "one unit per metric");
        row[4].parse::<u64>().expect("value is a whole number");
    }
    let mut wide = csv::Reader::from_path(out.join("samples_wide.csv")).expect("wide csv");
    let header = wide.headers().expect("header").clone();
    assert_eq!(&header[0], "t_s");
    assert!(header.iter().all(|h| !h.is_empty()));
    assert!(
        wide.records()
            .all(|r| r.expect("row").len() == header.len())
    );
    let results = csv::Reader::from_path(out.join("results.csv"))
        .expect("results")
        .records()
        .count();
    // cpu 1 + cpu 2 + disk 2 copies × 2 metrics + net 2.
    assert_eq!(results, 1 + 2 + 4 + 2);
    let phases = csv::Reader::from_path(out.join("phases.csv"))
        .expect("phases")
        .records()
        .count();
    assert_eq!(phases, 5);
    // A bare-metal session has no guest to reconcile: overhead.csv has no
    // rows, and still its header (pandas refuses an empty file).
    let mut overhead = csv::Reader::from_path(out.join("overhead.csv")).expect("overhead");
    assert_eq!(
        overhead.headers().expect("header").get(0),
        Some("source"),
        "overhead.csv has its header"
    );
    assert_eq!(overhead.records().count(), 0);
}

#[test]
fn kill_9_leaves_a_readable_recording_and_no_benchmark_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("long.toml");
    std::fs::write(
        &plan,
        "name = \"long\"\n[[guest]]\nname = \"host\"\ntransport = \"local\"\ntechnology = \"bare-metal\"\n\
         [[benchmark]]\nname = \"cpu\"\nworkload = { type = \"cpu\" }\nduration = \"60s\"\nconcurrency = [2]\n",
    )
    .expect("plan");
    let path = dir.path().join("killed.vmb");
    let mut child = std::process::Command::new(exe())
        .args([
            "record",
            plan.to_str().expect("utf-8"),
            "-o",
            path.to_str().expect("utf-8"),
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("record starts");
    std::thread::sleep(Duration::from_millis(3500));
    // A replay following the recording while it is written sees the writer
    // at work (it plays 11 s behind it, as late as a guest's sample may
    // arrive; here nothing is that old yet).
    let (_replay, mut follower, bus) = Replay::open(&path, 1.0, true).expect("follows");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while follower.recording.is_none_or(|(_, w)| w != Writer::Writing) {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower did not see the writer: {:?}",
            follower.recording
        );
        if let Ok(msg) = bus.rx.recv_timeout(Duration::from_millis(100)) {
            follower.take(msg);
        }
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let killed = std::time::Instant::now();
    // Then it says the writer is gone and where the recording stops, and
    // stops following.
    drain_until_finished(&mut follower, &bus, Duration::from_secs(30));
    let (end, writer) = follower.recording.expect("told");
    assert_eq!(writer, Writer::Gone);
    // Once gone, everything it committed was played: its phase never ended.
    assert!(follower.session.current_phase().is_some());
    let last = follower.session.log.back().expect("a log entry");
    assert!(
        last.text.contains("writer is gone") && last.t == end,
        "{:?}",
        last.text
    );
    eprintln!(
        "the follower said the writer was gone {:?} after kill -9",
        killed.elapsed()
    );

    let reader = Reader::open(&path).expect("a killed recording opens");
    let end = reader.end().expect("end");
    assert!(end >= 2_000_000_000, "only {end} ns readable after 3.5 s");
    assert!(reader.samples(0, u64::MAX).expect("samples").len() >= 2);
    let pids: Vec<u32> = reader
        .events(0, u64::MAX)
        .expect("events")
        .iter()
        .filter_map(|e| match e {
            Event::RunSpawned { pid, .. } => *pid,
            _ => None,
        })
        .collect();
    assert_eq!(pids.len(), 2, "both copies were recorded");
    std::thread::sleep(Duration::from_millis(300));
    for pid in pids {
        let alive =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "));
        assert!(!alive, "copy {pid} outlived vmbench");
    }
    let out = dir.path().join("csv");
    export(&path, &out);
}

fn run_live_for(plan: &Path, recording: &Path) -> Consumer {
    common::run_live(plan, recording, Duration::from_secs(120))
}

#[test]
fn an_adaptive_level_that_never_gives_a_result_stops_at_its_maximum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("failing.vmb");
    let live = run_live_for(&fixture("adaptive-failing.toml"), &path);
    let repetitions: Vec<u32> = live.session.phases.iter().map(|p| p.repetition).collect();
    assert_eq!(repetitions, [1, 2, 3], "{:?}", live.session.log);
    assert!(
        live.session
            .results
            .phases
            .iter()
            .all(|r| r.aggregate.is_none())
    );
}

#[test]
fn adaptive_benchmarks_repeat_until_their_spread_settles_in_random_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("adaptive.vmb");
    let live = run_live_for(&fixture("adaptive.toml"), &path);
    let runs_of = |name: &str| {
        live.session
            .phases
            .iter()
            .filter(|p| p.benchmark == name)
            .map(|p| p.repetition)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    // Two cpu runs of 1 s agree within 50 %: no third.
    assert_eq!(runs_of("settles"), [1, 2], "{:?}", live.session.log);
    // No two runs agree within a millionth of a percent: up to the maximum.
    assert_eq!(runs_of("never"), [1, 2, 3, 4], "{:?}", live.session.log);
    let order: Vec<&str> = live
        .session
        .phases
        .iter()
        .map(|p| p.benchmark.as_str())
        .collect();
    // Seed 7 shuffles the four planned phases so that the benchmarks mix.
    assert_ne!(order[..2], ["settles", "settles"], "{order:?}");
    assert!(
        live.session
            .log
            .iter()
            .any(|l| l.text.contains("random order, seed 7")),
        "{:?}",
        live.session.log
    );
}

/// Takes the bus's messages into `consumer` until `done` holds of its
/// session; fails past `limit`.
fn drain_until(
    consumer: &mut Consumer,
    bus: &vmbench::app::Bus,
    what: &str,
    limit: Duration,
    done: impl Fn(&vmbench::model::Session) -> bool,
) {
    let deadline = std::time::Instant::now() + limit;
    while !done(&consumer.session) {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {limit:?}: {what}"
        );
        if let Ok(msg) = bus.rx.recv_timeout(Duration::from_millis(50)) {
            consumer.take(msg);
        }
    }
}

/// `n` (skip) and `a` (abort), as the TUI's keys send them to the
/// orchestrator: each ends the phase under way at once with its outcome;
/// after a skip the next phase runs, after an abort the plan waits for `s`.
#[test]
fn skip_goes_on_and_abort_holds_the_plan_until_start() {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use vmbench::orchestrate::{Control, StopCause};
    use vmbench::ui::keys::{Action, KeyMap, action_for};
    // The keys, in a live session, are the actions sent on as below.
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    assert_eq!(
        action_for(key('n'), false, &KeyMap::default()),
        Some(Action::Skip)
    );
    assert_eq!(
        action_for(key('a'), false, &KeyMap::default()),
        Some(Action::Abort)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let marker = format!("60.{}", std::process::id());
    let sleeper = |name: &str| {
        format!(
            "[[benchmark]]\nname = \"{name}\"\nworkload = {{ type = \"custom\", command = [\"sleep\", \"{marker}\"], \
             result_regex = \"never\", metric = \"none\", unit = \"-\" }}\nduration = \"60s\"\nconcurrency = [1]\n\n"
        )
    };
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"steered\"\ninterval = \"200ms\"\n\n[[guest]]\nname = \"host\"\ntransport = \"local\"\n\
             technology = \"bare-metal\"\n\n{}{}{}",
            sleeper("first"),
            sleeper("second"),
            sleeper("third")
        ),
    )
    .expect("plan");
    let plan = vmbench::plan::LoadedPlan::from_file(&plan).expect("plan");
    let (live, mut consumer, bus) =
        vmbench::app::Live::start(&plan, &dir.path().join("steered.vmb"), true, exe())
            .expect("live session");
    let limit = Duration::from_secs(30);
    let running = |phase: usize| {
        move |s: &vmbench::model::Session| s.phases.get(phase).is_some_and(|p| p.released.is_some())
    };
    let ended = |phase: usize| {
        move |s: &vmbench::model::Session| s.phases.get(phase).and_then(|p| p.ended).map(|e| e.1)
    };
    drain_until(
        &mut consumer,
        &bus,
        "the first phase runs",
        limit,
        running(0),
    );
    live.control.send(Control::Skip).expect("sent");
    drain_until(
        &mut consumer,
        &bus,
        "the second phase runs",
        limit,
        running(1),
    );
    assert_eq!(ended(0)(&consumer.session), Some(PhaseOutcome::Skipped));
    live.control.send(Control::Abort).expect("sent");
    drain_until(&mut consumer, &bus, "the second phase ends", limit, |s| {
        ended(1)(s).is_some()
    });
    assert_eq!(ended(1)(&consumer.session), Some(PhaseOutcome::Aborted));
    // Held: no third phase for as long as nobody says start.
    let held = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < held {
        if let Ok(msg) = bus.rx.recv_timeout(Duration::from_millis(50)) {
            consumer.take(msg);
        }
    }
    assert_eq!(consumer.session.phases.len(), 2, "the plan went on");
    live.control.send(Control::Start).expect("sent");
    drain_until(
        &mut consumer,
        &bus,
        "the third phase runs",
        limit,
        running(2),
    );
    live.control
        .send(Control::Quit(StopCause::Operator))
        .expect("sent");
    drain_until_finished(&mut consumer, &bus, limit);
    live.shutdown();
    consumer.close().expect("recording closes");
    // Every copy killed: none of this test's sleeps is left.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while common::testbed::processes_naming(&format!("sleep {marker}"))
        .iter()
        .any(|p| p.contains(&format!(": sleep {marker}")))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a copy outlived its phase"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
