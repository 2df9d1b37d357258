//! `vmbench man` and `vmbench completions`: documentation from the same
//! definitions as the parser.

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use super::Cli;

/// The manual: vmbench(1), with a section per command.
pub(super) fn man_page() -> Result<ExitCode> {
    let command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(command.clone()).render(&mut out)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("vmbench {}", sub.get_name());
        let page = clap_mangen::Man::new(
            sub.clone()
                .name(name)
                .bin_name(format!("vmbench {}", sub.get_name())),
        );
        page.render_name_section(&mut out)?;
        page.render_synopsis_section(&mut out)?;
        page.render_options_section(&mut out)?;
        page.render_extra_section(&mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A completion script for `shell`, without the hidden commands (which the
/// generators would offer to complete like any other).
pub(super) fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let all = Cli::command();
    let mut command = clap::Command::new("vmbench")
        .version(env!("CARGO_PKG_VERSION"))
        .args(all.get_arguments().cloned())
        .subcommands(all.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    clap_complete::generate(shell, &mut command, "vmbench", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
