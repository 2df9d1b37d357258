//! `vmbench report`: technologies compared across recordings.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::report::command::{Format, Request, View};

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
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub(super) format: Format,
    #[arg(long, value_enum, default_value_t = View::Matrix)]
    pub(super) view: View,
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

pub(super) fn report(args: ReportArgs) -> Result<ExitCode> {
    let text = crate::report::command::run(&Request {
        recordings: args.recordings,
        format: args.format,
        view: args.view,
        guests: args.guests,
        baseline: args.baseline,
        force: args.force,
        include_skewed: args.include_skewed,
        by_host: args.by_host,
        skew_bound: args.skew_bound,
        charts: args.charts,
        html: args.html,
    })?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
