//! `vmbench discover`: the guests running on this host.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::plan::LoadedPlan;

#[derive(Args)]
pub(super) struct DiscoverArgs {
    /// A plan whose guests to match (by name, or by the MAC their address
    /// answers from).
    pub(super) plan: Option<PathBuf>,
}

pub(super) fn discover(plan: Option<&Path>) -> Result<ExitCode> {
    use crate::discover::{address_of, arp, describe, discover, matching, plan_fragment};
    let plan = plan.map(LoadedPlan::from_file).transpose()?;
    let found = discover();
    let arp = arp();
    if found.is_empty() {
        println!(
            "no guests found on this host (QEMU processes, libvirt domains in {}, xentop)",
            crate::discover::LIBVIRT_RUN
        );
    }
    for f in &found {
        println!("{:<16} {}", f.name, describe(f));
    }
    if let Some(plan) = &plan {
        println!();
        for guest in plan.plan.guests.iter().filter(|g| g.address.is_some()) {
            match matching(guest, &found, &arp) {
                Some(f) => println!(
                    "plan guest {:<12} is {} ({})",
                    guest.name(),
                    f.name,
                    describe(f)
                ),
                None => println!("plan guest {:<12} is not among them", guest.name()),
            }
        }
    }
    for f in &found {
        println!("\n{}", plan_fragment(f, address_of(f, &arp)));
    }
    Ok(ExitCode::SUCCESS)
}
