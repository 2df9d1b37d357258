//! `vmbench export`: a recording's samples and results as CSV files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub(super) struct ExportArgs {
    pub(super) recording: PathBuf,
    /// Directory to write samples_long.csv, samples_wide.csv, results.csv and phases.csv into.
    #[arg(long, value_name = "DIR")]
    pub(super) csv: PathBuf,
    /// Keep every readable row of a damaged recording, skipping what is
    /// damaged (without it, reading stops at the first damage).
    #[arg(long)]
    pub(super) salvage: bool,
}

pub(super) fn export(args: &ExportArgs) -> Result<ExitCode> {
    let dir = &args.csv;
    let done = crate::store::csv::export(&args.recording, dir, args.salvage)?;
    for warning in &done.warnings {
        stderr_line!("vmbench: warning: {warning}");
    }
    stderr_line!(
        "wrote {} samples, {} run results and {} phase aggregates to {}",
        done.samples,
        done.results,
        done.phases,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
