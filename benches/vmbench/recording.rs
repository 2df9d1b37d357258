//! Replay of a long recording: open to first frame, and seek by phase.

use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vmbench::event::{Event, MetricDef, PhaseOutcome, RunOutcome};
use vmbench::model::{SERIES_HISTORY, Session};
use vmbench::sample::{HostSampler, SeriesIds};
use vmbench::store::{Reader, Recorder, Writer};
use vmbench::ui::theme::Theme;
use vmbench::ui::{Feed, View, render};

use crate::{header, median};

const SECOND: u64 = 1_000_000_000;

/// The events of one phase of a minute on two copies, progress every second.
fn phase_events(phase: u32, t0: u64) -> Vec<Event> {
    let metrics = vec![MetricDef {
        name: "cpu".into(),
        unit: "ops/s".into(),
        scale: 1.0,
        higher_is_better: true,
        result_is_total: false,
    }];
    let mut events = vec![Event::PhaseStarted {
        t: t0,
        phase,
        benchmark: "cpu".into(),
        workload: "cpu".into(),
        concurrency: 2,
        repetition: 1,
        duration: 58 * SECOND,
    }];
    for copy in 0..2 {
        let run = phase * 2 + copy;
        events.push(Event::RunSpawned {
            t: t0,
            run,
            phase,
            copy,
            guest: "host".into(),
            technology: "bare-metal".into(),
            pid: Some(1000 + run),
            metrics: metrics.clone(),
            path: None,
            clock_uncertainty: None,
        });
        events.push(Event::RunStarted {
            t: t0 + SECOND,
            run,
            machine_ns: None,
        });
    }
    events.push(Event::PhaseReleased {
        t: t0 + SECOND,
        phase,
    });
    for s in 1..59 {
        for copy in 0..2 {
            events.push(Event::Progress {
                t: t0 + s * SECOND,
                run: phase * 2 + copy,
                metric: 0,
                done: (s * 1000) as f64,
            });
        }
    }
    for copy in 0..2 {
        events.push(Event::RunEnded {
            t: t0 + 59 * SECOND,
            run: phase * 2 + copy,
            outcome: RunOutcome::Completed,
        });
    }
    events.push(Event::PhaseEnded {
        t: t0 + 59 * SECOND,
        phase,
        outcome: PhaseOutcome::Completed,
    });
    events
}

/// One hour of this host's counters as the recorder stores them: 3,600
/// samples taken back to back and stamped 1 s apart, with a phase of two
/// copies every minute (their progress every second). Back-to-back counters
/// barely move, so this file is smaller than a real hour's; bytes per value
/// are measured on a real 1 Hz session instead (`cost`). What this measures
/// is how fast replay opens an hour and draws its first frame, and how fast
/// it seeks to a phase and draws that.
pub fn bench_replay_open(dir: &Path) {
    let path = dir.join("hour.vmb");
    let recorder = Recorder::create(&path, &header(60)).expect("recorder");
    let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc");
    for tick in 0..3600u64 {
        let sample = sampler.sample(tick * SECOND);
        for def in sampler.take_new_series() {
            recorder.record(Event::SeriesDefined(def)).expect("record");
        }
        recorder.record(Event::Sample(sample)).expect("record");
        if tick % 60 == 0 {
            for event in phase_events((tick / 60) as u32, tick * SECOND) {
                recorder.record(event).expect("record");
            }
        }
        if tick % 600 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    recorder.close().expect("close");
    let theme = Theme::built_in("dark").expect("theme");
    let view = View::new(Feed::Replay {
        speed: 1.0,
        paused: false,
        end: 3_600 * SECOND,
        writer: Writer::Finished,
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
    println!(
        "replay of a 1-hour recording (3,600 ticks of this host's counters, 60 phases, {} kB), open to first frame: {open_ms:.1} ms",
        Reader::size_on_disk(&path) / 1000
    );
    // A seek as the replay producer does it (the phase starts looked up,
    // the model rebuilt from the series, every event before the target and
    // the samples its history holds) and the frame drawn after it, at
    // 200×60, to the middle phase and to the last.
    let reader = Reader::open(&path).expect("open");
    for phase in [30usize, 59] {
        let seek_ms = median(
            (0..7)
                .map(|_| {
                    let start = Instant::now();
                    let target = reader.phase_starts().expect("phases")[phase] + 1;
                    let mut session = Session::new(reader.header.clone());
                    for e in reader.series_events() {
                        session.apply(&e);
                    }
                    let history = reader.header.interval_ns * SERIES_HISTORY as u64;
                    for e in reader
                        .timeline(0, target.saturating_sub(history), target)
                        .expect("timeline")
                    {
                        session.apply(&e);
                    }
                    assert_eq!(session.phases.len(), phase + 1);
                    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("terminal");
                    terminal
                        .draw(|f| render(f, &session, &theme, &view))
                        .expect("draw");
                    start.elapsed().as_secs_f64() * 1e3
                })
                .collect(),
        );
        println!(
            "replay seek to phase {} of 60 in that hour and draw at 200×60: {seek_ms:.1} ms",
            phase + 1
        );
    }
}

/// What one guest's sample costs vmbench after it arrives, whatever read
/// it: folding it into the model and recording it. 250 counters, as a
/// 2-vCPU guest's /proc gives, each moving a little every tick; 10,000
/// samples, the recorder's close (its last commit) included.
pub fn bench_fold_and_record(dir: &Path) {
    const VALUES: u32 = 250;
    const SAMPLES: u64 = 10_000;
    let header = header(6);
    let defs: Vec<Event> = (0..VALUES)
        .map(|id| {
            Event::SeriesDefined(vmbench::event::SeriesDef {
                id,
                source: format!("guest:g1/dev{}", id / 8),
                metric: format!("m{}", id % 8),
                unit: "ticks".into(),
                kind: vmbench::event::SeriesKind::Counter,
            })
        })
        .collect();
    let sample = |i: u64| {
        Event::Sample(vmbench::event::Sample {
            t: i * 100_000_000,
            values: (0..VALUES)
                .map(|id| (id, i * u64::from(id % 7 + 1)))
                .collect(),
        })
    };
    let mut session = Session::new(header.clone());
    for d in &defs {
        session.apply(d);
    }
    let start = Instant::now();
    for i in 0..SAMPLES {
        session.apply(&sample(i));
    }
    let fold_us = start.elapsed().as_secs_f64() * 1e6 / SAMPLES as f64;
    let path = dir.join("fold.vmb");
    let recorder = Recorder::create(&path, &header).expect("recorder");
    for d in defs {
        recorder.record(d).expect("record");
    }
    let start = Instant::now();
    for i in 0..SAMPLES {
        recorder.record(sample(i)).expect("record");
    }
    recorder.close().expect("close");
    let record_us = start.elapsed().as_secs_f64() * 1e6 / SAMPLES as f64;
    println!(
        "a guest's sample of {VALUES} counters after it arrives: folded into the model {fold_us:.1} µs, \
         recorded {record_us:.1} µs (the recorder's thread included, its last commit too)"
    );
}
