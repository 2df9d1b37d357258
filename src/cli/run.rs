//! `vmbench run` (and no command at all): a plan on the screen.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::{ScreenArgs, load_plan};
use crate::app::session::SessionOptions;

/// Multiplies every benchmark's duration (and timeout), e.g. 0.01 to try a
/// long plan in minutes; each duration stays at least one second.
fn time_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err(format!("{text:?} is not a factor in (0, 1]")),
    }
}

#[derive(Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) session: SessionArgs,
    /// Start the plan at once instead of waiting for the operator's `s`.
    #[arg(long)]
    pub(super) start: bool,
}

/// What a live session is run with, on a screen or without.
#[derive(Args, Default)]
pub(super) struct SessionArgs {
    /// The plan (TOML); without it, the embedded default plan.
    pub(super) plan: Option<PathBuf>,
    /// Shorten every duration by this factor, e.g. 0.01.
    #[arg(long, value_parser = time_scale, value_name = "FACTOR")]
    pub(super) time_scale: Option<f64>,
    /// Where to record (default: recordings/<plan>-<UTC time>.vmb).
    #[arg(short, long)]
    pub(super) output: Option<PathBuf>,
    /// Serve the live series and phase at http://ADDR/metrics in the
    /// Prometheus text format, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    pub(super) metrics_listen: Option<String>,
}

impl SessionArgs {
    pub(super) fn options(&self) -> SessionOptions {
        SessionOptions {
            output: self.output.clone(),
            metrics_listen: self.metrics_listen.clone(),
        }
    }
}

pub(super) fn run(args: SessionArgs, start: bool, screen: &ScreenArgs) -> Result<ExitCode> {
    let plan = load_plan(args.plan.as_ref(), args.time_scale)?;
    let settings = screen.settings()?;
    crate::app::live::on_screen(plan, start, &args.options(), &settings)
}
