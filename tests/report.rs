//! `vmbench report` on recordings with known values: the matrix, intervals
//! and flags it prints must be the ones computed by hand (see the comments),
//! in every format.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use vmbench::event::Event;
use vmbench::header::{Header, HostSpecs};
use vmbench::plan::LoadedPlan;
use vmbench::store::Recorder;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/tests/fixtures/report/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

/// Writes a recording of the fixture's events, as if `plan.toml` had run.
fn recording(dir: &Path, name: &str) -> PathBuf {
    let plan = LoadedPlan::from_file(&fixture("plan.toml")).expect("fixture plan");
    // The figures are the events'; the host's specs do not enter them, and
    // whether the machine running the tests is virtual must not either.
    let host = HostSpecs {
        virtualization: None,
        ..HostSpecs::of_this_host()
    };
    let header = Header::new(
        &plan,
        host,
        0,
        &vmbench::event::Clock::start(),
        plan.plan.schedule(2),
    );
    let path = dir.join(format!("{name}.vmb"));
    let recorder = Recorder::create(&path, &header).expect("recorder");
    let events = std::fs::read_to_string(fixture(&format!("{name}.jsonl"))).expect("events");
    for line in events.lines() {
        let event: Event = serde_json::from_str(line).expect("fixture event");
        recorder.record(event).expect("recorded");
    }
    recorder.close().expect("closed");
    path
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn report(dir: &Path, args: &[&str]) -> Run {
    let out = Command::cargo_bin("vmbench")
        .expect("binary")
        .timeout(std::time::Duration::from_secs(120))
        .current_dir(dir)
        .arg("report")
        .args(args)
        .output()
        .expect("vmbench runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn close(actual: &serde_json::Value, expected: f64) -> bool {
    actual
        .as_f64()
        .is_some_and(|a| (a - expected).abs() < 1e-9 * expected.abs().max(1.0))
}

fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["host", "guests", "guests-20s"] {
        recording(dir.path(), name);
    }
    dir
}

#[test]
fn the_matrix_is_the_one_computed_by_hand() {
    let dir = fixtures();
    let run = report(dir.path(), &["host.vmb", "guests.vmb", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let m: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(m["technologies"], serde_json::json!(["bare-metal", "kvm"]));
    let rows = m["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{rows:#?}");
    // t(0.975, 2) = 4.302652729749464: three repetitions per cell.
    let t2 = 4.302652729749464_f64;
    let one = &rows[0];
    assert_eq!(
        (one["workload"].as_str(), one["concurrency"].as_u64()),
        (Some("cpu"), Some(1))
    );
    let base = &one["cells"][0];
    // 98, 100, 102: mean 100, sd 2.
    assert!(close(&base["aggregate"]["mean"], 100.0));
    assert!(close(&base["aggregate"]["sd"], 2.0));
    assert!(close(&base["aggregate"]["ci"], t2 * 2.0 / 3f64.sqrt()));
    assert!(base["loss"].is_null());
    let kvm = &one["cells"][1];
    // 78, 80, 82 against 98, 100, 102: 20 % loss; Welch: se² = 4/3 + 4/3,
    // df = 4, t(0.975, 4) = 2.7764451052, interval 2.7764 × √(8/3) = 4.5339 %.
    assert!(close(&kvm["aggregate"]["mean"], 80.0));
    assert!(close(&kvm["loss"]["percent"], 20.0));
    assert!((kvm["loss"]["ci"].as_f64().expect("ci") - 4.533_915_871_055).abs() < 1e-6);
    assert_eq!(kvm["loss"]["significant"], true);

    let two = &rows[1];
    assert_eq!(two["concurrency"], 2);
    // Bare metal two copies: 97+99, 100+100, 101+103 = 196, 200, 204.
    assert!(close(&two["cells"][0]["aggregate"]["mean"], 200.0));
    assert!(close(&two["cells"][0]["aggregate"]["sd"], 4.0));
    assert!(close(&two["cells"][0]["per_guest"]["mean"], 100.0));
    // kvm: 180, 200, 220 (sd 20); the skewed phase (5+5) and the partial one
    // (7) are left out, or the mean would fall. No loss, and a wide interval:
    // se² = 16/3 + 400/3, df = 2.1597, t = 4.1009..., ± 23.62 % of 200.
    let kvm = &two["cells"][1];
    assert!(close(&kvm["aggregate"]["mean"], 200.0));
    assert_eq!(kvm["aggregate"]["n"], 3);
    assert!(close(&kvm["loss"]["percent"], 0.0));
    assert!((kvm["loss"]["ci"].as_f64().expect("ci") - 23.619_782_184).abs() < 1e-6);
    assert_eq!(kvm["loss"]["significant"], false);

    let excluded = m["excluded"].as_array().expect("excluded");
    let reasons: Vec<&str> = excluded
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        [
            "start skew, clock uncertainty and stop gap add up to 25 % of the phase (bound 20 %)",
            "1 of 2 copies finished"
        ]
    );
    assert_eq!(excluded[0]["phase"], 7);
}

#[test]
fn table_markdown_and_csv_carry_the_same_numbers() {
    let dir = fixtures();
    let table = report(dir.path(), &["host.vmb", "guests.vmb"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>().join(" "),
        "cpu cpu ops/s 1 100.0 ± 5.0 n=3 20.0 ± 4.5 % n=3",
        "{}",
        table.stdout
    );
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>().join(" "),
        "cpu cpu ops/s 2 200.0 ± 9.9 n=3 ~0.0 ± 23.6 % n=3",
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains("left out: guests.vmb phase 7 (cpu, cpu): start skew")
    );

    let markdown = report(
        dir.path(),
        &["host.vmb", "guests.vmb", "--format", "markdown"],
    );
    assert!(
        markdown
            .stdout
            .contains("| cpu | cpu | ops/s | 2 | 200.0 ± 9.9 n=3 | ~0.0 ± 23.6 % n=3 |"),
        "{}",
        markdown.stdout
    );
    let csv = report(dir.path(), &["host.vmb", "guests.vmb", "--format", "csv"]);
    let csv_lines: Vec<&str> = csv.stdout.lines().collect();
    assert_eq!(
        csv_lines[0],
        "workload,metric,unit,higher_is_better,guests,technology,baseline,n,mean,sd,ci95,per_guest_mean,loss_pct,loss_ci95_pct,significant,baseline_guests"
    );
    assert_eq!(
        csv_lines[4],
        "cpu,cpu,ops/s,true,2,kvm,false,3,200.0,20.0,49.7,100.0,0.0,23.6,false,2"
    );
    assert_eq!(
        csv_lines[1],
        "cpu,cpu,ops/s,true,1,bare-metal,true,3,100.0,2.0,5.0,100.0,,,,"
    );
}

#[test]
fn pooling_different_configurations_is_refused_unless_forced() {
    let dir = fixtures();
    let refused = report(dir.path(), &["host.vmb", "guests.vmb", "guests-20s.vmb"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stdout.is_empty());
    assert!(
        refused.stderr.contains(
            "cpu: duration is 10s in host.vmb phase 1 (bare-metal) but 20s in guests-20s.vmb phase 1 (kvm)"
        ),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--force"), "{}", refused.stderr);
    let forced = report(
        dir.path(),
        &["host.vmb", "guests.vmb", "guests-20s.vmb", "--force"],
    );
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert!(
        forced
            .stdout
            .contains("pooled despite a difference: cpu: duration")
    );
}

#[test]
fn a_missing_baseline_is_named() {
    let dir = fixtures();
    let run = report(dir.path(), &["guests.vmb"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("no phase of the baseline technology \"bare-metal\" is in these recordings (they have kvm)"),
        "{}",
        run.stderr
    );
    let own = report(dir.path(), &["guests.vmb", "--baseline", "kvm"]);
    assert_eq!(own.code, 0, "{}", own.stderr);
}

#[test]
fn skewed_phases_count_when_asked() {
    let dir = fixtures();
    let run = report(
        dir.path(),
        &[
            "host.vmb",
            "guests.vmb",
            "--format",
            "json",
            "--include-skewed",
        ],
    );
    let m: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    // 180, 200, 220 and the skewed 10: mean 152.5.
    let kvm = &m["rows"][1]["cells"][1];
    assert_eq!(kvm["aggregate"]["n"], 4);
    assert!(close(&kvm["aggregate"]["mean"], 152.5));
}

#[test]
fn charts_are_written_as_svg_and_png() {
    let dir = fixtures();
    let charts = dir.path().join("charts");
    let run = report(
        dir.path(),
        &[
            "host.vmb",
            "guests.vmb",
            "--charts",
            charts.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut names: Vec<String> = std::fs::read_dir(&charts)
        .expect("charts dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "per-guest-cpu.png",
            "per-guest-cpu.svg",
            "score-cpu.png",
            "score-cpu.svg"
        ]
    );
    common::assert_valid_svg(&charts.join("score-cpu.svg"));
    common::assert_valid_svg(&charts.join("per-guest-cpu.svg"));
    let png = std::fs::read(charts.join("score-cpu.png")).expect("png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn the_shipped_demo_compares_three_technologies() {
    let demo = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/recordings/demo.vmb"));
    let size = std::fs::metadata(&demo)
        .expect("recordings/demo.vmb ships")
        .len();
    assert!(size < 5 << 20, "the demo is {size} bytes");
    let run = report(
        demo.parent().expect("dir"),
        &["demo.vmb", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let m: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let technologies: Vec<&str> = m["technologies"]
        .as_array()
        .expect("technologies")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert_eq!(technologies.len(), 3, "{technologies:?}");
    assert_eq!(technologies[..2], ["bare-metal", "netns"]);
    assert!(technologies[2].starts_with("qemu-"), "{technologies:?}");
    // Every workload ran on all three, and the VM's overhead was measured.
    for row in m["rows"].as_array().expect("rows") {
        assert!(
            row["cells"]
                .as_array()
                .expect("cells")
                .iter()
                .all(|c| !c.is_null()),
            "{row}"
        );
    }
    let vm = m["overhead"]
        .as_array()
        .expect("overhead")
        .iter()
        .find(|o| o["technology"] == technologies[2])
        .expect("the VM's overhead");
    assert!(vm["net"]["mean"].as_f64().is_some_and(|r| r > 0.9), "{vm}");
}

#[test]
fn a_recording_without_a_figure_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    recording(dir.path(), "failed");
    let run = report(dir.path(), &["failed.vmb"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("failed.vmb: no completed phase with a figure to compare (1 left out"),
        "{}",
        run.stderr
    );
}

/// `vmbench export` of a fixture recording: phases.csv's header and rows.
fn exported_phases(dir: &Path, name: &str) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let out = Command::cargo_bin("vmbench")
        .expect("binary")
        .timeout(std::time::Duration::from_secs(120))
        .current_dir(dir)
        .args(["export", &format!("{name}.vmb"), "--csv", "csv"])
        .output()
        .expect("export runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut phases = csv::Reader::from_path(dir.join("csv/phases.csv")).expect("phases");
    let header = phases.headers().expect("header").clone();
    let rows = phases.records().map(|r| r.expect("row")).collect();
    (header, rows)
}

/// Four copies, progress every second: the window sum is the sum of the
/// copies' rates, 100 + 200 + 300 + 400 = 1000 ops/s. In the second phase
/// the fourth copy's progress never parsed: its window sum would be 600,
/// an undercount nobody would see; the phase is flagged and left out.
#[test]
fn a_copy_that_measured_nothing_flags_its_phase_instead_of_undercounting() {
    let dir = tempfile::tempdir().expect("tempdir");
    recording(dir.path(), "host");
    recording(dir.path(), "unmeasured");
    let (header, rows) = exported_phases(dir.path(), "unmeasured");
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    assert_eq!(rows.len(), 2);
    let aggregate: f64 = rows[0][column("aggregate")].parse().expect("a number");
    assert!((aggregate - 1000.0).abs() < 1e-6, "{aggregate}");
    assert_eq!(&rows[0][column("contributing")], "4");
    assert_eq!(&rows[0][column("flag")], "");
    assert_eq!(&rows[1][column("contributing")], "3");
    assert_eq!(&rows[1][column("flag")], "3 of 4 copies measured");

    let run = report(
        dir.path(),
        &["host.vmb", "unmeasured.vmb", "--format", "json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let m: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let reasons: Vec<&str> = m["excluded"]
        .as_array()
        .expect("excluded")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["3 of 4 copies measured"]);
}

/// iperf3's live progress is the sender's (2 × 1 Gbit/s here); what the
/// receivers counted (0.998 + 0.996) is the stored aggregate.
#[test]
fn network_aggregates_are_what_the_receivers_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    recording(dir.path(), "receiver");
    let (header, rows) = exported_phases(dir.path(), "receiver");
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    let row = &rows[0];
    let aggregate: f64 = row[column("aggregate")].parse().expect("a number");
    assert!((aggregate - 1.994).abs() < 1e-9, "{aggregate}");
    assert_eq!(&row[column("flag")], "");
}

/// A "bare-metal" baseline measured on a virtual machine is named in the
/// report (this machine is one: its header says so when it records).
#[test]
fn a_baseline_measured_on_a_virtual_host_is_refused_unless_forced_and_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = LoadedPlan::from_file(&fixture("plan.toml")).expect("fixture plan");
    let host = HostSpecs {
        virtualization: Some("a virtual machine (the CPU's hypervisor flag)".into()),
        ..HostSpecs::of_this_host()
    };
    let header = Header::new(
        &plan,
        host,
        0,
        &vmbench::event::Clock::start(),
        plan.plan.schedule(2),
    );
    let path = dir.path().join("host.vmb");
    let recorder = Recorder::create(&path, &header).expect("recorder");
    let events = std::fs::read_to_string(fixture("host.jsonl")).expect("events");
    for line in events.lines() {
        recorder
            .record(serde_json::from_str(line).expect("fixture event"))
            .expect("recorded");
    }
    recorder.close().expect("closed");
    recording(dir.path(), "guests");
    // Refused like a configuration that differs, naming why...
    let refused = report(dir.path(), &["host.vmb", "guests.vmb"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("refusing a comparison")
            && refused
                .stderr
                .contains("host.vmb was measured on a virtual machine")
            && refused.stderr.contains("--force"),
        "{}",
        refused.stderr
    );
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    // ...and listed under the table when forced.
    let run = report(dir.path(), &["host.vmb", "guests.vmb", "--force"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(
            "the baseline (bare-metal) in host.vmb was measured on a virtual machine \
             (the CPU's hypervisor flag): its losses are against that, not against bare metal"
        ),
        "{}",
        run.stdout
    );
    let json = report(
        dir.path(),
        &["host.vmb", "guests.vmb", "--format", "json", "--force"],
    );
    let m: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(m["validity"].as_array().map(Vec::len), Some(1));
    // Without it, nothing is said.
    let clean = report(dir.path(), &["guests.vmb"]);
    assert!(!clean.stdout.contains("measured on"), "{}", clean.stdout);
}

/// Two copies started 0.5 s apart and ended 0.5 s apart over 10.5 s: 9.5 %
/// of skew and gap, under the bound. But the guests' clocks were known only
/// to ±0.5 s and ±1 s: with that, 2.5 s of 10.5 s, 24 %, and the phase
/// cannot be said to have run its copies together.
#[test]
fn clock_uncertainty_counts_in_the_skew_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    recording(dir.path(), "clock");
    let (header, rows) = exported_phases(dir.path(), "clock");
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    let row = &rows[0];
    assert_eq!(&row[column("skew_ms")], "500.0");
    assert_eq!(&row[column("clock_uncertainty_ms")], "1500.0");
    assert_eq!(
        &row[column("flag")],
        "start skew, clock uncertainty and stop gap add up to 24 % of the phase (bound 20 %)"
    );
}

/// Every view of the study's questions runs on the same recordings in every
/// format, and names the phases the matrix leaves out.
#[test]
fn every_view_prints_in_every_format() {
    let dir = fixtures();
    for view in [
        "matrix",
        "table1",
        "pairwise",
        "resolution",
        "free-core",
        "why",
    ] {
        for format in ["table", "markdown", "csv", "json"] {
            let run = report(
                dir.path(),
                &["host.vmb", "guests.vmb", "--view", view, "--format", format],
            );
            assert_eq!(run.code, 0, "{view} {format}: {}", run.stderr);
            assert!(!run.stdout.trim().is_empty(), "{view} {format}");
            // Every view names the phases it leaves out (the skewed and
            // the partial one of guests.vmb), in every format but CSV
            // (rows only, for a program to read).
            if format == "json" {
                let json = serde_json::from_str::<serde_json::Value>(&run.stdout)
                    .unwrap_or_else(|e| panic!("{view}: {e}: {}", run.stdout));
                let excluded = json["excluded"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{view}: no excluded phases: {}", run.stdout));
                let reasons: Vec<&str> = excluded
                    .iter()
                    .filter_map(|e| e["reason"].as_str())
                    .collect();
                assert!(
                    reasons.contains(&"1 of 2 copies finished")
                        && reasons.iter().any(|r| r.starts_with("start skew")),
                    "{view}: {reasons:?}"
                );
                assert!(json["validity"].is_array(), "{view}");
            } else if format != "csv" {
                assert!(
                    run.stdout.contains("1 of 2 copies finished"),
                    "{view} {format}: {}",
                    run.stdout
                );
            }
        }
    }
    let table1 = report(
        dir.path(),
        &[
            "host.vmb",
            "guests.vmb",
            "--view",
            "table1",
            "--guests",
            "1",
        ],
    );
    assert!(
        table1.stdout.contains("with 1 guest\n"),
        "{}",
        table1.stdout
    );
    // One page with all of it, no script, nothing fetched.
    let page = report(
        dir.path(),
        &["host.vmb", "guests.vmb", "--html", "page.html"],
    );
    assert_eq!(page.code, 0, "{}", page.stderr);
    let html = std::fs::read_to_string(dir.path().join("page.html")).expect("page written");
    for part in [
        "<h2>% loss from bare-metal</h2>",
        "<h2>Technology against technology</h2>",
        "<h2>What the data can resolve</h2>",
        "<h2>The free-core question</h2>",
        "<h2>Why: what the host and guests saw in each cell's phases</h2>",
        "<h2>Charts</h2>",
        "<figure id=\"score-cpu.svg\">",
        "<h2>Where the figures came from</h2>",
        "<summary>The plan as it ran</summary>",
    ] {
        assert!(html.contains(part), "{part} not in the page");
    }
    for outside in ["<script", "src=\"http", "href=\"http"] {
        assert!(!html.contains(outside), "{outside} in the page");
    }
    let bad = report(dir.path(), &["host.vmb", "--view", "table2"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("table1"), "{}", bad.stderr);
}

#[test]
fn skew_bound_moves_the_line_between_a_phase_left_out_and_one_counted() {
    let dir = fixtures();
    // guests.vmb's phase 7: skew, clock and stop gap add up to 25 % of it.
    let kvm_at_two = |args: &[&str]| {
        let mut all = vec!["host.vmb", "guests.vmb", "--format", "json"];
        all.extend_from_slice(args);
        let run = report(dir.path(), &all);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let m: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
        let reasons: Vec<String> = m["excluded"]
            .as_array()
            .expect("excluded")
            .iter()
            .map(|e| e["reason"].as_str().expect("reason").to_string())
            .collect();
        let kvm = m["rows"][1]["cells"][1]["aggregate"].clone();
        (reasons, kvm["n"].as_u64(), kvm["mean"].as_f64())
    };
    let (reasons, n, mean) = kvm_at_two(&[]);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!((n, mean), (Some(3), Some(200.0)));
    // Past 25 %: counted, and its 5 + 5 pulls the mean to (600 + 10) / 4.
    let (reasons, n, mean) = kvm_at_two(&["--skew-bound", "30%"]);
    assert_eq!(reasons, ["1 of 2 copies finished"]);
    assert_eq!((n, mean), (Some(4), Some(152.5)));
    // Under it: left out as by default.
    let (reasons, _, _) = kvm_at_two(&["--skew-bound", "24%"]);
    assert_eq!(reasons.len(), 2, "{reasons:?}");
}

#[test]
fn results_csv_holds_each_copys_figure_as_recorded() {
    let dir = fixtures();
    let out = Command::cargo_bin("vmbench")
        .expect("binary")
        .timeout(std::time::Duration::from_secs(60))
        .current_dir(dir.path())
        .args(["export", "guests.vmb", "--csv", "csv"])
        .output()
        .expect("export runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_path(dir.path().join("csv/results.csv")).expect("csv");
    let header = reader.headers().expect("header").clone();
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let of = |concurrency: &str| -> Vec<(String, String, String)> {
        rows.iter()
            .filter(|r| &r[column("concurrency")] == concurrency)
            .map(|r| {
                (
                    r[column("phase")].to_string(),
                    r[column("value")].to_string(),
                    r[column("outcome")].to_string(),
                )
            })
            .collect()
    };
    // One kvm copy per phase at ×1: 78, 80, 82 ops/s (the fixture's).
    let one = of("1");
    assert_eq!(
        one.iter().map(|(_, v, _)| v.as_str()).collect::<Vec<_>>(),
        ["78.0", "80.0", "82.0"],
        "{one:?}"
    );
    assert!(one.iter().all(|(_, _, o)| o == "completed"), "{one:?}");
    assert!(rows.iter().all(|r| &r[column("technology")] == "kvm"
        && &r[column("unit")] == "ops/s"
        && &r[column("source")] == "guests.vmb"));
    // At ×2 every copy has its row, the unfinished one with its outcome:
    // the copies of a left-out phase are data too.
    let two = of("2");
    assert_eq!(two.len() % 2, 0, "{two:?}");
    assert!(
        two.iter().any(|(_, _, o)| o != "completed"),
        "the partial phase's unfinished copy: {two:?}"
    );
}

#[test]
fn table1_carries_the_numbers_computed_by_hand_and_pairwise_no_pair_without_one() {
    let dir = fixtures();
    let json = |view: &str, extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["host.vmb", "guests.vmb", "--view", view, "--format", "json"];
        args.extend_from_slice(extra);
        let run = report(dir.path(), &args);
        assert_eq!(run.code, 0, "{view}: {}", run.stderr);
        serde_json::from_str(&run.stdout).expect("json")
    };
    // kvm at 1 guest: 78, 80, 82 against 98, 100, 102 (see the matrix
    // test): 20 % ± 4.5339 %.
    let table1 = json("table1", &["--guests", "1"]);
    let kvm = table1["technologies"]
        .as_array()
        .expect("technologies")
        .iter()
        .position(|t| t == "kvm")
        .expect("kvm");
    let cell = &table1["columns"][0]["cells"][kvm];
    assert!(close(&cell["loss"]["percent"], 20.0), "{cell}");
    assert!((cell["loss"]["ci"].as_f64().expect("ci") - 4.533_915_871_055).abs() < 1e-6);
    // Technology against technology leaves the baseline out: with one
    // technology beside it, no pair, and it says so.
    let pairwise = json("pairwise", &[]);
    assert_eq!(pairwise["comparisons"], serde_json::json!([]));
    assert_eq!(pairwise["with_baseline"], false);
}
