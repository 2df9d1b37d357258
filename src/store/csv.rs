//! CSV export of a recording: samples in long and wide form, one row per run
//! copy's result, one row per phase aggregate. Column names are stable and
//! documented in the README.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::Reader;
use crate::event::{Event, NANOS_PER_SEC, Nanos};
use crate::model::Session;
use crate::results::{DEFAULT_SKEW_BOUND, Results};

/// Session time is exported in seconds with nanosecond digits.
fn seconds(t: Nanos) -> f64 {
    t as f64 / NANOS_PER_SEC
}

#[derive(Serialize, Default)]
struct LongRow<'a> {
    t_s: f64,
    source: &'a str,
    metric: &'a str,
    unit: &'a str,
    value: u64,
}

pub struct Exported {
    pub samples: usize,
    pub results: usize,
    pub phases: usize,
    /// What of a damaged recording could not be read.
    pub warnings: Vec<String>,
}

/// Writes the CSV files of a recording; with `salvage`, every readable row
/// of a damaged one (otherwise, everything before its first damage).
pub fn export(recording: &Path, dir: &Path, salvage: bool) -> Result<Exported> {
    let reader = if salvage {
        Reader::open_salvaging(recording)?
    } else {
        Reader::open(recording)?
    };
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
    let mut samples = 0;
    let mut row = vec![String::new(); columns + 1];
    reader.for_each_event(|event| {
        if let Event::Sample(sample) = event {
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
        session.apply(event);
        Ok(())
    })?;
    if samples == 0 {
        long.write_record(header_of::<LongRow>()?)?;
    }
    long.flush()?;
    wide.flush()?;
    let (results, phases) = write_results(&session, recording, dir)?;
    Ok(Exported {
        samples,
        results,
        phases,
        warnings: reader.warnings(),
    })
}

fn write_results(session: &Session, recording: &Path, dir: &Path) -> Result<(usize, usize)> {
    let source = recording.display().to_string();
    let results = Results::of_recording(session, &source, DEFAULT_SKEW_BOUND);
    write_rows(&dir.join("results.csv"), &results.copies)?;
    write_rows(&dir.join("phases.csv"), &results.phases)?;
    write_rows(&dir.join("overhead.csv"), &results.overhead)?;
    Ok((results.copies.len(), results.phases.len()))
}

/// Writes rows under their header, which is there even with no rows
/// (pandas and other readers refuse an empty file).
fn write_rows<T: Serialize + Default>(path: &Path, rows: &[T]) -> Result<()> {
    let mut writer =
        csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    if rows.is_empty() {
        writer.write_record(header_of::<T>()?)?;
    }
    for row in rows {
        writer.serialize(row)?;
    }
    writer.flush()?;
    Ok(())
}

/// The CSV header of a row type: serde writes one only with a first row,
/// so it is taken from a default row.
fn header_of<T: Serialize + Default>() -> Result<Vec<String>> {
    let mut probe = csv::Writer::from_writer(Vec::new());
    probe.serialize(T::default())?;
    let bytes = probe.into_inner().map_err(|e| e.into_error())?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes.as_slice());
    let header = reader.records().next().transpose()?.unwrap_or_default();
    Ok(header.iter().map(String::from).collect())
}
