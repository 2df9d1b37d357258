//! The sessions the screens are drawn from in tests: host counters, the
//! fold fixture's two phases, many copies, guests coming up.

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::theme::Theme;
use super::{Feed, View, render};
use crate::event::{Event, GuestState, MetricDef, Sample, SeriesDef, SeriesKind};
use crate::model::Session;
use crate::model::tests::{fixture_events, test_header};

pub fn define(session: &mut Session, id: u32, source: &str, metric: &str, kind: SeriesKind) {
    session.apply(&Event::SeriesDefined(SeriesDef {
        id,
        source: source.into(),
        metric: metric.into(),
        unit: "x".into(),
        kind,
    }));
}

/// Host counters for ten seconds, then the fold fixture's two phases.
pub fn session() -> Session {
    session_scaled(1.0)
}

/// The same, with every copy's work scaled by `by`: another host's run of
/// the same plan, for A/B.
pub fn session_scaled(by: f64) -> Session {
    let mut session = Session::new(test_header());
    for (id, field) in crate::sample::CPU_FIELDS.iter().enumerate() {
        define(&mut session, id as u32, "host", field, SeriesKind::Counter);
    }
    define(
        &mut session,
        8,
        "host/net/lo",
        "rx_bytes",
        SeriesKind::Counter,
    );
    define(
        &mut session,
        9,
        "host/net/lo",
        "tx_bytes",
        SeriesKind::Counter,
    );
    define(
        &mut session,
        10,
        "host/disk/vda",
        "read_sectors",
        SeriesKind::Counter,
    );
    define(
        &mut session,
        11,
        "host/disk/vda",
        "write_sectors",
        SeriesKind::Counter,
    );
    define(&mut session, 12, "host", "mem.total", SeriesKind::Gauge);
    define(&mut session, 13, "host", "mem.available", SeriesKind::Gauge);
    for i in 0..=10u64 {
        let busy = 10 * (i % 5);
        session.apply(&Event::Sample(Sample {
            t: i * 1_000_000_000,
            values: vec![
                (0, i * (40 + busy)),
                (2, i * 20),
                (3, i * (120 - busy)),
                (4, i * 10),
                (7, i * 10),
                (8, i * i * 1_000_000),
                (9, i * i * 1_000_000),
                (10, i * 2048),
                (11, i * i * 4096),
                (12, 8 << 30),
                (13, (6 << 30) - i * (64 << 20)),
            ],
        }));
    }
    for event in fixture_events("two_copies.jsonl") {
        let event = match event {
            Event::Progress {
                t,
                run,
                metric,
                done,
            } => Event::Progress {
                t,
                run,
                metric,
                done: done * by,
            },
            other => other,
        };
        session.apply(&event);
    }
    session
}

pub fn draw(session: &Session, view: &View, width: u16, height: u16) -> Terminal<TestBackend> {
    let theme = Theme::built_in("dark").expect("dark");
    draw_with(session, view, &theme, width, height)
}

pub fn draw_with(
    session: &Session,
    view: &View,
    theme: &Theme,
    width: u16,
    height: u16,
) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|f| render(f, session, theme, view))
        .expect("draw");
    terminal
}

pub fn live_view() -> View {
    View::new(Feed::Live { waiting: false })
}

pub fn many_copies(count: u32) -> Session {
    let mut session = session();
    let metrics = vec![MetricDef {
        name: "cpu".into(),
        unit: "ops/s".into(),
        scale: 1.0,
        higher_is_better: true,
        result_is_total: false,
    }];
    session.apply(&Event::PhaseStarted {
        t: 6_000_000_000,
        phase: 2,
        benchmark: "cpu".into(),
        workload: "cpu".into(),
        concurrency: count,
        repetition: 1,
        duration: 10_000_000_000,
    });
    for run in 10..10 + count {
        session.apply(&Event::RunSpawned {
            t: 6_000_000_000,
            run,
            phase: 2,
            copy: run - 10,
            guest: format!("vm{:02}", run - 10),
            technology: "kvm".into(),
            pid: Some(1000 + run),
            metrics: metrics.clone(),
            path: None,
            clock_uncertainty: None,
        });
        session.apply(&Event::RunStarted {
            t: 6_100_000_000,
            run,
            machine_ns: None,
        });
        for (i, t) in [6_100_000_000u64, 7_100_000_000, 8_100_000_000]
            .iter()
            .enumerate()
        {
            session.apply(&Event::Progress {
                t: *t,
                run,
                metric: 0,
                done: (i as f64) * 1e6 * f64::from(run),
            });
        }
    }
    session
}

/// Sixteen copies, two of whose guests are seen by the host (cgroup, tap,
/// loop device) and from inside (/proc over SFTP), one second apart.
pub fn seen_guests() -> Session {
    let mut session = many_copies(16);
    let mut id = 100;
    let mut values = [Vec::new(), Vec::new()];
    for guest in ["vm00", "vm01"] {
        let series = [
            (
                format!("host-seen:{guest}"),
                "cpu.cgroup_ns",
                900_000_000u64,
            ),
            (format!("host-seen:{guest}"), "net.rx_bytes", 125_000_000),
            (format!("host-seen:{guest}"), "disk.write_sectors", 100_000),
            (format!("guest:{guest}"), "cpu.user", 95),
            (format!("guest:{guest}"), "cpu.idle", 5),
            (format!("guest:{guest}/cpu0"), "cpu.user", 95),
            (format!("guest:{guest}/net/eth0"), "rx_bytes", 120_000_000),
            (format!("guest:{guest}/net/lo"), "rx_bytes", 7_000_000),
            (format!("guest:{guest}/disk/vda"), "write_sectors", 99_000),
        ];
        for (source, metric, per_second) in series {
            define(&mut session, id, &source, metric, SeriesKind::Counter);
            values[0].push((id, 1_000));
            values[1].push((id, 1_000 + per_second));
            id += 1;
        }
    }
    for (i, values) in values.into_iter().enumerate() {
        session.apply(&Event::Sample(Sample {
            t: 8_000_000_000 + i as u64 * 1_000_000_000,
            values,
        }));
    }
    session
}

/// The report fixture's session: a baseline and two technologies.
pub fn report_session_events() -> Vec<Event> {
    let path = format!(
        "{}/tests/fixtures/report/one-session.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .expect("fixture")
        .lines()
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect()
}

/// The three sizes operators use: a laptop's 80×24, a split 120×40 and a
/// full 200×60.
pub const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 60)];

pub fn guest_info(offset_ns: i64) -> crate::event::GuestInfo {
    crate::event::GuestInfo {
        address: "198.18.0.11:22".into(),
        local_ip: std::net::Ipv4Addr::new(198, 18, 0, 1).into(),
        arch: "x86_64".into(),
        kernel: "6.1.0-28-amd64".into(),
        connect_ms: 62.0,
        clock_offset_ns: Some(offset_ns),
        clock_rtt_ns: Some(80_000),
        vmbench: Ok("/tmp/vmbench.Ab12Cd/vmbench".into()),
        shape: None,
        boot_id: None,
    }
}

/// The screen's text at `width`×`height`, a line per row.
pub fn screen_text(session: &Session, view: &View, width: u16, height: u16) -> String {
    let terminal = draw(session, view, width, height);
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                + "\n"
        })
        .collect()
}

/// Before the first phase: one guest ready, one connecting, one refused.
pub fn guests_connecting() -> Session {
    let mut session = Session::new(test_header());
    let states = [
        (
            "kvm-1",
            GuestState::Ready {
                info: Box::new(guest_info(-1_250_000)),
            },
        ),
        ("kvm-2", GuestState::Connecting),
        (
            "xen-1",
            GuestState::Failed {
                reason: "unknown host key SHA256:abc (not in ~/.ssh/known_hosts); refused".into(),
            },
        ),
    ];
    for (guest, state) in states {
        session.apply(&Event::GuestState {
            t: 1,
            guest: guest.into(),
            state,
        });
    }
    session
}
