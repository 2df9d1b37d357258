//! Enter on a pane: a full-size chart of its series over the chart window,
//! one line per processor, device or side, with each line's latest,
//! least, mean and most value beneath it.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table, Widget};

use crate::event::Nanos;
use crate::format::{bytes, bytes_rate, figure, si};
use crate::model::{SERIES_HISTORY, Session};
use crate::ui::copies::{run_state_text, seen_lines};
use crate::ui::guests::guest_state_text;
use crate::ui::theme::Theme;
use crate::ui::widgets::{self, Top, Window, centered, pane_block, time_chart};
use crate::ui::{PaneId, View};

/// Lines beyond this many are the quietest and are only counted.
const MOST_LINES: usize = 8;

struct Named {
    name: String,
    colour: Color,
    points: Vec<(Nanos, f64)>,
}

/// Least, mean and most of the points inside the window, and the latest.
fn stats(points: &[(Nanos, f64)], window: Window) -> Option<[f64; 4]> {
    let inside: Vec<f64> = points
        .iter()
        .filter(|(t, _)| window.contains(*t))
        .map(|p| p.1)
        .collect();
    let last = *inside.last()?;
    let least = inside.iter().copied().fold(f64::INFINITY, f64::min);
    let most = inside.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mean = inside.iter().sum::<f64>() / inside.len() as f64;
    Some([last, least, mean, most])
}

struct Detail {
    title: String,
    lines: Vec<Named>,
    label: fn(f64) -> String,
    /// Lines left out as the quietest.
    hidden: usize,
    notes: Vec<Line<'static>>,
}

/// Keeps the busiest lines over the window, in their original order.
fn busiest(mut lines: Vec<Named>, window: Window) -> (Vec<Named>, usize) {
    if lines.len() <= MOST_LINES {
        return (lines, 0);
    }
    let mut means: Vec<(usize, f64)> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| (i, stats(&l.points, window).map_or(0.0, |s| s[2])))
        .collect();
    means.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut kept: Vec<usize> = means[..MOST_LINES].iter().map(|m| m.0).collect();
    kept.sort_unstable();
    let hidden = lines.len() - MOST_LINES;
    let mut index = 0;
    lines.retain(|_| {
        let keep = kept.contains(&index);
        index += 1;
        keep
    });
    (lines, hidden)
}

fn detail_of(session: &Session, theme: &Theme, pane: PaneId, view: &View) -> Detail {
    let palette = theme.palette();
    let colour = |i: usize| palette[i % palette.len()];
    match pane {
        PaneId::Cpu => {
            let mut sources: Vec<String> = session
                .all_series()
                .filter(|s| s.def.metric == "cpu.user" && s.def.source.starts_with("host"))
                .map(|s| s.def.source.clone())
                .collect();
            sources.sort_by_key(|s| (s != "host", s.len(), s.clone()));
            let mut lines = sources
                .iter()
                .enumerate()
                .map(|(i, source)| Named {
                    name: if source == "host" {
                        "all cpus".into()
                    } else {
                        source.trim_start_matches("host/").into()
                    },
                    colour: colour(i),
                    points: session
                        .cpu_shares(source, SERIES_HISTORY)
                        .iter()
                        .map(|s| (s.t, s.busy()))
                        .collect(),
                })
                .collect::<Vec<_>>();
            // Each guest as the host saw it: its cgroup's or its domain's
            // CPU time, in percent of one core.
            let count = lines.len();
            lines.extend(
                session
                    .all_series()
                    .filter(|s| {
                        s.def.source.starts_with("host-seen:")
                            && matches!(s.def.metric.as_str(), "cpu.cgroup_ns" | "cpu.xen_ns")
                    })
                    .enumerate()
                    .map(|(i, s)| Named {
                        name: format!(
                            "{} (host-seen)",
                            s.def.source.trim_start_matches("host-seen:")
                        ),
                        colour: colour(count + i),
                        points: session
                            .rates(s, SERIES_HISTORY)
                            .into_iter()
                            .map(|(t, ns)| (t, ns / 1e7))
                            .collect(),
                    }),
            );
            Detail {
                title: " cpu busy by processor (% of it) and by guest (% of a core) ".into(),
                lines,
                label: |v| format!("{v:.0}%"),
                hidden: 0,
                notes: Vec::new(),
            }
        }
        PaneId::Net | PaneId::Disk => {
            let net = pane == PaneId::Net;
            let (prefix, metrics, scale) = if net {
                ("host/net/", [("rx", "rx_bytes"), ("tx", "tx_bytes")], 1.0)
            } else {
                (
                    "host/disk/",
                    [("read", "read_sectors"), ("write", "write_sectors")],
                    512.0,
                )
            };
            // This host's devices, then each guest's as the host saw it
            // (its tap, its disk): `host-seen:<guest>`, metrics prefixed.
            let seen_prefix = if net { "net." } else { "disk." };
            let mut devices: Vec<(String, String, &str)> = session
                .all_series()
                .filter_map(|s| {
                    let source = &s.def.source;
                    let metric = s.def.metric.as_str();
                    let one_of = |prefix: &str| {
                        metrics
                            .iter()
                            .any(|(_, m)| metric.strip_prefix(prefix) == Some(*m))
                    };
                    if source.starts_with(prefix) && one_of("") {
                        Some((
                            source.trim_start_matches(prefix).to_string(),
                            source.clone(),
                            "",
                        ))
                    } else if source.starts_with("host-seen:") && one_of(seen_prefix) {
                        let guest = source.trim_start_matches("host-seen:");
                        Some((format!("{guest} (host-seen)"), source.clone(), seen_prefix))
                    } else {
                        None
                    }
                })
                .collect();
            devices.sort();
            devices.dedup();
            let mut lines = Vec::new();
            for (name, source, metric_prefix) in &devices {
                for (side, metric) in metrics {
                    let metric = format!("{metric_prefix}{metric}");
                    let Some(series) = session.series_named(source, &metric) else {
                        continue;
                    };
                    lines.push(Named {
                        name: format!("{name} {side}"),
                        colour: colour(lines.len()),
                        points: session
                            .rates(series, SERIES_HISTORY)
                            .into_iter()
                            .map(|(t, r)| (t, r * scale))
                            .collect(),
                    });
                }
            }
            let label = if net { view.net_rate() } else { bytes_rate };
            Detail {
                title: if net {
                    " network by device ".into()
                } else {
                    " disk by device ".into()
                },
                lines,
                label,
                hidden: 0,
                notes: Vec::new(),
            }
        }
        PaneId::Memory => {
            let lines = crate::sample::MEM_FIELDS
                .iter()
                .enumerate()
                .filter_map(|(i, metric)| {
                    let series = session.series_named("host", metric)?;
                    Some(Named {
                        name: metric.trim_start_matches("mem.").into(),
                        colour: colour(i),
                        points: series.points.iter().map(|p| (p.0, p.1 as f64)).collect(),
                    })
                })
                .collect();
            Detail {
                title: " memory ".into(),
                lines,
                label: bytes,
                hidden: 0,
                notes: Vec::new(),
            }
        }
        PaneId::Run(id) => run_detail(session, theme, id, view.net_rate()),
    }
}

fn run_detail(
    session: &Session,
    theme: &Theme,
    id: crate::event::RunId,
    net: fn(f64) -> String,
) -> Detail {
    let Some(run) = session.runs.get(&id) else {
        return Detail {
            title: " copy ".into(),
            lines: Vec::new(),
            label: si,
            hidden: 0,
            notes: vec![Line::raw("this copy is no longer shown")],
        };
    };
    let palette = theme.palette();
    let lines = run
        .metrics
        .iter()
        .enumerate()
        .filter(|(m, _)| !run.progress[*m].is_empty())
        .map(|(m, def)| Named {
            name: format!("{} ({})", def.name, def.unit),
            colour: palette[m % palette.len()],
            points: run.rate_history(m),
        })
        .collect();
    let (state, _) = run_state_text(run);
    let mut notes = vec![Line::raw(format!(
        "guest {} ({}), copy {}, run {}, pid {}, {state}",
        run.guest,
        run.technology,
        run.copy + 1,
        run.id,
        run.pid.map_or("—".into(), |p| p.to_string())
    ))];
    if let Some(c) = session.run_cpu_percent(run.id) {
        notes.push(Line::raw(format!(
            "host CPU of its process: {c:.1}% of a core"
        )));
    }
    if let Some((tool, version)) = &run.tool {
        notes.push(Line::raw(format!("tool   {tool}: {version}")));
    }
    for (metric, value, unit) in &run.tool_results {
        notes.push(Line::raw(format!(
            "result  {metric} {}",
            figure(Some(*value), unit)
        )));
    }
    if let Some((_, state)) = session.guests.iter().find(|(name, _)| *name == run.guest) {
        let (text, colour) = guest_state_text(state, theme);
        notes.push(Line::styled(
            format!("guest  {text}"),
            Style::new().fg(colour),
        ));
    }
    if let Some(seen) = seen_lines(&session.guest_figures(&run.guest), net) {
        notes.extend(seen.map(|l| Line::raw(format!("seen by {l}"))));
        notes.push(Line::styled("(cpu in cores)", Style::new().fg(theme.dim.0)));
    }
    Detail {
        title: format!(" {} #{} ", run.guest, run.copy + 1),
        lines,
        label: si,
        hidden: 0,
        notes,
    }
}

pub fn render(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    pane: PaneId,
    window: Window,
    view: &View,
) {
    let popup = centered(
        area,
        area.width.saturating_sub(4).max(40),
        area.height.max(10),
    );
    Clear.render(popup, buf);
    let mut detail = detail_of(session, theme, pane, view);
    // The filter keeps the series it names (a copy's own lines are its own).
    let mut filtered = 0;
    if let (Some(filter), false) = (&view.filter, matches!(pane, PaneId::Run(_))) {
        let before = detail.lines.len();
        detail.lines.retain(|l| filter.keeps_series(&l.name));
        filtered = before - detail.lines.len();
    }
    let (lines, hidden) = busiest(std::mem::take(&mut detail.lines), window);
    detail.lines = lines;
    detail.hidden += hidden;
    let block = pane_block(
        format!(
            "{}· {} to {} (w: window, Esc closes) ",
            detail.title,
            crate::format::clock(window.from),
            crate::format::clock(window.to)
        ),
        theme,
        true,
    );
    let inner = block.inner(popup);
    block.render(popup, buf);
    let table_rows =
        detail.lines.len() as u16 + 1 + u16::from(detail.hidden > 0) + u16::from(filtered > 0);
    let [chart, table_area, notes] = Layout::vertical([
        Constraint::Min(5),
        Constraint::Length(table_rows),
        Constraint::Length(detail.notes.len() as u16),
    ])
    .areas(inner);
    let drawn: Vec<widgets::Line> = detail
        .lines
        .iter()
        .map(|l| widgets::Line {
            colour: l.colour,
            points: l.points.clone(),
        })
        .collect();
    time_chart(
        buf,
        chart,
        window,
        &drawn,
        Top::AtLeast(0.0),
        detail.label,
        theme,
    );
    let dim = Style::new().fg(theme.dim.0);
    let mut rows: Vec<Row> = detail
        .lines
        .iter()
        .map(|l| {
            let figures = stats(&l.points, window)
                .map_or([const { String::new() }; 4], |s| s.map(detail.label));
            let [last, least, mean, most] = figures;
            Row::new(vec![
                Cell::from(Line::from(vec![
                    Span::styled("■ ", Style::new().fg(l.colour)),
                    Span::raw(l.name.clone()),
                ])),
                Cell::from(last),
                Cell::from(least),
                Cell::from(mean),
                Cell::from(most),
            ])
        })
        .collect();
    if detail.hidden > 0 {
        rows.push(
            Row::new(vec![Cell::from(format!(
                "and {} quieter lines not drawn",
                detail.hidden
            ))])
            .style(dim),
        );
    }
    if let (true, Some(filter)) = (filtered > 0, &view.filter) {
        rows.push(
            Row::new(vec![Cell::from(format!(
                "and {filtered} lines the filter /{} leaves out",
                filter.text
            ))])
            .style(dim),
        );
    }
    let table = Table::new(
        rows,
        [
            Constraint::Length(28),
            Constraint::Length(14),
            Constraint::Length(14),
            Constraint::Length(14),
            Constraint::Length(14),
        ],
    )
    .header(Row::new(["", "now", "least", "mean", "most"]).style(dim.add_modifier(Modifier::BOLD)))
    .column_spacing(1);
    Widget::render(table, table_area, buf);
    Paragraph::new(detail.notes).render(notes, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::Overlay;
    use crate::ui::fixtures::{draw, live_view, session};

    #[test]
    fn stats_cover_only_the_window() {
        let points = [(1, 10.0), (2, 20.0), (3, 60.0), (9, 1000.0)];
        let window = Window { from: 1, to: 3 };
        assert_eq!(stats(&points, window), Some([60.0, 10.0, 30.0, 60.0]));
        assert_eq!(stats(&points, Window { from: 4, to: 8 }), None);
    }

    #[test]
    fn guests_seen_by_the_host_are_lines_of_their_own() {
        let session = crate::ui::fixtures::seen_guests();
        let theme = Theme::built_in("dark").expect("dark");
        let view = live_view();
        let names = |pane| -> Vec<String> {
            detail_of(&session, &theme, pane, &view)
                .lines
                .into_iter()
                .map(|l| l.name)
                .collect()
        };
        let cpu = names(PaneId::Cpu);
        assert!(cpu.contains(&"vm00 (host-seen)".to_string()), "{cpu:?}");
        let net = names(PaneId::Net);
        assert!(net.contains(&"vm01 (host-seen) rx".to_string()), "{net:?}");
        assert!(net.contains(&"lo tx".to_string()), "{net:?}");
        let disk = names(PaneId::Disk);
        assert!(
            disk.contains(&"vm00 (host-seen) write".to_string()),
            "{disk:?}"
        );
        // 0.9 s of cgroup CPU a second: 90 % of a core.
        let vm00 = detail_of(&session, &theme, PaneId::Cpu, &view)
            .lines
            .into_iter()
            .find(|l| l.name == "vm00 (host-seen)")
            .expect("vm00");
        assert_eq!(vm00.points.last().map(|p| p.1), Some(90.0));
    }

    #[test]
    fn detail_views_at_every_size() {
        for pane in [
            PaneId::Cpu,
            PaneId::Net,
            PaneId::Disk,
            PaneId::Memory,
            PaneId::Run(2),
        ] {
            let mut view = live_view();
            view.overlay = Overlay::Detail(pane);
            view.window = crate::ui::ChartWindow::Last(60);
            for (w, h) in crate::ui::fixtures::SIZES {
                let name = format!("detail_{pane:?}_{w}x{h}").replace(['(', ')'], "");
                insta::assert_snapshot!(name, draw(&session(), &view, w, h).backend());
            }
        }
    }
}
