//! The host's four charts: CPU by state, network, disk, memory, each over
//! the chart window with its time and value axes.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph, Widget};

use super::theme::Theme;
use super::widgets::{self, Top, Window, pack, pane_block, time_chart};
use super::{PaneId, View};
use crate::format::{bits, bytes, bytes_rate, clock};
use crate::model::{CpuShares, SERIES_HISTORY, Session};

/// Where the CPU, network, disk and memory panes go: four across, or two
/// by two where four would be too narrow to read (one side of an A/B
/// replay on a small terminal).
pub fn quarters(area: Rect) -> [Rect; 4] {
    if area.width / 4 >= 18 {
        Layout::horizontal([Constraint::Ratio(1, 4); 4]).areas(area)
    } else {
        let [top, bottom] = Layout::vertical([Constraint::Ratio(1, 2); 2]).areas(area);
        let [cpu, net] = Layout::horizontal([Constraint::Ratio(1, 2); 2]).areas(top);
        let [disk, mem] = Layout::horizontal([Constraint::Ratio(1, 2); 2]).areas(bottom);
        [cpu, net, disk, mem]
    }
}

pub fn render(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    view: &View,
    selected: Option<PaneId>,
    window: Window,
) {
    let [cpu, net, disk, mem] = quarters(area);
    render_cpu(
        buf,
        cpu,
        session,
        theme,
        selected == Some(PaneId::Cpu),
        window,
    );
    let net_lines = Pair {
        name: if view.net_bits {
            "net bit/s"
        } else {
            "net B/s"
        },
        prefix: "host/net/",
        lines: [
            ("rx", "rx_bytes", theme.receive.0),
            ("tx", "tx_bytes", theme.transmit.0),
        ],
        scale: 1.0,
        format: view.net_rate(),
        axis: if view.net_bits { bits } else { bytes },
    };
    net_lines.render(
        buf,
        net,
        session,
        theme,
        selected == Some(PaneId::Net),
        window,
    );
    let disk_lines = Pair {
        name: "disk B/s",
        prefix: "host/disk/",
        lines: [
            ("rd", "read_sectors", theme.read.0),
            ("wr", "write_sectors", theme.write.0),
        ],
        scale: 512.0,
        format: bytes_rate,
        axis: bytes,
    };
    disk_lines.render(
        buf,
        disk,
        session,
        theme,
        selected == Some(PaneId::Disk),
        window,
    );
    render_memory(
        buf,
        mem,
        session,
        theme,
        selected == Some(PaneId::Memory),
        window,
    );
}

/// The CPU states a pane tells apart, with their colours, bottom first.
fn cpu_parts(theme: &Theme) -> [(&'static str, &'static str, Color); 5] {
    [
        ("user", "usr", theme.cpu_user.0),
        ("system", "sys", theme.cpu_system.0),
        ("iowait", "io", theme.cpu_iowait.0),
        ("steal", "st", theme.cpu_steal.0),
        ("irq", "irq", theme.cpu_other.0),
    ]
}

fn parts_of(s: &CpuShares) -> [f64; 5] {
    [s.user, s.system, s.iowait, s.steal, s.other]
}

/// The legend: each state's colour, name and latest share; short names
/// where the pane is narrow.
pub fn cpu_legend<'a>(last: &CpuShares, theme: &Theme, width: u16) -> Vec<Line<'a>> {
    let long = width >= 48;
    let items = cpu_parts(theme)
        .into_iter()
        .zip(parts_of(last))
        .map(|((name, short, colour), value)| {
            let (name, percent) = if long { (name, "%") } else { (short, "") };
            vec![
                Span::styled("■", Style::new().fg(colour)),
                Span::raw(format!("{name} {value:.0}{percent}")),
            ]
        })
        .collect();
    pack(items, width)
}

fn render_cpu(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    selected: bool,
    window: Window,
) {
    let shares = session.cpu_shares("host", SERIES_HISTORY);
    let last = shares.last().copied().unwrap_or_default();
    let block = pane_block(format!(" cpu {:.0}% ", last.busy()), theme, selected);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    let legend = cpu_legend(&last, theme, inner.width);
    let legend_rows = (legend.len() as u16).min(inner.height / 2);
    let [legend_area, chart] =
        Layout::vertical([Constraint::Length(legend_rows), Constraint::Min(0)]).areas(inner);
    Paragraph::new(legend).render(legend_area, buf);
    let plot = axes(buf, chart, window, theme);
    StackedCpu {
        shares: &shares,
        window,
        interval: session.header.interval_ns,
        theme,
    }
    .render(plot, buf);
}

/// Percent labels on the left and, with room, time labels below; the
/// rest of the area is the plot.
fn axes(buf: &mut Buffer, area: Rect, window: Window, theme: &Theme) -> Rect {
    let dim = Style::new().fg(theme.dim.0);
    if area.width < 12 || area.height < 2 {
        return area;
    }
    let time_row = area.height >= 6;
    let plot_height = area.height - u16::from(time_row);
    let label_x = area.x;
    buf.set_string(label_x, area.y, "100", dim);
    if plot_height >= 3 {
        buf.set_string(label_x, area.y + plot_height / 2, " 50", dim);
    }
    buf.set_string(label_x, area.y + plot_height - 1, "  0", dim);
    for y in area.y..area.y + plot_height {
        buf[(area.x + 3, y)].set_symbol("│").set_style(dim);
    }
    let plot = Rect {
        x: area.x + 4,
        y: area.y,
        width: area.width - 4,
        height: plot_height,
    };
    if time_row {
        let y = area.bottom() - 1;
        let (from, to) = (clock(window.from), clock(window.to));
        buf.set_string(plot.x, y, &from, dim);
        let right = plot.right().saturating_sub(to.chars().count() as u16);
        if right > plot.x + from.chars().count() as u16 {
            buf.set_string(right, y, &to, dim);
        }
    }
    plot
}

/// CPU time stacked per column: user, system, iowait, steal, irq, from the
/// bottom. Each column is a slice of the window and shows the interval
/// that covers it; each cell takes the colour of the state filling most
/// of it.
struct StackedCpu<'a> {
    shares: &'a [CpuShares],
    window: Window,
    interval: u64,
    theme: &'a Theme,
}

impl StackedCpu<'_> {
    /// The interval covering session time `t`: the first ending at or
    /// after it, if it began before it.
    fn covering(&self, t: u64) -> Option<&CpuShares> {
        let i = self.shares.partition_point(|s| s.t < t);
        let share = self.shares.get(i)?;
        let began = match i.checked_sub(1) {
            Some(before) => self.shares[before].t,
            None => share.t.saturating_sub(self.interval),
        };
        (began <= t).then_some(share)
    }
}

impl Widget for StackedCpu<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 || area.width == 0 {
            return;
        }
        const LEVELS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
        let eighths = f64::from(area.height) * 8.0;
        let colours = cpu_parts(self.theme).map(|p| p.2);
        let span = self.window.to.saturating_sub(self.window.from).max(1);
        for x in 0..area.width {
            let t = self.window.from
                + (u128::from(span) * (2 * u128::from(x) + 1) / (2 * u128::from(area.width)))
                    as u64;
            let Some(s) = self.covering(t) else {
                continue;
            };
            let mut bounds = [0.0f64; 5];
            let mut acc = 0.0;
            for (i, p) in parts_of(s).iter().enumerate() {
                acc += p / 100.0 * eighths;
                bounds[i] = acc;
            }
            let top = acc.round() as i64;
            for row in 0..area.height {
                let floor = i64::from(row) * 8;
                let fill = (top - floor).clamp(0, 8) as usize;
                if fill == 0 {
                    continue;
                }
                let middle = floor as f64 + fill as f64 / 2.0;
                let colour = bounds
                    .iter()
                    .position(|b| *b >= middle)
                    .map_or(colours[4], |i| colours[i]);
                let cell = &mut buf[(area.x + x, area.y + area.height - 1 - row)];
                cell.set_symbol(LEVELS[fill]).set_fg(colour);
            }
        }
    }
}

/// Two rate lines summed over every device of a kind (rx/tx, read/write).
struct Pair<'a> {
    name: &'a str,
    prefix: &'a str,
    /// Label, counter metric and colour of each line.
    lines: [(&'a str, &'a str, Color); 2],
    /// Bytes per counter unit (512 for sectors).
    scale: f64,
    format: fn(f64) -> String,
    /// Axis labels in the pane's unit, without its "/s" to keep them short.
    axis: fn(f64) -> String,
}

impl Pair<'_> {
    fn render(
        &self,
        buf: &mut Buffer,
        area: Rect,
        session: &Session,
        theme: &Theme,
        selected: bool,
        window: Window,
    ) {
        let block = pane_block(format!(" {} ", self.name), theme, selected);
        let inner = block.inner(area);
        block.render(area, buf);
        if inner.height == 0 {
            return;
        }
        let mut lines = Vec::new();
        let mut items = Vec::new();
        for (label, metric, colour) in self.lines {
            let points: Vec<(u64, f64)> = session
                .summed_rates(self.prefix, metric, SERIES_HISTORY)
                .into_iter()
                .map(|(t, r)| (t, r * self.scale))
                .collect();
            let now = points.last().map_or(0.0, |p| p.1);
            items.push(vec![Span::styled(
                format!("{label} {}", (self.format)(now)),
                Style::new().fg(colour),
            )]);
            lines.push(widgets::Line { colour, points });
        }
        let legend = pack(items, inner.width);
        let legend_rows = (legend.len() as u16).min(inner.height / 2);
        let [legend_area, chart] =
            Layout::vertical([Constraint::Length(legend_rows), Constraint::Min(0)]).areas(inner);
        Paragraph::new(legend).render(legend_area, buf);
        time_chart(
            buf,
            chart,
            window,
            &lines,
            Top::AtLeast(1.0),
            self.axis,
            theme,
        );
    }
}

fn render_memory(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    selected: bool,
    window: Window,
) {
    let total = session
        .series_named("host", "mem.total")
        .and_then(|s| s.points.back())
        .map_or(0, |p| p.1);
    let used: Vec<(u64, f64)> = session
        .series_named("host", "mem.available")
        .map(|s| {
            s.points
                .iter()
                .map(|p| (p.0, total.saturating_sub(p.1) as f64))
                .collect()
        })
        .unwrap_or_default();
    let now = used.last().map_or(0.0, |p| p.1);
    let block = pane_block(" memory used ".into(), theme, selected);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    let [gauge, chart] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    let ratio = if total > 0 { now / total as f64 } else { 0.0 };
    Gauge::default()
        .ratio(ratio.clamp(0.0, 1.0))
        .label(format!("{} of {}", bytes(now), bytes(total as f64)))
        .gauge_style(Style::new().fg(theme.memory.0).bg(theme.highlight_bg.0))
        .render(gauge, buf);
    let lines = [widgets::Line {
        colour: theme.memory.0,
        points: used,
    }];
    time_chart(
        buf,
        chart,
        window,
        &lines,
        Top::Exactly(total as f64),
        bytes,
        theme,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::session;

    #[test]
    fn a_cpu_column_shows_the_interval_that_covers_it() {
        let session = session();
        let shares = session.cpu_shares("host", SERIES_HISTORY);
        let chart = StackedCpu {
            shares: &shares,
            window: Window {
                from: 0,
                to: 10_000_000_000,
            },
            interval: 1_000_000_000,
            theme: &Theme::built_in("dark").expect("dark"),
        };
        // Intervals end at 1 s, 2 s, ... 10 s: 2.5 s lies in the one ending at 3 s.
        assert_eq!(
            chart.covering(2_500_000_000).map(|s| s.t),
            Some(3_000_000_000)
        );
        assert_eq!(
            chart.covering(3_000_000_000).map(|s| s.t),
            Some(3_000_000_000)
        );
        // Before the first interval began, and after the last ended: nothing.
        assert_eq!(chart.covering(11_000_000_000), None);
    }

    #[test]
    fn the_cpu_legend_names_every_state() {
        let theme = Theme::built_in("dark").expect("dark");
        let last = CpuShares {
            t: 0,
            user: 40.0,
            system: 10.0,
            iowait: 5.0,
            steal: 2.0,
            other: 1.0,
        };
        assert_eq!(cpu_legend(&last, &theme, 60).len(), 1);
        assert_eq!(cpu_legend(&last, &theme, 18).len(), 2);
        let terminal_text = |width: u16| {
            let mut buf = Buffer::empty(Rect::new(0, 0, width, 3));
            Paragraph::new(cpu_legend(&last, &theme, width)).render(buf.area, &mut buf);
            buf.content().iter().map(|c| c.symbol()).collect::<String>()
        };
        let wide = terminal_text(60);
        for part in ["user 40%", "system 10%", "iowait 5%", "steal 2%", "irq 1%"] {
            assert!(wide.contains(part), "{wide}");
        }
        let narrow = terminal_text(18);
        for part in ["usr 40", "sys 10", "io 5", "st 2", "irq 1"] {
            assert!(narrow.contains(part), "{narrow}");
        }
    }
}
