//! `vmbench report` as a whole: the recordings loaded, the loss matrix
//! built and the guards that refuse it applied, the view asked for as text,
//! and the HTML page and charts written on the way.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

/// Which question of the study the report answers.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum View {
    /// % loss from the baseline per workload metric and number of guests.
    Matrix,
    /// Technologies as rows, % loss at one number of guests (the study's
    /// Table 1; --guests, default the most each workload ran with).
    Table1,
    /// Technology against technology, Welch's interval on each pair.
    Pairwise,
    /// Per comparison: the smallest detectable difference and the
    /// repetitions needed to tell the two apart.
    Resolution,
    /// Does the hypervisor need a core of its own: per-guest CPU figures at
    /// each level and the steps around the host's cores.
    FreeCore,
    /// Beside each loss, what the host and guests saw in its phases (steal,
    /// host CPU, host ÷ guest CPU, the busiest disk) and the likely cause.
    Why,
}

/// What a report is asked for (the command line's arguments).
pub struct Request {
    pub recordings: Vec<PathBuf>,
    pub format: Format,
    pub view: View,
    /// The number of concurrent guests of the table1 view.
    pub guests: Option<u32>,
    pub baseline: String,
    pub force: bool,
    pub include_skewed: bool,
    pub by_host: bool,
    pub skew_bound: f64,
    pub charts: Option<PathBuf>,
    pub html: Option<PathBuf>,
}

/// The report `request` asks for, as text; the HTML page and the charts it
/// asks for are written on the way (said on stderr). Refused when no phase
/// has a figure, the baseline is missing, or (without `force`) the runs
/// pooled differ or the comparison would measure something else.
pub fn run(request: &Request) -> Result<String> {
    use super::{Matrix, Options, charts, load};
    let results = load(&request.recordings, request.skew_bound, request.by_host)?;
    let options = Options {
        baseline: request.baseline.clone(),
        include_skewed: request.include_skewed,
    };
    let matrix = Matrix::build(&results, &options);
    if matrix.rows.is_empty() {
        let names: Vec<String> = request
            .recordings
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        bail!(
            "{}: no completed phase with a figure to compare ({} left out; see `vmbench export`)",
            names.join(", "),
            matrix.excluded.len()
        );
    }
    if !matrix.technologies.contains(&options.baseline) {
        bail!(
            "no phase of the baseline technology {:?} is in these recordings (they have {}); name one with --baseline",
            options.baseline,
            matrix.technologies.join(", ")
        );
    }
    if !matrix.mismatches.is_empty() && !request.force {
        let list: Vec<String> = matrix
            .mismatches
            .iter()
            .map(|m| format!("  {}", m.describe()))
            .collect();
        bail!(
            "refusing to pool runs whose workload configuration differs:\n{}\npool them anyway with --force",
            list.join("\n")
        );
    }
    if !matrix.validity.is_empty() && !request.force {
        let list: Vec<String> = matrix.validity.iter().map(|v| format!("  {v}")).collect();
        bail!(
            "refusing a comparison that would measure something else than it says:\n{}\n\
             compare anyway with --force (the report then lists these under its table)",
            list.join("\n")
        );
    }
    if let Some(path) = &request.html {
        write_html(request, &results, &matrix, path)?;
        stderr_line!("wrote {}", path.display());
    }
    let text = match request.view {
        View::Matrix => match request.format {
            Format::Table => matrix.to_table(),
            Format::Markdown => matrix.to_markdown(),
            Format::Csv => matrix.to_csv()?,
            Format::Json => matrix.to_json()?,
        },
        view => {
            use super::{freecore::FreeCore, pairwise::Pairwise, table1::Table1};
            let (table, json) = match view {
                View::Table1 => {
                    let t = Table1::build(&matrix, request.guests);
                    (t.text(request.guests), with_left_out(&t, &matrix)?)
                }
                View::Pairwise | View::Resolution => {
                    let resolution = view == View::Resolution;
                    let p = Pairwise::build(&matrix, resolution);
                    let table = if resolution {
                        p.resolution_text()
                    } else {
                        p.text()
                    };
                    (table, with_left_out(&p, &matrix)?)
                }
                View::Why => {
                    let w = super::why::Why::build(&results, &matrix, request.include_skewed);
                    (w.text(), with_left_out(&w, &matrix)?)
                }
                _ => {
                    let f = FreeCore::build(&results, &matrix);
                    (f.text(), with_left_out(&f, &matrix)?)
                }
            };
            let mut table = table;
            // What the matrix would list under it holds for every view.
            table.notes.extend(matrix.notes());
            match request.format {
                Format::Table => table.to_table(),
                Format::Markdown => table.to_markdown(),
                Format::Csv => table.to_csv()?,
                Format::Json => json + "\n",
            }
        }
    };
    if let Some(dir) = &request.charts {
        let written = charts::write_all(&matrix, dir)?;
        stderr_line!("wrote {} chart(s) to {}", written.len(), dir.display());
    }
    Ok(text)
}

/// A view's JSON with what the matrix's carries of what it leaves out and
/// why its comparison may not hold (the phases excluded, the differences
/// pooled, validity and remarks), which hold for every view.
fn with_left_out(view: &impl serde::Serialize, matrix: &super::Matrix) -> Result<String> {
    let mut value = serde_json::to_value(view)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("excluded".into(), serde_json::to_value(&matrix.excluded)?);
        object.insert(
            "mismatches".into(),
            serde_json::to_value(&matrix.mismatches)?,
        );
        object.insert("validity".into(), serde_json::to_value(&matrix.validity)?);
        object.insert("remarks".into(), serde_json::to_value(&matrix.remarks)?);
    }
    Ok(serde_json::to_string_pretty(&value)?)
}

/// The page `--html` writes: every view's table, the charts, provenance.
fn write_html(
    request: &Request,
    results: &crate::results::Results,
    matrix: &super::Matrix,
    path: &Path,
) -> Result<()> {
    use super::{charts, freecore::FreeCore, html, pairwise::Pairwise, table1::Table1};
    let views = [
        matrix.text(),
        Table1::build(matrix, request.guests).text(request.guests),
        Pairwise::build(matrix, false).text(),
        Pairwise::build(matrix, true).resolution_text(),
        FreeCore::build(results, matrix).text(),
        super::why::Why::build(results, matrix, request.include_skewed).text(),
    ];
    let sources = request
        .recordings
        .iter()
        .map(|p| {
            Ok((
                p.display().to_string(),
                crate::store::Reader::open(p)?.header,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let names: Vec<String> = sources.iter().map(|(n, _)| n.clone()).collect();
    let page = html::page(
        &format!("vmbench report: {}", names.join(", ")),
        &views,
        &charts::render_all(matrix)?,
        matrix,
        results,
        &sources,
    );
    std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))
}
