//! Performance figures of vmbench, measured in one run so that ratios are
//! comparable on a shared, noisy machine. `cargo bench` prints them.
//!
//! - sampler cost per tick against the bare open+read+parse of the same files;
//! - recording bytes per sampled value, and replay open-to-first-frame of a
//!   one-hour 1 Hz recording;
//! - TUI frame time with 16 copy panes;
//! - the report's loss matrix over 6,400 phase results, and over the demo;
//! - CPU time of `vmbench record` over 60 s of sampling at 1 Hz and 10 Hz,
//!   beside sadc and dstat sampling the same 60 s (when they are installed).
//!
//! - start skew of N copies on testbed guests (2, and 16 by default): vmbench's
//!   barrier against parallel-ssh launching the same command on the same
//!   guests (needs root for the testbed and Debian's pssh).
//!
//! `VMBENCH_BENCH_QUICK=1` skips the 60-second CPU comparison;
//! `VMBENCH_BENCH_GUESTS=N` sets the larger guest count.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vmbench::event::{Event, MetricDef, Sample};
use vmbench::model::Session;
use vmbench::sample::{HostSampler, SeriesIds};
use vmbench::store::{Header, HostSpecs, Reader, Recorder};
use vmbench::ui::theme::Theme;
use vmbench::ui::{Feed, View, render};

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Microseconds per call, the median of 15 batches.
fn time_us(batch: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..batch {
        f();
    }
    median(
        (0..15)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..batch {
                    f();
                }
                start.elapsed().as_secs_f64() * 1e6 / batch as f64
            })
            .collect(),
    )
}

/// What any sampler must at least do: open, read and minimally parse each file.
fn bare_read_and_parse() -> u64 {
    let mut sum = 0u64;
    for path in [
        "/proc/stat",
        "/proc/net/dev",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/self/stat",
    ] {
        let text = std::fs::read_to_string(path).expect("readable /proc file");
        for line in text.lines() {
            for field in line.split_ascii_whitespace() {
                if let Ok(v) = field.parse::<u64>() {
                    sum = sum.wrapping_add(v);
                }
            }
        }
    }
    sum
}

fn bench_sampler() {
    let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc");
    sampler.sample(0);
    let mut t = 0;
    let sampler_us = time_us(200, || {
        t += 1;
        black_box(sampler.sample(t));
    });
    let bare_us = time_us(200, || {
        black_box(bare_read_and_parse());
    });
    let values = sampler.sample(t + 1).values.len();
    println!(
        "sampler tick: {sampler_us:.1} µs ({values} values) vs bare open+read+parse {bare_us:.1} µs: {:.2}×",
        sampler_us / bare_us
    );
}

fn header(schedule_phases: usize) -> Header {
    let plan = vmbench::plan::LoadedPlan::embedded_default();
    let mut schedule = plan.plan.schedule(2);
    schedule.truncate(schedule_phases);
    Header::new(&plan, HostSpecs::of_this_host(), 0, schedule)
}

/// One hour at 1 Hz of this host's real counters, as the recorder stores them.
fn bench_recording(dir: &Path) {
    let path = dir.join("hour.vmb");
    let recorder = Recorder::create(&path, &header(6)).expect("recorder");
    let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc");
    let mut values = 0usize;
    for tick in 0..3600u64 {
        let sample = sampler.sample(tick * 1_000_000_000);
        for def in sampler.take_new_series() {
            recorder.record(Event::SeriesDefined(def)).expect("record");
        }
        values += sample.values.len();
        recorder.record(Event::Sample(sample)).expect("record");
        if tick % 600 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    recorder.close().expect("close");
    let bytes = Reader::size_on_disk(&path);
    println!(
        "recording: {bytes} bytes for {values} sampled values over 3600 ticks: {:.2} bytes/value",
        bytes as f64 / values as f64
    );
    let theme = Theme::built_in("dark").expect("theme");
    let view = View::new(Feed::Replay {
        speed: 1.0,
        paused: false,
        end: 3_600_000_000_000,
    });
    let open_ms = median(
        (0..7)
            .map(|_| {
                let start = Instant::now();
                let reader = Reader::open(&path).expect("open");
                let mut session = Session::new(reader.header.clone());
                for e in reader.series_events() {
                    session.apply(&e);
                }
                for e in reader.timeline(0, 0, 30_000_000_000).expect("first chunk") {
                    session.apply(&e);
                }
                let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
                terminal
                    .draw(|f| render(f, &session, &theme, &view))
                    .expect("draw");
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    println!("replay of a 1-hour 1 Hz recording, open to first frame: {open_ms:.1} ms");
}

fn bench_frame() {
    let mut session = Session::new(header(6));
    let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc");
    for tick in 0..300u64 {
        let sample = sampler.sample(tick * 1_000_000_000);
        for def in sampler.take_new_series() {
            session.apply(&Event::SeriesDefined(def));
        }
        session.apply(&Event::Sample(sample));
    }
    session.apply(&Event::PhaseStarted {
        t: 0,
        phase: 0,
        benchmark: "cpu".into(),
        workload: "cpu".into(),
        concurrency: 16,
        repetition: 1,
        duration: 300_000_000_000,
    });
    let metrics = vec![MetricDef {
        name: "cpu".into(),
        unit: "ops/s".into(),
        scale: 1.0,
        higher_is_better: true,
        result_is_total: false,
    }];
    for run in 0..16 {
        session.apply(&Event::RunSpawned {
            t: 0,
            run,
            phase: 0,
            copy: run,
            guest: format!("vm{run:02}"),
            technology: "kvm".into(),
            pid: None,
            metrics: metrics.clone(),
            path: None,
            clock_uncertainty: None,
        });
        session.apply(&Event::RunStarted {
            t: 0,
            run,
            machine_ns: None,
        });
        for s in 0..300u64 {
            session.apply(&Event::Progress {
                t: s * 1_000_000_000,
                run,
                metric: 0,
                done: (s * 1_000_000) as f64,
            });
        }
    }
    let theme = Theme::built_in("dark").expect("theme");
    let view = View::new(Feed::Live { waiting: false });
    for (w, h) in [(80, 24), (200, 60)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        let us = time_us(50, || {
            terminal
                .draw(|f| render(f, &session, &theme, &view))
                .expect("draw");
        });
        println!(
            "TUI frame with 16 copy panes at {w}×{h}: {:.3} ms",
            us / 1e3
        );
    }
}

/// CPU seconds (user + system) a finished child used, itself only.
fn child_cpu_seconds(mut command: Command) -> Option<f64> {
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child just spawned; rusage is a plain C struct.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    (pid > 0).then(|| {
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(usage.ru_utime) + tv(usage.ru_stime)
    })
}

/// vmbench's own CPU over a recording, from its self-samples (its benchmark
/// copies are separate processes and not counted).
fn recorded_own_cpu_seconds(path: &Path) -> Option<f64> {
    let reader = Reader::open(path).ok()?;
    let ticks = reader.header.host.clock_ticks_per_sec as f64;
    let ids: Vec<u32> = reader
        .series
        .iter()
        .filter(|s| s.source == "vmbench" && s.metric.starts_with("cpu."))
        .map(|s| s.id)
        .collect();
    let samples = reader.samples(0, u64::MAX).ok()?;
    let total = |s: &Sample| {
        s.values
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    Some((total(samples.last()?) - total(samples.first()?)) as f64 / ticks)
}

fn bench_cpu_cost(dir: &Path) {
    let exe = env!("CARGO_BIN_EXE_vmbench");
    for (label, interval) in [("1 Hz", "1s"), ("10 Hz", "100ms")] {
        let plan = dir.join(format!("idle-{interval}.toml"));
        // One copy sleeping at its barrier is not possible, so a 60 s cpu copy
        // runs; vmbench's own cost is read from its self-samples.
        std::fs::write(
            &plan,
            format!(
                "name = \"overhead\"\ninterval = \"{interval}\"\n[[guest]]\nname = \"host\"\ntransport = \"local\"\ntechnology = \"bare-metal\"\n\
                 [[benchmark]]\nname = \"cpu\"\nworkload = {{ type = \"cpu\" }}\nduration = \"60s\"\nconcurrency = [1]\n"
            ),
        )
        .expect("plan");
        let out = dir.join(format!("overhead-{interval}.vmb"));
        let mut record = Command::new(exe);
        record.args([
            "record",
            plan.to_str().expect("utf-8"),
            "-o",
            out.to_str().expect("utf-8"),
        ]);
        let mut handles = vec![std::thread::spawn(move || {
            child_cpu_seconds(record);
            recorded_own_cpu_seconds(&out)
        })];
        if interval == "1s" {
            let sa = dir.join("sa");
            let mut sadc = Command::new("/usr/lib/sysstat/sadc");
            sadc.args(["-S", "DISK", "1", "61", sa.to_str().expect("utf-8")]);
            handles.push(std::thread::spawn(move || child_cpu_seconds(sadc)));
            let mut dstat = Command::new("dstat");
            dstat.args(["--nocolor", "-cdnm", "1", "60"]);
            handles.push(std::thread::spawn(move || child_cpu_seconds(dstat)));
        }
        let figures: Vec<Option<f64>> = handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect();
        let ms = |f: Option<f64>| {
            f.map_or("not installed".to_string(), |s| {
                format!("{:.0} ms", s * 1e3)
            })
        };
        match interval {
            "1s" => println!(
                "CPU over 60 s at {label}: vmbench record {}, sadc {}, dstat {}",
                ms(figures[0]),
                ms(figures[1]),
                ms(figures[2])
            ),
            _ => println!(
                "CPU over 60 s at {label}: vmbench record {} (sadc and dstat cannot sample at 10 Hz)",
                ms(figures[0])
            ),
        }
    }
}

/// Phases' start skews from a recording, in milliseconds, by concurrency.
fn recorded_skews(path: &Path) -> Vec<(u32, f64)> {
    let reader = Reader::open(path).expect("recording");
    let mut session = Session::new(reader.header.clone());
    for event in reader.events(0, u64::MAX).expect("events") {
        session.apply(&event);
    }
    session
        .phases
        .iter()
        .filter_map(|p| {
            let skew = p.summary.as_ref()?.skew?;
            Some((p.concurrency, skew as f64 / 1e6))
        })
        .collect()
}

/// parallel-ssh starting the same copy on the first n guests: the spread of
/// the copies' own start stamps (the guests share this host's clock).
fn parallel_ssh_skew_ms(dir: &Path, exe: &str, n: usize, state: &str) -> Option<f64> {
    let hosts = dir.join(format!("hosts-{n}"));
    let list: String = (1..=n).map(|i| format!("198.18.0.{}\n", 10 + i)).collect();
    std::fs::write(&hosts, list).ok()?;
    let out = Command::new("parallel-ssh")
        .args(["-h", hosts.to_str()?, "-l", "root", "-p", "64", "-t", "60", "-i", "-x"])
        .arg(format!(
            "-i {state}/id_ed25519 -o UserKnownHostsFile={state}/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
        ))
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

fn bench_skew(dir: &Path) {
    let exe = env!("CARGO_BIN_EXE_vmbench");
    let many: usize = std::env::var("VMBENCH_BENCH_GUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let state = "/run/vmbench-testbed";
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/testbed");
    let up = Command::new(script)
        .args(["up", &many.to_string()])
        .output();
    if !up.as_ref().is_ok_and(|o| o.status.success()) {
        println!(
            "start skew: skipped, the testbed did not come up (root and openssh-server are needed)"
        );
        return;
    }
    const REPETITIONS: usize = 7;
    let guests: String = (1..=many)
        .map(|i| {
            format!(
                "[[guest]]\nname = \"g{i}\"\ntransport = \"ssh\"\ntechnology = \"netns\"\naddress = \"198.18.0.{}\"\n\
                 user = \"root\"\nidentity = \"{state}/id_ed25519\"\nknown_hosts = \"{state}/known_hosts\"\n",
                10 + i
            )
        })
        .collect();
    let plan = dir.join("skew.toml");
    std::fs::write(
        &plan,
        format!(
            "name = \"skew\"\n{guests}[[benchmark]]\nname = \"cpu\"\nworkload = {{ type = \"cpu\" }}\n\
             duration = \"1s\"\nconcurrency = [2, {many}]\nrepetitions = {REPETITIONS}\n"
        ),
    )
    .expect("plan");
    let out = dir.join("skew.vmb");
    let status = Command::new(exe)
        .args([
            "record",
            plan.to_str().expect("utf-8"),
            "-o",
            out.to_str().expect("utf-8"),
        ])
        .stderr(std::process::Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        println!("start skew: the vmbench session failed");
        return;
    }
    let skews = recorded_skews(&out);
    for n in [2, many] {
        let ours: Vec<f64> = skews
            .iter()
            .filter(|(c, _)| *c as usize == n)
            .map(|s| s.1)
            .collect();
        let theirs: Vec<f64> = (0..REPETITIONS)
            .filter_map(|_| parallel_ssh_skew_ms(dir, exe, n, state))
            .collect();
        if ours.is_empty() || theirs.is_empty() {
            println!("start skew of {n} guests: not measured (is pssh installed?)");
            continue;
        }
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "start skew of {n} guests on {} cores, median of {REPETITIONS}: vmbench {ours:.3} ms, parallel-ssh {theirs:.1} ms ({:.0}x smaller)",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            theirs / ours.max(1e-6)
        );
    }
}

/// The loss matrix over a large study: 20 workload metrics × 8 levels of
/// concurrency × 4 technologies × 10 repetitions, and the shipped demo read
/// from its recording.
fn bench_report() {
    use vmbench::report::{Matrix, Options, load};
    use vmbench::results::{Fingerprint, PhaseResult, Results};
    use vmbench::workload::WorkloadClass;
    let mut results = Results::default();
    let mut phase = 0;
    for workload in 0..20 {
        for concurrency in 1..=8u32 {
            for (t, technology) in ["bare-metal", "kvm", "xen", "netns"].iter().enumerate() {
                for repetition in 1..=10u32 {
                    phase += 1;
                    let value = 1000.0 * f64::from(concurrency) / (1.0 + t as f64 * 0.1)
                        + f64::from(repetition);
                    results.phases.push(PhaseResult {
                        source: "bench".into(),
                        phase,
                        benchmark: format!("w{workload}-{technology}"),
                        workload: format!("w{workload}"),
                        class: WorkloadClass::Score,
                        technology: technology.to_string(),
                        concurrency,
                        repetition,
                        metric: "score".into(),
                        unit: "ops/s".into(),
                        higher_is_better: true,
                        aggregate: Some(value),
                        per_guest_mean: Some(value / f64::from(concurrency)),
                        window_start_s: None,
                        window_stop_s: None,
                        skew_ms: Some(0.1),
                        clock_uncertainty_ms: Some(0.05),
                        stop_gap_ms: Some(0.1),
                        copies: concurrency as usize,
                        contributing: concurrency as usize,
                        outcome: "completed",
                        flag: None,
                        fingerprint: Fingerprint::default(),
                    });
                }
            }
        }
    }
    let options = Options::default();
    let build_ms = time_us(1, || {
        black_box(Matrix::build(&results, &options).to_table());
    }) / 1e3;
    println!(
        "report: loss matrix of {} phase results ({} rows × 4 technologies), built and printed: {build_ms:.1} ms",
        results.phases.len(),
        20 * 8
    );
    let demo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/recordings/demo.vmb"));
    let start = Instant::now();
    let demo_results =
        load(&[demo.to_path_buf()], vmbench::results::DEFAULT_SKEW_BOUND).expect("the demo loads");
    let table = Matrix::build(&demo_results, &options).to_table();
    println!(
        "report: the shipped demo ({} kB, {} phases), read and printed: {:.1} ms",
        std::fs::metadata(demo).map_or(0, |m| m.len() / 1000),
        demo_results.phases.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    black_box(table);
}

fn main() {
    // `cargo test --benches` runs this binary too; benchmarks only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    bench_sampler();
    bench_frame();
    bench_recording(dir.path());
    bench_report();
    bench_skew(dir.path());
    if std::env::var_os("VMBENCH_BENCH_QUICK").is_none() {
        bench_cpu_cost(dir.path());
    }
}
