//! `vmbench record`: a plan without a screen.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::load_plan;
use super::run::SessionArgs;

#[derive(Args)]
pub(super) struct RecordArgs {
    #[command(flatten)]
    pub(super) session: SessionArgs,
}

pub(super) fn record(args: SessionArgs) -> Result<ExitCode> {
    let plan = load_plan(args.plan.as_ref(), args.time_scale)?;
    crate::app::headless::headless(plan, &args.options())
}
