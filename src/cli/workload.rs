//! The hidden commands vmbench runs on guests: a benchmark copy
//! (`workload`) and the sampling agent (`agent`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::workload::{builtin, gate};

#[derive(Args)]
pub(super) struct WorkloadArgs {
    #[command(subcommand)]
    pub(super) kind: WorkloadKind,
}

#[derive(Args)]
pub(super) struct Timed {
    /// Wait for one byte on stdin (the barrier) before starting.
    #[arg(long)]
    pub(super) gate: bool,
    #[arg(long, default_value_t = 10_000)]
    pub(super) duration_ms: u64,
}

#[derive(Subcommand)]
pub(super) enum WorkloadKind {
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

/// Runs a built-in workload's copy or the gate around a tool (launched by
/// the orchestrator); the exit code is the copy's.
pub(super) fn workload(kind: WorkloadKind) -> ExitCode {
    let ms = Duration::from_millis;
    let status = builtin::run_child(|| match kind {
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
    });
    ExitCode::from(status as u8)
}

#[derive(Args)]
pub(super) struct AgentArgs {
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
    /// This guest shares its host's kernel: its disks are only the devices
    /// its mounts are on.
    #[arg(long)]
    mounted_disks_only: bool,
    /// End after this long without a heartbeat from the host on stdin.
    #[arg(long, default_value_t = 15_000)]
    silence_ms: u64,
}

/// Samples this machine's /proc and streams it on stdout until the host
/// closes the channel (how an agent is told to stop) or falls silent.
pub(super) fn agent(args: AgentArgs) -> ExitCode {
    let interval = Duration::from_nanos(args.interval_ns.max(1_000_000));
    let host_seen = match args.host_seen.map(|text| toml::from_str(&text)).transpose() {
        Ok(guests) => guests,
        Err(e) => {
            stderr_line!("vmbench agent: --host-seen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ended = crate::sample::agent::run_agent(
        interval,
        args.grid_phase_ns,
        Duration::from_millis(args.silence_ms),
        host_seen,
        args.mounted_disks_only,
        std::io::stdin(),
        &mut std::io::stdout().lock(),
    );
    match ended {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            stderr_line!("vmbench agent: {e}");
            ExitCode::FAILURE
        }
        Ok(()) => ExitCode::SUCCESS,
    }
}
