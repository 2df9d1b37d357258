//! The command line: one file per subcommand, each parsing its arguments
//! and calling `app` (the sessions, on a screen or without) or the module
//! that does the work (`report`, `store::csv`, `check`, `provision`).

mod check;
mod discover;
mod docs;
mod export;
mod fleet;
mod plans;
mod record;
mod replay;
mod report;
mod run;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::input::InputError;
use crate::plan::LoadedPlan;
use crate::ui::theme::slot_names;

#[derive(Parser)]
#[command(
    name = "vmbench",
    version,
    about = "Compare virtualization technologies with numbers: the same benchmarks on 1..N guests at once, against bare metal",
    after_help = "With no command, runs the embedded default plan (a short bare-metal baseline of this host) in the TUI."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    screen: ScreenArgs,
    /// Print the colour slot names a theme file sets, then exit.
    #[arg(long)]
    list_theme_slots: bool,
}

#[derive(Args, Clone, Default)]
struct ScreenArgs {
    /// Theme: dark, light, mono, or a path to a theme TOML file (NO_COLOR picks mono).
    #[arg(long, global = true, value_name = "NAME|PATH")]
    theme: Option<String>,
}

impl ScreenArgs {
    /// The screen's settings: the config file's under the command line's
    /// theme (NO_COLOR picks mono when neither names one).
    fn settings(&self) -> Result<crate::config::Settings> {
        Ok(crate::config::load(
            self.theme.as_deref(),
            std::env::var_os("NO_COLOR").is_some(),
        )?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a plan in the TUI, recording it (default: the embedded plan).
    #[command(after_help = "Examples:\n  \
        vmbench run                          the embedded plan; press s to start\n  \
        vmbench run study.toml --start       a plan of your own, started at once\n  \
        vmbench run study.toml --time-scale 0.01   a long plan tried in minutes")]
    Run(run::RunArgs),
    /// Run a plan with no screen: progress on stderr, the same recording.
    #[command(after_help = "Examples:\n  \
        vmbench record study.toml -o kvm-host.vmb\n  \
        nohup vmbench record study.toml > progress.log 2>&1 &   a night's run over SSH")]
    Record(record::RecordArgs),
    /// Show a recording in the TUI: pause, seek by time or by phase, speed;
    /// follow one that is still being written.
    #[command(after_help = "Examples:\n  \
        vmbench replay kvm-host.vmb --speed 8\n  \
        vmbench replay --follow recordings/study-20261130T0200.vmb   watch a headless run\n  \
        vmbench replay kvm-host.vmb xen-host.vmb   A/B, phase by phase\n\n\
        Keys: [ ] previous/next phase, g go to a phase or time, ← → 10 s, ? all keys.")]
    Replay(replay::ReplayArgs),
    /// Write a recording's samples and results as CSV files.
    #[command(
        after_help = "Example:\n  vmbench export kvm-host.vmb --csv out/   then pandas.read_csv('out/results.csv')"
    )]
    Export(export::ExportArgs),
    /// List the guests running on this host (QEMU processes, libvirt
    /// domains, Xen domains) with their process, tap and disk, and print a
    /// plan fragment for each; with a plan, which of its guests each is.
    #[command(after_help = "Examples:\n  \
        vmbench discover                 the guests of this host, a [[guest]] each\n  \
        vmbench discover study.toml      which plan guest each one is")]
    Discover(discover::DiscoverArgs),
    /// List the plans built into vmbench, or print one to start from
    /// (`vmbench plans study-2009 > study.toml`).
    #[command(after_help = "Examples:\n  \
        vmbench plans\n  \
        vmbench plans study-2009 > study.toml")]
    Plans {
        /// The plan to print.
        name: Option<String>,
    },
    /// Compare technologies across recordings: % loss from the baseline per
    /// measured figure and number of concurrent guests, with 95 % intervals.
    #[command(after_help = "Examples:\n  \
        vmbench report kvm-host.vmb xen-host.vmb\n  \
        vmbench report kvm-host.vmb xen-host.vmb --charts charts/ --html report.html\n  \
        vmbench report kvm-host.vmb --view free-core")]
    Report(report::ReportArgs),
    /// Reach every guest of a plan as a session would (host key, login,
    /// architecture, clock offset) and print one table; non-zero exit on
    /// any problem.
    #[command(
        after_help = "Example:\n  vmbench check study.toml --accept-new   trust new host keys once, then check"
    )]
    Check(check::CheckArgs),
    /// Guests vmbench made: list them, remove what a session left behind.
    #[command(after_help = "Examples:\n  \
        vmbench fleet list\n  \
        vmbench fleet down            everything whose vmbench is gone\n  \
        vmbench fleet down 3fa9c1     one session's fleet, kept or not")]
    Fleet {
        #[command(subcommand)]
        action: fleet::FleetAction,
    },
    /// The guest image every fleet technology boots.
    #[command(
        after_help = "Example:\n  vmbench image build   about 2 minutes the first time, then cached"
    )]
    Image {
        #[command(subcommand)]
        action: fleet::ImageAction,
    },
    /// The screen's settings file: where it is and whether it reads; with
    /// --default, the file with every default, to start one from.
    #[command(after_help = "Examples:\n  \
        vmbench config                       where the file is, and whether it reads\n  \
        vmbench config --default > ~/.config/vmbench/config.toml")]
    Config {
        /// Print the file with every setting at its default.
        #[arg(long)]
        default: bool,
    },
    /// Print a completion script for a shell.
    #[command(after_help = "Example:\n  vmbench completions bash > /etc/bash_completion.d/vmbench")]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff).
    #[command(
        after_help = "Example:\n  vmbench man > /usr/local/share/man/man1/vmbench.1 && man vmbench"
    )]
    Man,
    #[command(hide = true)]
    Workload(workload::WorkloadArgs),
    /// Samples this machine's /proc and streams it (run on a guest by the
    /// host's vmbench, over SSH).
    #[command(hide = true)]
    Agent(workload::AgentArgs),
}

/// Exit codes: 0 success, 1 a run or the session failed, 2 bad input.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.list_theme_slots {
        quiet_on_broken_pipe();
        for name in slot_names() {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        None => run::run(run::SessionArgs::default(), false, &cli.screen),
        Some(Command::Run(args)) => run::run(args.session, args.start, &cli.screen),
        Some(Command::Record(args)) => record::record(args.session),
        Some(Command::Replay(args)) => replay::replay(args, &cli.screen),
        Some(Command::Export(args)) => export::export(&args),
        Some(Command::Check(args)) => check::check(&args),
        Some(Command::Fleet { action }) => fleet::fleet(&action),
        Some(Command::Image { action }) => fleet::image(&action),
        Some(Command::Report(args)) => {
            quiet_on_broken_pipe();
            report::report(args)
        }
        Some(Command::Plans { name }) => {
            quiet_on_broken_pipe();
            plans::plans(name.as_deref())
        }
        Some(Command::Discover(args)) => {
            quiet_on_broken_pipe();
            discover::discover(args.plan.as_deref())
        }
        Some(Command::Workload(args)) => return workload::workload(args.kind),
        Some(Command::Agent(args)) => return workload::agent(args),
        Some(Command::Completions { shell }) => {
            quiet_on_broken_pipe();
            docs::completions(shell)
        }
        Some(Command::Config { default }) => {
            quiet_on_broken_pipe();
            config(default)
        }
        Some(Command::Man) => {
            quiet_on_broken_pipe();
            docs::man_page()
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            stderr_line!("vmbench: error: {e:#}");
            if e.downcast_ref::<InputError>().is_some()
                || e.downcast_ref::<crate::store::NotARecording>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// For commands that only print: a reader that goes away (`| head`) ends
/// the process quietly, as it does any Unix filter, instead of a panic in
/// `print!`. Not for sessions: there a reset SSH socket must not kill vmbench.
fn quiet_on_broken_pipe() {
    // SAFETY: restores the default disposition of one signal, before any
    // thread is started.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// The plan to run on this host: read, scaled, and refused where a level
/// needs more guests of a technology than it has (said with the counts,
/// exit 2, before anything is made or started).
fn load_plan(path: Option<&PathBuf>, time_scale: Option<f64>) -> Result<LoadedPlan> {
    let mut plan = LoadedPlan::load(path)?;
    if let Some(factor) = time_scale {
        plan.plan.scale_durations(factor);
    }
    let cores = crate::header::HostSpecs::of_this_host().logical_cores;
    if let Some(refusal) = plan.plan.overcrowded(cores).into_iter().next() {
        return Err(InputError::at(
            &plan.source,
            &plan.origin,
            None,
            "benchmark".into(),
            refusal,
        )
        .into());
    }
    Ok(plan)
}

/// `vmbench config`: the default file, or where the file is and whether it
/// reads (a bad one is an input error, exit 2).
fn config(default: bool) -> Result<ExitCode> {
    if default {
        print!("{}", crate::config::DEFAULT);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = crate::config::location() else {
        println!("no config file: neither XDG_CONFIG_HOME nor HOME is set");
        return Ok(ExitCode::SUCCESS);
    };
    if !path.exists() {
        println!(
            "{}: none (the defaults; `vmbench config --default` prints them)",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::config::load(None, false)?;
    println!("{}: reads", path.display());
    Ok(ExitCode::SUCCESS)
}
