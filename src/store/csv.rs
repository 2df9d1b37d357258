//! CSV export of a recording: samples in long and wide form, one row per run
//! copy's result, one row per phase aggregate. Column names are stable and
//! documented in the README.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Reader;
use crate::event::{Event, NANOS_PER_SEC, Nanos, RunOutcome};
use crate::model::{RunState, Session};

/// Session time is exported in seconds with nanosecond digits.
fn seconds(t: Nanos) -> f64 {
    t as f64 / NANOS_PER_SEC
}

#[derive(Serialize)]
struct LongRow<'a> {
    t_s: f64,
    source: &'a str,
    metric: &'a str,
    unit: &'a str,
    value: u64,
}

#[derive(Serialize)]
struct ResultRow<'a> {
    phase: u32,
    benchmark: &'a str,
    workload: &'a str,
    concurrency: u32,
    repetition: u32,
    copy: u32,
    guest: &'a str,
    technology: &'a str,
    metric: &'a str,
    unit: &'a str,
    value: Option<f64>,
    start_s: Option<f64>,
    stop_s: Option<f64>,
    outcome: &'a str,
}

#[derive(Serialize)]
struct PhaseRow<'a> {
    phase: u32,
    benchmark: &'a str,
    workload: &'a str,
    concurrency: u32,
    repetition: u32,
    metric: &'a str,
    unit: &'a str,
    aggregate: Option<f64>,
    window_start_s: Option<f64>,
    window_stop_s: Option<f64>,
    skew_ms: Option<f64>,
    copies: usize,
    contributing: usize,
    outcome: &'a str,
}

/// Time read from the recording per pass, so memory stays bounded.
const CHUNK: Nanos = 600 * 1_000_000_000;

pub struct Exported {
    pub samples: usize,
    pub results: usize,
    pub phases: usize,
}

pub fn export(recording: &Path, dir: &Path) -> Result<Exported> {
    let reader = Reader::open(recording)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let create = |name: &str| {
        let path = dir.join(name);
        csv::Writer::from_path(&path).with_context(|| format!("creating {}", path.display()))
    };
    let mut long = create("samples_long.csv")?;
    let mut wide = create("samples_wide.csv")?;
    let columns = reader.series.len();
    // Series ids are dense from 0: a table maps each to its column.
    let mut columns_by_id = vec![
        None;
        reader
            .series
            .iter()
            .map(|s| s.id as usize + 1)
            .max()
            .unwrap_or(0)
    ];
    for (col, def) in reader.series.iter().enumerate() {
        columns_by_id[def.id as usize] = Some(col);
    }
    let column_of = |id: u32| columns_by_id.get(id as usize).copied().flatten();
    let mut wide_header = vec!["t_s".to_string()];
    wide_header.extend(
        reader
            .series
            .iter()
            .map(|s| format!("{}/{} [{}]", s.source, s.metric, s.unit)),
    );
    wide.write_record(&wide_header)?;

    let mut session = Session::new(reader.header.clone());
    for event in reader.series_events() {
        session.apply(&event);
    }
    let end = reader.end()?;
    let mut samples = 0;
    let mut row = vec![String::new(); columns + 1];
    let mut from = 0;
    while from <= end {
        for event in reader.timeline(from, from, from + CHUNK)? {
            if let Event::Sample(sample) = &event {
                row.iter_mut().for_each(String::clear);
                row[0] = seconds(sample.t).to_string();
                for &(id, value) in &sample.values {
                    let Some(col) = column_of(id) else { continue };
                    let def = &reader.series[col];
                    long.serialize(LongRow {
                        t_s: seconds(sample.t),
                        source: &def.source,
                        metric: &def.metric,
                        unit: &def.unit,
                        value,
                    })?;
                    row[col + 1] = value.to_string();
                }
                wide.write_record(&row)?;
                samples += 1;
            }
            session.apply(&event);
        }
        from += CHUNK;
    }
    long.flush()?;
    wide.flush()?;
    let (results, phases) = write_results(&session, dir)?;
    Ok(Exported {
        samples,
        results,
        phases,
    })
}

fn write_results(session: &Session, dir: &Path) -> Result<(usize, usize)> {
    let path = dir.join("results.csv");
    let mut results =
        csv::Writer::from_path(&path).with_context(|| format!("creating {}", path.display()))?;
    let path = dir.join("phases.csv");
    let mut phases =
        csv::Writer::from_path(&path).with_context(|| format!("creating {}", path.display()))?;
    let (mut result_rows, mut phase_rows) = (0, 0);
    for phase in &session.phases {
        let Some(summary) = &phase.summary else {
            continue;
        };
        for m in &summary.metrics {
            for figure in &m.per_copy {
                let Some(run) = session.runs.get(&figure.run) else {
                    continue;
                };
                let outcome = match &run.state {
                    RunState::Done(RunOutcome::Completed) => "completed",
                    RunState::Done(RunOutcome::Failed { .. }) => "failed",
                    RunState::Done(RunOutcome::Cancelled) => "cancelled",
                    RunState::Waiting | RunState::Running => "unfinished",
                };
                results.serialize(ResultRow {
                    phase: phase.id + 1,
                    benchmark: &phase.benchmark,
                    workload: &phase.workload,
                    concurrency: phase.concurrency,
                    repetition: phase.repetition,
                    copy: run.copy + 1,
                    guest: &run.guest,
                    technology: &run.technology,
                    metric: &m.metric.name,
                    unit: &m.metric.unit,
                    value: figure.value,
                    start_s: figure.span.map(|s| seconds(s.0)),
                    stop_s: figure.span.map(|s| seconds(s.1)),
                    outcome,
                })?;
                result_rows += 1;
            }
            phases.serialize(PhaseRow {
                phase: phase.id + 1,
                benchmark: &phase.benchmark,
                workload: &phase.workload,
                concurrency: phase.concurrency,
                repetition: phase.repetition,
                metric: &m.metric.name,
                unit: &m.metric.unit,
                aggregate: m.aggregate,
                window_start_s: m.window.map(|w| seconds(w.0)),
                window_stop_s: m.window.map(|w| seconds(w.1)),
                skew_ms: summary.skew.map(|s| s as f64 / 1e6),
                copies: m.per_copy.len(),
                contributing: m.contributing,
                outcome: phase.ended.map_or("", |(_, o)| o.name()),
            })?;
            phase_rows += 1;
        }
    }
    results.flush()?;
    phases.flush()?;
    Ok((result_rows, phase_rows))
}
