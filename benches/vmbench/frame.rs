//! TUI frame time: 16 copies (as panes with charts) and 64 (as the table),
//! five minutes of this host's counters and of every copy's progress.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vmbench::event::{Event, MetricDef};
use vmbench::model::Session;
use vmbench::sample::{HostSampler, SeriesIds};
use vmbench::ui::theme::Theme;
use vmbench::ui::{Feed, View, render};

use crate::{header, time_us};

fn session_with(copies: u32) -> Session {
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
        concurrency: copies,
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
    for run in 0..copies {
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
    session
}

pub fn bench_frame() {
    let theme = Theme::built_in("dark").expect("theme");
    let plain = View::new(Feed::Live { waiting: false });
    // A filter over every copy's name and a rate against the median: what
    // an operator narrowing 64 copies has on screen, judged every frame.
    let mut filtered = plain.clone();
    filtered.filter = vmbench::ui::filter::Filter::parse("vm[0-9]*[13579]$").expect("a filter");
    let mut slow = plain.clone();
    slow.filter = vmbench::ui::filter::Filter::parse("rate<150%").expect("a filter");
    for copies in [16, 64] {
        let session = session_with(copies);
        for (w, h) in [(80, 24), (200, 60)] {
            for (name, view) in [
                ("", &plain),
                (", a regex filter", &filtered),
                (", rate<150%", &slow),
            ] {
                let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
                let us = time_us(50, || {
                    terminal
                        .draw(|f| render(f, &session, &theme, view))
                        .expect("draw");
                });
                println!(
                    "TUI frame with {copies} copies at {w}×{h}{name}: {:.3} ms",
                    us / 1e3
                );
            }
        }
        let series = session.all_series().count();
        let us = time_us(50, || {
            std::hint::black_box(vmbench::metrics::exposition(&session));
        });
        println!(
            "a metrics scrape's text with {copies} copies and {series} series: {:.3} ms",
            us / 1e3
        );
    }
}
