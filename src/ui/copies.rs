//! The copies of the shown phase: a pane each with its own time chart
//! while they fit, and past 16 copies (or when panes would be too small) a
//! table like top's, sortable, with a sparkline per copy.

use std::collections::HashMap;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, TableState, Widget};

use super::theme::Theme;
use super::widgets::{self, Top, Window, pane_block, spark_text, time_chart};
use super::{CopySort, PaneId, View, guests, panes, shown_runs};
use crate::event::{GuestState, RunOutcome};
use crate::format::{bytes_rate, figure, si};
use crate::model::{GuestFigures, Run, RunState, Session};

/// Past this many copies, panes give way to the table.
const MOST_PANES: usize = 16;

pub fn run_state_text(run: &Run) -> (String, fn(&Theme) -> Color) {
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

pub fn render(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    view: &View,
    selected: Option<PaneId>,
    window: Window,
) {
    let runs = shown_runs(session, view);
    if runs.is_empty() {
        if let Some(filter) = view
            .filter
            .as_ref()
            .filter(|_| phase_has_copies(session, view))
        {
            let block = pane_block(" copies ".into(), theme, false);
            let inner = block.inner(area);
            block.render(area, buf);
            let text = format!("no copy matches /{} (an empty / clears it)", filter.text);
            return Line::styled(text, Style::new().fg(theme.warn.0)).render(inner, buf);
        }
        return guests::render(buf, area, session, theme, view.filter.as_ref());
    }
    if has_technology_line(area, &runs)
        && let Some(line) = technology_line(&runs, theme)
    {
        line.render(Rect { height: 1, ..area }, buf);
    }
    let seen = seen_of(session, view, &runs);
    let (area, columns, rows_needed) = match arrangement(area, &runs, &seen) {
        Arrangement::Table(area) => {
            let shown = Shown {
                session,
                theme,
                view,
                selected,
            };
            return render_table(buf, area, &shown, &runs, &seen);
        }
        Arrangement::Panes {
            area,
            columns,
            rows,
        } => (area, columns, rows),
    };
    // A copy's chart covers its own phase (from its start to its end, or
    // its planned end while it runs), not the lead-in the host charts show.
    // Zoomed (z), they show the zoomed span as the host charts do.
    let window = match view.zoom {
        Some(_) => window,
        None => session.phase(runs[0].phase).map_or(window, |phase| Window {
            from: phase.started,
            to: phase
                .ended
                .map_or(session.now.max(phase.started + phase.duration), |(t, _)| t),
        }),
    };
    // The panes share all the height there is: a taller pane has a taller chart.
    let rows =
        Layout::vertical(vec![Constraint::Ratio(1, rows_needed as u32); rows_needed]).split(area);
    for (i, run) in runs.iter().enumerate() {
        let cells = Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns])
            .split(rows[i / columns]);
        let pane = Pane {
            session,
            theme,
            run,
            seen: seen[run.guest.as_str()].as_ref(),
            selected: selected == Some(PaneId::Run(run.id)),
        };
        pane.render(buf, cells[i % columns], window);
    }
}

/// Each guest's load as its copies' panes show it, once per guest however
/// many copies it runs.
fn seen_of<'a>(
    session: &Session,
    view: &View,
    runs: &[&'a Run],
) -> HashMap<&'a str, Option<[String; 2]>> {
    let mut seen = HashMap::new();
    for run in runs {
        seen.entry(run.guest.as_str())
            .or_insert_with(|| seen_lines(&session.guest_figures(&run.guest), view.net_rate()));
    }
    seen
}

/// How the copies fill their area: a pane each in a grid, or the table.
pub enum Arrangement {
    Table(Rect),
    Panes {
        area: Rect,
        columns: usize,
        rows: usize,
    },
}

/// Whether the copies' area starts with `technology_line`.
fn has_technology_line(area: Rect, runs: &[&Run]) -> bool {
    area.height > 6 && runs.iter().any(|r| r.active_metric().is_some())
}

fn arrangement(
    area: Rect,
    runs: &[&Run],
    seen: &HashMap<&str, Option<[String; 2]>>,
) -> Arrangement {
    let area = if has_technology_line(area, runs) {
        Rect {
            y: area.y + 1,
            height: area.height - 1,
            ..area
        }
    } else {
        area
    };
    // Host-seen and guest-seen lines need a wider, taller pane.
    let any_seen = seen.values().any(Option::is_some);
    let (least_height, min_width): (u16, u16) = if any_seen { (6, 46) } else { (4, 26) };
    let columns = ((area.width / min_width).clamp(1, 4) as usize).min(runs.len().max(1));
    let rows = runs.len().div_ceil(columns);
    if runs.len() > MOST_PANES || rows as u16 * least_height > area.height {
        Arrangement::Table(area)
    } else {
        Arrangement::Panes {
            area,
            columns,
            rows,
        }
    }
}

/// What a click at (x, y) in the copies' area lands on: a copy (its index
/// in `shown_runs`), or a sortable column's header (its sort).
pub enum CopyHit {
    Copy(usize),
    Sort(CopySort),
}

pub fn hit(session: &Session, view: &View, area: Rect, x: u16, y: u16) -> Option<CopyHit> {
    let runs = shown_runs(session, view);
    if runs.is_empty() {
        return None;
    }
    let seen = seen_of(session, view, &runs);
    match arrangement(area, &runs, &seen) {
        Arrangement::Panes {
            area,
            columns,
            rows,
        } => {
            let row =
                (usize::from(y.checked_sub(area.y)?) * rows) / usize::from(area.height.max(1));
            let column =
                (usize::from(x.checked_sub(area.x)?) * columns) / usize::from(area.width.max(1));
            let index = row * columns + column;
            (index < runs.len()).then_some(CopyHit::Copy(index))
        }
        Arrangement::Table(area) => {
            // Inside the border: the header, then the rows, scrolled as
            // ratatui scrolls to keep the selected one in view.
            let first = area.y + 2;
            if y == area.y + 1 {
                return header_sort(view, area, &seen, x).map(CopyHit::Sort);
            }
            let visible = usize::from(area.height.saturating_sub(3)).max(1);
            if y >= first + visible as u16 || x == area.x || x + 1 >= area.x + area.width {
                return None;
            }
            let selected = panes(session, view)
                .get(view.selected)
                .and_then(|p| match p {
                    PaneId::Run(id) => runs.iter().position(|r| r.id == *id),
                    _ => None,
                })
                .unwrap_or(0);
            let offset = selected.saturating_sub(visible - 1);
            let index = offset + usize::from(y.checked_sub(first)?);
            (index < runs.len()).then_some(CopyHit::Copy(index))
        }
    }
}

/// The sort of the column whose header is at `x` (past the border and the
/// highlight symbol, each column its width and a space), if it sorts.
fn header_sort(
    view: &View,
    area: Rect,
    seen: &HashMap<&str, Option<[String; 2]>>,
    x: u16,
) -> Option<CopySort> {
    let inner_width = area.width.saturating_sub(2);
    let any_seen = seen.values().any(Option::is_some);
    let mut left = area.x + 2;
    for column in table_columns(&view.columns, inner_width, any_seen) {
        let right = left + column.width();
        if x >= left && x < right {
            return match column {
                Column::Copy => Some(CopySort::Copy),
                Column::State => Some(CopySort::State),
                Column::Now => Some(CopySort::Rate),
                Column::Cpu => Some(CopySort::Cpu),
                _ => None,
            };
        }
        left = right + 1;
    }
    None
}

/// Whether the phase shown has copies, whatever the filter keeps.
fn phase_has_copies(session: &Session, view: &View) -> bool {
    super::shown_phase(session, view).is_some_and(|p| session.runs_of(p).next().is_some())
}

/// A guest that is not up says so on each of its copies.
fn connection_note(session: &Session, guest: &str) -> &'static str {
    session
        .guests
        .iter()
        .find(|(name, _)| name == guest)
        .and_then(|(_, state)| match state {
            GuestState::Lost { .. } => Some(" · LOST"),
            GuestState::Reconnecting { .. } => Some(" · reconnecting"),
            GuestState::Failed { .. } => Some(" · unreachable"),
            _ => None,
        })
        .unwrap_or("")
}

struct Pane<'a> {
    session: &'a Session,
    theme: &'a Theme,
    run: &'a Run,
    seen: Option<&'a [String; 2]>,
    selected: bool,
}

impl Pane<'_> {
    fn render(&self, buf: &mut Buffer, area: Rect, window: Window) {
        let (run, theme) = (self.run, self.theme);
        let title = format!(
            " {} #{} · {}{} ",
            self.session.guest_label(&run.guest),
            run.copy + 1,
            run.technology,
            connection_note(self.session, &run.guest)
        );
        let block = pane_block(title, theme, self.selected);
        let inner = block.inner(area);
        block.render(area, buf);
        let dim = Style::new().fg(theme.dim.0);
        let [status, chart] = match self.seen {
            Some([host, guest]) => {
                let [status, host_area, guest_area, chart] = Layout::vertical([
                    Constraint::Length(1),
                    Constraint::Length(1),
                    Constraint::Length(1),
                    Constraint::Min(0),
                ])
                .areas(inner);
                Span::styled(host, dim).render(host_area, buf);
                Span::styled(guest, dim).render(guest_area, buf);
                [status, chart]
            }
            None => Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner),
        };
        let (state, colour) = run_state_text(run);
        let cpu = self
            .session
            .run_cpu_percent(run.id)
            .map(|c| format!(" cpu {c:.0}%"))
            .unwrap_or_default();
        Line::from(vec![
            Span::styled(state, Style::new().fg(colour(theme))),
            Span::raw(" "),
            Span::styled(run_metric_text(run), Style::new().fg(theme.accent.0)),
            Span::styled(cpu, dim),
        ])
        .render(status, buf);
        let Some(m) = run.active_metric() else {
            return;
        };
        // With room, the rate's distribution over the phase under the chart.
        let chart = if chart.height >= 6 {
            let [chart, spread] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(chart);
            let bins = (spread.width / 4).clamp(6, 24) as usize;
            super::distribution::summary_line(run, bins, theme).render(spread, buf);
            chart
        } else {
            chart
        };
        let history = run.rate_history(m);
        if chart.height >= 3 {
            let lines = [widgets::Line {
                colour: theme.progress.0,
                points: history,
            }];
            time_chart(buf, chart, window, &lines, Top::AtLeast(0.0), si, theme);
        } else {
            let rates: Vec<f64> = history.iter().map(|p| p.1).collect();
            Span::styled(
                spark_text(&rates, chart.width as usize),
                Style::new().fg(theme.progress.0),
            )
            .render(chart, buf);
        }
    }
}

fn state_rank(run: &Run) -> u8 {
    match run.state {
        RunState::Done(RunOutcome::Failed { .. }) => 0,
        RunState::Done(RunOutcome::Cancelled) => 1,
        RunState::Running => 2,
        RunState::Waiting => 3,
        RunState::Done(RunOutcome::Completed) => 4,
    }
}

/// The copies in the table's order: failures first by state, the busiest
/// first by rate or CPU.
pub fn sorted<'a>(session: &Session, runs: &[&'a Run], sort: CopySort) -> Vec<&'a Run> {
    let mut runs = runs.to_vec();
    let rate = |r: &Run| super::filter::current_rate(r).unwrap_or(0.0);
    let cpu = |r: &Run| session.run_cpu_percent(r.id).unwrap_or(0.0);
    match sort {
        CopySort::Copy => runs.sort_by(|a, b| (&a.guest, a.copy).cmp(&(&b.guest, b.copy))),
        CopySort::State => runs.sort_by_key(|r| state_rank(r)),
        CopySort::Rate => runs.sort_by(|a, b| rate(b).total_cmp(&rate(a))),
        CopySort::Cpu => runs.sort_by(|a, b| cpu(b).total_cmp(&cpu(a))),
    }
    runs
}

/// A column of the copies table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Copy,
    Tech,
    State,
    Now,
    Cpu,
    Seen,
    History,
}

impl Column {
    /// Left to right.
    pub const ORDER: [Column; 7] = [
        Column::Copy,
        Column::Tech,
        Column::State,
        Column::Now,
        Column::Cpu,
        Column::Seen,
        Column::History,
    ];
    /// The first to go when the table is narrow: a whole column goes, so
    /// that the ones kept show their figures in full.
    const DROPPED_FIRST: [Column; 4] = [Column::Seen, Column::History, Column::Tech, Column::Cpu];

    fn width(self) -> u16 {
        match self {
            Column::Copy => 10,
            Column::Tech => 8,
            Column::State => 9,
            Column::Now => 20,
            Column::Cpu => 5,
            Column::Seen => 30,
            Column::History => 8,
        }
    }

    /// Its name in the config file's `columns`.
    pub fn named(name: &str) -> Option<Column> {
        Column::ORDER.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Column::Copy => "copy",
            Column::Tech => "tech",
            Column::State => "state",
            Column::Now => "now",
            Column::Cpu => "cpu",
            Column::Seen => "seen",
            Column::History => "history",
        }
    }

    /// Its header: its name, but for the host-seen one, which says both.
    fn title(self) -> &'static str {
        match self {
            Column::Seen => "host-seen │ guest-seen",
            other => other.name(),
        }
    }
}

/// The columns of `chosen` that fit `width` (each at its least width,
/// one space between), dropping whole columns in `DROPPED_FIRST` order.
fn table_columns(chosen: &[Column], width: u16, any_seen: bool) -> Vec<Column> {
    let mut columns: Vec<Column> = chosen
        .iter()
        .copied()
        .filter(|c| any_seen || *c != Column::Seen)
        .collect();
    let need = |cs: &[Column]| cs.iter().map(|c| c.width() + 1).sum::<u16>() + 2;
    for dropped in Column::DROPPED_FIRST {
        if need(&columns) <= width {
            break;
        }
        columns.retain(|c| *c != dropped);
    }
    columns
}

/// What the table is drawn from besides its copies.
struct Shown<'a> {
    session: &'a Session,
    theme: &'a Theme,
    view: &'a View,
    selected: Option<PaneId>,
}

fn render_table(
    buf: &mut Buffer,
    area: Rect,
    shown: &Shown,
    runs: &[&Run],
    seen: &HashMap<&str, Option<[String; 2]>>,
) {
    let Shown {
        session,
        theme,
        view,
        selected,
    } = *shown;
    let sort_name = match view.sort {
        CopySort::Copy => "copy",
        CopySort::State => "state",
        CopySort::Rate => "rate",
        CopySort::Cpu => "cpu",
    };
    let block = pane_block(
        format!(" copies ({}) · sorted by {sort_name} (< >) ", runs.len()),
        theme,
        false,
    );
    let inner = block.inner(area);
    block.render(area, buf);
    let any_seen = seen.values().any(Option::is_some);
    let dim = Style::new().fg(theme.dim.0);
    let columns = table_columns(&view.columns, inner.width, any_seen);
    let spark_width = inner.width.saturating_sub(
        columns
            .iter()
            .filter(|c| **c != Column::History)
            .map(|c| c.width() + 1)
            .sum(),
    ) as usize;
    let spark_width = spark_width.clamp(8, 24);
    let rows: Vec<Row> = runs
        .iter()
        .map(|run| {
            let (state, colour) = run_state_text(run);
            let mut cells = Vec::new();
            for column in &columns {
                cells.push(match column {
                    Column::Copy => Cell::from(format!(
                        "{} #{}",
                        session.guest_label(&run.guest),
                        run.copy + 1
                    )),
                    Column::Tech => Cell::from(run.technology.clone()),
                    Column::State => {
                        Cell::from(state.clone()).style(Style::new().fg(colour(theme)))
                    }
                    Column::Now => {
                        Cell::from(run_metric_text(run)).style(Style::new().fg(theme.accent.0))
                    }
                    Column::Cpu => Cell::from(
                        session
                            .run_cpu_percent(run.id)
                            .map_or("–".into(), |c| format!("{c:.0}%")),
                    ),
                    Column::Seen => Cell::from(
                        seen[run.guest.as_str()]
                            .as_ref()
                            .map(|[host, guest]| format!("{host} │ {guest}"))
                            .unwrap_or_default(),
                    )
                    .style(dim),
                    Column::History => {
                        let rates: Vec<f64> = run
                            .active_metric()
                            .map(|m| run.rate_history(m).iter().map(|p| p.1).collect())
                            .unwrap_or_default();
                        Cell::from(spark_text(&rates, spark_width))
                            .style(Style::new().fg(theme.progress.0))
                    }
                });
            }
            Row::new(cells)
        })
        .collect();
    let header: Vec<&str> = columns.iter().map(|c| c.title()).collect();
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|c| match c {
            Column::Seen => Constraint::Min(c.width()),
            Column::History => Constraint::Length(spark_width as u16),
            _ => Constraint::Length(c.width()),
        })
        .collect();
    let chosen = runs
        .iter()
        .position(|r| selected == Some(PaneId::Run(r.id)));
    let mut state = TableState::default().with_selected(chosen);
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(dim.add_modifier(Modifier::BOLD)))
        .column_spacing(1)
        .row_highlight_style(Style::new().bg(theme.highlight_bg.0))
        .highlight_symbol("▶");
    ratatui::widgets::StatefulWidget::render(table, inner, buf, &mut state);
}

/// A guest as the host saw it and as it saw itself, one line each: CPU in
/// cores, network as `net` says, disk in bytes per second. None when
/// nothing measures it.
pub fn seen_lines(f: &GuestFigures, net: fn(f64) -> String) -> Option<[String; 2]> {
    if f.host_side()
        .iter()
        .chain(&f.guest_side())
        .all(Option::is_none)
    {
        return None;
    }
    let line = |who: &str, [cpu_cores, net_rate, disk]: [Option<f64>; 3]| {
        let or_dash = |v: Option<f64>, format: fn(f64) -> String| v.map_or("–".into(), format);
        format!(
            "{who:<5} cpu {} net {} dsk {}",
            or_dash(cpu_cores, |c| format!("{c:.2}")),
            or_dash(net_rate, net),
            or_dash(disk, bytes_rate)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::{draw, live_view, many_copies};

    #[test]
    fn sixteen_copies_get_panes_with_charts_on_a_large_terminal() {
        insta::assert_snapshot!(draw(&many_copies(16), &live_view(), 160, 50).backend());
    }

    #[test]
    fn copies_show_host_seen_and_guest_seen_load() {
        let mut view = live_view();
        view.selected = 4;
        for (w, h) in crate::ui::fixtures::SIZES {
            let terminal = draw(&crate::ui::fixtures::seen_guests(), &view, w, h);
            insta::assert_snapshot!(format!("seen_{w}x{h}"), terminal.backend());
        }
    }

    #[test]
    fn a_narrow_table_drops_whole_columns_and_keeps_the_rate() {
        use Column::*;
        let all = Column::ORDER;
        assert_eq!(
            table_columns(&all, 200, true),
            [Copy, Tech, State, Now, Cpu, Seen, History]
        );
        // 80 columns with host-seen figures: those go, the sparkline stays.
        assert_eq!(
            table_columns(&all, 78, true),
            [Copy, Tech, State, Now, Cpu, History]
        );
        assert_eq!(table_columns(&all, 60, true), [Copy, Tech, State, Now, Cpu]);
        assert_eq!(table_columns(&all, 52, false), [Copy, State, Now, Cpu]);
        // Never fewer than the copy, its state and its rate.
        assert_eq!(table_columns(&all, 30, false), [Copy, State, Now]);
        // The config file's choice and order.
        assert_eq!(table_columns(&[Now, Copy], 200, true), [Now, Copy]);
    }

    #[test]
    fn the_table_sorts_by_rate_busiest_first() {
        let session = many_copies(20);
        let runs = shown_runs(&session, &live_view());
        let by_rate = sorted(&session, &runs, CopySort::Rate);
        let rates: Vec<f64> = by_rate
            .iter()
            .map(|r| r.current_rate(0).expect("a rate"))
            .collect();
        assert!(rates.windows(2).all(|w| w[0] >= w[1]), "{rates:?}");
        assert_ne!(
            by_rate[0].id, runs[0].id,
            "the fixture's rates grow with the run id"
        );
        let by_copy = sorted(&session, &runs, CopySort::Copy);
        assert_eq!(by_copy[0].guest, "vm00");
        // < and > go round the four orders.
        assert_eq!(CopySort::Copy.step(-1), CopySort::Cpu);
        assert_eq!(CopySort::Cpu.step(1), CopySort::Copy);
    }

    #[test]
    fn the_selected_copy_stays_visible_in_a_long_table() {
        let session = many_copies(64);
        let mut view = live_view();
        // The 64th copy: the four host panes come first.
        view.selected = 4 + 63;
        let terminal = draw(&session, &view, 80, 24);
        let screen: String = terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        assert!(screen.contains("▶vm63 #64"), "{screen}");
    }
}
