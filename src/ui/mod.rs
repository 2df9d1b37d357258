//! The screens: a pure function of (model, theme, view state). Each screen
//! element is a file of its own (header, timeline, aggregates, copies,
//! results, log, footer, and each overlay), with its snapshots; this one
//! holds the view state and lays the elements out.

mod aggregates;
pub mod copies;
pub mod distribution;
pub mod filter;
#[cfg(test)]
pub(crate) mod fixtures;
mod footer;
mod guests;
mod header;
pub mod in_view;
pub mod keys;
mod log;
pub mod mouse;
mod overlay;
pub mod pair;
pub mod palette;
mod results;
pub mod theme;
mod timeline;
mod widgets;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::widgets::Block;

use crate::event::{NANOS_PER_SEC, Nanos, RunId};
use crate::model::{Run, Session};
pub use overlay::matrix::{LossTable, Tone};
use theme::Theme;
pub use widgets::Window;

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
    /// A phase number or a session time being typed, to go to.
    Goto(String),
    /// A filter being typed (`/`); see `filter::Filter`.
    Filter(String),
    /// A command being typed (`:`).
    Palette(String),
    Detail(PaneId),
    /// The loss matrix of the session so far.
    Results,
    /// Host-seen against guest-seen, per guest.
    Overhead,
    /// Each shown copy's rates over its phase, as a histogram.
    Distribution,
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
        writer: Writer,
    },
}

pub use crate::store::Writer;

impl Feed {
    /// A replay's recording as its producer last said: how far it goes,
    /// whether it is still written.
    pub fn set_recording(&mut self, said: Option<(Nanos, Writer)>) {
        if let (Feed::Replay { end, writer, .. }, Some(said)) = (self, said) {
            (*end, *writer) = said;
        }
    }
}

/// What the charts show: the current phase (or the one under the
/// cursor), or the last minutes of history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartWindow {
    Phase,
    Last(u64),
}

impl ChartWindow {
    pub fn next(self) -> Self {
        match self {
            ChartWindow::Phase => ChartWindow::Last(60),
            ChartWindow::Last(60) => ChartWindow::Last(300),
            ChartWindow::Last(_) => ChartWindow::Phase,
        }
    }

    pub fn name(self) -> String {
        match self {
            ChartWindow::Phase => "phase".into(),
            ChartWindow::Last(s) => format!("last {} min", s / 60),
        }
    }
}

/// What the screen gives most of its rows to (`1`-`4`, or `layout` in the
/// config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScreenLayout {
    /// Host charts, copies, results and the log, balanced.
    #[default]
    Overview,
    /// The copies, their panes or table as tall as can be.
    Copies,
    /// The host charts and the guests, as the host sees them and as they
    /// see themselves.
    Guests,
    /// The log, to read back through a night.
    Log,
}

impl ScreenLayout {
    pub fn numbered(n: u32) -> Option<Self> {
        Some(match n {
            1 => ScreenLayout::Overview,
            2 => ScreenLayout::Copies,
            3 => ScreenLayout::Guests,
            4 => ScreenLayout::Log,
            _ => return None,
        })
    }
}

/// The copies table's order, as top's `<` and `>` pick it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopySort {
    /// Guest and copy number.
    Copy,
    State,
    /// Highest rate first.
    Rate,
    /// Most host CPU first.
    Cpu,
}

impl CopySort {
    const ALL: [CopySort; 4] = [
        CopySort::Copy,
        CopySort::State,
        CopySort::Rate,
        CopySort::Cpu,
    ];

    pub fn step(self, by: isize) -> Self {
        let i = Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as isize;
        Self::ALL[(i + by).rem_euclid(Self::ALL.len() as isize) as usize]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub selected: usize,
    pub overlay: Overlay,
    pub display_paused: bool,
    pub feed: Feed,
    pub finished: bool,
    /// The phase under the cursor, as an index into the session's phases:
    /// its timeline segment and results rows are highlighted and the charts
    /// show its window. None follows the newest phase.
    pub cursor: Option<usize>,
    pub window: ChartWindow,
    /// Where the log pane is scrolled to: the number (as counted by
    /// `Session::log_total`) of the entry just below its last row. None:
    /// it follows the newest.
    pub log_end: Option<u64>,
    /// Network in bit/s (the default, as links are rated) or in B/s.
    pub net_bits: bool,
    pub sort: CopySort,
    /// What the overlays show that is computed when a phase ends, not per frame.
    pub loss_table: overlay::matrix::LossTable,
    /// Which copies, guests and detail series are shown.
    pub filter: Option<filter::Filter>,
    /// The charts' time span when zoomed (`z`/`Z`), from 10 s to the whole
    /// session; None: the window `w` picks.
    pub zoom: Option<Nanos>,
    /// How far the zoomed window's right edge is panned back (`h`/`l`).
    pub pan: Nanos,
    pub layout: ScreenLayout,
    /// Keys the operator moved in the config file.
    pub keys: keys::KeyMap,
    /// The copies table's columns, in order (the config file's `columns`).
    pub columns: Vec<copies::Column>,
    /// Whether the mouse is taken (off: the terminal selects text).
    pub mouse: bool,
    /// What the last command did, shown in the footer until the next key.
    pub status: Option<String>,
}

impl View {
    pub fn new(feed: Feed) -> Self {
        View {
            selected: 0,
            overlay: Overlay::None,
            display_paused: false,
            feed,
            finished: false,
            cursor: None,
            window: ChartWindow::Phase,
            log_end: None,
            net_bits: true,
            sort: CopySort::Copy,
            loss_table: Default::default(),
            filter: None,
            zoom: None,
            pan: 0,
            layout: ScreenLayout::Overview,
            keys: keys::KeyMap::default(),
            columns: copies::Column::ORDER.to_vec(),
            mouse: true,
            status: None,
        }
    }

    /// Zooms the charts in (`by` < 0, halving the span, down to 10 s) or
    /// out (doubling it); zoomed out past the whole session, the charts
    /// follow the window `w` picks again.
    pub fn zoom(&mut self, session: &Session, by: i32) {
        let whole = session.now.max(MIN_ZOOM);
        let span = self.zoom.unwrap_or_else(|| {
            let window = self.chart_window(session);
            window.to - window.from
        });
        self.zoom = if by < 0 {
            Some((span / 2).max(MIN_ZOOM))
        } else if span >= whole {
            self.pan = 0;
            None
        } else {
            Some((span * 2).min(whole))
        };
    }

    /// Pans a zoomed chart by half its span, back (`by` < 0) or forward
    /// (never past now).
    pub fn pan(&mut self, session: &Session, by: i32) {
        let Some(span) = self.zoom else {
            return;
        };
        let step = span / 2;
        self.pan = if by < 0 {
            (self.pan + step).min(session.now.saturating_sub(span))
        } else {
            self.pan.saturating_sub(step)
        };
    }

    /// How network rates read on this screen: bit/s, or B/s after `b`.
    pub fn net_rate(&self) -> fn(f64) -> String {
        if self.net_bits {
            crate::format::bits_rate
        } else {
            crate::format::bytes_rate
        }
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.feed, Feed::Replay { .. })
    }

    /// Moves the phase cursor by `by` phases; past the newest it follows
    /// the newest again.
    pub fn step_cursor(&mut self, session: &Session, by: isize) {
        let count = session.phases.len();
        if count == 0 {
            return;
        }
        let newest = count - 1;
        let at = self.cursor.unwrap_or(newest) as isize + by;
        self.cursor = if at > newest as isize {
            None
        } else {
            Some(at.max(0) as usize)
        };
    }

    /// The stretch of time the charts show.
    pub fn chart_window(&self, session: &Session) -> Window {
        let now = session.now;
        let interval = session.header.interval_ns.max(1);
        let window = match (self.cursor.and_then(|i| session.phases.get(i)), self.window) {
            (Some(phase), _) => Window {
                from: phase.started,
                to: phase.ended.map_or(now, |(t, _)| t),
            },
            (None, ChartWindow::Phase) => match session.current_phase() {
                // The phase's planned end on the right, so that the chart
                // fills as it runs, and at least a minute before it, so
                // that a phase just started shows what came before.
                Some(phase) => {
                    let to = now.max(phase.started + phase.duration);
                    Window {
                        from: phase.started.min(to.saturating_sub(LEAD_IN)),
                        to,
                    }
                }
                None => Window {
                    from: now.saturating_sub(300 * NANOS_PER_SEC as Nanos),
                    to: now,
                },
            },
            (None, ChartWindow::Last(seconds)) => Window {
                from: now.saturating_sub(seconds * NANOS_PER_SEC as Nanos),
                to: now,
            },
        };
        // Zoomed: the span asked for, ending where the window `w` (or the
        // phase under the cursor) ends, less the pan.
        let window = match self.zoom {
            Some(span) => {
                let end = window.to;
                let to = end.saturating_sub(self.pan).max(span.min(end));
                Window {
                    from: to.saturating_sub(span),
                    to,
                }
            }
            None => window,
        };
        // At least two intervals, so that a line has two points to join.
        Window {
            from: window.from.min(window.to.saturating_sub(2 * interval)),
            to: window.to,
        }
    }
}

/// The least a chart of the current phase shows.
const LEAD_IN: Nanos = 60 * NANOS_PER_SEC as Nanos;

/// The narrowest zoom.
const MIN_ZOOM: Nanos = 10 * NANOS_PER_SEC as Nanos;

/// The phase whose copies are shown: the one under the cursor, else the
/// current one, else the last.
pub fn shown_phase<'a>(session: &'a Session, view: &View) -> Option<&'a crate::model::Phase> {
    view.cursor
        .and_then(|i| session.phases.get(i))
        .or(session.phases.last())
}

/// The runs whose panes are shown: those of the phase under the cursor,
/// else of the current phase, else of the last one; those the filter
/// keeps, in the copies table's order (which Tab follows too).
pub fn shown_runs<'a>(session: &'a Session, view: &View) -> Vec<&'a Run> {
    let runs: Vec<&Run> =
        shown_phase(session, view).map_or_else(Vec::new, |p| session.runs_of(p).collect());
    let runs = match &view.filter {
        Some(filter) => {
            let median = filter::median_rate(&runs);
            runs.into_iter()
                .filter(|r| filter.keeps_run(r, session, median))
                .collect()
        }
        None => runs,
    };
    copies::sorted(session, &runs, view.sort)
}

/// Every selectable pane, in Tab order.
pub fn panes(session: &Session, view: &View) -> Vec<PaneId> {
    let mut panes = vec![PaneId::Cpu, PaneId::Net, PaneId::Disk, PaneId::Memory];
    panes.extend(shown_runs(session, view).iter().map(|r| PaneId::Run(r.id)));
    panes
}

/// The rows of the host charts, the copies, the results and the log, as
/// the layout gives them out.
fn heights(session: &Session, view: &View, height: u16) -> [Constraint; 4] {
    let results_rows = session.results.phases.len() as u16;
    let results_height = (results_rows + 3).clamp(4, (height / 5).max(4));
    // The log pane holds the entries before the newest (which is on the
    // bottom line), at most a tenth of the screen; rows it does not need go
    // to the copies.
    let log_rows = (session.log.len().saturating_sub(1) as u16).min((height / 10).clamp(2, 8));
    let log = Constraint::Length(log_rows + 1);
    let aggregates = Constraint::Length((height * 3 / 10).clamp(6, 22));
    // Between phases (and in the guests layout) the copies' place shows the
    // guests, a line each: it takes what they need, the results the rest.
    let guest_rows = (session.guests.len() + session.hosts().len() + 1).max(1) as u16;
    let guests = Constraint::Length(guest_rows + 2);
    match view.layout {
        ScreenLayout::Overview if shown_runs(session, view).is_empty() => {
            [aggregates, guests, Constraint::Min(results_height), log]
        }
        ScreenLayout::Overview => [
            aggregates,
            Constraint::Min(3),
            Constraint::Length(results_height),
            log,
        ],
        ScreenLayout::Copies => [
            Constraint::Length(6),
            Constraint::Min(3),
            Constraint::Length(4),
            Constraint::Length(3),
        ],
        ScreenLayout::Guests => [
            Constraint::Length((height * 4 / 10).clamp(6, 30)),
            Constraint::Min(guest_rows + 2),
            Constraint::Length(4),
            Constraint::Length(3),
        ],
        ScreenLayout::Log => [
            Constraint::Length(6),
            Constraint::Length(5),
            Constraint::Length(4),
            Constraint::Min(3),
        ],
    }
}

/// The screen's rows: header, timeline, host charts, copies, results, log,
/// the newest log line, keys.
pub fn areas(session: &Session, view: &View, area: Rect) -> [Rect; 8] {
    let [aggregates, copies, results, log] = heights(session, view, area.height);
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        aggregates,
        copies,
        results,
        log,
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

pub fn render(frame: &mut Frame, session: &Session, theme: &Theme, view: &View) {
    let area = frame.area();
    frame.render_widget(Block::new().style(Style::new().fg(theme.text.0)), area);
    let [
        header_area,
        timeline_area,
        aggregates_area,
        copies_area,
        results_area,
        log_area,
        latest_area,
        hints_area,
    ] = areas(session, view, area);
    let selected = panes(session, view).get(view.selected).copied();
    let window = view.chart_window(session);
    let buf = frame.buffer_mut();
    header::render(buf, header_area, session, theme, view);
    timeline::render(buf, timeline_area, session, theme, view);
    aggregates::render(buf, aggregates_area, session, theme, view, selected, window);
    if view.layout == ScreenLayout::Guests {
        guests::render(buf, copies_area, session, theme, view.filter.as_ref());
    } else {
        copies::render(buf, copies_area, session, theme, view, selected, window);
    }
    results::render(buf, results_area, session, theme, view);
    log::render(buf, log_area, session, theme, view);
    log::render_latest(buf, latest_area, session, theme);
    footer::render(buf, hints_area, theme, view);
    overlay::render(frame, session, theme, view, window);
}

#[cfg(test)]
mod tests {
    use ratatui::style::Color;

    use super::fixtures::{SIZES, draw, live_view, many_copies, session};
    use super::*;

    #[test]
    fn main_screen_fills_every_size() {
        for (w, h) in SIZES {
            let terminal = draw(&session(), &live_view(), w, h);
            insta::assert_snapshot!(format!("main_{w}x{h}"), terminal.backend());
        }
    }

    #[test]
    fn sixty_four_copies_become_a_table_at_every_size() {
        let session = many_copies(64);
        for (w, h) in SIZES {
            let terminal = draw(&session, &live_view(), w, h);
            insta::assert_snapshot!(format!("copies64_{w}x{h}"), terminal.backend());
        }
    }

    #[test]
    fn no_row_of_a_large_screen_is_left_empty() {
        let session = many_copies(8);
        // The three sizes, and the largest the issue names.
        for (w, h) in SIZES.into_iter().chain([(240, 70)]) {
            let terminal = draw(&session, &live_view(), w, h);
            let buffer = terminal.backend().buffer();
            let empty: Vec<u16> = (0..h)
                .filter(|&y| (0..w).all(|x| buffer[(x, y)].symbol() == " "))
                .collect();
            assert!(empty.is_empty(), "{w}×{h}: rows {empty:?} are empty");
        }
    }

    #[test]
    fn the_cursor_moves_through_phases_and_follows_past_the_newest() {
        let session = session();
        let mut view = live_view();
        assert_eq!(session.phases.len(), 2);
        view.step_cursor(&session, -1);
        assert_eq!(view.cursor, Some(0));
        view.step_cursor(&session, -1);
        assert_eq!(view.cursor, Some(0));
        // The charts show the phase under the cursor.
        let phase = &session.phases[0];
        let window = view.chart_window(&session);
        assert_eq!(window.from, phase.started);
        assert_eq!(window.to, phase.ended.expect("ended").0);
        view.step_cursor(&session, 1);
        assert_eq!(view.cursor, Some(1));
        view.step_cursor(&session, 1);
        assert_eq!(view.cursor, None);
    }

    #[test]
    fn a_filter_narrows_the_copies_table_and_tab_follows_its_order() {
        let session = many_copies(64);
        let mut view = live_view();
        view.filter = filter::Filter::parse("vm0[0-3]").expect("parses");
        let terminal = draw(&session, &view, 120, 40);
        let screen = format!("{:?}", terminal.backend().buffer());
        assert_eq!(shown_runs(&session, &view).len(), 4);
        assert!(
            screen.contains("vm03") && !screen.contains("vm04"),
            "{screen}"
        );
        assert!(screen.contains("/vm0[0-3]"), "the footer names the filter");
        // Busiest first: Tab goes through the copies in the table's order.
        view.sort = CopySort::Rate;
        let order: Vec<PaneId> = panes(&session, &view).into_iter().skip(4).collect();
        let ids: Vec<RunId> = order
            .iter()
            .map(|p| match p {
                PaneId::Run(id) => *id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, [13, 12, 11, 10]);
        // A filter nothing matches says so instead of an empty table.
        view.filter = filter::Filter::parse("tech:gvisor").expect("parses");
        let terminal = draw(&session, &view, 120, 40);
        let screen = format!("{:?}", terminal.backend().buffer());
        assert!(screen.contains("no copy matches /tech:gvisor"), "{screen}");
    }

    #[test]
    fn zoom_narrows_the_charts_to_ten_seconds_and_pans_back_but_not_past_now() {
        let session = many_copies(2);
        let mut view = live_view();
        let whole = view.chart_window(&session);
        for _ in 0..10 {
            view.zoom(&session, -1);
        }
        let zoomed = view.chart_window(&session);
        assert_eq!(zoomed.to - zoomed.from, MIN_ZOOM);
        // It ends where the window it zooms into ends (the phase's planned
        // end, as the unzoomed chart fills towards it).
        assert_eq!(zoomed.to, whole.to);
        // Panning forward at the end stays there; back moves by half a span.
        view.pan(&session, 1);
        assert_eq!(view.chart_window(&session), zoomed);
        view.zoom = Some(4 * NANOS_PER_SEC as Nanos);
        view.pan(&session, -1);
        let panned = view.chart_window(&session);
        assert_eq!(panned.to, whole.to - 2 * NANOS_PER_SEC as Nanos);
        // With a phase under the cursor, zooming stays in that phase.
        view.cursor = Some(0);
        view.pan = 0;
        let phase_end = session.phases[0].ended.expect("ended").0;
        assert_eq!(view.chart_window(&session).to, phase_end);
        view.cursor = None;
        // Out past the whole session: the window `w` picks again.
        for _ in 0..10 {
            view.zoom(&session, 1);
        }
        assert_eq!((view.zoom, view.pan), (None, 0));
        assert_eq!(view.chart_window(&session), whole);
    }

    #[test]
    fn theme_colours_reach_the_cells_and_mono_has_none() {
        let session = session();
        let view = live_view();
        let dark = Theme::built_in("dark").expect("dark");
        let terminal = fixtures::draw_with(&session, &view, &dark, 80, 24);
        // The results table's first aggregate cell is drawn in the accent colour.
        let buffer = terminal.backend().buffer().clone();
        let aggregate = (0..buffer.area.height)
            .flat_map(|y| (0..buffer.area.width).map(move |x| (x, y)))
            .find(|&(x, y)| {
                let text: String = (x..(x + 10).min(80))
                    .map(|x| buffer[(x, y)].symbol())
                    .collect();
                text == "80.0 ops/s"
            })
            .expect("the newest aggregate '80.0 ops/s' is on screen");
        assert_eq!(buffer[aggregate].fg, dark.accent.0);
        let mono = Theme::built_in("mono").expect("mono");
        let terminal = fixtures::draw_with(&session, &view, &mono, 80, 24);
        let buffer = terminal.backend().buffer();
        assert!(
            buffer
                .content()
                .iter()
                .all(|c| c.fg == Color::Reset && c.bg == Color::Reset)
        );
    }
}
