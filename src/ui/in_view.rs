//! The charts on screen as data: what `:export view` writes beside the
//! screen's text, each series cut to the window the screen shows.

use super::{View, shown_runs};
use crate::event::Nanos;
use crate::model::SERIES_HISTORY;
use crate::model::Session;

/// One chart: its name (a file name's stem), its unit, its lines.
pub struct Chart {
    pub name: String,
    pub unit: &'static str,
    pub lines: Vec<(String, Vec<(Nanos, f64)>)>,
}

/// The host's charts and each shown copy's rate, in the charts' window.
pub fn charts(session: &Session, view: &View) -> Vec<Chart> {
    let window = view.chart_window(session);
    let cut = |points: Vec<(Nanos, f64)>| -> Vec<(Nanos, f64)> {
        points
            .into_iter()
            .filter(|(t, _)| *t >= window.from && *t <= window.to)
            .collect()
    };
    // Shares of all the host's CPU time, in per cent already.
    let shares = session.cpu_shares("host", SERIES_HISTORY);
    let mut charts = vec![Chart {
        name: "host-cpu".into(),
        unit: "%",
        lines: vec![
            (
                "user".into(),
                cut(shares.iter().map(|s| (s.t, s.user)).collect()),
            ),
            (
                "system".into(),
                cut(shares.iter().map(|s| (s.t, s.system)).collect()),
            ),
            (
                "iowait".into(),
                cut(shares.iter().map(|s| (s.t, s.iowait)).collect()),
            ),
            (
                "steal".into(),
                cut(shares.iter().map(|s| (s.t, s.steal)).collect()),
            ),
            (
                "irq and other".into(),
                cut(shares.iter().map(|s| (s.t, s.other)).collect()),
            ),
        ],
    }];
    // Network as the screen shows it: bit/s, or B/s after `b`.
    let (net_unit, net_scale) = if view.net_bits {
        ("bit/s", 8.0)
    } else {
        ("B/s", 1.0)
    };
    for (name, unit, prefix, metrics, scale) in [
        (
            "host-net",
            net_unit,
            "host/net/",
            [("rx", "rx_bytes"), ("tx", "tx_bytes")],
            net_scale,
        ),
        (
            "host-disk",
            "B/s",
            "host/disk/",
            [("read", "read_sectors"), ("write", "write_sectors")],
            512.0,
        ),
    ] {
        charts.push(Chart {
            name: name.into(),
            unit,
            lines: metrics
                .iter()
                .map(|(label, metric)| {
                    let points = session
                        .summed_rates(prefix, metric, SERIES_HISTORY)
                        .into_iter()
                        .map(|(t, r)| (t, r * scale))
                        .collect();
                    (label.to_string(), cut(points))
                })
                .collect(),
        });
    }
    let copies: Vec<(String, Vec<(Nanos, f64)>)> = shown_runs(session, view)
        .iter()
        .filter_map(|run| {
            let m = run.active_metric()?;
            Some((
                format!("{} #{} {}", run.guest, run.copy + 1, run.metrics[m].name),
                cut(run.rate_history(m)),
            ))
        })
        .collect();
    if !copies.is_empty() {
        charts.push(Chart {
            name: "copies".into(),
            unit: "per s",
            lines: copies,
        });
    }
    charts
}
