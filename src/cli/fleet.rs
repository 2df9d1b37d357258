//! `vmbench fleet down` and `vmbench image build`: the guests vmbench
//! makes, outside a session.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;

use crate::provision;

#[derive(Subcommand, Debug)]
pub enum FleetAction {
    /// Remove what sessions whose vmbench is gone left behind (a kill -9,
    /// a power cut) but not kept fleets; or one session's fleet, kept or
    /// not.
    Down {
        /// The session id (as `vmbench fleet list` and a kept fleet print).
        session: Option<String>,
    },
    /// List the fleets on this host: running, kept or left behind.
    List,
}

#[derive(Subcommand, Debug)]
pub enum ImageAction {
    /// Build (or find cached) the guest image from Debian packages:
    /// debootstrap with sshd and the benchmark tools, as a tree for
    /// container guests and a disk for VMs. About 2 minutes the first time.
    Build {
        /// The Debian suite (default bookworm).
        #[arg(long)]
        suite: Option<String>,
    },
}

pub fn fleet(action: &FleetAction) -> Result<ExitCode> {
    match action {
        FleetAction::Down { session } => {
            let (lines, clean) = provision::down(session.as_deref());
            for line in lines {
                println!("{line}");
            }
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        FleetAction::List => {
            let sessions = provision::state::sessions();
            if sessions.is_empty() {
                println!("no fleet on this host");
            }
            for s in sessions {
                println!(
                    "{}  {} resources  {}",
                    s.session,
                    s.resources.len(),
                    if s.owner_alive() {
                        format!("in use by vmbench pid {}", s.owner.unwrap_or(0))
                    } else if s.kept() {
                        format!("kept: `vmbench fleet down {}` removes it", s.session)
                    } else {
                        "left behind: `vmbench fleet down` removes it".into()
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn image(action: &ImageAction) -> Result<ExitCode> {
    match action {
        ImageAction::Build { suite } => {
            let missing = provision::image::missing();
            if !missing.is_empty() {
                bail!(
                    "cannot build the guest image; missing:\n  {}",
                    missing.join("\n  ")
                );
            }
            let dir = provision::image::ensure(suite.as_deref(), &mut |line| eprintln!("{line}"))
                .map_err(anyhow::Error::msg)?;
            println!("{}", provision::image::describe(&dir));
            Ok(ExitCode::SUCCESS)
        }
    }
}
