//! `vmbench check`: every guest of a plan reached as a session would.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::load_plan;
use crate::transport::ssh::UnknownKey;

#[derive(Args)]
pub(super) struct CheckArgs {
    pub(super) plan: PathBuf,
    /// Trust and write down host keys not yet in known_hosts (like OpenSSH's
    /// accept-new); a changed key is still refused.
    #[arg(long)]
    pub(super) accept_new: bool,
}

pub(super) fn check(args: &CheckArgs) -> Result<ExitCode> {
    let mut plan = load_plan(Some(&args.plan), None)?;
    for line in crate::discover::fill_in(&mut plan.plan) {
        println!("discovered {line}");
    }
    let unknown = if args.accept_new {
        UnknownKey::AcceptNew
    } else {
        UnknownKey::Refuse
    };
    let say = |text: String| {
        // A reader gone (`| head`) is no error of the check's.
        let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    };
    // A fleet's guests exist only while a session runs: what can be
    // checked now is whether this host can make them.
    let fleets = std::mem::take(&mut plan.plan.fleets);
    plan.plan.guests.retain(|g| g.fleet.is_none());
    let missing = crate::provision::preflight(&fleets);
    for fleet in &fleets {
        say(format!(
            "fleet {}: {} {} guest(s), made when a session starts{}\n",
            fleet.name(),
            fleet.count.0,
            fleet.technology.name(),
            if missing.is_empty() {
                "; this host has what they need"
            } else {
                ""
            }
        ));
    }
    for line in &missing {
        say(format!("fleet preflight: missing {line}\n"));
    }
    let checks = crate::check::check_plan(&plan, unknown);
    if !checks.is_empty() {
        say(crate::check::render(&checks));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let warnings = plan.plan.timeout_warnings(cores);
    for warning in warnings.iter().chain(&plan.plan.crowding_warnings(cores)) {
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            format!("warning: {warning}\n").as_bytes(),
        );
    }
    Ok(
        if crate::check::problems(&checks).is_empty() && missing.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}
