//! The session model: the only state. [`Session::apply`] folds events into
//! series, runs, phases and results; rates are derived here from raw counters,
//! never stored. Memory stays bounded: series keep a ring of recent points and
//! a run's progress shrinks to a sparkline once its phase is summarised.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::event::{
    Event, GuestState, LogLevel, MetricDef, NANOS_PER_SEC, Nanos, PhaseId, PhaseOutcome, RunId,
    RunOutcome, SeriesDef, SeriesId, SeriesKind,
};
use crate::header::Header;

/// Points of history each series keeps (5 minutes at the default 1 s).
pub const SERIES_HISTORY: usize = 300;
/// Progress points a run keeps after its phase has been summarised.
pub const SPARK_HISTORY: usize = 120;
/// Log entries kept: a long session's faults and phases, scrollable in the log pane.
const LOG_LINES: usize = 2000;

pub struct SeriesState {
    pub def: SeriesDef,
    pub points: VecDeque<(Nanos, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// Spawned, waiting at the barrier.
    Waiting,
    Running,
    Done(RunOutcome),
}

pub struct Run {
    pub id: RunId,
    pub phase: PhaseId,
    pub copy: u32,
    pub guest: String,
    pub technology: String,
    pub pid: Option<u32>,
    pub metrics: Vec<MetricDef>,
    pub started: Option<Nanos>,
    /// When it ended, as recorded by the orchestrator.
    pub ended: Option<Nanos>,
    pub state: RunState,
    /// Cumulative work per metric, as (time, done).
    pub progress: Vec<Vec<(Nanos, f64)>>,
    /// The tool's own figures: metric, value, unit.
    pub tool_results: Vec<(String, f64, String)>,
    /// The external tool it ran and its version, for tools.
    pub tool: Option<(String, String)>,
    /// The kind of network path its traffic took on the host, if any.
    pub path: Option<String>,
    /// How uncertain its start stamp is on this host's clock.
    pub clock_uncertainty: Option<Nanos>,
}

impl Run {
    /// The rate of the metric between its last two progress points.
    pub fn current_rate(&self, metric: usize) -> Option<f64> {
        let points = self.progress.get(metric)?;
        let [.., (t0, d0), (t1, d1)] = points.as_slice() else {
            return None;
        };
        Some(self.metrics[metric].rate(d1 - d0, t1 - t0))
    }

    /// The metric currently moving: the last one that has progress.
    pub fn active_metric(&self) -> Option<usize> {
        (0..self.progress.len())
            .rev()
            .find(|m| !self.progress[*m].is_empty())
    }

    /// The metric's rate between successive progress points, stamped with
    /// the later point's time.
    pub fn rate_history(&self, metric: usize) -> Vec<(Nanos, f64)> {
        self.progress.get(metric).map_or_else(Vec::new, |points| {
            points
                .windows(2)
                .map(|w| {
                    let rate = self.metrics[metric].rate(w[1].1 - w[0].1, w[1].0 - w[0].0);
                    (w[1].0, rate)
                })
                .collect()
        })
    }

    /// Work done between a and b, interpolated on the progress points.
    fn done_between(&self, metric: usize, a: Nanos, b: Nanos) -> Option<f64> {
        let points = self.progress.get(metric)?;
        Some(interpolate(points, b)? - interpolate(points, a)?)
    }

    fn active_span(&self, metric: usize) -> Option<(Nanos, Nanos)> {
        let points = self.progress.get(metric)?;
        match points.as_slice() {
            [first, .., last] => Some((first.0, last.0)),
            _ => None,
        }
    }
}

/// A guest's new state as a log entry: faults as errors, retries as warnings.
fn guest_log_text(guest: &str, state: &GuestState) -> (LogLevel, String) {
    match state {
        GuestState::Connecting => (LogLevel::Info, format!("{guest} connecting")),
        GuestState::Ready { info } => (
            LogLevel::Info,
            format!(
                "{guest} ready: {} {}, connected in {:.0} ms",
                info.arch, info.kernel, info.connect_ms
            ),
        ),
        GuestState::Failed { reason } => (LogLevel::Error, format!("{guest} failed: {reason}")),
        GuestState::Lost { reason } => (LogLevel::Error, format!("{guest} LOST: {reason}")),
        GuestState::Reconnecting { attempt } => (
            LogLevel::Warn,
            format!("{guest} reconnecting (attempt {attempt})"),
        ),
        GuestState::Closed => (LogLevel::Info, format!("{guest} closed")),
    }
}

fn interpolate(points: &[(Nanos, f64)], t: Nanos) -> Option<f64> {
    let after = points.partition_point(|(pt, _)| *pt < t);
    if after < points.len() && points[after].0 == t {
        return Some(points[after].1);
    }
    if after == 0 || after == points.len() {
        return None;
    }
    let (t0, d0) = points[after - 1];
    let (t1, d1) = points[after];
    Some(d0 + (d1 - d0) * (t - t0) as f64 / (t1 - t0) as f64)
}

/// A phase's figures for one metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSummary {
    pub metric: MetricDef,
    /// The window in which every copy was running this metric.
    pub window: Option<(Nanos, Nanos)>,
    /// Sum of the copies' rates over that window.
    pub aggregate: Option<f64>,
    pub per_copy: Vec<CopyFigure>,
    /// Copies that contributed, of those the phase started.
    pub contributing: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CopyFigure {
    pub run: RunId,
    /// The tool's own figure, or else the copy's whole-run rate.
    pub value: Option<f64>,
    /// First and last progress of this metric.
    pub span: Option<(Nanos, Nanos)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSummary {
    /// Spread of the copies' own start times (max − min).
    pub skew: Option<Nanos>,
    pub metrics: Vec<MetricSummary>,
}

pub struct Phase {
    pub id: PhaseId,
    pub benchmark: String,
    pub workload: String,
    pub concurrency: u32,
    pub repetition: u32,
    pub duration: Nanos,
    pub started: Nanos,
    /// When the barrier let every copy go.
    pub released: Option<Nanos>,
    pub ended: Option<(Nanos, PhaseOutcome)>,
    pub runs: Vec<RunId>,
    pub summary: Option<PhaseSummary>,
    /// Host-seen and guest-seen counters around the release and the end.
    pub opened: Option<Edge>,
    pub closed: Option<Edge>,
    /// What the two edges come to once settled (they then keep only their
    /// instants).
    growth: Option<Growth>,
}

impl Phase {
    /// How much a counter grew between the phase's edges.
    fn delta(&self, id: SeriesId) -> Option<f64> {
        if let Some(growth) = &self.growth {
            return growth.get(id);
        }
        Some(self.closed.as_ref()?.value(id)? - self.opened.as_ref()?.value(id)?)
    }
}

/// What a settled phase keeps of its edges: which counters were read at
/// both (a bit each) and how much those that moved grew. Most do not move
/// (idle disks and interfaces; a namespace guest sees all of its host's),
/// so a long session keeps a bit per counter per phase instead of values:
/// with 16 such guests the values came to a quarter of a megabyte a phase.
#[derive(Debug, Clone, Default, PartialEq)]
struct Growth {
    present: Vec<u64>,
    moved: Vec<(SeriesId, f64)>,
}

impl Growth {
    fn of(opened: &Edge, closed: &Edge) -> Growth {
        let mut growth = Growth::default();
        for &(id, after) in &closed.settled {
            let Ok(at) = opened.settled.binary_search_by_key(&id, |(i, _)| *i) else {
                continue;
            };
            let (word, bit) = (id as usize / 64, id % 64);
            if growth.present.len() <= word {
                growth.present.resize(word + 1, 0);
            }
            growth.present[word] |= 1 << bit;
            let grown = after - opened.settled[at].1;
            if grown != 0.0 {
                growth.moved.push((id, grown));
            }
        }
        growth
    }

    fn get(&self, id: SeriesId) -> Option<f64> {
        let word = self.present.get(id as usize / 64)?;
        if word & (1 << (id % 64)) == 0 {
            return None;
        }
        Some(
            self.moved
                .binary_search_by_key(&id, |(i, _)| *i)
                .map_or(0.0, |at| self.moved[at].1),
        )
    }
}

/// Readings of counters on both sides of one instant, from which each
/// counter's value at that instant is interpolated: host and guest are
/// sampled at instants of their own, and a phase's window is neither's.
/// Once settled, it keeps only each counter's value at the instant, in a
/// table sorted by id: a session of hours keeps two edges per phase, and
/// two maps of readings each were most of what it grew by.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edge {
    pub at: Nanos,
    before: HashMap<SeriesId, (Nanos, u64)>,
    after: HashMap<SeriesId, (Nanos, u64)>,
    settled: Vec<(SeriesId, f64)>,
}

impl Edge {
    fn value(&self, id: SeriesId) -> Option<f64> {
        if let Ok(at) = self.settled.binary_search_by_key(&id, |(i, _)| *i) {
            return Some(self.settled[at].1);
        }
        let (t0, v0) = *self.before.get(&id)?;
        match self.after.get(&id) {
            Some(&(t1, v1)) if t1 > t0 => {
                let share = self.at.saturating_sub(t0) as f64 / (t1 - t0) as f64;
                Some(v0 as f64 + (v1 as f64 - v0 as f64) * share.min(1.0))
            }
            // Nothing read since (the session ended): the last reading stands.
            _ => Some(v0 as f64),
        }
    }

    /// Still waiting for a reading after the instant of some counter.
    fn waiting(&self) -> bool {
        self.after.len() < self.before.len()
    }

    /// Keeps each counter's value at the instant and lets the readings go:
    /// once every counter has one after it, or once the edge is two phases
    /// old (a counter that stopped, its guest lost, never will).
    fn settle(&mut self) {
        if self.before.is_empty() {
            return;
        }
        let mut settled: Vec<(SeriesId, f64)> = self
            .before
            .keys()
            .filter_map(|id| Some((*id, self.value(*id)?)))
            .collect();
        settled.sort_unstable_by_key(|(id, _)| *id);
        self.settled = settled;
        self.before = HashMap::new();
        self.after = HashMap::new();
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub t: Nanos,
    pub level: LogLevel,
    pub text: String,
    pub kind: LogKind,
}

/// What a log entry tells of: the log pane marks each kind, and the
/// timeline puts notes and faults on their phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// A `log` event: what the orchestrator or the front end said.
    Message,
    /// A phase started or ended.
    Phase,
    /// A guest's connection changed state.
    Guest,
    /// The operator's note.
    Note,
}

/// A guest's load over the last interval, as the host saw it and as the
/// guest saw itself: CPU in cores, network and disk in bytes per second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GuestFigures {
    pub host_cpu: Option<f64>,
    pub host_net: Option<f64>,
    pub host_disk: Option<f64>,
    pub guest_cpu: Option<f64>,
    pub guest_net: Option<f64>,
    pub guest_disk: Option<f64>,
}

impl GuestFigures {
    pub fn host_side(&self) -> [Option<f64>; 3] {
        [self.host_cpu, self.host_net, self.host_disk]
    }

    pub fn guest_side(&self) -> [Option<f64>; 3] {
        [self.guest_cpu, self.guest_net, self.guest_disk]
    }
}

/// The share of all CPUs' time in each state over one interval, in percent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuShares {
    /// The end of the interval.
    pub t: Nanos,
    pub user: f64,
    pub system: f64,
    pub iowait: f64,
    pub steal: f64,
    pub other: f64,
}

impl CpuShares {
    pub fn busy(&self) -> f64 {
        self.user + self.system + self.iowait + self.steal + self.other
    }
}

pub struct Session {
    pub header: Header,
    /// The plan the header names, read once: results need each benchmark's
    /// workload. None when its text no longer parses (an older recording).
    pub plan: Option<crate::plan::Plan>,
    pub now: Nanos,
    series: Vec<Option<SeriesState>>,
    by_name: HashMap<(String, String), SeriesId>,
    pub phases: Vec<Phase>,
    pub runs: BTreeMap<RunId, Run>,
    pub notes: Vec<(Nanos, String)>,
    pub log: VecDeque<LogLine>,
    /// Log entries ever added: the newest is number `log_total - 1`, the
    /// oldest kept is `log_total - log.len()`. A scrolled log pane holds on
    /// to these numbers, so new entries do not move it.
    pub log_total: u64,
    /// When the session ended and how (the `session_ended` reason).
    pub ended: Option<(Nanos, String)>,
    /// Each guest's connection state, in the order guests were first heard of.
    pub guests: Vec<(String, GuestState)>,
    /// How many of the first phases have settled edges (see `Edge`).
    edges_settled: usize,
    /// Each ended phase's result, computed once when it ended (skew bound
    /// at its default): the TUI, the headless lines, the export, the
    /// report and adaptive repetition all read these.
    pub results: crate::results::Results,
    /// Each guest's clock as last measured: (offset, uncertainty, drift
    /// since bring-up), in nanoseconds.
    pub clocks: BTreeMap<String, (i64, u64, i64)>,
    /// What each guest's latest bring-up found (its shape, its clock),
    /// kept after it closes.
    pub brought_up: BTreeMap<String, crate::event::GuestInfo>,
}

impl Session {
    pub fn new(header: Header) -> Self {
        let plan = crate::plan::LoadedPlan::parse(&header.plan_source, &header.plan_origin)
            .ok()
            .map(|p| p.plan);
        Session {
            header,
            plan,
            now: 0,
            series: Vec::new(),
            by_name: HashMap::new(),
            phases: Vec::new(),
            runs: BTreeMap::new(),
            notes: Vec::new(),
            log: VecDeque::new(),
            log_total: 0,
            ended: None,
            edges_settled: 0,
            guests: Vec::new(),
            results: Default::default(),
            clocks: BTreeMap::new(),
            brought_up: BTreeMap::new(),
        }
    }

    pub fn apply(&mut self, event: &Event) {
        if let Some(t) = event.t() {
            self.now = self.now.max(t);
        }
        match event {
            Event::SeriesDefined(def) => {
                let index = def.id as usize;
                if self.series.len() <= index {
                    self.series.resize_with(index + 1, || None);
                }
                self.by_name
                    .insert((def.source.clone(), def.metric.clone()), def.id);
                self.series[index] = Some(SeriesState {
                    def: def.clone(),
                    points: VecDeque::with_capacity(SERIES_HISTORY),
                });
            }
            Event::Sample(sample) => {
                self.complete_edges(sample);
                for &(id, value) in &sample.values {
                    if let Some(Some(series)) = self.series.get_mut(id as usize) {
                        if series.points.len() == SERIES_HISTORY {
                            series.points.pop_front();
                        }
                        series.points.push_back((sample.t, value));
                    }
                }
            }
            Event::PhaseStarted {
                t,
                phase,
                benchmark,
                workload,
                concurrency,
                repetition,
                duration,
            } => {
                self.phases.push(Phase {
                    id: *phase,
                    benchmark: benchmark.clone(),
                    workload: workload.clone(),
                    concurrency: *concurrency,
                    repetition: *repetition,
                    duration: *duration,
                    started: *t,
                    released: None,
                    ended: None,
                    runs: Vec::new(),
                    summary: None,
                    opened: None,
                    closed: None,
                    growth: None,
                });
                let text = format!("{} started", self.phase_label(self.phases.len() - 1));
                self.push_log(*t, LogLevel::Info, text, LogKind::Phase);
            }
            Event::RunSpawned {
                run,
                phase,
                copy,
                guest,
                technology,
                pid,
                metrics,
                path,
                clock_uncertainty,
                ..
            } => {
                if let Some(p) = self.phase_mut(*phase) {
                    p.runs.push(*run);
                }
                self.runs.insert(
                    *run,
                    Run {
                        id: *run,
                        phase: *phase,
                        copy: *copy,
                        guest: guest.clone(),
                        technology: technology.clone(),
                        pid: *pid,
                        metrics: metrics.clone(),
                        started: None,
                        ended: None,
                        state: RunState::Waiting,
                        progress: vec![Vec::new(); metrics.len()],
                        tool_results: Vec::new(),
                        tool: None,
                        path: path.clone(),
                        clock_uncertainty: *clock_uncertainty,
                    },
                );
            }
            Event::RunTool {
                run, tool, version, ..
            } => {
                if let Some(r) = self.runs.get_mut(run) {
                    r.tool = Some((tool.clone(), version.clone()));
                }
            }
            Event::RunStarted { t, run, .. } => {
                if let Some(r) = self.runs.get_mut(run) {
                    r.started = Some(*t);
                    r.state = RunState::Running;
                }
            }
            Event::Progress {
                t,
                run,
                metric,
                done,
            } => {
                if let Some(points) = self
                    .runs
                    .get_mut(run)
                    .and_then(|r| r.progress.get_mut(*metric as usize))
                {
                    points.push((*t, *done));
                }
            }
            Event::RunResult {
                run,
                metric,
                value,
                unit,
                ..
            } => {
                if let Some(r) = self.runs.get_mut(run) {
                    // A tool that reports as it goes (fio): its last word stands.
                    let figure = (metric.clone(), *value, unit.clone());
                    match r.tool_results.iter_mut().find(|f| f.0 == *metric) {
                        Some(known) => *known = figure,
                        None => r.tool_results.push(figure),
                    }
                }
            }
            Event::RunEnded { t, run, outcome } => {
                if let Some(r) = self.runs.get_mut(run) {
                    r.ended = Some(*t);
                    r.state = RunState::Done(outcome.clone());
                }
            }
            Event::PhaseEnded { t, phase, outcome } => {
                let summary = self.phase(*phase).map(|p| self.summarise(p));
                let edge = self.seen_edge(*t);
                if let Some(p) = self.phase_mut(*phase) {
                    p.ended = Some((*t, *outcome));
                    p.summary = summary;
                    p.closed = Some(edge);
                    let runs = p.runs.clone();
                    for id in runs {
                        if let Some(run) = self.runs.get_mut(&id) {
                            for points in &mut run.progress {
                                let excess = points.len().saturating_sub(SPARK_HISTORY);
                                points.drain(..excess);
                            }
                        }
                    }
                }
                // The phase's result, computed once, here: every view reads it.
                let computed = crate::results::Results::of_phase(self, *phase);
                self.results.extend(computed);
                if let Some(index) = self.phases.iter().position(|p| p.id == *phase) {
                    let level = match outcome {
                        PhaseOutcome::Completed | PhaseOutcome::Skipped => LogLevel::Info,
                        PhaseOutcome::Partial | PhaseOutcome::Aborted => LogLevel::Warn,
                        PhaseOutcome::Failed | PhaseOutcome::TimedOut => LogLevel::Error,
                    };
                    let text = format!("{} ended: {}", self.phase_label(index), outcome.name());
                    self.push_log(*t, level, text, LogKind::Phase);
                }
            }
            Event::Note { t, text } => {
                self.notes.push((*t, text.clone()));
                self.push_log(*t, LogLevel::Info, format!("note: {text}"), LogKind::Note);
            }
            Event::Log { t, level, text } => {
                self.push_log(*t, *level, text.clone(), LogKind::Message);
            }
            Event::SessionEnded { t, reason } => self.ended = Some((*t, reason.clone())),
            Event::GuestState { t, guest, state } => {
                let (level, text) = guest_log_text(guest, state);
                self.push_log(*t, level, text, LogKind::Guest);
                if let GuestState::Ready { info } = state {
                    self.brought_up.insert(guest.clone(), (**info).clone());
                }
                match self.guests.iter_mut().find(|(name, _)| name == guest) {
                    Some((_, known)) => *known = state.clone(),
                    None => self.guests.push((guest.clone(), state.clone())),
                }
            }
            Event::GuestClock {
                guest,
                offset_ns,
                uncertainty_ns,
                drift_ns,
                ..
            } => {
                self.clocks
                    .insert(guest.clone(), (*offset_ns, *uncertainty_ns, *drift_ns));
            }
            Event::PhaseReleased { t, phase } => {
                let edge = self.seen_edge(*t);
                if let Some(p) = self.phase_mut(*phase) {
                    p.released = Some(*t);
                    p.opened = Some(edge);
                }
            }
        }
    }

    fn push_log(&mut self, t: Nanos, level: LogLevel, text: String, kind: LogKind) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log_total += 1;
        self.log.push_back(LogLine {
            t,
            level,
            text,
            kind,
        });
    }

    /// The `[[host]]` a guest runs on; None for this machine.
    pub fn host_of(&self, guest: &str) -> Option<&str> {
        self.plan
            .as_ref()?
            .guests
            .iter()
            .find(|g| g.name() == guest)?
            .host
            .as_deref()
    }

    /// The plan's hypervisor hosts besides this machine, in plan order.
    pub fn hosts(&self) -> Vec<&str> {
        self.plan
            .as_ref()
            .map_or_else(Vec::new, |p| p.hosts.iter().map(|h| h.name()).collect())
    }

    /// A guest as the screens name it: `g3@h2` when it runs on another host.
    pub fn guest_label(&self, guest: &str) -> String {
        match self.host_of(guest) {
            Some(host) => format!("{guest}@{host}"),
            None => guest.to_string(),
        }
    }

    /// "phase 3/26 cpu ×4 rep 1" for the phase at `index` in `phases`.
    pub fn phase_label(&self, index: usize) -> String {
        let phase = &self.phases[index];
        format!(
            "phase {}/{} {} ×{} rep {}",
            phase.id + 1,
            self.phases_in_all(),
            phase.benchmark,
            phase.concurrency,
            phase.repetition
        )
    }

    pub fn phase(&self, id: PhaseId) -> Option<&Phase> {
        self.phases.iter().rev().find(|p| p.id == id)
    }

    fn phase_mut(&mut self, id: PhaseId) -> Option<&mut Phase> {
        self.phases.iter_mut().rev().find(|p| p.id == id)
    }

    /// The phase running now, if any.
    pub fn current_phase(&self) -> Option<&Phase> {
        self.phases.last().filter(|p| p.ended.is_none())
    }

    pub fn runs_of<'a>(&'a self, phase: &'a Phase) -> impl Iterator<Item = &'a Run> + 'a {
        phase.runs.iter().filter_map(|id| self.runs.get(id))
    }

    fn summarise(&self, phase: &Phase) -> PhaseSummary {
        let runs: Vec<&Run> = self.runs_of(phase).collect();
        let starts: Vec<Nanos> = runs.iter().filter_map(|r| r.started).collect();
        let skew = match (starts.iter().max(), starts.iter().min()) {
            (Some(max), Some(min)) if starts.len() == runs.len() => Some(max - min),
            _ => None,
        };
        let metric_defs = runs.first().map(|r| r.metrics.clone()).unwrap_or_default();
        let metrics = metric_defs
            .into_iter()
            .enumerate()
            .map(|(m, def)| {
                let finished: Vec<&&Run> = runs
                    .iter()
                    .filter(|r| matches!(r.state, RunState::Done(RunOutcome::Completed)))
                    .filter(|r| r.active_span(m).is_some())
                    .collect();
                let spans: Vec<(Nanos, Nanos)> =
                    finished.iter().filter_map(|r| r.active_span(m)).collect();
                let window = spans
                    .iter()
                    .map(|s| s.0)
                    .max()
                    .zip(spans.iter().map(|s| s.1).min())
                    .filter(|(a, b)| a < b);
                let aggregate = window.and_then(|(a, b)| {
                    finished
                        .iter()
                        .map(|r| r.done_between(m, a, b).map(|d| def.rate(d, b - a)))
                        .sum::<Option<f64>>()
                });
                let per_copy = runs
                    .iter()
                    .map(|r| {
                        let own = r
                            .tool_results
                            .iter()
                            .find(|(name, ..)| *name == def.name)
                            .map(|(_, v, _)| *v);
                        let whole = r
                            .active_span(m)
                            .filter(|_| matches!(r.state, RunState::Done(RunOutcome::Completed)))
                            .and_then(|(a, b)| r.done_between(m, a, b).map(|d| def.rate(d, b - a)));
                        CopyFigure {
                            run: r.id,
                            value: own.or(whole),
                            span: r.active_span(m),
                        }
                    })
                    .collect();
                MetricSummary {
                    metric: def,
                    window,
                    aggregate,
                    per_copy,
                    contributing: finished.len(),
                }
            })
            .collect();
        PhaseSummary { skew, metrics }
    }

    pub fn series(&self, id: SeriesId) -> Option<&SeriesState> {
        self.series.get(id as usize).and_then(Option::as_ref)
    }

    pub fn series_named(&self, source: &str, metric: &str) -> Option<&SeriesState> {
        self.by_name
            .get(&(source.to_string(), metric.to_string()))
            .and_then(|id| self.series(*id))
    }

    pub fn all_series(&self) -> impl Iterator<Item = &SeriesState> {
        self.series.iter().flatten()
    }

    /// Per-interval rates of a counter (per second), oldest first, at most `n`.
    pub fn rates(&self, series: &SeriesState, n: usize) -> Vec<(Nanos, f64)> {
        let points = &series.points;
        let skip = points.len().saturating_sub(n + 1);
        let mut out = Vec::with_capacity(n);
        let mut iter = points.iter().skip(skip);
        let Some(mut prev) = iter.next() else {
            return out;
        };
        for cur in iter {
            let dt = cur.0.saturating_sub(prev.0);
            if dt > 0 {
                let value = match series.def.kind {
                    SeriesKind::Counter => {
                        cur.1.saturating_sub(prev.1) as f64 / (dt as f64 / NANOS_PER_SEC)
                    }
                    SeriesKind::Gauge => cur.1 as f64,
                };
                out.push((cur.0, value));
            }
            prev = cur;
        }
        out
    }

    /// Per-interval rates summed over every series of `metric` whose source
    /// starts with `prefix` (all network interfaces, all disks).
    pub fn summed_rates(&self, prefix: &str, metric: &str, n: usize) -> Vec<(Nanos, f64)> {
        let mut sums: BTreeMap<Nanos, f64> = BTreeMap::new();
        for s in self.all_series() {
            if s.def.metric == metric && s.def.source.starts_with(prefix) {
                for (t, rate) in self.rates(s, n) {
                    *sums.entry(t).or_default() += rate;
                }
            }
        }
        let skip = sums.len().saturating_sub(n);
        sums.into_iter().skip(skip).collect()
    }

    /// CPU shares of a `host` or `host/cpuN` source, oldest first, at most `n`.
    pub fn cpu_shares(&self, source: &str, n: usize) -> Vec<CpuShares> {
        let fields: Vec<Option<&SeriesState>> = crate::sample::CPU_FIELDS
            .iter()
            .map(|f| self.series_named(source, f))
            .collect();
        let Some(Some(user)) = fields.first() else {
            return Vec::new();
        };
        // Fields are aligned at their newest point; one missing a point counts as 0.
        let len = user.points.len();
        let at = |field: usize, i: usize| {
            fields[field]
                .and_then(|s| {
                    s.points
                        .len()
                        .checked_sub(len - i)
                        .and_then(|j| s.points.get(j))
                })
                .map_or(0.0, |p| p.1 as f64)
        };
        (len.saturating_sub(n).max(1)..len)
            .map(|i| {
                let deltas: [f64; 8] = std::array::from_fn(|f| (at(f, i) - at(f, i - 1)).max(0.0));
                let total: f64 = deltas.iter().sum();
                let t = user.points[i].0;
                if total <= 0.0 {
                    return CpuShares {
                        t,
                        ..CpuShares::default()
                    };
                }
                let pct = |x: f64| x / total * 100.0;
                // Fields: user nice system idle iowait irq softirq steal.
                CpuShares {
                    t,
                    user: pct(deltas[0] + deltas[1]),
                    system: pct(deltas[2]),
                    iowait: pct(deltas[4]),
                    steal: pct(deltas[7]),
                    other: pct(deltas[5] + deltas[6]),
                }
            })
            .collect()
    }

    /// CPU used by a run's process, in percent of one core, over the last interval.
    pub fn run_cpu_percent(&self, run: RunId) -> Option<f64> {
        self.process_cpu_percent(&format!("run/{run}"))
    }

    /// CPU used by a sampled process (`run/N`, or `vmbench` itself), in
    /// percent of one core, over the last interval.
    pub fn process_cpu_percent(&self, source: &str) -> Option<f64> {
        let ticks = self.header.host.clock_ticks_per_sec.max(1) as f64;
        let rate = |metric: &str| {
            self.series_named(source, metric)
                .and_then(|s| self.rates(s, 1).last().map(|r| r.1))
        };
        Some((rate("cpu.utime")? + rate("cpu.stime").unwrap_or(0.0)) / ticks * 100.0)
    }

    /// What the host and the guest itself saw of a guest over the last
    /// interval; each figure is None when nothing measures it.
    pub fn guest_figures(&self, guest: &str) -> GuestFigures {
        self.figures_with(guest, &|s| self.rates(s, 1).last().map(|r| r.1))
    }

    /// The same over a phase, from its copies' release to its end.
    /// How much a counter grew over a phase's window, and the window's
    /// length in seconds.
    pub fn phase_growth(&self, phase: &Phase, series: &SeriesState) -> Option<(f64, f64)> {
        let (opened, closed) = (phase.opened.as_ref()?, phase.closed.as_ref()?);
        let seconds = closed.at.saturating_sub(opened.at) as f64 / NANOS_PER_SEC;
        let grown = phase.delta(series.def.id)?;
        (seconds > 0.0).then_some((grown.max(0.0), seconds))
    }

    pub fn phase_figures(&self, phase: &Phase, guest: &str) -> GuestFigures {
        let (Some(opened), Some(closed)) = (&phase.opened, &phase.closed) else {
            return GuestFigures::default();
        };
        let seconds = closed.at.saturating_sub(opened.at) as f64 / NANOS_PER_SEC;
        self.figures_with(guest, &|s| {
            let delta = phase.delta(s.def.id)?;
            (seconds > 0.0 && s.def.kind == SeriesKind::Counter).then(|| delta.max(0.0) / seconds)
        })
    }

    /// CPU in cores, network and disk in bytes per second, by whatever
    /// measures each, from per-second rates of single series.
    fn figures_with(
        &self,
        guest: &str,
        rate: &dyn Fn(&SeriesState) -> Option<f64>,
    ) -> GuestFigures {
        let host = format!("host-seen:{guest}");
        let inside = format!("guest:{guest}");
        let ticks = self.header.host.clock_ticks_per_sec.max(1) as f64;
        let of = |source: &str, metric: &str| self.series_named(source, metric).and_then(rate);
        let sum = |parts: &[Option<f64>]| parts.iter().flatten().copied().reduce(|a, b| a + b);
        let host_cpu = of(&host, "cpu.cgroup_ns")
            .or_else(|| of(&host, "cpu.xen_ns"))
            .map(|ns| ns / NANOS_PER_SEC)
            .or_else(|| sum(&[of(&host, "cpu.utime"), of(&host, "cpu.stime")]).map(|t| t / ticks));
        let host_net = sum(&[of(&host, "net.rx_bytes"), of(&host, "net.tx_bytes")]);
        // The disk the host sees, or else the VM process's own I/O (a disk
        // on a plain file).
        let host_disk = sum(&[
            of(&host, "disk.read_sectors"),
            of(&host, "disk.write_sectors"),
        ])
        .map(|sectors| sectors * 512.0)
        .or_else(|| sum(&[of(&host, "io.read_bytes"), of(&host, "io.write_bytes")]));
        let guest_cpu = sum(&crate::sample::CPU_BUSY_FIELDS.map(|field| of(&inside, field)))
            .map(|busy_ticks| busy_ticks / ticks);
        // The guest's own loopback never leaves it; the host cannot see it.
        let guest_sum = |kind: &str, metrics: [&str; 2]| {
            let prefix = format!("{inside}/{kind}/");
            let rates: Vec<Option<f64>> = self
                .all_series()
                .filter(|s| {
                    s.def
                        .source
                        .strip_prefix(&prefix)
                        .is_some_and(|device| device != "lo")
                        && metrics.contains(&s.def.metric.as_str())
                })
                .map(rate)
                .collect();
            sum(&rates)
        };
        GuestFigures {
            host_cpu,
            host_net,
            host_disk,
            guest_cpu,
            guest_net: guest_sum("net", ["rx_bytes", "tx_bytes"]),
            guest_disk: guest_sum("disk", ["read_sectors", "write_sectors"])
                .map(|sectors| sectors * 512.0),
        }
    }

    /// The last reading, at `at`, of every series that compares host and
    /// guest; the first reading after it is added as samples arrive.
    fn seen_edge(&self, at: Nanos) -> Edge {
        let mut edge = Edge {
            at,
            ..Edge::default()
        };
        // What the overhead compares, and what says why a phase lost: this
        // host's CPU states and its disks' busy time.
        let compared = self.all_series().filter(|s| {
            let source = s.def.source.as_str();
            source.starts_with("host-seen:")
                || source.starts_with("guest:")
                || (source == "host" && s.def.metric.starts_with("cpu."))
                // A hypervisor host's own CPU, as its agent reads it.
                || (source.starts_with("host:")
                    && !source.contains('/')
                    && s.def.metric.starts_with("cpu."))
                || (source.starts_with("host/disk/") && s.def.metric == "io_ms")
                // vmbench's own CPU, which the report lists beside the results.
                || (source == "vmbench" && s.def.metric.starts_with("cpu."))
        });
        // Readings may arrive a little out of order (each guest has a clock
        // and a sampler of its own): look on both sides of the instant.
        for s in compared {
            let split = s.points.partition_point(|(t, _)| *t <= at);
            if let Some(before) = split.checked_sub(1).and_then(|i| s.points.get(i)) {
                edge.before.insert(s.def.id, *before);
                if let Some(after) = s.points.get(split) {
                    edge.after.insert(s.def.id, *after);
                }
            }
        }
        edge
    }

    /// Gives the edges of recent phases that wait for a reading after their
    /// instant the readings of this sample.
    fn complete_edges(&mut self, sample: &crate::event::Sample) {
        // Every phase not yet settled is offered the sample (the first
        // reading after a short phase may come two phases later, at a long
        // interval); then those older than the last two settle with what
        // they have: a reading comes every interval.
        for phase in &mut self.phases[self.edges_settled..] {
            for edge in [&mut phase.opened, &mut phase.closed].into_iter().flatten() {
                if !edge.waiting() || sample.t < edge.at {
                    continue;
                }
                for &(id, value) in &sample.values {
                    if edge.before.contains_key(&id) {
                        edge.after.entry(id).or_insert((sample.t, value));
                    }
                }
                if !edge.waiting() {
                    edge.settle();
                }
            }
        }
        while self.edges_settled + 2 < self.phases.len() {
            let phase = &mut self.phases[self.edges_settled];
            for edge in [&mut phase.opened, &mut phase.closed].into_iter().flatten() {
                edge.settle();
            }
            // The edges come to their growth; they keep their instants.
            if let (Some(opened), Some(closed)) = (&mut phase.opened, &mut phase.closed) {
                phase.growth = Some(Growth::of(opened, closed));
                opened.settled = Vec::new();
                closed.settled = Vec::new();
            }
            self.edges_settled += 1;
        }
    }

    /// The planned phases that have not started: those of the schedule
    /// that no phase so far ran as (by benchmark, level and repetition).
    /// Repetitions added by an adaptive benchmark shift phase numbers, so
    /// a phase's number does not index the schedule.
    pub fn planned_ahead(&self) -> Vec<&crate::plan::PlannedPhase> {
        self.header
            .schedule
            .iter()
            .filter(|planned| {
                !self.phases.iter().any(|p| {
                    p.benchmark == planned.name
                        && p.concurrency == planned.concurrency
                        && p.repetition == planned.repetition
                })
            })
            .collect()
    }

    /// How many phases the session has: run, running and still planned.
    pub fn phases_in_all(&self) -> usize {
        self.phases.len() + self.planned_ahead().len()
    }

    /// Planned time still to run: the rest of the current phase and every
    /// phase not yet begun.
    pub fn remaining(&self) -> Nanos {
        let rest: Nanos = self.planned_ahead().iter().map(|p| p.duration).sum();
        let current = self.current_phase().map_or(0, |p| {
            p.duration
                .saturating_sub(self.now.saturating_sub(p.started))
        });
        if self.ended.is_some() {
            0
        } else {
            rest + current
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_settled_edge_keeps_the_values_it_gave_and_lets_the_readings_go() {
        let mut edge = Edge {
            at: 5,
            ..Edge::default()
        };
        edge.before.insert(1, (0, 100));
        edge.before.insert(2, (0, 50));
        edge.after.insert(1, (10, 200));
        // Series 2 has no reading after the instant: its last one stands.
        assert_eq!(edge.value(1), Some(150.0));
        assert_eq!(edge.value(2), Some(50.0));
        edge.settle();
        assert_eq!((edge.before.len(), edge.after.len()), (0, 0));
        assert_eq!(edge.value(1), Some(150.0));
        assert_eq!(edge.value(2), Some(50.0));
        assert_eq!(edge.value(3), None);
    }
    use crate::header::HostSpecs;
    use crate::plan::LoadedPlan;

    pub(crate) fn test_header() -> Header {
        let plan = LoadedPlan::embedded_default();
        let host = HostSpecs {
            hostname: "testhost".into(),
            os: "Linux".into(),
            kernel: "6.1".into(),
            arch: "x86_64".into(),
            cpu_model: "Test CPU".into(),
            logical_cores: 2,
            physical_cores: Some(2),
            memory_bytes: 8 << 30,
            clock_ticks_per_sec: 100,
            virtualization: None,
        };
        Header::new(
            &plan,
            host,
            0,
            &crate::event::Clock::starting_at(0),
            plan.plan.schedule(2),
        )
    }

    pub(crate) fn fixture_events(name: &str) -> Vec<Event> {
        let path = format!("{}/tests/fixtures/fold/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}: {l}")))
            .collect()
    }

    #[test]
    fn aggregate_uses_only_the_window_where_every_copy_ran() {
        let mut session = Session::new(test_header());
        for e in fixture_events("two_copies.jsonl") {
            session.apply(&e);
        }
        let summary = session.phases[0]
            .summary
            .as_ref()
            .expect("phase 0 summarised");
        assert_eq!(summary.skew, Some(500_000_000));
        let cpu = &summary.metrics[0];
        // Both copies ran from 1.5 s to 3.0 s: copy 0 did 150 ops there, copy 1 did 150.
        assert_eq!(cpu.window, Some((1_500_000_000, 3_000_000_000)));
        assert_eq!(cpu.aggregate, Some(200.0));
        let own: Vec<Option<f64>> = cpu.per_copy.iter().map(|c| c.value).collect();
        assert_eq!(own, vec![Some(100.0), Some(150.0)]);
        assert_eq!(cpu.contributing, 2);
    }

    #[test]
    fn a_failed_copy_is_left_out_and_counted() {
        let mut session = Session::new(test_header());
        for e in fixture_events("two_copies.jsonl") {
            session.apply(&e);
        }
        let phase = &session.phases[1];
        assert_eq!(phase.ended.map(|e| e.1), Some(PhaseOutcome::Partial));
        let cpu = &phase.summary.as_ref().expect("summarised").metrics[0];
        assert_eq!(cpu.contributing, 1);
        assert_eq!(cpu.aggregate, Some(80.0));
        assert_eq!(cpu.per_copy[1].value, None);
        assert_eq!(session.ended.as_ref().map(|e| e.0), Some(5_300_000_000));
        assert_eq!(session.remaining(), 0);
    }

    fn cpu_sample(t: Nanos, user: u64, system: u64, idle: u64, steal: u64) -> Event {
        // Series 0..8 are the host CPU fields in CPU_FIELDS order.
        Event::Sample(crate::event::Sample {
            t,
            values: vec![
                (0, user),
                (1, 0),
                (2, system),
                (3, idle),
                (4, 0),
                (5, 0),
                (6, 0),
                (7, steal),
            ],
        })
    }

    #[test]
    fn cpu_shares_are_derived_from_counter_deltas() {
        let mut session = Session::new(test_header());
        for (id, metric) in crate::sample::CPU_FIELDS.iter().enumerate() {
            session.apply(&Event::SeriesDefined(SeriesDef {
                id: id as u32,
                source: "host".into(),
                metric: metric.to_string(),
                unit: "ticks".into(),
                kind: SeriesKind::Counter,
            }));
        }
        session.apply(&cpu_sample(0, 1000, 500, 10_000, 0));
        session.apply(&cpu_sample(1_000_000_000, 1100, 550, 10_040, 10));
        let shares = session.cpu_shares("host", 10);
        assert_eq!(shares.len(), 1);
        assert_eq!(shares[0].user, 50.0);
        assert_eq!(shares[0].system, 25.0);
        assert_eq!(shares[0].steal, 5.0);
        let user = session.series_named("host", "cpu.user").expect("defined");
        assert_eq!(session.rates(user, 5), vec![(1_000_000_000, 100.0)]);
    }

    #[test]
    fn phase_figures_compare_host_and_guest_over_the_phase_itself() {
        let mut session = Session::new(test_header());
        for (id, source, metric) in [
            (0, "host-seen:vm", "net.rx_bytes"),
            (1, "guest:vm/net/eth0", "rx_bytes"),
        ] {
            session.apply(&Event::SeriesDefined(SeriesDef {
                id,
                source: source.into(),
                metric: metric.into(),
                unit: "bytes".into(),
                kind: SeriesKind::Counter,
            }));
        }
        const S: Nanos = 1_000_000_000;
        // 100 bytes a second on both sides, read at instants of their own:
        // the host at x.5 s, the guest at x.9 s.
        let mut events = vec![
            (
                S,
                Event::PhaseStarted {
                    t: S,
                    phase: 0,
                    benchmark: "net".into(),
                    workload: "net".into(),
                    concurrency: 1,
                    repetition: 1,
                    duration: 5 * S,
                },
            ),
            (
                S + S / 5,
                Event::PhaseReleased {
                    t: S + S / 5,
                    phase: 0,
                },
            ),
            (
                6 * S + 7 * S / 10,
                Event::PhaseEnded {
                    t: 6 * S + 7 * S / 10,
                    phase: 0,
                    outcome: PhaseOutcome::Completed,
                },
            ),
        ];
        for second in 0..9 {
            for (offset, id) in [(S / 2, 0), (9 * S / 10, 1)] {
                let t = second * S + offset;
                let values = vec![(id, t / (S / 100))];
                events.push((t, Event::Sample(crate::event::Sample { t, values })));
            }
        }
        events.sort_by_key(|(t, _)| *t);
        for (_, event) in &events {
            session.apply(event);
        }
        let f = session.phase_figures(&session.phases[0], "vm");
        let (host, guest) = (f.host_net.expect("host"), f.guest_net.expect("guest"));
        assert!((host - 100.0).abs() < 1e-6, "{host}");
        assert!((guest - 100.0).abs() < 1e-6, "{guest}");
    }

    #[test]
    fn series_history_is_bounded() {
        let mut session = Session::new(test_header());
        session.apply(&Event::SeriesDefined(SeriesDef {
            id: 0,
            source: "host".into(),
            metric: "cpu.user".into(),
            unit: "ticks".into(),
            kind: SeriesKind::Counter,
        }));
        for t in 0..(SERIES_HISTORY as u64 * 3) {
            session.apply(&Event::Sample(crate::event::Sample {
                t,
                values: vec![(0, t)],
            }));
        }
        assert_eq!(
            session.series(0).expect("defined").points.len(),
            SERIES_HISTORY
        );
    }

    /// The shortened soak: a hundred phases over 200 guest counters leave
    /// each phase but the last two with a settled table per edge, no
    /// readings, and bounded series rings.
    #[test]
    fn a_long_session_keeps_per_phase_state_small() {
        const S: Nanos = 1_000_000_000;
        const SERIES: u32 = 200;
        let mut session = Session::new(test_header());
        for id in 0..SERIES {
            session.apply(&Event::SeriesDefined(SeriesDef {
                id,
                source: format!("guest:vm/part{id}"),
                metric: "ticks".into(),
                unit: "ticks".into(),
                kind: SeriesKind::Counter,
            }));
        }
        let sample = |session: &mut Session, t: Nanos| {
            // Each counter grows id per millisecond, steadily.
            let values = (0..SERIES)
                .map(|id| (id, t / 1_000_000 * u64::from(id)))
                .collect();
            session.apply(&Event::Sample(crate::event::Sample { t, values }));
        };
        for phase in 0..100u32 {
            let start = u64::from(phase) * 10 * S;
            session.apply(&Event::PhaseStarted {
                t: start,
                phase,
                benchmark: "idle".into(),
                workload: "idle".into(),
                concurrency: 1,
                repetition: 1,
                duration: 8 * S,
            });
            sample(&mut session, start + S / 2);
            session.apply(&Event::PhaseReleased {
                t: start + S,
                phase,
            });
            for second in 2..10 {
                sample(&mut session, start + second * S);
                if second == 9 {
                    session.apply(&Event::PhaseEnded {
                        t: start + 9 * S - S / 2,
                        phase,
                        outcome: PhaseOutcome::Completed,
                    });
                }
            }
        }
        for phase in &session.phases[..98] {
            for edge in [&phase.opened, &phase.closed] {
                let edge = edge.as_ref().expect("edge");
                assert!(edge.before.is_empty() && edge.after.is_empty() && edge.settled.is_empty());
            }
            // Series 0 never moves: a bit, no value.
            let growth = phase.growth.as_ref().expect("settled");
            assert_eq!(growth.moved.len(), SERIES as usize - 1);
            assert_eq!(growth.get(0), Some(0.0));
            assert_eq!(growth.get(SERIES), None);
        }
        // The figures read from settled edges are the readings' own:
        // series 3 grew 3,000 a second over the phase's window.
        let first = &session.phases[0];
        let series = session.series(3).expect("defined");
        let (grown, seconds) = session.phase_growth(first, series).expect("growth");
        assert!(
            (grown / seconds - 3000.0).abs() < 1e-6,
            "{grown} in {seconds} s"
        );
        assert!(session.series(0).expect("defined").points.len() <= SERIES_HISTORY);
    }
}
