//! The comparison: figures pooled by technology over repetitions and
//! recordings, and each technology's loss from the baseline with its
//! interval. Rows are workload metric × number of concurrent guests.

pub mod charts;
pub mod command;
pub mod freecore;
pub mod html;
pub mod pairwise;
pub mod table1;
pub mod text;
pub mod time_chart;
pub mod why;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::model::Session;
use crate::results::{PhaseResult, Results};
use crate::stats::{Loss, Summary};
use crate::store::Reader;
use crate::workload::WorkloadClass;
use text::{aligned, escape, loss_text, markdown, number, number_like, percent, with_interval};

pub const DEFAULT_BASELINE: &str = "bare-metal";

/// Reads the results of recordings, each named as the user gave it.
/// With `by_host`, a phase whose copies ran on guests of `[[host]]`s has
/// them in its technology (`kvm@h2`), so that hosts are compared apart.
pub fn load(paths: &[PathBuf], skew_bound: f64, by_host: bool) -> anyhow::Result<Results> {
    let mut results = Results::default();
    for path in paths {
        let reader = Reader::open(path)?;
        let mut session = Session::new(reader.header.clone());
        // Samples too: the overhead section compares host and guest counters.
        reader.for_each_event(|event| {
            session.apply(event);
            Ok(())
        })?;
        // A damaged recording counts up to its damage, and says so.
        for warning in reader.warnings() {
            eprintln!("vmbench: warning: {warning}");
        }
        let mut recording =
            Results::of_recording(&session, &path.display().to_string(), skew_bound);
        if by_host {
            split_by_host(&mut recording.phases, &session);
        }
        results.extend(recording);
    }
    Ok(results)
}

/// Names the hosts a phase's copies ran on in its technology; phases on
/// this machine's guests keep theirs.
fn split_by_host(phases: &mut [PhaseResult], session: &Session) {
    for result in phases {
        let Some(phase) = session.phases.iter().find(|p| p.id + 1 == result.phase) else {
            continue;
        };
        // "here": a copy on this machine's guests, in a phase with others.
        let mut hosts: Vec<&str> = session
            .runs_of(phase)
            .map(|run| session.host_of(&run.guest).unwrap_or("here"))
            .collect();
        hosts.sort_unstable();
        hosts.dedup();
        if hosts != ["here"] && !hosts.is_empty() {
            result.technology = format!("{}@{}", result.technology, hosts.join("+"));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub baseline: String,
    /// Count phases flagged for start skew and stop gap.
    pub include_skewed: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            baseline: DEFAULT_BASELINE.into(),
            include_skewed: false,
        }
    }
}

/// One technology's figures in one row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    pub technology: String,
    /// Phase aggregates over repetitions.
    pub aggregate: Summary,
    /// Mean per-guest figures over repetitions.
    pub per_guest: Option<Summary>,
    /// Against the baseline's aggregate; None for the baseline itself or
    /// where the baseline did not run this workload.
    pub loss: Option<Loss>,
    /// The baseline's number of copies compared with, when not the row's.
    pub baseline_concurrency: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub workload: String,
    pub class: WorkloadClass,
    pub metric: String,
    pub unit: String,
    pub higher_is_better: bool,
    pub concurrency: u32,
    /// Aligned with [`Matrix::technologies`]; None where it did not run.
    pub cells: Vec<Option<Cell>>,
}

/// A phase left out of the comparison, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Excluded {
    pub source: String,
    pub phase: u32,
    pub benchmark: String,
    pub metric: String,
    pub reason: String,
}

/// Workload runs that differ in what was measured, which the comparison
/// would otherwise mix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    pub workload: String,
    pub field: String,
    pub first: String,
    pub first_at: String,
    pub other: String,
    pub other_at: String,
}

impl Mismatch {
    pub fn describe(&self) -> String {
        format!(
            "{}: {} is {} in {} but {} in {}",
            self.workload, self.field, self.first, self.first_at, self.other, self.other_at
        )
    }
}

/// One technology's virtualization overhead: what the host spent on its
/// guests ÷ what the guests saw themselves, over phases and guests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Overhead {
    pub technology: String,
    pub cpu: Option<Summary>,
    pub net: Option<Summary>,
    pub disk: Option<Summary>,
}

impl Overhead {
    fn by_technology(results: &Results) -> Vec<Overhead> {
        let mut technologies: Vec<&str> = Vec::new();
        for o in &results.overhead {
            if !technologies.contains(&o.technology.as_str()) {
                technologies.push(&o.technology);
            }
        }
        technologies
            .into_iter()
            .map(|tech| {
                // A resource's overhead is read where the workload used it:
                // a ratio of two idle counters is noise.
                let of =
                    |uses: fn(WorkloadClass) -> bool,
                     pick: fn(&crate::results::OverheadResult) -> Option<f64>| {
                        let values: Vec<f64> = results
                            .overhead
                            .iter()
                            .filter(|o| o.technology == tech && uses(o.class))
                            .filter_map(pick)
                            .collect();
                        Summary::of(&values)
                    };
                Overhead {
                    technology: tech.into(),
                    cpu: of(|_| true, |o| o.cpu_ratio),
                    net: of(
                        |c| matches!(c, WorkloadClass::NetOut | WorkloadClass::NetIn),
                        |o| o.net_ratio,
                    ),
                    disk: of(|c| c == WorkloadClass::Disk, |o| o.disk_ratio),
                }
            })
            .collect()
    }

    fn cells(&self) -> [String; 4] {
        let text = |s: &Option<Summary>| {
            s.map_or_else(
                || "-".into(),
                |s| format!("{} n={}", with_interval(s.mean, s.ci), s.n),
            )
        };
        [
            self.technology.clone(),
            text(&self.cpu),
            text(&self.net),
            text(&self.disk),
        ]
    }
}

const OVERHEAD_TITLE: &str = "Overhead: host-seen ÷ guest-seen per phase and guest, mean ± 95 % CI: CPU time over every phase, network bytes over network phases, disk bytes over disk phases";
const OVERHEAD_HEADER: [&str; 4] = ["technology", "CPU", "network", "disk"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    pub baseline: String,
    pub confidence: f64,
    /// The baseline first (when present), then others as first met.
    pub technologies: Vec<String>,
    pub rows: Vec<Row>,
    pub excluded: Vec<Excluded>,
    pub mismatches: Vec<Mismatch>,
    pub overhead: Vec<Overhead>,
    /// What makes a comparison measure something else than it says: a
    /// "bare-metal" baseline measured on a virtual host, guests of one
    /// technology whose shapes differ (refused unless forced, like a
    /// fingerprint mismatch)...
    pub validity: Vec<String>,
    /// ...and what only needs saying: technologies whose guests differ in
    /// size (their drivers differ by nature).
    pub remarks: Vec<String>,
}

fn place(r: &PhaseResult) -> String {
    format!("{} phase {} ({})", r.source, r.phase, r.technology)
}

type Key<'a> = (&'a str, &'a str, u32);

impl Matrix {
    pub fn build(results: &Results, options: &Options) -> Matrix {
        let counted: Vec<&PhaseResult> = results
            .phases
            .iter()
            .filter(|p| p.counts(options.include_skewed))
            .collect();
        let excluded = results
            .phases
            .iter()
            .filter(|p| !p.counts(options.include_skewed))
            .map(|p| Excluded {
                source: p.source.clone(),
                phase: p.phase,
                benchmark: p.benchmark.clone(),
                metric: p.metric.clone(),
                reason: p
                    .flag
                    .as_ref()
                    .map_or_else(|| "no figure".into(), ToString::to_string),
            })
            .collect();

        let mut technologies: Vec<String> = Vec::new();
        if counted.iter().any(|p| p.technology == options.baseline) {
            technologies.push(options.baseline.clone());
        }
        // Rows in the order their workload and metric were first met,
        // concurrency ascending within each.
        let mut order: Vec<(&str, &str)> = Vec::new();
        let mut groups: HashMap<(Key, &str), Vec<&PhaseResult>> = HashMap::new();
        for p in &counted {
            if !technologies.contains(&p.technology) {
                technologies.push(p.technology.clone());
            }
            let metric = (p.workload.as_str(), p.metric.as_str());
            if !order.contains(&metric) {
                order.push(metric);
            }
            groups
                .entry(((metric.0, metric.1, p.concurrency), p.technology.as_str()))
                .or_default()
                .push(p);
        }
        let summary = |key: Key, technology: &str| {
            groups.get(&(key, technology)).and_then(|phases| {
                let aggregates: Vec<f64> = phases.iter().filter_map(|p| p.aggregate).collect();
                let per_guest: Vec<f64> = phases.iter().filter_map(|p| p.per_guest_mean).collect();
                Some((
                    Summary::of(&aggregates)?,
                    Summary::of(&per_guest),
                    phases[0],
                ))
            })
        };
        let mut rows = Vec::new();
        for (workload, metric) in order {
            let mut levels: Vec<u32> = counted
                .iter()
                .filter(|p| p.workload == workload && p.metric == metric)
                .map(|p| p.concurrency)
                .collect();
            levels.sort_unstable();
            levels.dedup();
            let baseline_levels: Vec<u32> = levels
                .iter()
                .copied()
                .filter(|n| groups.contains_key(&((workload, metric, *n), &options.baseline)))
                .collect();
            for &n in &levels {
                // The baseline at the same number of copies, or else at the
                // most copies it ran below that (the study ran its network
                // and disk baselines once, against 1 and 8 guests).
                let base_n = baseline_levels.iter().rev().find(|b| **b <= n).copied();
                let base = base_n.and_then(|b| summary((workload, metric, b), &options.baseline));
                let mut example = None;
                let cells = technologies
                    .iter()
                    .map(|tech| {
                        let (aggregate, per_guest, first) = summary((workload, metric, n), tech)?;
                        example.get_or_insert(first);
                        let is_baseline = *tech == options.baseline;
                        Some(Cell {
                            technology: tech.clone(),
                            aggregate,
                            per_guest,
                            loss: base.as_ref().filter(|_| !is_baseline).and_then(|b| {
                                Loss::between(&b.0, &aggregate, first.higher_is_better)
                            }),
                            baseline_concurrency: base_n.filter(|b| *b != n && !is_baseline),
                        })
                    })
                    .collect();
                let Some(first) = example else { continue };
                rows.push(Row {
                    workload: workload.into(),
                    class: first.class,
                    metric: metric.into(),
                    unit: first.unit.clone(),
                    higher_is_better: first.higher_is_better,
                    concurrency: n,
                    cells,
                });
            }
        }
        Matrix {
            baseline: options.baseline.clone(),
            confidence: crate::stats::CONFIDENCE,
            technologies,
            rows,
            excluded,
            mismatches: mismatches(&counted),
            validity: validity(results, &counted, &options.baseline),
            remarks: size_differences(results)
                .into_iter()
                .chain(observer_cost(results))
                .collect(),
            overhead: Overhead::by_technology(results),
        }
    }
}

/// What makes the comparison measure something else than it says: a
/// baseline measured on a virtual host, guests of one technology whose
/// shapes differ.
fn validity(results: &Results, counted: &[&PhaseResult], baseline: &str) -> Vec<String> {
    let mut notes: Vec<String> = results
        .virtual_hosts
        .iter()
        .filter(|(source, _)| {
            counted
                .iter()
                .any(|p| p.source == *source && p.technology == baseline)
        })
        .map(|(source, how)| {
            format!(
                "the baseline ({baseline}) in {source} was measured on {how}: its losses are \
                 against that, not against bare metal"
            )
        })
        .collect();
    let mut technologies: Vec<&str> = results
        .guest_shapes
        .iter()
        .map(|(t, ..)| t.as_str())
        .collect();
    technologies.sort();
    technologies.dedup();
    for technology in technologies {
        let mut shapes: Vec<(String, &str)> = results
            .guest_shapes
            .iter()
            .filter(|(t, ..)| t == technology)
            .map(|(_, guest, shape)| (shape.describe(), guest.as_str()))
            .collect();
        shapes.sort();
        shapes.dedup();
        let mut distinct: Vec<&String> = shapes.iter().map(|(d, _)| d).collect();
        distinct.dedup();
        if distinct.len() > 1 {
            let listed: Vec<String> = shapes
                .iter()
                .map(|(shape, guest)| format!("{guest} ({shape})"))
                .collect();
            notes.push(format!(
                "{technology} guests differ in shape: {}",
                listed.join("; ")
            ));
        }
    }
    notes
}

/// Technologies whose guests differ in size: across technologies the
/// drivers differ by nature, the size should not, but a study may mean it.
fn size_differences(results: &Results) -> Vec<String> {
    let mut notes = Vec::new();
    let mut sizes: Vec<(String, &str)> = results
        .guest_shapes
        .iter()
        .map(|(t, _, shape)| (shape.size(), t.as_str()))
        .collect();
    sizes.sort();
    sizes.dedup();
    let mut distinct: Vec<&String> = sizes.iter().map(|(s, _)| s).collect();
    distinct.dedup();
    if distinct.len() > 1 {
        let listed: Vec<String> = sizes
            .iter()
            .map(|(size, technology)| format!("{technology} {size}"))
            .collect();
        notes.push(format!(
            "the technologies' guests differ in size: {}",
            listed.join("; ")
        ));
    }
    notes
}

/// vmbench's own CPU on the hosts while the phases ran: what observing
/// cost beside what was observed.
fn observer_cost(results: &Results) -> Option<String> {
    let measured: Vec<(&str, u32, f64)> = results
        .loads
        .iter()
        .filter_map(|l| Some((l.source.as_str(), l.phase, l.vmbench_cpu_pct?)))
        .collect();
    let (source, phase, most) = measured
        .iter()
        .copied()
        .max_by(|a, b| a.2.total_cmp(&b.2))?;
    let mean = measured.iter().map(|m| m.2).sum::<f64>() / measured.len() as f64;
    let agents: Vec<f64> = results
        .loads
        .iter()
        .filter_map(|l| l.agent_cpu_pct)
        .collect();
    let on_guests = if agents.is_empty() {
        String::new()
    } else {
        format!(
            "; its agents {:.1} % of a core on each guest",
            agents.iter().sum::<f64>() / agents.len() as f64
        )
    };
    Some(format!(
        "vmbench itself used {mean:.1} % of a host core during the phases (mean of {}; most \
         {most:.1} %, phase {phase} of {source}){on_guests}",
        measured.len()
    ))
}

/// For each workload, the fields in which its runs differ from the first.
fn mismatches(counted: &[&PhaseResult]) -> Vec<Mismatch> {
    let mut first_of: Vec<&PhaseResult> = Vec::new();
    let mut found: Vec<Mismatch> = Vec::new();
    for p in counted {
        let Some(first) = first_of.iter().find(|f| f.workload == p.workload) else {
            first_of.push(p);
            continue;
        };
        for (field, ours, theirs) in first.fingerprint.differences(&p.fingerprint) {
            let known = found
                .iter()
                .any(|m| m.workload == p.workload && m.field == field && m.other == theirs);
            if !known {
                found.push(Mismatch {
                    workload: p.workload.clone(),
                    field: field.into(),
                    first: ours.into(),
                    first_at: place(first),
                    other: theirs.into(),
                    other_at: place(p),
                });
            }
        }
    }
    found
}

impl Cell {
    /// The baseline's own figure; others' loss from it, or their own figure
    /// in brackets where no baseline ran.
    pub fn text(&self, is_baseline: bool) -> String {
        let own = with_interval(self.aggregate.mean, self.aggregate.ci);
        let mut text = match (&self.loss, is_baseline) {
            (_, true) => own,
            (Some(loss), false) => loss_text(loss),
            (None, false) => format!("({own})"),
        };
        if let Some(n) = self.baseline_concurrency {
            let _ = write!(text, " vs×{n}");
        }
        let _ = write!(text, " n={}", self.aggregate.n);
        text
    }
}

const LEGEND: &str = "\
Baseline: its aggregate, mean ± 95 % CI over repetitions. Others: % loss from the baseline
± 95 % CI (Welch's t); positive is worse. ~ marks a difference not significant at 95 %
(an interval needs 2+ repetitions on both sides). (…) is a technology's own figure where no
baseline ran; vs×k names the baseline's number of copies where it differs from the row's.";

impl Matrix {
    /// Column names: the row's, then one per technology.
    pub fn header(&self) -> Vec<String> {
        let mut header: Vec<String> = ["workload", "metric", "unit", "guests"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        header.extend(self.technologies.iter().map(|t| {
            if *t == self.baseline {
                format!("{t} (baseline)")
            } else {
                format!("{t} % loss")
            }
        }));
        header
    }

    /// The matrix as a titled table with its legend and notes under it.
    pub fn text(&self) -> text::TextTable {
        let mut notes = vec![LEGEND.replace('\n', " ")];
        notes.extend(self.notes());
        text::TextTable {
            title: format!("% loss from {}", self.baseline),
            header: self.header(),
            rows: self.text_rows(),
            right_from: 3,
            notes,
        }
    }

    fn text_rows(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|row| {
                let mut cells = vec![
                    row.workload.clone(),
                    row.metric.clone(),
                    row.unit.clone(),
                    row.concurrency.to_string(),
                ];
                cells.extend(
                    row.cells
                        .iter()
                        .zip(&self.technologies)
                        .map(|(cell, tech)| {
                            cell.as_ref()
                                .map_or_else(|| "-".into(), |c| c.text(*tech == self.baseline))
                        }),
                );
                cells
            })
            .collect()
    }

    /// What the comparison leaves out or pools despite, a line each.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = self.validity.clone();
        notes.extend(self.remarks.iter().cloned());
        for m in &self.mismatches {
            notes.push(format!("pooled despite a difference: {}", m.describe()));
        }
        for e in &self.excluded {
            notes.push(format!(
                "left out: {} phase {} ({}, {}): {}",
                e.source, e.phase, e.benchmark, e.metric, e.reason
            ));
        }
        notes
    }

    fn overhead_rows(&self) -> Vec<Vec<String>> {
        self.overhead.iter().map(|o| o.cells().to_vec()).collect()
    }

    pub fn to_table(&self) -> String {
        let mut out = aligned(&self.header(), &self.text_rows(), 3);
        out.push('\n');
        out.push_str(LEGEND);
        out.push('\n');
        for note in self.notes() {
            out.push_str(&note);
            out.push('\n');
        }
        if !self.overhead.is_empty() {
            let _ = writeln!(out, "\n{OVERHEAD_TITLE}\n");
            out.push_str(&aligned(
                &OVERHEAD_HEADER.map(String::from),
                &self.overhead_rows(),
                1,
            ));
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = markdown(&self.header(), &self.text_rows(), 3);
        let _ = writeln!(out, "\n{LEGEND}");
        let notes = self.notes();
        if !notes.is_empty() {
            out.push('\n');
            for note in notes {
                let _ = writeln!(out, "- {}", escape(&note));
            }
        }
        if !self.overhead.is_empty() {
            let _ = writeln!(out, "\n{OVERHEAD_TITLE}\n");
            out.push_str(&markdown(
                &OVERHEAD_HEADER.map(String::from),
                &self.overhead_rows(),
                1,
            ));
        }
        out
    }

    /// One line per row and technology, numbers as the table prints them.
    pub fn to_csv(&self) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Line<'a> {
            workload: &'a str,
            metric: &'a str,
            unit: &'a str,
            higher_is_better: bool,
            guests: u32,
            technology: &'a str,
            baseline: bool,
            n: usize,
            mean: String,
            sd: Option<String>,
            ci95: Option<String>,
            per_guest_mean: Option<String>,
            loss_pct: Option<String>,
            loss_ci95_pct: Option<String>,
            significant: Option<bool>,
            baseline_guests: Option<u32>,
        }
        let mut writer = csv::Writer::from_writer(Vec::new());
        for row in &self.rows {
            for cell in row.cells.iter().flatten() {
                let mean = cell.aggregate.mean;
                writer.serialize(Line {
                    workload: &row.workload,
                    metric: &row.metric,
                    unit: &row.unit,
                    higher_is_better: row.higher_is_better,
                    guests: row.concurrency,
                    technology: &cell.technology,
                    baseline: cell.technology == self.baseline,
                    n: cell.aggregate.n,
                    mean: number(mean),
                    sd: cell.aggregate.sd.map(|v| number_like(v, mean)),
                    ci95: cell.aggregate.ci.map(|v| number_like(v, mean)),
                    per_guest_mean: cell.per_guest.map(|s| number(s.mean)),
                    loss_pct: cell.loss.map(|l| percent(l.percent)),
                    loss_ci95_pct: cell.loss.and_then(|l| l.ci).map(percent),
                    significant: cell.loss.map(|l| l.significant),
                    baseline_guests: cell
                        .loss
                        .map(|_| cell.baseline_concurrency.unwrap_or(row.concurrency)),
                })?;
            }
        }
        Ok(String::from_utf8(writer.into_inner()?)?)
    }

    pub fn to_json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }
}

/// Results made by hand for the views' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::results::{PhaseResult, Results};
    use crate::workload::WorkloadClass;

    /// Phases of a CPU score on a host with 4 cores: (technology, guests,
    /// each repetition's per-guest figure).
    pub fn results(figures: &[(&str, u32, &[f64])]) -> Results {
        let mut results = Results {
            host_cores: vec![("s".into(), 4)],
            ..Results::default()
        };
        for (technology, guests, per_guest) in figures {
            for (r, value) in per_guest.iter().enumerate() {
                results.phases.push(PhaseResult {
                    source: "s".into(),
                    phase: results.phases.len() as u32 + 1,
                    benchmark: format!("cpu-{technology}"),
                    workload: "cpu".into(),
                    class: WorkloadClass::Score,
                    technology: technology.to_string(),
                    concurrency: *guests,
                    repetition: r as u32 + 1,
                    metric: "score".into(),
                    unit: "ops/s".into(),
                    higher_is_better: true,
                    aggregate: Some(value * f64::from(*guests)),
                    per_guest_mean: Some(*value),
                    copies: *guests as usize,
                    contributing: *guests as usize,
                    outcome: "completed",
                    ..PhaseResult::default()
                });
            }
        }
        results
    }
}

#[cfg(test)]
mod observer_tests {
    use super::*;
    use crate::results::PhaseLoad;

    #[test]
    fn the_report_says_what_vmbench_itself_cost_during_the_phases() {
        let mut results = fixtures::results(&[("bare-metal", 1, &[100.0, 100.0])]);
        let options = Options::default();
        assert!(
            !Matrix::build(&results, &options)
                .remarks
                .iter()
                .any(|r| r.contains("vmbench itself")),
            "nothing measured, nothing said"
        );
        for (phase, cpu) in [(1, Some(0.5)), (2, Some(1.5)), (3, None)] {
            results.loads.push(PhaseLoad {
                source: "s".into(),
                phase,
                steal_pct: None,
                host_busy_pct: None,
                busiest_disk: None,
                vmbench_cpu_pct: cpu,
                agent_cpu_pct: cpu.map(|c| c / 10.0),
            });
        }
        let remarks = Matrix::build(&results, &options).remarks;
        assert!(
            remarks.iter().any(|r| r
                == "vmbench itself used 1.0 % of a host core during the phases (mean of 2; most 1.5 %, phase 2 of s); its agents 0.1 % of a core on each guest"),
            "{remarks:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::GuestShape;

    fn shape(vcpus: u32, gib: u64, nic: &str) -> GuestShape {
        GuestShape {
            vcpus,
            memory_bytes: gib << 30,
            virtualization: None,
            nics: vec![nic.into()],
            disks: vec!["vda=virtio_blk".into()],
        }
    }

    #[test]
    fn guests_of_one_technology_that_differ_in_shape_are_listed() {
        let mut results = Results::default();
        for (technology, guest, s) in [
            ("kvm", "vm1", shape(2, 4, "eth0=virtio_net")),
            // The same shape under another interface name is the same.
            ("kvm", "vm2", shape(2, 4, "ens3=virtio_net")),
            ("kvm", "vm3", shape(4, 4, "eth0=virtio_net")),
            ("xen", "dom1", shape(2, 4, "eth0=vif")),
        ] {
            results
                .guest_shapes
                .push((technology.into(), guest.into(), s));
        }
        assert_eq!(
            validity(&results, &[], "bare-metal"),
            [
                "kvm guests differ in shape: vm1 (2 vCPU, 4.0 GiB, virtio_blk, virtio_net); \
              vm2 (2 vCPU, 4.0 GiB, virtio_blk, virtio_net); vm3 (4 vCPU, 4.0 GiB, \
              virtio_blk, virtio_net)"
            ]
        );
        assert_eq!(
            size_differences(&results),
            [
                "the technologies' guests differ in size: kvm 2 vCPU, 4.0 GiB; xen 2 vCPU, \
              4.0 GiB; kvm 4 vCPU, 4.0 GiB"
            ]
        );
        // One shape per technology, one size across them: nothing to say.
        results.guest_shapes.retain(|(_, guest, _)| guest != "vm3");
        assert!(validity(&results, &[], "bare-metal").is_empty());
        assert!(size_differences(&results).is_empty());
    }
}
