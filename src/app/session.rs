//! What a live session needs before it starts and what it says when it
//! ends, on a screen or without: where it records, the metrics listener,
//! the fleets it makes, and the exit code its failures give.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::{Consumer, default_recording_path};
use crate::plan::LoadedPlan;
use crate::provision;

/// Where a live session records and serves its metrics (the command
/// line's `-o` and `--metrics-listen`).
#[derive(Default)]
pub struct SessionOptions {
    pub output: Option<PathBuf>,
    pub metrics_listen: Option<String>,
}

impl SessionOptions {
    /// Where the session records, and the metrics address bound before
    /// anything starts (an address in use stops nothing).
    pub fn recording_and_metrics(
        &self,
        plan: &crate::plan::LoadedPlan,
    ) -> Result<(PathBuf, Option<std::net::TcpListener>)> {
        let path = self
            .output
            .clone()
            .unwrap_or_else(|| default_recording_path(&plan.plan.name));
        let listener = self
            .metrics_listen
            .as_deref()
            .map(crate::metrics::listen)
            .transpose()?;
        Ok((path, listener))
    }
}

/// Names the fleets earlier sessions left on this host (they take cores
/// and memory from what this one measures), then makes the plan's fleets
/// (progress on stderr); the guard removes them when dropped. Refused, and
/// removed at once, when a stop came during the bring-up or when the
/// guests left out leave a level more copies than guests.
pub fn make_fleets(plan: &mut LoadedPlan) -> Result<Option<provision::Made>> {
    for line in provision::leftovers() {
        eprintln!("vmbench: {line}");
    }
    let made = provision::make(plan, &mut |line| eprintln!("vmbench: {line}"))
        .map_err(anyhow::Error::msg)?;
    if made.is_some() {
        if provision::stop_requested() {
            bail!("stopped by a signal while the fleets were being made; they are removed");
        }
        let cores = crate::header::HostSpecs::of_this_host().logical_cores;
        if let Some(refusal) = plan.plan.overcrowded(cores).into_iter().next() {
            bail!("{refusal} (once the guests that did not come up were left out)");
        }
    }
    Ok(made)
}

/// This program, which launches the workloads' copies.
pub fn this_program() -> Result<PathBuf> {
    std::env::current_exe().context("finding this program's path to launch workloads")
}

/// The exit code of a session that ran: 1 when the producer or the
/// recording failed, a run failed, or the session ended before its plan.
pub fn report_failures(consumer: &Consumer) -> Result<ExitCode> {
    if let Some(Err(e)) = &consumer.producer_result {
        bail!("the session failed: {e}");
    }
    if let Some(e) = &consumer.recorder_error {
        bail!("{e}");
    }
    if consumer.failed_runs > 0 {
        stderr_line!(
            "vmbench: {} benchmark run(s) failed; see the log in the recording",
            consumer.failed_runs
        );
        return Ok(ExitCode::FAILURE);
    }
    // A session stopped before its plan's end did not do what it was asked.
    if let Some((_, reason)) = &consumer.session.ended
        && reason != crate::orchestrate::PLAN_COMPLETED
    {
        stderr_line!("vmbench: the session ended before its plan did: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
