//! `vmbench replay`: a recording, or two side by side, on the screen.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use super::ScreenArgs;

#[derive(Args)]
pub(super) struct ReplayArgs {
    /// The recording; without it, the demo shipped with vmbench (bare metal,
    /// a namespace guest and a QEMU VM; tests/testbed/demo.toml).
    pub(super) recording: Option<PathBuf>,
    /// A second recording, shown beside the first (A/B): the same plan on
    /// another host or kernel, aligned on the start of each phase, with
    /// per-phase differences.
    #[arg(value_name = "B")]
    pub(super) versus: Option<PathBuf>,
    /// Playback speed, 0.25 to 64.
    #[arg(long, default_value_t = 1.0)]
    pub(super) speed: f64,
    /// Start at the recording's end and follow it as its session goes on
    /// (pause and scroll back at will; End comes back to the live end).
    #[arg(long)]
    pub(super) follow: bool,
}

pub(super) fn replay(args: ReplayArgs, screen: &ScreenArgs) -> Result<ExitCode> {
    let path = match args.recording {
        Some(path) => path,
        None => crate::demo::path()?,
    };
    let settings = screen.settings()?;
    crate::app::replay_screen::on_screen(
        &path,
        args.versus.as_deref(),
        args.speed,
        args.follow,
        &settings,
    )
}
