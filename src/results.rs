//! The results model: every run copy's figure and every phase's aggregate,
//! with what is needed to compare them across recordings: the technology,
//! which way the metric points, and the workload's fingerprint. A phase whose
//! copies did not run together, or did not all finish, is flagged and kept
//! out of comparisons.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{NANOS_PER_SEC, Nanos, PhaseOutcome, RunOutcome};
use crate::model::{Phase, RunState, Session};
use crate::workload::{WorkloadClass, WorkloadSpec};

/// A phase whose start skew, clock uncertainty and stop gap add up to more
/// than this share of how long its copies ran did not run its copies
/// together, and its aggregate means little.
pub const DEFAULT_SKEW_BOUND: f64 = 0.20;

fn seconds(t: Nanos) -> f64 {
    t as f64 / NANOS_PER_SEC
}

fn millis(t: Nanos) -> f64 {
    t as f64 / 1e6
}

/// One copy's figure for one metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CopyResult {
    pub source: String,
    pub phase: u32,
    pub benchmark: String,
    pub workload: String,
    pub concurrency: u32,
    pub repetition: u32,
    pub copy: u32,
    pub guest: String,
    pub technology: String,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    /// The tool's own figure, or else the copy's whole-run rate.
    pub value: Option<f64>,
    /// When the copy did this metric's work, in session seconds.
    pub start_s: Option<f64>,
    pub stop_s: Option<f64>,
    pub outcome: &'static str,
}

/// Why a phase is kept out of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Flag {
    /// Its copies started or stopped too far apart: skew plus gap as a
    /// share of its length, and the bound it exceeded.
    Skewed { share: f64, bound: f64 },
    /// Not every copy finished.
    Partial { finished: usize, copies: usize },
    /// It did not complete (failed, timed out, skipped, aborted, unfinished).
    Ended { outcome: String },
    /// Nothing measured the metric.
    NoFigure,
    /// Some copies that finished measured nothing in the window (their
    /// progress never parsed): the window's sum would undercount.
    Unmeasured { measured: usize, finished: usize },
    /// A copy's machine had its clock unmeasured, others theirs: the start
    /// skew cannot be told.
    ClockUnknown,
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flag::Skewed { share, bound } => write!(
                f,
                "start skew, clock uncertainty and stop gap add up to {:.0} % of the phase (bound {:.0} %)",
                share * 100.0,
                bound * 100.0
            ),
            Flag::Partial { finished, copies } => {
                write!(f, "{finished} of {copies} copies finished")
            }
            Flag::Ended { outcome } => write!(f, "phase {outcome}"),
            Flag::NoFigure => f.write_str("no figure"),
            Flag::Unmeasured { measured, finished } => {
                write!(f, "{measured} of {finished} copies measured")
            }
            Flag::ClockUnknown => {
                f.write_str("a guest's clock was not measured, so the start skew is unknown")
            }
        }
    }
}

impl Flag {
    /// A few characters for a table column.
    pub fn short(&self) -> String {
        match self {
            Flag::Skewed { share, .. } => format!("skew {:.0}%", share * 100.0),
            Flag::Partial { finished, copies } => format!("{finished}/{copies} done"),
            Flag::Ended { outcome } => outcome.clone(),
            Flag::NoFigure => "no figure".into(),
            Flag::Unmeasured { measured, finished } => format!("{measured}/{finished} meas."),
            Flag::ClockUnknown => "clock?".into(),
        }
    }
}

impl Serialize for Flag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One phase's figures for one metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseResult {
    pub source: String,
    pub phase: u32,
    pub benchmark: String,
    pub workload: String,
    pub class: WorkloadClass,
    pub technology: String,
    pub concurrency: u32,
    pub repetition: u32,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    /// Sum of the copies' rates over the window in which all of them ran;
    /// for tools that report only at their end, the sum of their figures.
    pub aggregate: Option<f64>,
    /// Mean of the copies' own figures.
    pub per_guest_mean: Option<f64>,
    pub window_start_s: Option<f64>,
    pub window_stop_s: Option<f64>,
    /// The spread of the copies' own start stamps (jitter)...
    pub skew_ms: Option<f64>,
    /// ...and how far that spread may be off because each guest's clock
    /// offset is known only to half its best round trip: the two largest
    /// uncertainties of the copies added (0 for copies on this host).
    pub clock_uncertainty_ms: Option<f64>,
    pub stop_gap_ms: Option<f64>,
    pub copies: usize,
    pub contributing: usize,
    pub outcome: &'static str,
    /// Why it is left out of comparisons, if it is.
    pub flag: Option<Flag>,
    #[serde(skip)]
    pub fingerprint: Fingerprint,
}

impl PhaseResult {
    /// Whether it takes part in the comparison.
    pub fn counts(&self, include_skewed: bool) -> bool {
        let allowed = match self.flag {
            None => true,
            Some(Flag::Skewed { .. }) => include_skewed,
            Some(_) => false,
        };
        allowed && self.aggregate.is_some()
    }
}

/// What must match for two phases' figures to be compared: the tool and its
/// version, the workload's parameters and the planned duration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint(pub BTreeMap<String, String>);

impl Fingerprint {
    /// Fields whose values differ, as (field, ours, theirs).
    pub fn differences<'a>(&'a self, other: &'a Fingerprint) -> Vec<(&'a str, &'a str, &'a str)> {
        let mut keys: Vec<&String> = self.0.keys().chain(other.0.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| {
                let (ours, theirs) = (self.0.get(k), other.0.get(k));
                // A path not recorded (an older recording, an iperf3 server
                // elsewhere) is unknown, not different.
                if KNOWN_ONLY.contains(&k.as_str()) && (ours.is_none() || theirs.is_none()) {
                    return None;
                }
                let ours = ours.map_or("(none)", String::as_str);
                let theirs = theirs.map_or("(none)", String::as_str);
                (ours != theirs).then_some((k.as_str(), ours, theirs))
            })
            .collect()
    }
}

/// Fingerprint fields compared only where both sides recorded them.
const KNOWN_ONLY: [&str; 1] = ["network path"];

/// What the host spent on a guest against what the guest saw itself, over
/// one phase: CPU in cores, network and disk in bytes per second.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OverheadResult {
    pub source: String,
    pub phase: u32,
    pub benchmark: String,
    /// Which resource the phase's workload exercises.
    pub class: WorkloadClass,
    pub concurrency: u32,
    pub repetition: u32,
    pub guest: String,
    pub technology: String,
    pub host_cpu_cores: Option<f64>,
    pub guest_cpu_cores: Option<f64>,
    pub cpu_ratio: Option<f64>,
    pub host_net_bytes_s: Option<f64>,
    pub guest_net_bytes_s: Option<f64>,
    pub net_ratio: Option<f64>,
    pub host_disk_bytes_s: Option<f64>,
    pub guest_disk_bytes_s: Option<f64>,
    pub disk_ratio: Option<f64>,
}

/// What the host and the guests saw during one phase: the likely causes of
/// a loss, beside the figure.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseLoad {
    pub source: String,
    pub phase: u32,
    /// The share of the guests' CPU time stolen by the hypervisor (their
    /// own /proc/stat), mean over the phase's guests.
    pub steal_pct: Option<f64>,
    /// This host's CPUs busy, all of them together.
    pub host_busy_pct: Option<f64>,
    /// This host's busiest disk and the share of the phase it was busy
    /// (io_ms).
    pub busiest_disk: Option<(String, f64)>,
    /// vmbench's own CPU on this host over the phase, in percent of a core:
    /// the observer's share, to be read beside the results.
    pub vmbench_cpu_pct: Option<f64>,
    /// vmbench's agent on the phase's guests over the phase, in percent of
    /// a core, the mean of the guests.
    pub agent_cpu_pct: Option<f64>,
}

/// The machine whose CPU a phase's guests loaded: a `[[host]]` when they
/// all ran on it (`host:<name>`, sampled by its agent), else this one.
fn host_of_phase(session: &Session, guests: &[&str]) -> String {
    let mut hosts = guests.iter().map(|g| session.host_of(g));
    match hosts.next().flatten() {
        Some(first) if hosts.all(|h| h == Some(first)) => format!("host:{first}"),
        _ => "host".into(),
    }
}

/// vmbench's own CPU time over a phase's window, in percent of one core.
fn own_cpu(session: &Session, phase: &Phase, source: &str) -> Option<f64> {
    let ticks_per_second = session.header.host.clock_ticks_per_sec.max(1) as f64;
    let mut ticks = 0.0;
    let mut window = None;
    for metric in ["cpu.utime", "cpu.stime"] {
        let series = session.series_named(source, metric)?;
        let (grown, seconds) = session.phase_growth(phase, series)?;
        ticks += grown;
        window = Some(seconds);
    }
    Some(ticks / ticks_per_second / window? * 100.0)
}

/// The share of CPU time in `parts` over all of it, from /proc/stat's fields
/// as they grew over a phase.
fn cpu_share(session: &Session, phase: &Phase, source: &str, parts: &[&str]) -> Option<f64> {
    let grown = |metric: &str| {
        session
            .series_named(source, metric)
            .and_then(|s| session.phase_growth(phase, s))
            .map(|(g, _)| g)
    };
    let total: f64 = crate::sample::CPU_FIELDS
        .iter()
        .filter_map(|m| grown(m))
        .sum();
    let part: f64 = parts.iter().filter_map(|m| grown(m)).sum();
    (total > 0.0 && grown(parts[0]).is_some()).then(|| part / total * 100.0)
}

/// host ÷ guest, when the guest saw anything to divide by.
pub fn ratio(host: Option<f64>, guest: Option<f64>) -> Option<f64> {
    match (host, guest) {
        (Some(h), Some(g)) if g > 0.0 => Some(h / g),
        _ => None,
    }
}

/// Every copy and phase of one or more recordings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    pub copies: Vec<CopyResult>,
    pub phases: Vec<PhaseResult>,
    pub overhead: Vec<OverheadResult>,
    /// Recordings made on a host that is itself virtual: (source, how).
    pub virtual_hosts: Vec<(String, String)>,
    /// Each guest's shape at bring-up: (technology, guest, shape).
    pub guest_shapes: Vec<(String, String, crate::event::GuestShape)>,
    /// Each recording's host core count (logical CPUs), which levels such as
    /// "cores-1" were resolved against: (source, cores).
    pub host_cores: Vec<(String, usize)>,
    /// The external tools each technology's copies ran, with the version
    /// they reported: (technology, tool, version), each once.
    pub tools: Vec<(String, String, String)>,
    /// What the host and guests saw in each phase (from the samples, so
    /// for reports, not for every frame).
    pub loads: Vec<PhaseLoad>,
}

fn outcome_of(state: &RunState) -> &'static str {
    match state {
        RunState::Done(RunOutcome::Completed) => "completed",
        RunState::Done(RunOutcome::Failed { .. }) => "failed",
        RunState::Done(RunOutcome::Cancelled) => "cancelled",
        RunState::Waiting | RunState::Running => "unfinished",
    }
}

/// How far the copies' start spread may be off: copies on one machine share
/// its clock, so per machine the largest uncertainty counts once, and the
/// two largest machines' are added (a pair of stamps from two clocks is off
/// by at most the sum of theirs); 0 where every copy shares one clock.
/// Err when a copy's clock was not measured while others' were: its stamps
/// could be anywhere. Ok(None) for recordings made before vmbench kept it.
fn clock_uncertainty(session: &Session, runs: &[&crate::model::Run]) -> Result<Option<Nanos>, ()> {
    // A guest whose clock was never measured: its stamps were not converted,
    // in any recording, old or new.
    let never_measured = |r: &&crate::model::Run| {
        r.clock_uncertainty.is_none()
            && session
                .brought_up
                .get(&r.guest)
                .is_some_and(|info| info.clock_offset_ns.is_none())
    };
    if runs.iter().any(never_measured) {
        return Err(());
    }
    if runs.iter().all(|r| r.clock_uncertainty.is_none()) {
        return Ok(None);
    }
    let mut per_machine: Vec<(&str, Nanos)> = Vec::new();
    for run in runs {
        let u = run.clock_uncertainty.ok_or(())?;
        match per_machine.iter_mut().find(|(g, _)| *g == run.guest) {
            Some((_, known)) => *known = (*known).max(u),
            None => per_machine.push((&run.guest, u)),
        }
    }
    if per_machine.len() < 2 {
        return Ok(Some(0));
    }
    let mut each: Vec<Nanos> = per_machine.into_iter().map(|(_, u)| u).collect();
    each.sort_unstable_by(|a, b| b.cmp(a));
    Ok(Some(each.iter().take(2).sum()))
}

fn spread(times: &[Nanos]) -> Option<Nanos> {
    Some(times.iter().max()? - times.iter().min()?)
}

impl Results {
    /// The results of every summarised phase of a session. Without the
    /// plan it ran, workloads are compared by their label alone.
    pub fn of_session(session: &Session, source: &str, bound: f64) -> Self {
        let mut results = if bound == DEFAULT_SKEW_BOUND {
            // The same values every view saw, not a second computation.
            let mut results = session.results.clone();
            results.name_source(source);
            results
        } else {
            let mut results = Results::default();
            for phase in &session.phases {
                results.add_phase(session, phase, source, bound);
            }
            results
        };
        results.add_facts(session, source);
        results
    }

    /// What the comparison's validity is judged on: whether the host was
    /// virtual, its cores, each guest's shape at its latest bring-up.
    fn add_facts(&mut self, session: &Session, source: &str) {
        if let Some(how) = &session.header.host.virtualization {
            self.virtual_hosts.push((source.into(), how.clone()));
        }
        self.host_cores
            .push((source.into(), session.header.host.logical_cores));
        for run in session.runs.values() {
            if let Some((tool, version)) = &run.tool {
                let entry = (run.technology.clone(), tool.clone(), version.clone());
                if !self.tools.contains(&entry) {
                    self.tools.push(entry);
                }
            }
        }
        for (guest, info) in &session.brought_up {
            let technology = session.runs.values().find(|r| r.guest == *guest);
            if let (Some(shape), Some(run)) = (&info.shape, technology) {
                self.guest_shapes
                    .push((run.technology.clone(), guest.clone(), shape.clone()));
            }
        }
    }

    /// The result of one phase that has just ended (its source named
    /// later, by whoever reads the recording).
    pub fn of_phase(session: &Session, id: crate::event::PhaseId) -> Self {
        let mut results = Results::default();
        if let Some(phase) = session.phase(id) {
            results.add_phase(session, phase, "", DEFAULT_SKEW_BOUND);
        }
        results
    }

    fn name_source(&mut self, source: &str) {
        for c in &mut self.copies {
            c.source = source.into();
        }
        for p in &mut self.phases {
            p.source = source.into();
        }
    }

    /// The same with each guest's overhead per phase, which needs the
    /// session's samples: for reports and exports, not for every frame.
    pub fn of_recording(session: &Session, source: &str, bound: f64) -> Self {
        let mut results = Self::of_session(session, source, bound);
        for phase in session.phases.iter().filter(|p| p.ended.is_some()) {
            results.add_overhead(session, phase, source);
            results.add_load(session, phase, source);
        }
        results
    }

    fn add_load(&mut self, session: &Session, phase: &Phase, source: &str) {
        let mut guests: Vec<&str> = session.runs_of(phase).map(|r| r.guest.as_str()).collect();
        guests.sort_unstable();
        guests.dedup();
        let steals: Vec<f64> = guests
            .iter()
            .filter_map(|g| cpu_share(session, phase, &format!("guest:{g}"), &["cpu.steal"]))
            .collect();
        let busiest_disk = session
            .all_series()
            .filter(|s| s.def.source.starts_with("host/disk/") && s.def.metric == "io_ms")
            .filter_map(|s| {
                let (ms, seconds) = session.phase_growth(phase, s)?;
                let device = s.def.source.trim_start_matches("host/disk/").to_string();
                Some((device, (ms / (seconds * 1000.0) * 100.0).min(100.0)))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|(_, busy)| *busy >= 0.5);
        self.loads.push(PhaseLoad {
            source: source.into(),
            phase: phase.id + 1,
            steal_pct: (!steals.is_empty())
                .then(|| steals.iter().sum::<f64>() / steals.len() as f64),
            host_busy_pct: cpu_share(
                session,
                phase,
                &host_of_phase(session, &guests),
                &crate::sample::CPU_BUSY_FIELDS,
            ),
            busiest_disk,
            vmbench_cpu_pct: own_cpu(session, phase, "vmbench"),
            agent_cpu_pct: {
                let agents: Vec<f64> = guests
                    .iter()
                    .filter_map(|g| own_cpu(session, phase, &format!("guest:{g}/vmbench")))
                    .collect();
                (!agents.is_empty()).then(|| agents.iter().sum::<f64>() / agents.len() as f64)
            },
        });
    }

    fn add_overhead(&mut self, session: &Session, phase: &Phase, source: &str) {
        let (_, class) = comparison_of(workload_of(session, phase), phase);
        let runs: Vec<_> = session.runs_of(phase).collect();
        let mut guests: Vec<(&str, &str)> = runs
            .iter()
            .map(|r| (r.guest.as_str(), r.technology.as_str()))
            .collect();
        guests.sort();
        guests.dedup();
        for (guest, technology) in guests {
            let f = session.phase_figures(phase, guest);
            if f.host_side()
                .iter()
                .chain(&f.guest_side())
                .all(Option::is_none)
            {
                continue;
            }
            self.overhead.push(OverheadResult {
                source: source.into(),
                phase: phase.id + 1,
                benchmark: phase.benchmark.clone(),
                class,
                concurrency: phase.concurrency,
                repetition: phase.repetition,
                guest: guest.into(),
                technology: technology.into(),
                host_cpu_cores: f.host_cpu,
                guest_cpu_cores: f.guest_cpu,
                cpu_ratio: ratio(f.host_cpu, f.guest_cpu),
                host_net_bytes_s: f.host_net,
                guest_net_bytes_s: f.guest_net,
                net_ratio: ratio(f.host_net, f.guest_net),
                host_disk_bytes_s: f.host_disk,
                guest_disk_bytes_s: f.guest_disk,
                disk_ratio: ratio(f.host_disk, f.guest_disk),
            });
        }
    }

    pub fn extend(&mut self, other: Results) {
        self.copies.extend(other.copies);
        self.phases.extend(other.phases);
        self.overhead.extend(other.overhead);
        self.virtual_hosts.extend(other.virtual_hosts);
        self.guest_shapes.extend(other.guest_shapes);
        self.host_cores.extend(other.host_cores);
        self.loads.extend(other.loads);
        for tool in other.tools {
            if !self.tools.contains(&tool) {
                self.tools.push(tool);
            }
        }
    }

    fn add_phase(&mut self, session: &Session, phase: &Phase, source: &str, bound: f64) {
        let (Some(summary), Some((_, outcome))) = (&phase.summary, phase.ended) else {
            return;
        };
        let spec = workload_of(session, phase);
        let (workload, class) = comparison_of(spec, phase);
        let runs: Vec<_> = session.runs_of(phase).collect();
        let mut technologies: Vec<&str> = runs.iter().map(|r| r.technology.as_str()).collect();
        technologies.sort();
        technologies.dedup();
        let technology = technologies.join("+");
        let fingerprint = fingerprint(spec, &runs, session, phase);

        let finished: Vec<_> = runs
            .iter()
            .filter(|r| matches!(r.state, RunState::Done(RunOutcome::Completed)))
            .collect();
        let starts: Vec<Nanos> = runs.iter().filter_map(|r| r.started).collect();
        let stops: Vec<Nanos> = finished.iter().filter_map(|r| r.ended).collect();
        let stop_gap = spread(&stops);
        // Skew and gap are judged against how long the copies actually ran
        // (a bonnie++ planned for 10 min that ends in 2 is a 2-min phase);
        // the plan's duration stands in only when no copy finished.
        let span = starts
            .iter()
            .min()
            .zip(stops.iter().max())
            .map_or(0, |(a, b)| b.saturating_sub(*a));
        let length = if span > 0 { span } else { phase.duration }.max(1);
        let clock = clock_uncertainty(session, &runs);
        let share = (summary.skew.unwrap_or(0)
            + clock.ok().flatten().unwrap_or(0)
            + stop_gap.unwrap_or(0)) as f64
            / length as f64;
        let phase_flag = if !matches!(outcome, PhaseOutcome::Completed | PhaseOutcome::Partial) {
            Some(Flag::Ended {
                outcome: outcome.name().into(),
            })
        } else if finished.len() < runs.len() {
            Some(Flag::Partial {
                finished: finished.len(),
                copies: runs.len(),
            })
        } else if clock.is_err() {
            Some(Flag::ClockUnknown)
        } else if share > bound {
            Some(Flag::Skewed { share, bound })
        } else {
            None
        };

        for m in &summary.metrics {
            let values: Vec<f64> = m.per_copy.iter().filter_map(|c| c.value).collect();
            let per_guest_mean =
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
            let every_copy_has_a_figure = !runs.is_empty() && values.len() == runs.len();
            // Where the tool's end figure is the measurement (iperf3's
            // receiver total), the aggregate is their sum.
            let tool_total = (m.metric.result_is_total && !finished.is_empty())
                .then(|| {
                    finished
                        .iter()
                        .map(|r| {
                            r.tool_results
                                .iter()
                                .find(|(name, ..)| *name == m.metric.name)
                                .map(|(_, value, _)| *value)
                        })
                        .sum::<Option<f64>>()
                })
                .flatten();
            // A receiver figure missing: the sender's window sum is not
            // put in its place.
            let window_sum = m.aggregate.filter(|_| !m.metric.result_is_total);
            // Receivers' totals stand alone: a copy without one leaves the
            // phase with no aggregate rather than a sender's figure in it.
            let aggregate = if m.metric.result_is_total {
                tool_total
            } else {
                window_sum.or_else(|| every_copy_has_a_figure.then(|| values.iter().sum()))
            };
            // The window's sum stands only when every finished copy is in it.
            let measured = if m.metric.result_is_total {
                finished
                    .iter()
                    .filter(|r| {
                        r.tool_results
                            .iter()
                            .any(|(name, ..)| *name == m.metric.name)
                    })
                    .count()
            } else {
                m.contributing
            };
            let unmeasured = ((window_sum.is_some() || m.metric.result_is_total)
                && measured < finished.len())
            .then_some(Flag::Unmeasured {
                measured,
                finished: finished.len(),
            });
            for figure in &m.per_copy {
                let Some(run) = session.runs.get(&figure.run) else {
                    continue;
                };
                self.copies.push(CopyResult {
                    source: source.into(),
                    phase: phase.id + 1,
                    benchmark: phase.benchmark.clone(),
                    workload: workload.clone(),
                    concurrency: phase.concurrency,
                    repetition: phase.repetition,
                    copy: run.copy + 1,
                    guest: run.guest.clone(),
                    technology: run.technology.clone(),
                    metric: m.metric.name.clone(),
                    unit: m.metric.unit.clone(),
                    higher_is_better: m.metric.higher_is_better,
                    value: figure.value,
                    start_s: figure.span.map(|s| seconds(s.0)),
                    stop_s: figure.span.map(|s| seconds(s.1)),
                    outcome: outcome_of(&run.state),
                });
            }
            self.phases.push(PhaseResult {
                source: source.into(),
                phase: phase.id + 1,
                benchmark: phase.benchmark.clone(),
                workload: workload.clone(),
                class,
                technology: technology.clone(),
                concurrency: phase.concurrency,
                repetition: phase.repetition,
                metric: m.metric.name.clone(),
                unit: m.metric.unit.clone(),
                higher_is_better: m.metric.higher_is_better,
                aggregate,
                per_guest_mean,
                window_start_s: m.window.map(|w| seconds(w.0)),
                window_stop_s: m.window.map(|w| seconds(w.1)),
                skew_ms: summary.skew.map(millis),
                clock_uncertainty_ms: clock.ok().flatten().map(millis),
                stop_gap_ms: stop_gap.map(millis),
                copies: runs.len(),
                // What the aggregate counts: the copies in the common window,
                // or those whose receiver total is summed.
                contributing: measured,
                outcome: outcome.name(),
                // An undercount outranks skew: --include-skewed must not
                // bring an undercounted sum back.
                flag: match (&phase_flag, unmeasured) {
                    (Some(Flag::Skewed { .. }) | None, Some(unmeasured)) => Some(unmeasured),
                    (flag, _) => flag.clone(),
                }
                .or_else(|| aggregate.is_none().then_some(Flag::NoFigure)),
                fingerprint: fingerprint.clone(),
            });
        }
    }
}

/// The workload a phase ran, from the plan the session's header holds.
fn workload_of<'a>(session: &'a Session, phase: &Phase) -> Option<&'a WorkloadSpec> {
    session
        .plan
        .as_ref()?
        .benchmarks
        .iter()
        .find(|b| b.name == phase.benchmark)
        .map(|b| &b.workload)
}

/// Without the plan, workloads are compared by their label alone.
fn comparison_of(spec: Option<&WorkloadSpec>, phase: &Phase) -> (String, WorkloadClass) {
    spec.map_or_else(
        || (phase.workload.clone(), WorkloadClass::Score),
        WorkloadSpec::comparison,
    )
}

fn fingerprint(
    spec: Option<&WorkloadSpec>,
    runs: &[&crate::model::Run],
    session: &Session,
    phase: &Phase,
) -> Fingerprint {
    let mut fields = BTreeMap::new();
    let mut tools: Vec<String> = runs
        .iter()
        .filter_map(|r| r.tool.as_ref())
        .map(|(tool, version)| format!("{tool} {version}"))
        .collect();
    tools.sort();
    tools.dedup();
    let builtin = spec.is_some_and(|s| s.tool().is_none());
    if builtin {
        // Built-in workloads are vmbench's own code.
        tools.push(format!("vmbench {}", session.header.vmbench_version));
    }
    fields.insert("tool".into(), tools.join(", "));
    // Loopback against a bridge or a NIC is a different path, not a loss.
    let mut paths: Vec<&str> = runs
        .iter()
        .filter_map(|r| r.path.as_deref())
        .map(|p| p.split_whitespace().next().unwrap_or(p))
        .collect();
    paths.sort();
    paths.dedup();
    if !paths.is_empty() {
        fields.insert("network path".into(), paths.join("+"));
    }
    fields.insert("workload".into(), phase.workload.clone());
    if let Some(spec) = spec {
        fields.extend(spec.parameters());
    }
    // bonnie++ runs until its data set is done, whatever the plan says.
    if !matches!(spec, Some(WorkloadSpec::Bonnie { .. })) {
        fields.insert(
            "duration".into(),
            humantime::format_duration(std::time::Duration::from_nanos(phase.duration)).to_string(),
        );
    }
    Fingerprint(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, MetricDef, RunOutcome};
    use crate::model::tests::test_header;

    const S: Nanos = 1_000_000_000;

    /// One phase of `copies` copies: each (start, end, progress points,
    /// its tool's own figure).
    struct Copy {
        start: Nanos,
        end: Nanos,
        progress: Vec<(Nanos, f64)>,
        result: Option<f64>,
    }

    fn phase(duration: Nanos, result_is_total: bool, copies: &[Copy]) -> Session {
        phase_in(
            Session::new(test_header()),
            Some(0),
            duration,
            result_is_total,
            copies,
        )
    }

    /// The same in a session that may already know its guests, each copy
    /// with the given clock uncertainty.
    fn phase_in(
        mut session: Session,
        clock_uncertainty: Option<Nanos>,
        duration: Nanos,
        result_is_total: bool,
        copies: &[Copy],
    ) -> Session {
        let metric = MetricDef {
            name: "m".into(),
            unit: "u/s".into(),
            scale: 1.0,
            higher_is_better: true,
            result_is_total,
        };
        let mut events = vec![Event::PhaseStarted {
            t: 0,
            phase: 0,
            benchmark: "cpu".into(),
            workload: "cpu".into(),
            concurrency: copies.len() as u32,
            repetition: 1,
            duration,
        }];
        for (i, c) in copies.iter().enumerate() {
            let run = i as u32;
            events.push(Event::RunSpawned {
                t: 0,
                run,
                phase: 0,
                copy: run,
                guest: format!("g{i}"),
                technology: "kvm".into(),
                pid: None,
                metrics: vec![metric.clone()],
                path: None,
                clock_uncertainty,
            });
            events.push(Event::RunStarted {
                t: c.start,
                run,
                machine_ns: None,
            });
            for (t, done) in &c.progress {
                events.push(Event::Progress {
                    t: *t,
                    run,
                    metric: 0,
                    done: *done,
                });
            }
            if let Some(value) = c.result {
                events.push(Event::RunResult {
                    t: c.end,
                    run,
                    metric: "m".into(),
                    value,
                    unit: "u/s".into(),
                });
            }
            events.push(Event::RunEnded {
                t: c.end,
                run,
                outcome: RunOutcome::Completed,
            });
        }
        let end = copies.iter().map(|c| c.end).max().unwrap_or(0);
        events.push(Event::PhaseEnded {
            t: end,
            phase: 0,
            outcome: PhaseOutcome::Completed,
        });
        for e in &events {
            session.apply(e);
        }
        session
    }

    fn steady(start: Nanos, end: Nanos, rate: f64, result: Option<f64>) -> Copy {
        let points = (0..=(end - start) / S)
            .map(|k| (start + k * S, rate * k as f64))
            .collect();
        Copy {
            start,
            end,
            progress: points,
            result,
        }
    }

    #[test]
    fn an_undercount_outranks_skew_so_include_skewed_cannot_bring_it_back() {
        // Second copy starts 3 s late over ~10 s (skewed) and measured nothing.
        let session = phase(
            10 * S,
            false,
            &[
                steady(0, 10 * S, 100.0, None),
                Copy {
                    start: 3 * S,
                    end: 10 * S,
                    progress: Vec::new(),
                    result: Some(90.0),
                },
            ],
        );
        let r = &session.results.phases[0];
        assert_eq!(
            r.flag,
            Some(Flag::Unmeasured {
                measured: 1,
                finished: 2
            })
        );
        assert!(!r.counts(true), "left out even with --include-skewed");
    }

    #[test]
    fn a_missing_receiver_figure_flags_instead_of_falling_back_to_the_sender() {
        let session = phase(
            10 * S,
            true,
            &[
                steady(0, 10 * S, 1.0, Some(0.99)),
                steady(0, 10 * S, 1.0, None),
            ],
        );
        let r = &session.results.phases[0];
        assert_eq!(
            r.flag,
            Some(Flag::Unmeasured {
                measured: 1,
                finished: 2
            })
        );
        assert_eq!(r.aggregate, None, "no sender figure mixed in");
        // Both copies sent progress, one receiver counted: the headless line
        // and the CSV say 1 of 2 measured, as the flag does.
        assert_eq!((r.contributing, r.copies), (1, 2));
    }

    #[test]
    fn skew_is_judged_against_how_long_the_copies_ran_not_the_plan() {
        // Planned for 600 s, done in 20 s, started 3 s apart: 15 % of 600 s
        // would pass; against the 20 s actually run it is 15 % + its stop gap.
        let session = phase(
            600 * S,
            false,
            &[
                steady(0, 20 * S, 10.0, Some(10.0)),
                steady(3 * S, 23 * S, 10.0, Some(10.0)),
            ],
        );
        let r = &session.results.phases[0];
        assert!(
            matches!(r.flag, Some(Flag::Skewed { share, .. }) if (share - 6.0 / 23.0).abs() < 1e-9),
            "{:?}",
            r.flag
        );
    }

    fn ready(
        guest: &str,
        clock_offset_ns: Option<i64>,
        shape: Option<crate::event::GuestShape>,
    ) -> Event {
        Event::GuestState {
            t: 0,
            guest: guest.into(),
            state: crate::event::GuestState::Ready {
                info: Box::new(crate::event::GuestInfo {
                    address: "192.0.2.1".into(),
                    local_ip: std::net::Ipv4Addr::LOCALHOST.into(),
                    arch: "x86_64".into(),
                    kernel: "6.1".into(),
                    connect_ms: 1.0,
                    clock_offset_ns,
                    clock_rtt_ns: clock_offset_ns.map(|_| 10),
                    vmbench: Ok("/tmp/vmbench.x/vmbench".into()),
                    shape,
                    boot_id: None,
                }),
            },
        }
    }

    /// Guests whose clocks could not be measured: their copies' stamps were
    /// never converted, so even a phase made only of them cannot claim a
    /// skew (it once passed as a recording older than clock uncertainty).
    #[test]
    fn a_phase_on_guests_whose_clocks_were_never_measured_is_flagged() {
        let copies = [steady(0, 10 * S, 1.0, None), steady(0, 10 * S, 1.0, None)];
        let mut unmeasured = Session::new(test_header());
        unmeasured.apply(&ready("g0", None, None));
        unmeasured.apply(&ready("g1", None, None));
        let session = phase_in(unmeasured, None, 10 * S, false, &copies);
        assert_eq!(session.results.phases[0].flag, Some(Flag::ClockUnknown));
        // A recording from before clock uncertainty, of measured guests,
        // still counts.
        let mut measured = Session::new(test_header());
        measured.apply(&ready("g0", Some(5), None));
        measured.apply(&ready("g1", Some(-5), None));
        let session = phase_in(measured, None, 10 * S, false, &copies);
        assert_eq!(session.results.phases[0].flag, None);
    }

    /// A guest's shape is judged after the session, when the guest has long
    /// closed: it is kept from its bring-up, for the TUI's matrix as for
    /// the report.
    #[test]
    fn guest_shapes_outlive_their_guests_connections() {
        let mut session = phase(10 * S, false, &[steady(0, 10 * S, 100.0, None)]);
        let shape = crate::event::GuestShape {
            vcpus: 2,
            memory_bytes: 4 << 30,
            virtualization: None,
            nics: vec!["eth0=virtio_net".into()],
            disks: vec![],
        };
        session.apply(&ready("g0", Some(0), Some(shape.clone())));
        session.apply(&Event::GuestState {
            t: 11 * S,
            guest: "g0".into(),
            state: crate::event::GuestState::Closed,
        });
        let results = Results::of_session(&session, "s", DEFAULT_SKEW_BOUND);
        assert_eq!(
            results.guest_shapes,
            [("kvm".to_string(), "g0".to_string(), shape)]
        );
        assert_eq!(
            results.host_cores,
            [("s".to_string(), session.header.host.logical_cores)]
        );
    }

    #[test]
    fn every_view_reads_the_result_computed_when_the_phase_ended() {
        let session = phase(
            10 * S,
            false,
            &[
                steady(0, 10 * S, 100.0, None),
                steady(0, 10 * S, 50.0, None),
            ],
        );
        assert_eq!(session.results.phases.len(), 1);
        assert_eq!(session.results.phases[0].aggregate, Some(150.0));
        let report = Results::of_recording(&session, "r.vmb", DEFAULT_SKEW_BOUND);
        assert_eq!(report.phases[0].aggregate, Some(150.0));
        assert_eq!(report.phases[0].source, "r.vmb");
        // Another bound is a judgement of its own, computed again.
        let strict = Results::of_session(&session, "r.vmb", 0.0);
        assert_eq!(strict.phases[0].aggregate, Some(150.0));
    }

    #[test]
    fn a_phase_on_one_hosts_guests_is_judged_by_that_hosts_cpu() {
        let source = "name = \"two\"\n[[host]]\nname = \"h2\"\naddress = \"10.0.0.2\"\nuser = \"root\"\n\
                      [[guest]]\nname = \"kvm-1\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\n\
                      address = \"10.0.0.11\"\nuser = \"root\"\n\
                      [[guest]]\nname = \"kvm-2\"\nhost = \"h2\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\n\
                      address = \"10.0.0.12\"\nuser = \"root\"\n\
                      [[benchmark]]\nname = \"cpu\"\nworkload = { type = \"cpu\" }\nduration = \"1s\"\nconcurrency = [1]\n";
        let mut session = Session::new(crate::model::tests::test_header());
        session.plan = Some(
            crate::plan::LoadedPlan::parse(source, "two.toml")
                .expect("plan")
                .plan,
        );
        assert_eq!(host_of_phase(&session, &["kvm-2"]), "host:h2");
        assert_eq!(host_of_phase(&session, &["kvm-1"]), "host");
        assert_eq!(host_of_phase(&session, &["kvm-1", "kvm-2"]), "host");
    }
}
