//! The command line: run (TUI, the default), record (headless), replay,
//! export, and the hidden `workload` used to launch benchmark copies.

mod fleet;
mod replay;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::app::stop::{self, StopStep};
use crate::app::{Consumer, Live, default_recording_path};
use crate::bus::Msg;
use crate::event::{Event, GuestState, LogLevel};
use crate::format::{clock, figure};
use crate::input::InputError;
use crate::orchestrate::{Control, StopCause};
use crate::plan::LoadedPlan;
use crate::store::csv;
use crate::transport::ssh::UnknownKey;
use crate::ui::keys::Action;
use crate::ui::terminal::{self, Next, Steer};
use crate::ui::theme::{Theme, slot_names};
use crate::ui::{Feed, View};
use crate::workload::{builtin, gate};

/// Output to stderr that a gone reader (a closed terminal, `| tee` ended by
/// the same Ctrl-C) cannot turn into a panic: a session must still wind
/// down and close its recording.
macro_rules! stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

macro_rules! stderr_line {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

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

#[derive(Subcommand)]
enum Command {
    /// Run a plan in the TUI, recording it (default: the embedded plan).
    #[command(after_help = "Examples:\n  \
        vmbench run                          the embedded plan; press s to start\n  \
        vmbench run study.toml --start       a plan of your own, started at once\n  \
        vmbench run study.toml --time-scale 0.01   a long plan tried in minutes")]
    Run(RunArgs),
    /// Run a plan with no screen: progress on stderr, the same recording.
    #[command(after_help = "Examples:\n  \
        vmbench record study.toml -o kvm-host.vmb\n  \
        nohup vmbench record study.toml > progress.log 2>&1 &   a night's run over SSH")]
    Record(RecordArgs),
    /// Show a recording in the TUI: pause, seek by time or by phase, speed;
    /// follow one that is still being written.
    #[command(after_help = "Examples:\n  \
        vmbench replay kvm-host.vmb --speed 8\n  \
        vmbench replay --follow recordings/study-20261130T0200.vmb   watch a headless run\n  \
        vmbench replay kvm-host.vmb xen-host.vmb   A/B, phase by phase\n\n\
        Keys: [ ] previous/next phase, g go to a phase or time, ← → 10 s, ? all keys.")]
    Replay(ReplayArgs),
    /// Write a recording's samples and results as CSV files.
    #[command(
        after_help = "Example:\n  vmbench export kvm-host.vmb --csv out/   then pandas.read_csv('out/results.csv')"
    )]
    Export(ExportArgs),
    /// List the guests running on this host (QEMU processes, libvirt
    /// domains, Xen domains) with their process, tap and disk, and print a
    /// plan fragment for each; with a plan, which of its guests each is.
    #[command(after_help = "Examples:\n  \
        vmbench discover                 the guests of this host, a [[guest]] each\n  \
        vmbench discover study.toml      which plan guest each one is")]
    Discover(DiscoverArgs),
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
    Report(ReportArgs),
    /// Reach every guest of a plan as a session would (host key, login,
    /// architecture, clock offset) and print one table; non-zero exit on
    /// any problem.
    #[command(
        after_help = "Example:\n  vmbench check study.toml --accept-new   trust new host keys once, then check"
    )]
    Check(CheckArgs),
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
    /// Print a completion script for a shell.
    #[command(after_help = "Example:\n  vmbench completions bash > /etc/bash_completion.d/vmbench")]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff).
    #[command(
        after_help = "Example:\n  vmbench man > /usr/local/share/man/man1/vmbench.1 && man vmbench"
    )]
    Man,
    #[command(hide = true)]
    Workload(WorkloadArgs),
    /// Samples this machine's /proc and streams it (run on a guest by the
    /// host's vmbench, over SSH).
    #[command(hide = true)]
    Agent {
        #[arg(long)]
        interval_ns: u64,
        /// Tick this far past multiples of the interval of this machine's
        /// CLOCK_MONOTONIC (the host's grid on this clock).
        #[arg(long)]
        grid_phase_ns: Option<u64>,
        /// Sample as a hypervisor host, seeing these guests (TOML: their
        /// `[[guest]]` entries).
        #[arg(long)]
        host_seen: Option<String>,
        /// End after this long without a heartbeat from the host on stdin.
        #[arg(long, default_value_t = 15_000)]
        silence_ms: u64,
    },
}

/// Multiplies every benchmark's duration (and timeout), e.g. 0.01 to try a
/// long plan in minutes; each duration stays at least one second.
fn time_scale(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err(format!("{text:?} is not a factor in (0, 1]")),
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    session: SessionArgs,
    /// Start the plan at once instead of waiting for the operator's `s`.
    #[arg(long)]
    start: bool,
}

impl SessionArgs {
    /// Where the session records, and the metrics address bound before
    /// anything starts (an address in use stops nothing).
    fn recording_and_metrics(
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

/// What a live session is run with, on a screen or without.
#[derive(Args, Default)]
struct SessionArgs {
    /// The plan (TOML); without it, the embedded default plan.
    plan: Option<PathBuf>,
    /// Shorten every duration by this factor, e.g. 0.01.
    #[arg(long, value_parser = time_scale, value_name = "FACTOR")]
    time_scale: Option<f64>,
    /// Where to record (default: recordings/<plan>-<UTC time>.vmb).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Serve the live series and phase at http://ADDR/metrics in the
    /// Prometheus text format, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
}

#[derive(Args)]
struct RecordArgs {
    #[command(flatten)]
    session: SessionArgs,
}

#[derive(Args)]
struct CheckArgs {
    plan: PathBuf,
    /// Trust and write down host keys not yet in known_hosts (like OpenSSH's
    /// accept-new); a changed key is still refused.
    #[arg(long)]
    accept_new: bool,
}

#[derive(Args)]
struct ReplayArgs {
    /// The recording; without it, the demo shipped with vmbench (bare metal,
    /// a namespace guest and a QEMU VM; tests/testbed/demo.toml).
    recording: Option<PathBuf>,
    /// A second recording, shown beside the first (A/B): the same plan on
    /// another host or kernel, aligned on the start of each phase, with
    /// per-phase differences.
    #[arg(value_name = "B")]
    versus: Option<PathBuf>,
    /// Playback speed, 0.25 to 64.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Start at the recording's end and follow it as its session goes on
    /// (pause and scroll back at will; End comes back to the live end).
    #[arg(long)]
    follow: bool,
}

#[derive(Args)]
struct ExportArgs {
    recording: PathBuf,
    /// Directory to write samples_long.csv, samples_wide.csv, results.csv and phases.csv into.
    #[arg(long, value_name = "DIR")]
    csv: PathBuf,
    /// Keep every readable row of a damaged recording, skipping what is
    /// damaged (without it, reading stops at the first damage).
    #[arg(long)]
    salvage: bool,
}

#[derive(Args)]
struct DiscoverArgs {
    /// A plan whose guests to match (by name, or by the MAC their address
    /// answers from).
    plan: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Markdown,
    Csv,
    Json,
}

/// Which question of the study the report answers.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportView {
    /// % loss from the baseline per workload metric and number of guests.
    Matrix,
    /// Technologies as rows, % loss at one number of guests (the study's
    /// Table 1; --guests, default the most each workload ran with).
    Table1,
    /// Technology against technology, Welch's interval on each pair.
    Pairwise,
    /// Per comparison: the smallest detectable difference and the
    /// repetitions needed to tell the two apart.
    Resolution,
    /// Does the hypervisor need a core of its own: per-guest CPU figures at
    /// each level and the steps around the host's cores.
    FreeCore,
    /// Beside each loss, what the host and guests saw in its phases (steal,
    /// host CPU, host ÷ guest CPU, the busiest disk) and the likely cause.
    Why,
}

/// A share such as "20%" or "0.2".
fn share(text: &str) -> Result<f64, String> {
    let value = match text.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.parse::<f64>(),
    };
    match value {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{text:?} is not a share such as 20% or 0.2")),
    }
}

#[derive(Args)]
#[command(
    after_help = "Recordings are pooled by technology label; rows are workload metric × \
number of concurrent guests. Runs of a workload are pooled only when their tool, version, \
parameters and duration match (where files go and which server is used may differ)."
)]
struct ReportArgs {
    /// One or more recordings, e.g. one per hypervisor host.
    #[arg(required = true)]
    recordings: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    format: ReportFormat,
    #[arg(long, value_enum, default_value_t = ReportView::Matrix)]
    view: ReportView,
    /// The number of concurrent guests of the table1 view.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    guests: Option<u32>,
    /// The technology others are compared with.
    #[arg(long, default_value = crate::report::DEFAULT_BASELINE)]
    baseline: String,
    /// Pool runs whose workload configuration differs, or compare with a
    /// baseline measured on a virtual host or guests of one technology that
    /// differ in shape (each listed in the notes).
    #[arg(long)]
    force: bool,
    /// Count phases whose start skew, clock uncertainty and stop gap exceed
    /// the bound.
    #[arg(long)]
    include_skewed: bool,
    /// Tell guests on each `[[host]]` apart from those of the same
    /// technology elsewhere: `kvm@h2` beside `kvm` (pooled otherwise).
    #[arg(long)]
    by_host: bool,
    /// Start skew plus clock uncertainty plus stop gap, as a share of how
    /// long a phase's copies ran, beyond which the phase is left out.
    #[arg(long, value_parser = share, default_value = "20%", value_name = "SHARE")]
    skew_bound: f64,
    /// Also write the study's charts as SVG files into DIR.
    #[arg(long, value_name = "DIR")]
    charts: Option<PathBuf>,
    /// Also write one self-contained HTML page: every view, the charts
    /// inline, what was left out, and where the figures came from.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Write the report to this file instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct WorkloadArgs {
    #[command(subcommand)]
    kind: WorkloadKind,
}

#[derive(Args)]
struct Timed {
    /// Wait for one byte on stdin (the barrier) before starting.
    #[arg(long)]
    gate: bool,
    #[arg(long, default_value_t = 10_000)]
    duration_ms: u64,
}

#[derive(Subcommand)]
enum WorkloadKind {
    Cpu(Timed),
    Disk {
        #[command(flatten)]
        timed: Timed,
        #[arg(long, default_value_t = 256 << 20)]
        size: u64,
        #[arg(long, default_value = "/var/tmp")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1 << 20)]
        block_size: usize,
    },
    Net {
        #[command(flatten)]
        timed: Timed,
        #[arg(long)]
        connect: SocketAddr,
        #[arg(long, default_value_t = 1 << 20)]
        buffer: usize,
    },
    NetSink {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Prints CLOCK_MONOTONIC for each line read, to measure clock offsets.
    Clock,
    /// Runs an external tool behind the barrier, relaying its output.
    Gate {
        /// The command that prints the tool's version, e.g. "iperf3 --version".
        #[arg(long)]
        probe: Option<String>,
        /// The oldest version the adapter reads, as MAJOR.MINOR.
        #[arg(long)]
        min_version: Option<String>,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

/// The manual: vmbench(1), with a section per command.
fn man_page() -> Result<ExitCode> {
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
        None => run_tui(SessionArgs::default(), false, &cli.screen),
        Some(Command::Run(args)) => run_tui(args.session, args.start, &cli.screen),
        Some(Command::Record(args)) => record(args.session),
        Some(Command::Replay(args)) => match args.recording.map_or_else(crate::demo::path, Ok) {
            Ok(path) => replay::replay(
                &path,
                args.versus.as_deref(),
                args.speed,
                args.follow,
                &cli.screen,
            ),
            Err(e) => Err(e),
        },
        Some(Command::Export(args)) => export(&args.recording, &args.csv, args.salvage),
        Some(Command::Check(args)) => check(&args.plan, args.accept_new),
        Some(Command::Fleet { action }) => fleet::fleet(&action),
        Some(Command::Image { action }) => fleet::image(&action),
        Some(Command::Report(args)) => {
            quiet_on_broken_pipe();
            report(&args)
        }
        Some(Command::Plans { name }) => {
            quiet_on_broken_pipe();
            plans(name.as_deref())
        }
        Some(Command::Discover(args)) => {
            quiet_on_broken_pipe();
            discover(args.plan.as_deref())
        }
        Some(Command::Workload(args)) => return ExitCode::from(workload(args.kind) as u8),
        Some(Command::Agent {
            interval_ns,
            grid_phase_ns,
            silence_ms,
            host_seen,
        }) => {
            let interval = Duration::from_nanos(interval_ns.max(1_000_000));
            let host_seen = match host_seen.map(|text| toml::from_str(&text)).transpose() {
                Ok(guests) => guests,
                Err(e) => {
                    stderr_line!("vmbench agent: --host-seen: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let ended = crate::sample::agent::run_agent(
                interval,
                grid_phase_ns,
                Duration::from_millis(silence_ms),
                host_seen,
                std::io::stdin(),
                &mut std::io::stdout().lock(),
            );
            // The host closing the channel is how an agent is told to stop.
            return match ended {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    stderr_line!("vmbench agent: {e}");
                    ExitCode::FAILURE
                }
                Ok(()) => ExitCode::SUCCESS,
            };
        }
        Some(Command::Completions { shell }) => {
            quiet_on_broken_pipe();
            // Without the hidden workload runner, which the generators
            // would offer to complete like any other command.
            let all = Cli::command();
            let mut command = clap::Command::new("vmbench")
                .version(env!("CARGO_PKG_VERSION"))
                .args(all.get_arguments().cloned())
                .subcommands(all.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
            clap_complete::generate(shell, &mut command, "vmbench", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => {
            quiet_on_broken_pipe();
            man_page()
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

fn workload(kind: WorkloadKind) -> i32 {
    let ms = Duration::from_millis;
    builtin::run_child(|| match kind {
        WorkloadKind::Cpu(t) => builtin::run_cpu(ms(t.duration_ms), t.gate),
        WorkloadKind::Disk {
            timed,
            size,
            dir,
            block_size,
        } => builtin::run_disk(ms(timed.duration_ms), timed.gate, size, &dir, block_size),
        WorkloadKind::Net {
            timed,
            connect,
            buffer,
        } => builtin::run_net(ms(timed.duration_ms), timed.gate, connect, buffer),
        WorkloadKind::NetSink { listen } => builtin::run_net_sink(listen),
        WorkloadKind::Clock => builtin::run_clock(),
        WorkloadKind::Gate {
            probe,
            min_version,
            argv,
        } => gate::run_gate(gate::GateArgs {
            probe: probe
                .map(|p| p.split_whitespace().map(String::from).collect())
                .unwrap_or_default(),
            min_version: min_version.as_deref().and_then(gate::version_numbers),
            argv,
        }),
    })
}

fn this_program() -> Result<PathBuf> {
    std::env::current_exe().context("finding this program's path to launch workloads")
}

fn check(path: &Path, accept_new: bool) -> Result<ExitCode> {
    let mut plan = load_plan(Some(&path.to_path_buf()), None)?;
    for line in crate::discover::fill_in(&mut plan.plan) {
        println!("discovered {line}");
    }
    let unknown = if accept_new {
        UnknownKey::AcceptNew
    } else {
        UnknownKey::Refuse
    };
    let checks = crate::check::check_plan(&plan, unknown);
    // A reader gone (`| head`) is no error of the check's.
    let _ = std::io::Write::write_all(
        &mut std::io::stdout(),
        crate::check::render(&checks).as_bytes(),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let warnings = plan.plan.timeout_warnings(cores);
    for warning in warnings.iter().chain(&plan.plan.crowding_warnings(cores)) {
        let _ = std::io::Write::write_all(
            &mut std::io::stdout(),
            format!("warning: {warning}\n").as_bytes(),
        );
    }
    Ok(if crate::check::problems(&checks).is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

struct LiveSteer {
    live: Option<Live>,
}

impl LiveSteer {
    /// A stop asked for by a key or a signal; the second ends at once.
    fn stop(&mut self, cause: StopCause, consumer: &mut Consumer) -> Next {
        let Some(live) = &mut self.live else {
            return Next::Close;
        };
        match live.request_stop(cause, consumer) {
            StopStep::WindDown(_) => Next::CloseWhenFinished,
            StopStep::AtOnce => {
                let path = consumer
                    .recording_path()
                    .map_or_else(String::new, |p| p.display().to_string());
                live.end_at_once(consumer);
                let _ = ratatui::try_restore();
                stderr_line!("vmbench: ended at once; recording: {path}");
                crate::provision::teardown_active();
                std::process::exit(stop::AT_ONCE_STATUS);
            }
        }
    }
}

impl Steer for LiveSteer {
    fn act(&mut self, action: Action, view: &mut View, consumer: &mut Consumer) -> Next {
        let Some(live) = &self.live else {
            // The plan is over; the screen stays until q.
            return if action == Action::Quit {
                Next::Close
            } else {
                Next::Stay
            };
        };
        let control = match action {
            Action::Start => Control::Start,
            Action::Skip => Control::Skip,
            Action::Abort => Control::Abort,
            Action::Quit => return self.stop(StopCause::Operator, consumer),
            Action::Pause => {
                view.display_paused = !view.display_paused;
                return Next::Stay;
            }
            _ => return Next::Stay,
        };
        if let Feed::Live { waiting, .. } = &mut view.feed {
            *waiting = false;
        }
        let _ = live.control.send(control);
        Next::Stay
    }

    fn signal(&mut self, signal: i32, _view: &mut View, consumer: &mut Consumer) -> Next {
        // A hang-up after the terminal was found gone is the same event.
        let hangup_again = signal == libc::SIGHUP
            && self
                .live
                .as_ref()
                .and_then(|l| l.stopping.cause())
                .is_some_and(|c| c == stop::cause_of(libc::SIGHUP));
        if hangup_again {
            return Next::CloseWhenFinished;
        }
        self.stop(stop::cause_of(signal), consumer)
    }

    fn terminal_lost(&mut self, consumer: &mut Consumer) -> Next {
        match self.live.as_ref().map(|l| l.stopping.cause()) {
            // Already stopping (a SIGHUP came first): not a second request.
            Some(Some(_)) => Next::CloseWhenFinished,
            Some(None) => self.stop(stop::cause_of(libc::SIGHUP), consumer),
            None => Next::Close,
        }
    }

    fn tick(&mut self, consumer: &mut Consumer) -> Next {
        let Some(live) = &mut self.live else {
            return Next::Stay;
        };
        if live.watch_stop(consumer) {
            Next::Close
        } else if live.stopping.cause().is_some() {
            Next::CloseWhenFinished
        } else {
            Next::Stay
        }
    }

    fn note(&mut self, text: String, consumer: &mut Consumer) {
        if let Some(live) = &self.live {
            live.note(consumer, text);
        }
    }

    fn finished(&mut self, view: &mut View, consumer: &mut Consumer) {
        if let Some(live) = self.live.take() {
            live.shutdown();
        }
        let path = consumer.recording_path().map(|p| p.display().to_string());
        let text = match consumer.close() {
            Ok(()) => format!(
                "plan finished; recording saved to {} (q quits)",
                path.unwrap_or_default()
            ),
            Err(e) => format!("plan finished; the recording could not be closed: {e:#}"),
        };
        let t = consumer.session.now;
        consumer.session.apply(&Event::Log {
            t,
            level: LogLevel::Info,
            text,
        });
        view.finished = true;
    }
}

fn run_tui(args: SessionArgs, start: bool, screen: &ScreenArgs) -> Result<ExitCode> {
    let mut plan = load_plan(args.plan.as_ref(), args.time_scale)?;
    let theme = Theme::resolve(
        screen.theme.as_deref(),
        std::env::var_os("NO_COLOR").is_some(),
    )?;
    if !std::io::stdout().is_terminal() {
        bail!("the TUI needs a terminal; `vmbench record` runs a plan without a screen");
    }
    // Made before the screen is taken (progress on stderr), removed when
    // this returns.
    let _fleets = fleet::make_fleets(&mut plan)?;
    let (path, listener) = args.recording_and_metrics(&plan)?;
    let (live, mut consumer, bus) = Live::start(&plan, &path, start, this_program()?)?;
    if let Some(listener) = listener {
        let bound = crate::metrics::serve(listener, bus.tx.clone())?;
        let t = consumer.session.now;
        consumer.apply(Event::Log {
            t,
            level: LogLevel::Info,
            text: format!("metrics at http://{bound}/metrics"),
        });
    }
    // Said on stderr before the screen was taken, and kept in the log.
    for text in crate::provision::leftovers() {
        let t = consumer.session.now;
        consumer.apply(Event::Log {
            t,
            level: LogLevel::Warn,
            text,
        });
    }
    let mut view = View::new(Feed::Live { waiting: !start });
    let mut steer = LiveSteer { live: Some(live) };
    let result = terminal::run(
        &mut consumer,
        None,
        &bus.rx,
        bus.tx,
        &theme,
        &mut view,
        &mut steer,
    );
    if !view.finished {
        steer.finished(&mut view, &mut consumer);
    }
    result?;
    stderr_line!("recording: {}", path.display());
    report_failures(&consumer)
}

fn report_failures(consumer: &Consumer) -> Result<ExitCode> {
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

fn export(recording: &Path, dir: &Path, salvage: bool) -> Result<ExitCode> {
    let done = csv::export(recording, dir, salvage)?;
    for warning in &done.warnings {
        stderr_line!("vmbench: warning: {warning}");
    }
    stderr_line!(
        "wrote {} samples, {} run results and {} phase aggregates to {}",
        done.samples,
        done.results,
        done.phases,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn plans(name: Option<&str>) -> Result<ExitCode> {
    use crate::plan::BUILT_IN;
    let Some(name) = name else {
        for (name, what, _) in BUILT_IN {
            println!("{name:<12} {what}");
        }
        return Ok(ExitCode::SUCCESS);
    };
    let wanted = name.trim_end_matches(".toml");
    match BUILT_IN.iter().find(|(n, ..)| *n == wanted) {
        Some((_, _, source)) => {
            print!("{source}");
            Ok(ExitCode::SUCCESS)
        }
        None => Err(InputError {
            file: "plans".into(),
            line: 0,
            column: 0,
            field: "name".into(),
            message: format!(
                "no built-in plan {name:?}; there are: {}",
                BUILT_IN.map(|(n, ..)| n).join(", ")
            ),
        }
        .into()),
    }
}

fn discover(plan: Option<&Path>) -> Result<ExitCode> {
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

fn report(args: &ReportArgs) -> Result<ExitCode> {
    use crate::report::{Matrix, Options, charts, load};
    let results = load(&args.recordings, args.skew_bound, args.by_host)?;
    let options = Options {
        baseline: args.baseline.clone(),
        include_skewed: args.include_skewed,
    };
    let matrix = Matrix::build(&results, &options);
    if matrix.rows.is_empty() {
        let names: Vec<String> = args
            .recordings
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        bail!(
            "{}: no completed phase with a figure to compare ({} left out; see `vmbench export`)",
            names.join(", "),
            matrix.excluded.len()
        );
    }
    if !matrix.technologies.contains(&options.baseline) {
        bail!(
            "no phase of the baseline technology {:?} is in these recordings (they have {}); name one with --baseline",
            options.baseline,
            matrix.technologies.join(", ")
        );
    }
    if !matrix.mismatches.is_empty() && !args.force {
        let list: Vec<String> = matrix
            .mismatches
            .iter()
            .map(|m| format!("  {}", m.describe()))
            .collect();
        bail!(
            "refusing to pool runs whose workload configuration differs:\n{}\npool them anyway with --force",
            list.join("\n")
        );
    }
    if !matrix.validity.is_empty() && !args.force {
        let list: Vec<String> = matrix.validity.iter().map(|v| format!("  {v}")).collect();
        bail!(
            "refusing a comparison that would measure something else than it says:\n{}\n\
             compare anyway with --force (the report then lists these under its table)",
            list.join("\n")
        );
    }
    if let Some(path) = &args.html {
        write_html(args, &results, &matrix, path)?;
        stderr_line!("wrote {}", path.display());
    }
    let text = match args.view {
        ReportView::Matrix => match args.format {
            ReportFormat::Table => matrix.to_table(),
            ReportFormat::Markdown => matrix.to_markdown(),
            ReportFormat::Csv => matrix.to_csv()?,
            ReportFormat::Json => matrix.to_json()?,
        },
        view => {
            use crate::report::{freecore::FreeCore, pairwise::Pairwise, table1::Table1};
            let (table, json) = match view {
                ReportView::Table1 => {
                    let t = Table1::build(&matrix, args.guests);
                    (t.text(args.guests), serde_json::to_string_pretty(&t)?)
                }
                ReportView::Pairwise | ReportView::Resolution => {
                    let resolution = view == ReportView::Resolution;
                    let p = Pairwise::build(&matrix, resolution);
                    let table = if resolution {
                        p.resolution_text()
                    } else {
                        p.text()
                    };
                    (table, serde_json::to_string_pretty(&p)?)
                }
                ReportView::Why => {
                    let w = crate::report::why::Why::build(&results, &matrix, args.include_skewed);
                    (w.text(), serde_json::to_string_pretty(&w)?)
                }
                _ => {
                    let f = FreeCore::build(&results, &matrix);
                    (f.text(), serde_json::to_string_pretty(&f)?)
                }
            };
            let mut table = table;
            // What the matrix would list under it holds for every view.
            table.notes.extend(matrix.notes());
            match args.format {
                ReportFormat::Table => table.to_table(),
                ReportFormat::Markdown => table.to_markdown(),
                ReportFormat::Csv => table.to_csv()?,
                ReportFormat::Json => json + "\n",
            }
        }
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    if let Some(dir) = &args.charts {
        let written = charts::write_all(&matrix, dir)?;
        stderr_line!("wrote {} chart(s) to {}", written.len(), dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The page `--html` writes: every view's table, the charts, provenance.
fn write_html(
    args: &ReportArgs,
    results: &crate::results::Results,
    matrix: &crate::report::Matrix,
    path: &Path,
) -> Result<()> {
    use crate::report::{charts, freecore::FreeCore, html, pairwise::Pairwise, table1::Table1};
    let views = [
        matrix.text(),
        Table1::build(matrix, args.guests).text(args.guests),
        Pairwise::build(matrix, false).text(),
        Pairwise::build(matrix, true).resolution_text(),
        FreeCore::build(results, matrix).text(),
        crate::report::why::Why::build(results, matrix, args.include_skewed).text(),
    ];
    let sources = args
        .recordings
        .iter()
        .map(|p| {
            Ok((
                p.display().to_string(),
                crate::store::Reader::open(p)?.header,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let names: Vec<String> = sources.iter().map(|(n, _)| n.clone()).collect();
    let page = html::page(
        &format!("vmbench report: {}", names.join(", ")),
        &views,
        &charts::render_all(matrix)?,
        matrix,
        results,
        &sources,
    );
    std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))
}

/// How often headless progress is printed when stderr is not a terminal.
const PROGRESS_LINE_EVERY: Duration = Duration::from_secs(5);

fn record(args: SessionArgs) -> Result<ExitCode> {
    let mut plan = load_plan(args.plan.as_ref(), args.time_scale)?;
    let _fleets = fleet::make_fleets(&mut plan)?;
    let (path, listener) = args.recording_and_metrics(&plan)?;
    let (mut live, mut consumer, bus) = Live::start(&plan, &path, true, this_program()?)?;
    if let Some(listener) = listener {
        let bound = crate::metrics::serve(listener, bus.tx.clone())?;
        stderr_line!("vmbench: metrics at http://{bound}/metrics");
    }
    drop(bus.tx);
    let tty = std::io::stderr().is_terminal();
    stderr_line!(
        "vmbench: recording plan {:?} ({} phases, about {}) to {}",
        plan.plan.name,
        consumer.session.header.schedule.len(),
        clock(consumer.session.remaining()),
        path.display()
    );
    let mut last_progress = Instant::now();
    while !consumer.finished() {
        match bus.rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Msg::Event(event)) => {
                let echo = headless_echo(&event, &consumer.session);
                let ended = if let Event::PhaseEnded { phase, .. } = &event {
                    Some(*phase)
                } else {
                    None
                };
                consumer.apply(event);
                if let Some(line) = echo {
                    if tty {
                        stderr!("\r\x1b[2K");
                    }
                    stderr_line!("{line}");
                }
                if let Some(phase) = ended {
                    for line in phase_result_lines(&consumer, phase) {
                        if tty {
                            stderr!("\r\x1b[2K");
                        }
                        stderr_line!("{line}");
                    }
                }
            }
            Ok(msg) => {
                if let Some(Msg::Signal(signal)) = consumer.take(msg) {
                    if live.request_stop(stop::cause_of(signal), &mut consumer) == StopStep::AtOnce
                    {
                        live.end_at_once(&mut consumer);
                        stderr_line!("\nvmbench: ended at once; recording: {}", path.display());
                        crate::provision::teardown_active();
                        std::process::exit(stop::AT_ONCE_STATUS);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if live.watch_stop(&mut consumer) {
            break;
        }
        let every = if tty {
            Duration::from_millis(500)
        } else {
            PROGRESS_LINE_EVERY
        };
        if last_progress.elapsed() >= every {
            last_progress = Instant::now();
            let line = progress_line(&consumer, tty);
            if tty {
                stderr!("\r\x1b[2K{line}");
            } else {
                stderr_line!("{line}");
            }
        }
    }
    if tty {
        stderr!("\n");
    }
    live.shutdown();
    consumer.close()?;
    stderr_line!("vmbench: recording saved to {}", path.display());
    report_failures(&consumer)
}

/// Warnings, errors and guests' changes of state are echoed as they happen.
fn headless_echo(event: &Event, session: &crate::model::Session) -> Option<String> {
    match event {
        Event::Log { t, level, text } if *level != LogLevel::Info => {
            let level = if *level == LogLevel::Warn {
                "warning"
            } else {
                "error"
            };
            Some(format!("[{}] {level}: {text}", clock(*t)))
        }
        Event::GuestState { t, guest, state } => {
            let state = match state {
                GuestState::Connecting => "connecting".to_string(),
                GuestState::Ready { info } => format!(
                    "ready ({} {}, connected in {:.0} ms)",
                    info.arch, info.kernel, info.connect_ms
                ),
                GuestState::Failed { reason } => format!("failed: {reason}"),
                GuestState::Lost { reason } => format!("LOST: {reason}"),
                GuestState::Reconnecting { attempt } => format!("reconnecting (attempt {attempt})"),
                GuestState::Closed => "closed".to_string(),
            };
            let what = if session.hosts().contains(&guest.as_str()) {
                "host"
            } else {
                "guest"
            };
            Some(format!(
                "[{}] {what} {}: {state}",
                clock(*t),
                session.guest_label(guest)
            ))
        }
        Event::SessionEnded { t, reason } if !reason.is_empty() => {
            Some(format!("[{}] session ended: {reason}", clock(*t)))
        }
        _ => None,
    }
}

/// The phase's result as computed once when it ended: the same figures and
/// verdict as the TUI's table, the export and the report.
fn phase_result_lines(consumer: &Consumer, phase: u32) -> Vec<String> {
    let session = &consumer.session;
    session
        .results
        .phases
        .iter()
        .filter(|r| r.phase == phase + 1)
        .map(|r| {
            let verdict = r
                .flag
                .as_ref()
                .map_or_else(|| "ok".to_string(), |f| format!("left out: {f}"));
            format!(
                "phase {}/{} {} x{} rep {}: {} all copies {}, per copy {}, {} of {} copies \
                 measured, skew {}, {}; {verdict}",
                r.phase,
                session.header.schedule.len(),
                r.benchmark,
                r.concurrency,
                r.repetition,
                r.metric,
                figure(r.aggregate, &r.unit),
                figure(r.per_guest_mean, &r.unit),
                r.contributing,
                r.copies,
                crate::format::skew_with_clock(r.skew_ms, r.clock_uncertainty_ms),
                r.outcome,
            )
        })
        .collect()
}

fn progress_line(consumer: &Consumer, bar: bool) -> String {
    let session = &consumer.session;
    let total: u64 = session
        .header
        .schedule
        .iter()
        .map(|p| p.duration)
        .sum::<u64>()
        .max(1);
    let left = session.remaining();
    let done = 1.0 - left as f64 / total as f64;
    let phase = session
        .current_phase()
        .map(|p| {
            format!(
                "phase {}/{} {} x{} rep {}",
                p.id + 1,
                session.header.schedule.len(),
                p.benchmark,
                p.concurrency,
                p.repetition
            )
        })
        .unwrap_or_else(|| "between phases".into());
    let gauge = if bar {
        let filled = (done.clamp(0.0, 1.0) * 24.0).round() as usize;
        format!("[{}{}] ", "#".repeat(filled), "-".repeat(24 - filled))
    } else {
        String::new()
    };
    format!(
        "{gauge}{:>3.0}% {phase}  elapsed {}  left {}",
        done * 100.0,
        clock(session.now),
        clock(left)
    )
}
