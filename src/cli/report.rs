//! `vmbench report`: technologies compared across recordings.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Clone, Copy, clap::ValueEnum)]
pub(super) enum ReportFormat {
    Table,
    Markdown,
    Csv,
    Json,
}

/// Which question of the study the report answers.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum ReportView {
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

/// A share such as "20%" or "0.2".
fn share(text: &str) -> Result<f64, String> {
    let value = match text.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    };
    match value {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{text:?} is not a share such as 20% or 0.2")),
    }
}

#[derive(Args)]
#[command(
    after_help = "Recordings are pooled by technology label; rows are workload metric × \
number of concurrent guests. Runs of a workload are pooled only when their tool, version, \
parameters and duration match (where files go and which server is used may differ)."
)]
pub(super) struct ReportArgs {
    /// One or more recordings, e.g. one per hypervisor host.
    #[arg(required = true)]
    pub(super) recordings: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub(super) format: ReportFormat,
    #[arg(long, value_enum, default_value_t = ReportView::Matrix)]
    pub(super) view: ReportView,
    /// The number of concurrent guests of the table1 view.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(super) guests: Option<u32>,
    /// The technology others are compared with.
    #[arg(long, default_value = crate::report::DEFAULT_BASELINE)]
    pub(super) baseline: String,
    /// Pool runs whose workload configuration differs, or compare with a
    /// baseline measured on a virtual host or guests of one technology that
    /// differ in shape (each listed in the notes).
    #[arg(long)]
    pub(super) force: bool,
    /// Count phases whose start skew, clock uncertainty and stop gap exceed
    /// the bound.
    #[arg(long)]
    pub(super) include_skewed: bool,
    /// Tell guests on each `[[host]]` apart from those of the same
    /// technology elsewhere: `kvm@h2` beside `kvm` (pooled otherwise).
    #[arg(long)]
    pub(super) by_host: bool,
    /// Start skew plus clock uncertainty plus stop gap, as a share of how
    /// long a phase's copies ran, beyond which the phase is left out.
    #[arg(long, value_parser = share, default_value = "20%", value_name = "SHARE")]
    pub(super) skew_bound: f64,
    /// Also write the study's charts as SVG files into DIR.
    #[arg(long, value_name = "DIR")]
    pub(super) charts: Option<PathBuf>,
    /// Also write one self-contained HTML page: every view, the charts
    /// inline, what was left out, and where the figures came from.
    #[arg(long, value_name = "FILE")]
    pub(super) html: Option<PathBuf>,
    /// Write the report to this file instead of standard output.
    #[arg(short, long)]
    pub(super) output: Option<PathBuf>,
}

pub(super) fn report(args: &ReportArgs) -> Result<ExitCode> {
    use crate::report::{Matrix, Options, charts, load};
    let results = load(&args.recordings, args.skew_bound, args.by_host)?;
    let options = Options {
        baseline: args.baseline.clone(),
        include_skewed: args.include_skewed,
    };
    let matrix = Matrix::build(&results, &options);
    if matrix.rows.is_empty() {
        let names: Vec<String> = args
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
    if !matrix.mismatches.is_empty() && !args.force {
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
    if !matrix.validity.is_empty() && !args.force {
        let list: Vec<String> = matrix.validity.iter().map(|v| format!("  {v}")).collect();
        bail!(
            "refusing a comparison that would measure something else than it says:\n{}\n\
             compare anyway with --force (the report then lists these under its table)",
            list.join("\n")
        );
    }
    if let Some(path) = &args.html {
        write_html(args, &results, &matrix, path)?;
        stderr_line!("wrote {}", path.display());
    }
    let text = match args.view {
        ReportView::Matrix => match args.format {
            ReportFormat::Table => matrix.to_table(),
            ReportFormat::Markdown => matrix.to_markdown(),
            ReportFormat::Csv => matrix.to_csv()?,
            ReportFormat::Json => matrix.to_json()?,
        },
        view => {
            use crate::report::{freecore::FreeCore, pairwise::Pairwise, table1::Table1};
            let (table, json) = match view {
                ReportView::Table1 => {
                    let t = Table1::build(&matrix, args.guests);
                    (t.text(args.guests), serde_json::to_string_pretty(&t)?)
                }
                ReportView::Pairwise | ReportView::Resolution => {
                    let resolution = view == ReportView::Resolution;
                    let p = Pairwise::build(&matrix, resolution);
                    let table = if resolution {
                        p.resolution_text()
                    } else {
                        p.text()
                    };
                    (table, serde_json::to_string_pretty(&p)?)
                }
                ReportView::Why => {
                    let w = crate::report::why::Why::build(&results, &matrix, args.include_skewed);
                    (w.text(), serde_json::to_string_pretty(&w)?)
                }
                _ => {
                    let f = FreeCore::build(&results, &matrix);
                    (f.text(), serde_json::to_string_pretty(&f)?)
                }
            };
            let mut table = table;
            // What the matrix would list under it holds for every view.
            table.notes.extend(matrix.notes());
            match args.format {
                ReportFormat::Table => table.to_table(),
                ReportFormat::Markdown => table.to_markdown(),
                ReportFormat::Csv => table.to_csv()?,
                ReportFormat::Json => json + "\n",
            }
        }
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    if let Some(dir) = &args.charts {
        let written = charts::write_all(&matrix, dir)?;
        stderr_line!("wrote {} chart(s) to {}", written.len(), dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The page `--html` writes: every view's table, the charts, provenance.
fn write_html(
    args: &ReportArgs,
    results: &crate::results::Results,
    matrix: &crate::report::Matrix,
    path: &Path,
) -> Result<()> {
    use crate::report::{charts, freecore::FreeCore, html, pairwise::Pairwise, table1::Table1};
    let views = [
        matrix.text(),
        Table1::build(matrix, args.guests).text(args.guests),
        Pairwise::build(matrix, false).text(),
        Pairwise::build(matrix, true).resolution_text(),
        FreeCore::build(results, matrix).text(),
        crate::report::why::Why::build(results, matrix, args.include_skewed).text(),
    ];
    let sources = args
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
