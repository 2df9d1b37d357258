//! What a live session needs before it starts and what it says when it
//! ends, on a screen or without: where it records, the metrics listener,
//! the fleets it makes, and the exit code its failures give.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::{Bus, Consumer, Live, default_recording_path};
use crate::event::{Event, LogLevel};
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
        crate::store::refuse_existing(&path)?;
        let listener = self
            .metrics_listen
            .as_deref()
            .map(crate::metrics::listen)
            .transpose()?;
        Ok((path, listener))
    }
}

/// A live session started, on a screen or without.
pub struct Started {
    pub path: PathBuf,
    pub live: Live,
    pub consumer: Consumer,
    pub bus: Bus,
    /// Where its metrics are served, if they are.
    pub metrics: Option<std::net::SocketAddr>,
    /// Its fleets, removed when dropped: declared last, so that a front
    /// end that takes the other parts out drops them after the session.
    pub fleets: Option<provision::Made>,
}

/// Starts a live session of `plan` (its plan started at once with
/// `start_plan`): names the fleets earlier sessions left on this host on
/// stderr and in the session's log (they take cores and memory from what it
/// measures), makes the plan's fleets (progress on stderr), opens the
/// recording and serves the metrics.
pub fn start(mut plan: LoadedPlan, options: &SessionOptions, start_plan: bool) -> Result<Started> {
    let leftovers = provision::leftovers();
    for line in &leftovers {
        eprintln!("vmbench: {line}");
    }
    // Before any fleet is made: a recording that exists, or a metrics
    // address that is taken, refuses the session at no cost.
    let (path, listener) = options.recording_and_metrics(&plan)?;
    let fleets = make_fleets(&mut plan)?;
    let (live, mut consumer, bus) = Live::start(&plan, &path, start_plan, this_program()?)?;
    let mut say = |level, text| {
        let t = consumer.session.now;
        consumer.apply(Event::Log { t, level, text });
    };
    for text in leftovers {
        say(LogLevel::Warn, text);
    }
    let metrics = match listener {
        Some(listener) => {
            let bound = crate::metrics::serve(listener, bus.tx.clone())?;
            say(LogLevel::Info, format!("metrics at http://{bound}/metrics"));
            Some(bound)
        }
        None => None,
    };
    Ok(Started {
        path,
        live,
        consumer,
        bus,
        metrics,
        fleets,
    })
}

/// Makes the plan's fleets (progress on stderr); the guard removes them
/// when dropped. Refused, and removed at once, when a stop came during the
/// bring-up or when the guests left out leave a level more copies than
/// guests.
fn make_fleets(plan: &mut LoadedPlan) -> Result<Option<provision::Made>> {
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
fn this_program() -> Result<PathBuf> {
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
