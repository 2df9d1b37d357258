//! The screens: a pure function of (model, theme, view state).

pub mod keys;
pub mod terminal;
pub mod theme;

use std::collections::HashMap;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, BorderType, Borders, Cell, Clear, Gauge, Paragraph, Row, Sparkline, Table, Widget, Wrap,
};

use crate::event::{GuestState, LogLevel, Nanos, PhaseOutcome, RunId, RunOutcome};
use crate::model::{CpuShares, Phase, Run, RunState, Session};
use crate::report;
use crate::results::{DEFAULT_SKEW_BOUND, Results};
use keys::bindings_for;
use theme::Theme;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaneId {
    Cpu,
    Net,
    Disk,
    Memory,
    Run(RunId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    /// A note being typed.
    Note(String),
    Detail(PaneId),
    /// The loss matrix of the session so far.
    Results,
    /// Host-seen against guest-seen, per guest.
    Overhead,
}

impl Overlay {
    /// Shows `overlay`, or closes it if it is the one shown.
    pub fn toggle(&mut self, overlay: Overlay) {
        *self = if *self == overlay {
            Overlay::None
        } else {
            overlay
        };
    }
}

/// Where the session's events come from, as the header tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Feed {
    Live {
        waiting: bool,
    },
    Replay {
        speed: f64,
        paused: bool,
        end: Nanos,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub selected: usize,
    pub overlay: Overlay,
    pub display_paused: bool,
    pub feed: Feed,
    pub finished: bool,
}

impl View {
    pub fn new(feed: Feed) -> Self {
        View {
            selected: 0,
            overlay: Overlay::None,
            display_paused: false,
            feed,
            finished: false,
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.feed, Feed::Replay { .. })
    }
}

/// The runs whose panes are shown: the current phase's, else the last one's.
pub fn shown_runs(session: &Session) -> Vec<&Run> {
    session
        .phases
        .last()
        .map_or_else(Vec::new, |p| session.runs_of(p).collect())
}

/// Every selectable pane, in Tab order.
pub fn panes(session: &Session) -> Vec<PaneId> {
    let mut panes = vec![PaneId::Cpu, PaneId::Net, PaneId::Disk, PaneId::Memory];
    panes.extend(shown_runs(session).iter().map(|r| PaneId::Run(r.id)));
    panes
}

pub fn render(frame: &mut Frame, session: &Session, theme: &Theme, view: &View) {
    let area = frame.area();
    frame.render_widget(Block::new().style(Style::new().fg(theme.text.0)), area);
    let results_rows = session
        .phases
        .iter()
        .filter_map(|p| p.summary.as_ref())
        .map(|s| s.metrics.len().max(1))
        .sum::<usize>();
    let results_height = (results_rows as u16 + 3).clamp(4, (area.height / 3).max(4));
    let [header, aggregates, copies, results, log, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(6),
        Constraint::Min(3),
        Constraint::Length(results_height),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let selected = panes(session).get(view.selected).copied();
    render_header(frame.buffer_mut(), header, session, theme, view);
    render_aggregates(frame.buffer_mut(), aggregates, session, theme, selected);
    render_copies(frame.buffer_mut(), copies, session, theme, selected);
    render_results(frame.buffer_mut(), results, session, theme);
    render_log(frame.buffer_mut(), log, session, theme);
    render_key_hints(frame.buffer_mut(), keys, theme, view);
    match &view.overlay {
        Overlay::None => {}
        Overlay::Help => render_help(frame.buffer_mut(), area, theme, view),
        Overlay::Note(text) => render_note(frame, area, theme, text),
        Overlay::Detail(pane) => render_detail(frame.buffer_mut(), area, session, theme, *pane),
        Overlay::Results | Overlay::Overhead => {
            let [_, body, _] = Layout::vertical([
                Constraint::Length(1),
                Constraint::Min(3),
                Constraint::Length(1),
            ])
            .areas(area);
            if view.overlay == Overlay::Results {
                render_matrix(frame.buffer_mut(), body, session, theme);
            } else {
                render_overhead(frame.buffer_mut(), body, session, theme);
            }
        }
    }
}

use crate::format::{bytes_rate, clock, figure, si, skew_with_clock};

fn phase_label(session: &Session, phase: &Phase) -> String {
    format!(
        "phase {}/{} {} ×{} rep {}",
        phase.id + 1,
        session.header.schedule.len(),
        phase.benchmark,
        phase.concurrency,
        phase.repetition
    )
}

fn render_header(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme, view: &View) {
    let state = if let Some(phase) = session.current_phase() {
        phase_label(session, phase)
    } else if session.ended.is_some() || view.finished {
        "finished".to_string()
    } else if matches!(view.feed, Feed::Live { waiting: true, .. }) && session.phases.is_empty() {
        "waiting: press s to start".to_string()
    } else if let Some(last) = session.phases.last() {
        format!("after {}", phase_label(session, last))
    } else {
        "waiting".to_string()
    };
    let feed = match &view.feed {
        Feed::Live { .. } => "LIVE".to_string(),
        Feed::Replay { speed, paused, end } => format!(
            "REPLAY {}{} {}/{}",
            if *paused { "paused " } else { "" },
            format_speed(*speed),
            clock(session.now),
            clock(*end)
        ),
    };
    let mut spans = vec![
        Span::styled(
            " vmbench ",
            Style::new().fg(theme.title.0).add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            session.header.plan_name.clone(),
            Style::new().fg(theme.accent.0),
        ),
        Span::raw("  "),
        Span::raw(state),
        Span::raw("  "),
        Span::styled(
            format!("{} elapsed", clock(session.now)),
            Style::new().fg(theme.dim.0),
        ),
        Span::raw("  "),
        Span::styled(
            format!("{} left", clock(session.remaining())),
            Style::new().fg(theme.dim.0),
        ),
        Span::raw("  "),
        Span::styled(
            feed,
            Style::new().fg(theme.accent.0).add_modifier(Modifier::BOLD),
        ),
    ];
    if view.display_paused {
        spans.push(Span::styled(
            " DISPLAY PAUSED",
            Style::new().fg(theme.warn.0).add_modifier(Modifier::BOLD),
        ));
    }
    Line::from(spans).render(area, buf);
}

pub fn format_speed(speed: f64) -> String {
    if speed >= 1.0 {
        format!("{speed:.0}×")
    } else {
        format!("{speed}×")
    }
}

fn pane_block<'a>(title: String, theme: &Theme, selected: bool) -> Block<'a> {
    let (border, kind) = if selected {
        (
            Style::new()
                .fg(theme.border_selected.0)
                .add_modifier(Modifier::BOLD),
            BorderType::Thick,
        )
    } else {
        (Style::new().fg(theme.border.0), BorderType::Plain)
    };
    let title_style = if selected {
        Style::new()
            .fg(theme.border_selected.0)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(theme.title.0)
    };
    Block::new()
        .borders(Borders::ALL)
        .border_type(kind)
        .border_style(border)
        .title(Span::styled(title, title_style))
}

fn render_aggregates(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    selected: Option<PaneId>,
) {
    let [cpu, net, disk, mem] = Layout::horizontal([Constraint::Ratio(1, 4); 4]).areas(area);
    render_cpu_pane(buf, cpu, session, theme, selected == Some(PaneId::Cpu));
    let net_lines = [
        ("rx", "rx_bytes", theme.receive.0),
        ("tx", "tx_bytes", theme.transmit.0),
    ];
    let pair = PairPane {
        name: "net",
        prefix: "host/net/",
        lines: net_lines,
        scale: 1.0,
    };
    pair.render(buf, net, session, theme, selected == Some(PaneId::Net));
    let disk_lines = [
        ("rd", "read_sectors", theme.read.0),
        ("wr", "write_sectors", theme.write.0),
    ];
    let pair = PairPane {
        name: "disk",
        prefix: "host/disk/",
        lines: disk_lines,
        scale: 512.0,
    };
    pair.render(buf, disk, session, theme, selected == Some(PaneId::Disk));
    render_memory_pane(buf, mem, session, theme, selected == Some(PaneId::Memory));
}

fn render_cpu_pane(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme, selected: bool) {
    let inner_width = area.width.saturating_sub(2) as usize;
    let shares = session.cpu_shares("host", inner_width);
    let last = shares.last().copied().unwrap_or_default();
    let title = format!(" cpu {:.0}% ", last.busy());
    let block = pane_block(title, theme, selected);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    let [legend, chart] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    Line::from(vec![
        Span::styled(
            format!("u{:.0} ", last.user),
            Style::new().fg(theme.cpu_user.0),
        ),
        Span::styled(
            format!("s{:.0} ", last.system),
            Style::new().fg(theme.cpu_system.0),
        ),
        Span::styled(
            format!("w{:.0} ", last.iowait),
            Style::new().fg(theme.cpu_iowait.0),
        ),
        Span::styled(
            format!("st{:.0}", last.steal),
            Style::new().fg(theme.cpu_steal.0),
        ),
    ])
    .render(legend, buf);
    StackedCpu {
        shares: &shares,
        theme,
    }
    .render(chart, buf);
}

/// CPU time stacked per column: user, system, iowait, steal, other, from the
/// bottom. Each cell takes the colour of the state that fills most of it.
struct StackedCpu<'a> {
    shares: &'a [CpuShares],
    theme: &'a Theme,
}

impl Widget for StackedCpu<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.height == 0 || area.width == 0 {
            return;
        }
        const LEVELS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
        let eighths = f64::from(area.height) * 8.0;
        let skip = self.shares.len().saturating_sub(area.width as usize);
        let colours = [
            self.theme.cpu_user.0,
            self.theme.cpu_system.0,
            self.theme.cpu_iowait.0,
            self.theme.cpu_steal.0,
            self.theme.cpu_other.0,
        ];
        for (x, s) in self.shares.iter().skip(skip).enumerate() {
            let parts = [s.user, s.system, s.iowait, s.steal, s.other];
            let mut bounds = [0.0f64; 5];
            let mut acc = 0.0;
            for (i, p) in parts.iter().enumerate() {
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
                let cell = &mut buf[(area.x + x as u16, area.y + area.height - 1 - row)];
                cell.set_symbol(LEVELS[fill]).set_fg(colour);
            }
        }
    }
}

fn sparkline_data(rates: &[(Nanos, f64)], scale: f64) -> Vec<u64> {
    rates
        .iter()
        .map(|(_, r)| (r * scale).max(0.0) as u64)
        .collect()
}

/// Two byte-rate lines summed over every device of a kind (rx/tx, read/write).
struct PairPane<'a> {
    name: &'a str,
    prefix: &'a str,
    /// Label, counter metric and colour of each line.
    lines: [(&'a str, &'a str, Color); 2],
    /// Bytes per counter unit (512 for sectors).
    scale: f64,
}

impl PairPane<'_> {
    fn render(
        &self,
        buf: &mut Buffer,
        area: Rect,
        session: &Session,
        theme: &Theme,
        selected: bool,
    ) {
        let block = pane_block(format!(" {} ", self.name), theme, selected);
        let inner = block.inner(area);
        block.render(area, buf);
        let rows = Layout::vertical([Constraint::Ratio(1, 2); 2]).split(inner);
        for ((label, metric, colour), row) in self.lines.iter().zip(rows.iter()) {
            if row.height == 0 {
                continue;
            }
            let rates = session.summed_rates(self.prefix, metric, inner.width as usize);
            let now = rates.last().map_or(0.0, |r| r.1 * self.scale);
            let [text, spark] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(*row);
            Line::from(Span::styled(
                format!("{label} {}", bytes_rate(now)),
                Style::new().fg(*colour),
            ))
            .render(text, buf);
            Sparkline::default()
                .data(sparkline_data(&rates, self.scale))
                .style(Style::new().fg(*colour))
                .render(spark, buf);
        }
    }
}

fn render_memory_pane(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    selected: bool,
) {
    let total = session
        .series_named("host", "mem.total")
        .and_then(|s| s.points.back())
        .map_or(0, |p| p.1);
    let available = session.series_named("host", "mem.available");
    let used: Vec<u64> = available
        .map(|s| s.points.iter().map(|p| total.saturating_sub(p.1)).collect())
        .unwrap_or_default();
    let now = used.last().copied().unwrap_or(0);
    let block = pane_block(" memory ".into(), theme, selected);
    let inner = block.inner(area);
    block.render(area, buf);
    if inner.height == 0 {
        return;
    }
    let [gauge, spark] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    let ratio = if total > 0 {
        now as f64 / total as f64
    } else {
        0.0
    };
    Gauge::default()
        .ratio(ratio.clamp(0.0, 1.0))
        .label(format!("{}B of {}B", si(now as f64), si(total as f64)))
        .gauge_style(Style::new().fg(theme.memory.0).bg(theme.highlight_bg.0))
        .render(gauge, buf);
    let skip = used.len().saturating_sub(spark.width as usize);
    Sparkline::default()
        .data(used[skip..].iter().map(|u| u / 1024).collect::<Vec<u64>>())
        .max(total / 1024)
        .style(Style::new().fg(theme.memory.0))
        .render(spark, buf);
}

fn run_state_text(run: &Run) -> (String, fn(&Theme) -> Color) {
    match &run.state {
        RunState::Waiting => ("waiting".into(), |t| t.dim.0),
        RunState::Running => ("running".into(), |t| t.progress.0),
        RunState::Done(RunOutcome::Completed) => ("done".into(), |t| t.good.0),
        RunState::Done(RunOutcome::Cancelled) => ("cancelled".into(), |t| t.warn.0),
        RunState::Done(RunOutcome::Failed { reason }) => (format!("failed: {reason}"), |t| t.bad.0),
    }
}

fn run_metric_text(run: &Run) -> String {
    match run.active_metric() {
        Some(m) => format!(
            "{} {}",
            run.metrics[m].name,
            figure(run.current_rate(m), &run.metrics[m].unit)
        ),
        None => String::new(),
    }
}

fn render_copies(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    selected: Option<PaneId>,
) {
    let runs = shown_runs(session);
    if runs.is_empty() {
        return render_guests(buf, area, session, theme);
    }
    let technologies = technology_line(&runs, theme);
    let area = match technologies {
        Some(line) if area.height > 4 => {
            let [top, rest] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
            line.render(top, buf);
            rest
        }
        _ => area,
    };
    // Each guest's load once per frame, however many copies it runs.
    let mut seen: HashMap<&str, Option<[String; 2]>> = HashMap::new();
    for run in &runs {
        seen.entry(run.guest.as_str())
            .or_insert_with(|| seen_lines(&session.guest_figures(&run.guest)));
    }
    // Host-seen and guest-seen lines need a wider, taller pane.
    let any_seen = seen.values().any(Option::is_some);
    let (pane_height, min_width): (u16, u16) = if any_seen { (6, 36) } else { (4, 26) };
    let columns = (area.width / min_width).clamp(1, 4) as usize;
    let rows_needed = runs.len().div_ceil(columns);
    if rows_needed as u16 * pane_height > area.height {
        return render_copies_compact(buf, area, session, theme, selected, &runs, &seen);
    }
    let rows = Layout::vertical(vec![Constraint::Length(pane_height); rows_needed]).split(area);
    for (i, run) in runs.iter().enumerate() {
        let row = rows[i / columns];
        let cells =
            Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(row);
        render_copy_pane(
            buf,
            cells[i % columns],
            session,
            theme,
            run,
            seen[run.guest.as_str()].as_ref(),
            selected == Some(PaneId::Run(run.id)),
        );
    }
}

fn render_copy_pane(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    run: &Run,
    seen: Option<&[String; 2]>,
    selected: bool,
) {
    // A guest that is not up says so on each of its panes.
    let connection = session
        .guests
        .iter()
        .find(|(name, _)| *name == run.guest)
        .and_then(|(_, state)| match state {
            GuestState::Lost { .. } => Some(" · LOST"),
            GuestState::Reconnecting { .. } => Some(" · reconnecting"),
            GuestState::Failed { .. } => Some(" · unreachable"),
            _ => None,
        })
        .unwrap_or("");
    let title = format!(
        " {} #{} · {}{connection} ",
        run.guest,
        run.copy + 1,
        run.technology
    );
    let block = pane_block(title, theme, selected);
    let inner = block.inner(area);
    block.render(area, buf);
    let [status, spark] = match seen {
        Some([host, guest]) => {
            let [status, host_area, guest_area, spark] = Layout::vertical([
                Constraint::Length(1),
                Constraint::Length(1),
                Constraint::Length(1),
                Constraint::Min(0),
            ])
            .areas(inner);
            Span::styled(host, Style::new().fg(theme.dim.0)).render(host_area, buf);
            Span::styled(guest, Style::new().fg(theme.dim.0)).render(guest_area, buf);
            [status, spark]
        }
        None => Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner),
    };
    let (state, colour) = run_state_text(run);
    let cpu = session
        .run_cpu_percent(run.id)
        .map(|c| format!(" cpu {c:.0}%"))
        .unwrap_or_default();
    Line::from(vec![
        Span::styled(state, Style::new().fg(colour(theme))),
        Span::raw(" "),
        Span::styled(run_metric_text(run), Style::new().fg(theme.accent.0)),
        Span::styled(cpu, Style::new().fg(theme.dim.0)),
    ])
    .render(status, buf);
    if let Some(m) = run.active_metric() {
        let history = run.rate_history(m);
        let skip = history.len().saturating_sub(spark.width as usize);
        Sparkline::default()
            .data(
                history[skip..]
                    .iter()
                    .map(|r| (r * 1000.0) as u64)
                    .collect::<Vec<u64>>(),
            )
            .style(Style::new().fg(theme.progress.0))
            .render(spark, buf);
    }
}

fn render_copies_compact(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    selected: Option<PaneId>,
    runs: &[&Run],
    seen: &HashMap<&str, Option<[String; 2]>>,
) {
    let block = pane_block(format!(" copies ({}) ", runs.len()), theme, false);
    let inner = block.inner(area);
    block.render(area, buf);
    let visible = inner.height as usize;
    let chosen = runs
        .iter()
        .position(|r| selected == Some(PaneId::Run(r.id)))
        .unwrap_or(0);
    let first = chosen.saturating_sub(visible.saturating_sub(1));
    for (row, run) in runs.iter().skip(first).take(visible).enumerate() {
        let (state, colour) = run_state_text(run);
        let cpu = session
            .run_cpu_percent(run.id)
            .map(|c| format!(" cpu {c:.0}%"))
            .unwrap_or_default();
        let marker = if selected == Some(PaneId::Run(run.id)) {
            "▶"
        } else {
            " "
        };
        let seen = seen[run.guest.as_str()]
            .as_ref()
            .map(|[host, guest]| format!("  {host}  {guest}"))
            .unwrap_or_default();
        let line = Line::from(vec![
            Span::styled(marker, Style::new().fg(theme.border_selected.0)),
            Span::raw(format!("{} #{:<3} ", run.guest, run.copy + 1)),
            Span::styled(format!("{state:<9} "), Style::new().fg(colour(theme))),
            Span::styled(run_metric_text(run), Style::new().fg(theme.accent.0)),
            Span::styled(cpu, Style::new().fg(theme.dim.0)),
            Span::styled(seen, Style::new().fg(theme.dim.0)),
        ]);
        line.render(
            Rect {
                y: inner.y + row as u16,
                height: 1,
                ..inner
            },
            buf,
        );
    }
}

/// A guest as the host saw it and as it saw itself, one line each: CPU in
/// cores, network and disk in bytes per second. None when nothing measures it.
fn seen_lines(f: &crate::model::GuestFigures) -> Option<[String; 2]> {
    if f.host_side()
        .iter()
        .chain(&f.guest_side())
        .all(Option::is_none)
    {
        return None;
    }
    let line = |who: &str, [cpu, net, disk]: [Option<f64>; 3]| {
        let or_dash = |v: Option<f64>, format: fn(f64) -> String| v.map_or("–".into(), format);
        format!(
            "{who:<5} cpu {} net {} dsk {}",
            or_dash(cpu, |c| format!("{c:.2}")),
            or_dash(net, si),
            or_dash(disk, si)
        )
    };
    Some([line("host", f.host_side()), line("guest", f.guest_side())])
}

/// The current rates summed per technology: the live form of the study's
/// "aggregate of N guests" figures.
fn technology_line<'a>(runs: &[&Run], theme: &Theme) -> Option<Line<'a>> {
    let mut groups: Vec<(&str, usize, f64, &str, &str)> = Vec::new();
    for run in runs {
        let Some(m) = run.active_metric() else {
            continue;
        };
        let rate = run.current_rate(m).unwrap_or(0.0);
        let def = &run.metrics[m];
        match groups
            .iter_mut()
            .find(|g| g.0 == run.technology && g.3 == def.name)
        {
            Some(g) => {
                g.1 += 1;
                g.2 += rate;
            }
            None => groups.push((&run.technology, 1, rate, &def.name, &def.unit)),
        }
    }
    if groups.is_empty() {
        return None;
    }
    let mut spans = vec![Span::styled("by technology ", Style::new().fg(theme.dim.0))];
    for (i, (technology, copies, rate, metric, unit)) in groups.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled(" │ ", Style::new().fg(theme.dim.0)));
        }
        spans.push(Span::raw(format!("{technology} ×{copies} {metric} ")));
        spans.push(Span::styled(
            figure(Some(*rate), unit),
            Style::new().fg(theme.accent.0),
        ));
    }
    Some(Line::from(spans))
}

/// Before any phase: each guest's connection, as far as it has got.
fn render_guests(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme) {
    let title = if session.guests.is_empty() {
        " copies ".to_string()
    } else {
        format!(" guests ({}) ", session.guests.len())
    };
    let block = pane_block(title, theme, false);
    let inner = block.inner(area);
    block.render(area, buf);
    if session.guests.is_empty() {
        Paragraph::new("no benchmark has run yet")
            .style(Style::new().fg(theme.dim.0))
            .render(inner, buf);
        return;
    }
    for (row, (name, state)) in session
        .guests
        .iter()
        .take(inner.height as usize)
        .enumerate()
    {
        let (text, colour) = guest_state_text(state, theme);
        // The clock as measured again before the latest phase.
        let drift = session
            .clocks
            .get(name)
            .map_or(String::new(), |(_, u, drift)| {
                format!(
                    "  drift {:+.3} ms ±{:.3}",
                    *drift as f64 / 1e6,
                    *u as f64 / 1e6
                )
            });
        Line::from(vec![
            Span::raw(format!("{name:<12} ")),
            Span::styled(text, Style::new().fg(colour)),
            Span::styled(drift, Style::new().fg(theme.dim.0)),
        ])
        .render(
            Rect {
                y: inner.y + row as u16,
                height: 1,
                ..inner
            },
            buf,
        );
    }
}

fn guest_state_text(state: &GuestState, theme: &Theme) -> (String, Color) {
    match state {
        GuestState::Connecting => ("connecting…".into(), theme.dim.0),
        GuestState::Ready { info } => {
            let clock = match (info.clock_offset_ns, info.clock_rtt_ns) {
                (Some(offset), Some(rtt)) => format!(
                    "clock {:+.3} ms ±{:.3}",
                    offset as f64 / 1e6,
                    rtt as f64 / 2e6
                ),
                _ => "clock unmeasured".into(),
            };
            let workloads = match &info.vmbench {
                Ok(_) => String::new(),
                Err(why) => format!(" · {why}"),
            };
            (
                format!(
                    "ready  {} {}  connect {:.0} ms  {clock}{workloads}",
                    info.arch, info.kernel, info.connect_ms
                ),
                theme.good.0,
            )
        }
        GuestState::Failed { reason } => (format!("failed: {reason}"), theme.bad.0),
        GuestState::Lost { reason } => (format!("LOST: {reason}"), theme.bad.0),
        GuestState::Reconnecting { attempt } => {
            (format!("reconnecting… (attempt {attempt})"), theme.warn.0)
        }
        GuestState::Closed => ("closed".into(), theme.dim.0),
    }
}

/// The results table: each ended phase's result as computed once when it
/// ended (the same the report and the export read), newest last. The
/// last column is the report's verdict: `ok`, or why the phase is left out.
fn render_results(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme) {
    let rows = &session.results.phases;
    let visible = area.height.saturating_sub(3) as usize;
    let skip = rows.len().saturating_sub(visible);
    let body: Vec<Row> = rows
        .iter()
        .skip(skip)
        .map(|r| {
            let (verdict, colour) = match &r.flag {
                None => ("ok".to_string(), theme.good.0),
                Some(flag @ crate::results::Flag::Skewed { .. }) => (flag.short(), theme.warn.0),
                Some(flag) => (flag.short(), theme.bad.0),
            };
            Row::new(vec![
                Cell::from(format!("{}", r.phase)),
                Cell::from(r.benchmark.clone()),
                Cell::from(format!("×{}", r.concurrency)),
                Cell::from(format!("{}", r.repetition)),
                Cell::from(r.metric.clone()),
                Cell::from(figure(r.aggregate, &r.unit)).style(Style::new().fg(theme.accent.0)),
                Cell::from(figure(r.per_guest_mean, &r.unit)),
                Cell::from(skew_with_clock(r.skew_ms, r.clock_uncertainty_ms)),
                Cell::from(verdict).style(Style::new().fg(colour)),
            ])
        })
        .collect();
    // "all copies": the sum of the copies' rates while all ran (or of their
    // tools' totals); "per copy": the mean of each copy's own whole-run
    // figure. They differ when copies ran longer than their common window.
    let header = Row::new([
        "#",
        "bench",
        "n",
        "rep",
        "metric",
        "all copies",
        "per copy",
        "skew",
        "verdict",
    ])
    .style(Style::new().fg(theme.dim.0).add_modifier(Modifier::BOLD));
    let table = Table::new(
        body,
        [
            Constraint::Length(3),
            Constraint::Min(5),
            Constraint::Length(4),
            Constraint::Length(3),
            Constraint::Length(10),
            Constraint::Length(15),
            Constraint::Length(15),
            Constraint::Length(14),
            Constraint::Length(12),
        ],
    )
    .header(header)
    .column_spacing(1)
    .block(pane_block(" results ".into(), theme, false));
    Widget::render(table, area, buf);
}

/// Per guest: what the host spent on it against what it saw itself, over
/// the last interval and over the last phase it ran in.
fn render_overhead(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme) {
    Clear.render(area, buf);
    let block = pane_block(
        " overhead: host-seen ÷ guest-seen (cpu cores, net and disk B/s) ".into(),
        theme,
        true,
    );
    let inner = block.inner(area);
    block.render(area, buf);
    let cell = |host: Option<f64>, guest: Option<f64>, format: fn(f64) -> String| {
        let dash = |v: Option<f64>| v.map_or("–".to_string(), format);
        let ratio =
            crate::results::ratio(host, guest).map_or(String::new(), |r| format!("  ×{r:.2}"));
        format!("{} / {}{ratio}", dash(host), dash(guest))
    };
    let cores = |c: f64| format!("{c:.2}");
    let row = |label: String, tech: String, f: &crate::model::GuestFigures| {
        Row::new(vec![
            Cell::from(label),
            Cell::from(tech),
            Cell::from(cell(f.host_cpu, f.guest_cpu, cores)),
            Cell::from(cell(f.host_net, f.guest_net, si)),
            Cell::from(cell(f.host_disk, f.guest_disk, si)),
        ])
    };
    let mut names: Vec<&str> = session.guests.iter().map(|(g, _)| g.as_str()).collect();
    for run in session.runs.values() {
        if !names.contains(&run.guest.as_str()) {
            names.push(&run.guest);
        }
    }
    let measured = |f: &crate::model::GuestFigures| {
        f.host_side()
            .iter()
            .chain(&f.guest_side())
            .any(Option::is_some)
    };
    let mut rows = Vec::new();
    for guest in names {
        let last_run = session.runs.values().rev().find(|r| r.guest == guest);
        let technology = last_run.map_or_else(String::new, |r| r.technology.clone());
        let live = session.guest_figures(guest);
        if !measured(&live) {
            continue;
        }
        rows.push(row(guest.to_string(), technology, &live));
        let last_phase = last_run
            .and_then(|r| session.phase(r.phase))
            .filter(|p| p.ended.is_some());
        if let Some(phase) = last_phase {
            rows.push(
                row(
                    format!("  phase {}", phase.id + 1),
                    String::new(),
                    &session.phase_figures(phase, guest),
                )
                .style(Style::new().fg(theme.dim.0)),
            );
        }
    }
    if rows.is_empty() {
        Paragraph::new("No guest over SSH in this session: nothing to reconcile.")
            .style(Style::new().fg(theme.dim.0))
            .render(inner, buf);
        return;
    }
    let header = Row::new([
        "guest",
        "technology",
        "cpu host / guest",
        "net host / guest",
        "disk host / guest",
    ])
    .style(Style::new().fg(theme.dim.0).add_modifier(Modifier::BOLD));
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Min(18),
            Constraint::Min(20),
            Constraint::Min(20),
        ],
    )
    .header(header)
    .column_spacing(2);
    Widget::render(table, inner, buf);
}

/// The report's loss matrix over this session's phases so far.
fn render_matrix(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme) {
    let results = Results::of_session(session, "this session", DEFAULT_SKEW_BOUND);
    let options = report::Options::default();
    let matrix = report::Matrix::build(&results, &options);
    Clear.render(area, buf);
    let block = pane_block(
        format!(" results: % loss from {} ", options.baseline),
        theme,
        true,
    );
    let inner = block.inner(area);
    block.render(area, buf);
    let header = matrix.header();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    let rows: Vec<Row> = matrix
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![
                Cell::from(row.workload.clone()),
                Cell::from(row.metric.clone()),
                Cell::from(row.unit.clone()),
                Cell::from(format!("{:>6}", row.concurrency)),
            ];
            let names = [&row.workload, &row.metric, &row.unit];
            for (w, name) in widths.iter_mut().zip(names) {
                *w = (*w).max(name.chars().count());
            }
            for (i, (cell, tech)) in row.cells.iter().zip(&matrix.technologies).enumerate() {
                let (text, colour) = match cell {
                    None => ("-".to_string(), theme.dim.0),
                    Some(c) => {
                        let colour = match c.loss {
                            Some(l) if !l.significant => theme.dim.0,
                            Some(l) if l.percent > 0.0 => theme.warn.0,
                            Some(_) => theme.good.0,
                            None => theme.accent.0,
                        };
                        (c.text(*tech == matrix.baseline), colour)
                    }
                };
                widths[4 + i] = widths[4 + i].max(text.chars().count());
                cells.push(Cell::from(text).style(Style::new().fg(colour)));
            }
            Row::new(cells)
        })
        .collect();
    let left_out = matrix.excluded.len();
    let mut notes = vec![Line::styled(
        "~ not significant (95 %, Welch's t)   (…) no baseline yet   vs×k the baseline's copies",
        Style::new().fg(theme.dim.0),
    )];
    if left_out > 0 {
        notes.push(Line::styled(
            format!("{left_out} phase result(s) left out: `vmbench report` says why"),
            Style::new().fg(theme.warn.0),
        ));
    }
    for m in &matrix.mismatches {
        notes.push(Line::styled(
            format!("differs: {}", m.describe()),
            Style::new().fg(theme.bad.0),
        ));
    }
    for v in &matrix.validity {
        notes.push(Line::styled(v.clone(), Style::new().fg(theme.bad.0)));
    }
    for r in &matrix.remarks {
        notes.push(Line::styled(r.clone(), Style::new().fg(theme.dim.0)));
    }
    let [table_area, notes_area] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(notes.len() as u16)]).areas(inner);
    if matrix.rows.is_empty() {
        Paragraph::new("No phase has ended yet; the matrix fills in as phases end.")
            .style(Style::new().fg(theme.dim.0))
            .render(table_area, buf);
    } else {
        let table = Table::new(rows, widths.iter().map(|w| Constraint::Length(*w as u16)))
            .header(
                Row::new(header).style(Style::new().fg(theme.dim.0).add_modifier(Modifier::BOLD)),
            )
            .column_spacing(2);
        Widget::render(table, table_area, buf);
    }
    Paragraph::new(notes).render(notes_area, buf);
}

/// The latest thing that happened: the last log entry, or a phase starting
/// or ending if that came later. Phases are not log entries, so without them
/// the line kept "ready: press s to start the plan" for a whole run.
fn latest_event(session: &Session) -> Option<(Nanos, LogLevel, String)> {
    let logged = session.log.back().map(|l| (l.t, l.level, l.text.clone()));
    let phase = session.phases.last().map(|p| match p.ended {
        Some((t, outcome)) => {
            let level = match outcome {
                PhaseOutcome::Completed | PhaseOutcome::Skipped => LogLevel::Info,
                PhaseOutcome::Partial | PhaseOutcome::Aborted => LogLevel::Warn,
                PhaseOutcome::Failed | PhaseOutcome::TimedOut => LogLevel::Error,
            };
            (
                t,
                level,
                format!("{} ended: {}", phase_label(session, p), outcome.name()),
            )
        }
        None => (
            p.started,
            LogLevel::Info,
            format!("{} started", phase_label(session, p)),
        ),
    });
    match (logged, phase) {
        (Some(l), Some(p)) if p.0 > l.0 => Some(p),
        (Some(l), _) => Some(l),
        (None, p) => p,
    }
}

fn render_log(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme) {
    let Some((t, level, text)) = latest_event(session) else {
        return;
    };
    let colour = match level {
        LogLevel::Info => theme.text.0,
        LogLevel::Warn => theme.warn.0,
        LogLevel::Error => theme.bad.0,
    };
    Line::from(vec![
        Span::styled(format!(" {} ", clock(t)), Style::new().fg(theme.dim.0)),
        Span::styled(text, Style::new().fg(colour)),
    ])
    .render(area, buf);
}

fn render_key_hints(buf: &mut Buffer, area: Rect, theme: &Theme, view: &View) {
    let mut spans = Vec::new();
    for b in bindings_for(view.is_replay())
        // Tab is everyone's pane key; the help lists it with the rest.
        .filter(|b| {
            !matches!(
                b.action,
                keys::Action::Close | keys::Action::PrevPane | keys::Action::NextPane
            )
        })
    {
        spans.push(Span::styled(
            format!(" {} ", b.label.split(' ').next().unwrap_or(b.label)),
            Style::new().fg(theme.accent.0).add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::styled(b.hint, Style::new().fg(theme.dim.0)));
    }
    Line::from(spans).render(area, buf);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn render_help(buf: &mut Buffer, area: Rect, theme: &Theme, view: &View) {
    let bindings: Vec<_> = bindings_for(view.is_replay()).collect();
    let popup = centered(area, 64, bindings.len() as u16 + 2);
    Clear.render(popup, buf);
    let lines: Vec<Line> = bindings
        .iter()
        .map(|b| {
            Line::from(vec![
                Span::styled(
                    format!(" {:<8}", b.label),
                    Style::new().fg(theme.accent.0).add_modifier(Modifier::BOLD),
                ),
                Span::raw(b.what),
            ])
        })
        .collect();
    Paragraph::new(lines)
        .block(pane_block(" keys ".into(), theme, true))
        .render(popup, buf);
}

fn render_note(frame: &mut Frame, area: Rect, theme: &Theme, text: &str) {
    let popup = centered(area, 60, 3);
    frame.render_widget(Clear, popup);
    let block = pane_block(" note (Enter records, Esc cancels) ".into(), theme, true);
    let inner = block.inner(popup);
    frame.render_widget(Paragraph::new(text.to_string()).block(block), popup);
    let cursor_x = inner.x + (text.chars().count() as u16).min(inner.width.saturating_sub(1));
    frame.set_cursor_position((cursor_x, inner.y));
}

fn render_detail(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme, pane: PaneId) {
    let popup = centered(
        area,
        area.width.saturating_sub(8).max(40),
        area.height.saturating_sub(4).max(10),
    );
    Clear.render(popup, buf);
    let (title, lines) = detail_lines(session, theme, pane);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(pane_block(title, theme, true))
        .render(popup, buf);
}

fn detail_lines<'a>(session: &'a Session, theme: &Theme, pane: PaneId) -> (String, Vec<Line<'a>>) {
    let dim = Style::new().fg(theme.dim.0);
    let mut lines = Vec::new();
    let title = match pane {
        PaneId::Cpu => {
            lines.push(Line::styled(
                "source        user  system  iowait   steal  other   busy",
                dim,
            ));
            let cpus = session
                .all_series()
                .filter(|s| s.def.metric == "cpu.user")
                .map(|s| s.def.source.clone());
            for source in cpus {
                let last = session
                    .cpu_shares(&source, 1)
                    .last()
                    .copied()
                    .unwrap_or_default();
                lines.push(Line::raw(format!(
                    "{source:<12} {:>5.1} {:>7.1} {:>7.1} {:>7.1} {:>6.1} {:>6.1}",
                    last.user,
                    last.system,
                    last.iowait,
                    last.steal,
                    last.other,
                    last.busy()
                )));
            }
            " cpu by processor (% of its time, last interval) ".to_string()
        }
        PaneId::Net | PaneId::Disk => {
            let (prefix, metrics, scale, names) = if pane == PaneId::Net {
                (
                    "host/net/",
                    ["rx_bytes", "tx_bytes"],
                    1.0,
                    ["receive", "transmit"],
                )
            } else {
                (
                    "host/disk/",
                    ["read_sectors", "write_sectors"],
                    512.0,
                    ["read", "write"],
                )
            };
            lines.push(Line::styled(
                format!("{:<24} {:>14} {:>14}", "device", names[0], names[1]),
                dim,
            ));
            let mut sources: Vec<String> = session
                .all_series()
                .filter(|s| s.def.source.starts_with(prefix) && s.def.metric == metrics[0])
                .map(|s| s.def.source.clone())
                .collect();
            sources.sort();
            for source in sources {
                let rate = |metric: &str| {
                    session
                        .series_named(&source, metric)
                        .and_then(|s| session.rates(s, 1).last().map(|r| r.1 * scale))
                        .unwrap_or(0.0)
                };
                lines.push(Line::raw(format!(
                    "{:<24} {:>14} {:>14}",
                    source.trim_start_matches(prefix),
                    bytes_rate(rate(metrics[0])),
                    bytes_rate(rate(metrics[1]))
                )));
            }
            format!(
                " {} per device ",
                if pane == PaneId::Net {
                    "network"
                } else {
                    "disk"
                }
            )
        }
        PaneId::Memory => {
            for metric in crate::sample::MEM_FIELDS {
                let value = session
                    .series_named("host", metric)
                    .and_then(|s| s.points.back())
                    .map_or(0, |p| p.1);
                lines.push(Line::raw(format!("{metric:<16} {:>12}B", si(value as f64))));
            }
            " memory ".to_string()
        }
        PaneId::Run(id) => {
            let Some(run) = session.runs.get(&id) else {
                return (
                    " copy ".into(),
                    vec![Line::raw("this run is no longer shown")],
                );
            };
            let (state, _) = run_state_text(run);
            lines.push(Line::raw(format!(
                "guest {} ({}), copy {}, run {}",
                run.guest,
                run.technology,
                run.copy + 1,
                run.id
            )));
            lines.push(Line::raw(format!(
                "pid {}  state {state}",
                run.pid.map_or("—".into(), |p| p.to_string())
            )));
            if let Some(c) = session.run_cpu_percent(run.id) {
                lines.push(Line::raw(format!(
                    "host CPU of its process: {c:.1}% of a core"
                )));
            }
            for (m, def) in run.metrics.iter().enumerate() {
                lines.push(Line::raw(format!(
                    "{:<8} now {}",
                    def.name,
                    figure(run.current_rate(m), &def.unit)
                )));
            }
            if let Some((tool, version)) = &run.tool {
                lines.push(Line::raw(format!("tool   {tool}: {version}")));
            }
            for (metric, value, unit) in &run.tool_results {
                lines.push(Line::raw(format!(
                    "result  {metric} {}",
                    figure(Some(*value), unit)
                )));
            }
            if let Some((_, state)) = session.guests.iter().find(|(name, _)| *name == run.guest) {
                let (text, colour) = guest_state_text(state, theme);
                lines.push(Line::styled(
                    format!("guest  {text}"),
                    Style::new().fg(colour),
                ));
            }
            if let Some(seen) = seen_lines(&session.guest_figures(&run.guest)) {
                lines.extend(seen.map(|l| Line::raw(format!("seen by {l}"))));
                lines.push(Line::styled(
                    "(cpu in cores, net and disk in bytes/s)",
                    Style::new().fg(theme.dim.0),
                ));
            }
            format!(" {} #{} ", run.guest, run.copy + 1)
        }
    };
    (title, lines)
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::event::{Event, MetricDef, Sample, SeriesDef, SeriesKind};
    use crate::model::tests::{fixture_events, test_header};

    fn define(session: &mut Session, id: u32, source: &str, metric: &str, kind: SeriesKind) {
        session.apply(&Event::SeriesDefined(SeriesDef {
            id,
            source: source.into(),
            metric: metric.into(),
            unit: "x".into(),
            kind,
        }));
    }

    /// Host counters for ten seconds, then the fold fixture's two phases.
    fn session() -> Session {
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
            session.apply(&event);
        }
        session
    }

    fn draw(session: &Session, view: &View, width: u16, height: u16) -> Terminal<TestBackend> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
        let theme = Theme::built_in("dark").expect("dark");
        terminal
            .draw(|f| render(f, session, &theme, view))
            .expect("draw");
        terminal
    }

    fn live_view() -> View {
        View::new(Feed::Live { waiting: false })
    }

    #[test]
    fn main_screen_80x24() {
        insta::assert_snapshot!(draw(&session(), &live_view(), 80, 24).backend());
    }

    #[test]
    fn waiting_for_the_operator() {
        let mut session = Session::new(test_header());
        session.apply(&Event::Log {
            t: 0,
            level: LogLevel::Info,
            text: "ready: press s to start the plan".into(),
        });
        let view = View::new(Feed::Live { waiting: true });
        insta::assert_snapshot!(draw(&session, &view, 80, 24).backend());
    }

    #[test]
    fn help_overlay_lists_the_key_table() {
        let mut view = live_view();
        view.overlay = Overlay::Help;
        insta::assert_snapshot!(draw(&session(), &view, 80, 24).backend());
    }

    #[test]
    fn results_overlay_shows_the_loss_matrix_so_far() {
        let mut session = Session::new(test_header());
        let path = format!(
            "{}/tests/fixtures/report/one-session.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let events = std::fs::read_to_string(&path).expect("fixture");
        let events: Vec<crate::event::Event> = events
            .lines()
            .map(|l| serde_json::from_str(l).expect("event"))
            .collect();
        // Before the guests' phases: the baseline alone.
        for e in &events[..60] {
            session.apply(e);
        }
        let mut view = live_view();
        view.overlay = Overlay::Results;
        insta::assert_snapshot!(
            "results_baseline_only",
            draw(&session, &view, 100, 16).backend()
        );
        for e in &events[60..] {
            session.apply(e);
        }
        insta::assert_snapshot!(
            "results_with_loss",
            draw(&session, &view, 100, 16).backend()
        );
    }

    #[test]
    fn detail_of_a_copy() {
        let mut view = live_view();
        view.overlay = Overlay::Detail(PaneId::Run(2));
        insta::assert_snapshot!(draw(&session(), &view, 80, 24).backend());
    }

    #[test]
    fn note_input() {
        let mut view = live_view();
        view.overlay = Overlay::Note("BIOS update on node 3".into());
        insta::assert_snapshot!(draw(&session(), &view, 80, 24).backend());
    }

    #[test]
    fn replay_header_shows_position_and_speed() {
        let view = View::new(Feed::Replay {
            speed: 4.0,
            paused: true,
            end: 5_300_000_000,
        });
        insta::assert_snapshot!(draw(&session(), &view, 100, 30).backend());
    }

    fn sixteen_copies() -> Session {
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
            concurrency: 16,
            repetition: 1,
            duration: 10_000_000_000,
        });
        for run in 10..26 {
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

    fn guest_info(offset_ns: i64) -> crate::event::GuestInfo {
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
        }
    }

    /// Before the first phase: one guest ready, one connecting, one refused.
    fn guests_connecting() -> Session {
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
                    reason: "unknown host key SHA256:abc (not in ~/.ssh/known_hosts); refused"
                        .into(),
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

    #[test]
    fn guests_show_their_connection_before_the_first_phase() {
        let terminal = draw(&guests_connecting(), &live_view(), 100, 20);
        insta::assert_snapshot!(terminal.backend());
    }

    #[test]
    fn guest_copies_show_host_seen_and_guest_seen_load() {
        let mut session = sixteen_copies();
        // vm00 and vm01, seen by the host (cgroup, tap, loop device) and from
        // inside (/proc over SFTP), one second apart.
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
        let mut view = live_view();
        view.selected = 4;
        let terminal = draw(&session, &view, 120, 40);
        insta::assert_snapshot!(terminal.backend());
        view.overlay = Overlay::Detail(PaneId::Run(10));
        let terminal = draw(&session, &view, 120, 40);
        insta::assert_snapshot!("guest_copy_detail", terminal.backend());
        view.overlay = Overlay::Overhead;
        let terminal = draw(&session, &view, 120, 12);
        insta::assert_snapshot!("guest_overhead", terminal.backend());
    }

    #[test]
    fn sixteen_copies_shrink_to_one_line_each() {
        let mut view = live_view();
        view.selected = 4 + 15;
        insta::assert_snapshot!(draw(&sixteen_copies(), &view, 80, 24).backend());
    }

    #[test]
    fn sixteen_copies_get_panes_on_a_large_terminal() {
        insta::assert_snapshot!(draw(&sixteen_copies(), &live_view(), 160, 50).backend());
    }

    #[test]
    fn theme_colours_reach_the_cells_and_mono_has_none() {
        let session = session();
        let view = live_view();
        let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
        let dark = Theme::built_in("dark").expect("dark");
        terminal
            .draw(|f| render(f, &session, &dark, &view))
            .expect("draw");
        // The results table's first aggregate cell is drawn in the accent colour.
        let buffer = terminal.backend().buffer().clone();
        let aggregate = (0..buffer.area.height)
            .flat_map(|y| (0..buffer.area.width).map(move |x| (x, y)))
            .find(|&(x, y)| {
                buffer[(x, y)].symbol() == "2"
                    && buffer[(x + 1, y)].symbol() == "0"
                    && buffer[(x + 2, y)].symbol() == "0"
            })
            .expect("the aggregate 200 is on screen");
        assert_eq!(buffer[aggregate].fg, dark.accent.0);
        let mono = Theme::built_in("mono").expect("mono");
        terminal
            .draw(|f| render(f, &session, &mono, &view))
            .expect("draw");
        let buffer = terminal.backend().buffer();
        assert!(
            buffer
                .content()
                .iter()
                .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
        );
    }
}
