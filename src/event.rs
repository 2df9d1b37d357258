//! The one vocabulary of a session: everything that happens is an [`Event`].
//! Producers (sampler, orchestrator, replay) send them; the model and the
//! recorder fold them. Nothing else crosses module boundaries at run time.

use serde::{Deserialize, Serialize};

/// Nanoseconds on CLOCK_MONOTONIC since the session started.
pub type Nanos = u64;
pub type SeriesId = u32;
pub type RunId = u32;
pub type PhaseId = u32;

pub const NANOS_PER_SEC: f64 = 1e9;

/// Whether a series only ever grows (kernel counters, from which rates are
/// derived) or is a level read as it is (memory in use).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    Counter,
    Gauge,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SeriesDef {
    pub id: SeriesId,
    /// Where the value comes from: `host`, `host/cpu0`, `host/net/eth0`,
    /// `host/disk/vda`, `run/3` (a benchmark copy's process).
    pub source: String,
    pub metric: String,
    pub unit: String,
    pub kind: SeriesKind,
}

/// Raw cumulative counters read at one instant. Rates are derived later.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Sample {
    pub t: Nanos,
    pub values: Vec<(SeriesId, u64)>,
}

/// One figure a workload reports. Progress arrives as a cumulative amount of
/// work `done` (operations, bytes); its rate in `unit` is `done/s × scale`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct MetricDef {
    pub name: String,
    pub unit: String,
    pub scale: f64,
    pub higher_is_better: bool,
    /// The tool's own end figure is the measurement (iperf3's receiver
    /// total: the live progress is the sender's); a phase's aggregate is
    /// then the sum of those figures, not of its window rates.
    #[serde(default)]
    pub result_is_total: bool,
}

impl MetricDef {
    pub fn rate(&self, done_delta: f64, elapsed: Nanos) -> f64 {
        if elapsed == 0 {
            return 0.0;
        }
        done_delta / (elapsed as f64 / NANOS_PER_SEC) * self.scale
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RunOutcome {
    Completed,
    Failed { reason: String },
    Cancelled,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PhaseOutcome {
    Completed,
    /// Some copies failed; the others finished.
    Partial,
    Failed,
    TimedOut,
    /// The operator moved on to the next phase.
    Skipped,
    /// The operator stopped the phase and held the plan.
    Aborted,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    SeriesDefined(SeriesDef),
    Sample(Sample),
    PhaseStarted {
        t: Nanos,
        phase: PhaseId,
        benchmark: String,
        workload: String,
        concurrency: u32,
        repetition: u32,
        duration: Nanos,
    },
    /// A copy of the phase's benchmark exists and waits at the barrier.
    RunSpawned {
        t: Nanos,
        run: RunId,
        phase: PhaseId,
        copy: u32,
        guest: String,
        technology: String,
        pid: Option<u32>,
        metrics: Vec<MetricDef>,
        /// For network workloads, the kind of path its traffic takes on
        /// this host (`loopback`, `bridge vmbt0`, `nic eth0`, `virtual
        /// tap3`): a comparison of different kinds measures different things.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// How far its machine's clock offset may be off (half the best
        /// round trip that measured it; 0 on this host): its start stamp,
        /// moved onto this host's clock, is that uncertain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clock_uncertainty: Option<Nanos>,
    },
    /// The external tool a copy runs and the version it reported.
    RunTool {
        t: Nanos,
        run: RunId,
        tool: String,
        version: String,
    },
    /// When the copy's measured work began: `t` on this host's clock, and
    /// `machine_ns` the copy's own reading of its machine's monotonic clock
    /// (`t` is it moved by the clock offset measured for that machine), kept
    /// so that a start skew can be judged on raw stamps where clocks are
    /// shared, or recomputed with another offset.
    RunStarted {
        t: Nanos,
        run: RunId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        machine_ns: Option<u64>,
    },
    Progress {
        t: Nanos,
        run: RunId,
        metric: u16,
        done: f64,
    },
    /// The figure the benchmark tool itself reports at its end.
    RunResult {
        t: Nanos,
        run: RunId,
        metric: String,
        value: f64,
        unit: String,
    },
    RunEnded {
        t: Nanos,
        run: RunId,
        #[serde(flatten)]
        outcome: RunOutcome,
    },
    PhaseEnded {
        t: Nanos,
        phase: PhaseId,
        outcome: PhaseOutcome,
    },
    Note {
        t: Nanos,
        text: String,
    },
    Log {
        t: Nanos,
        level: LogLevel,
        text: String,
    },
    /// The session is over; `reason` says how it ended (the plan ran out,
    /// the operator or a signal stopped it, the recording failed). Older
    /// recordings have none.
    SessionEnded {
        t: Nanos,
        #[serde(default)]
        reason: String,
    },
    /// A guest's connection: connecting, ready (with what was learned), failed.
    GuestState {
        t: Nanos,
        guest: String,
        #[serde(flatten)]
        state: GuestState,
    },
    /// A guest's clock offset measured again before a phase: its copies'
    /// stamps are converted with it, and `drift` is how far it moved since
    /// the guest was brought up.
    GuestClock {
        t: Nanos,
        guest: String,
        offset_ns: i64,
        uncertainty_ns: u64,
        drift_ns: i64,
    },
    /// Every copy of the phase was set up and released at this instant.
    PhaseReleased {
        t: Nanos,
        phase: PhaseId,
    },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GuestState {
    Connecting,
    Ready {
        info: Box<GuestInfo>,
    },
    Failed {
        reason: String,
    },
    /// The connection broke after the guest was ready: its running copies
    /// failed, and later phases do not run on it unless it reconnects.
    Lost {
        reason: String,
    },
    /// A lost guest being connected again before a phase (`reconnect = true`).
    Reconnecting {
        attempt: u32,
    },
    Closed,
}

/// How a fleet's guests were made, kept in the session's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FleetRecord {
    pub name: String,
    /// `netns`, `nspawn`, `qemu`.
    pub technology: String,
    /// What the comparison calls its guests.
    pub label: String,
    /// The tool that made them and its version (QEMU with its accelerator).
    pub tool: String,
    /// The id its resources are named by.
    pub session: String,
    pub count: u32,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_mib: u32,
    pub placement: String,
    /// The guest image's folder and the inputs it was built from.
    pub image: Option<String>,
    pub guests: Vec<FleetGuestRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FleetGuestRecord {
    pub name: String,
    pub address: String,
    /// The host cores it was placed on, when placed.
    pub cores: Option<String>,
    /// `ready`, or why it was left out.
    pub outcome: String,
}

/// What vmbench learned about a guest while preparing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestInfo {
    pub address: String,
    /// This host's address as the guest sees it.
    pub local_ip: std::net::IpAddr,
    pub arch: String,
    pub kernel: String,
    pub connect_ms: f64,
    /// Guest CLOCK_MONOTONIC minus host CLOCK_MONOTONIC, measured over the
    /// round trip with the smallest delay; None when it cannot be measured.
    pub clock_offset_ns: Option<i64>,
    pub clock_rtt_ns: Option<u64>,
    /// Where this binary was put on the guest, or why it could not run there.
    pub vmbench: Result<String, String>,
    /// What the guest is, as it sees itself; older recordings have none.
    #[serde(default)]
    pub shape: Option<GuestShape>,
    /// Its kernel's boot id: a guest whose is this host's shares this
    /// host's kernel (a namespace, a container) and sees its block devices.
    #[serde(default)]
    pub boot_id: Option<String>,
}

/// A guest's shape at bring-up: guests compared as one technology should
/// have the same, and a disk workload's data set is judged against its RAM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestShape {
    pub vcpus: u32,
    pub memory_bytes: u64,
    /// How it is virtual as it sees itself (CPU flag, /sys/hypervisor,
    /// firmware); None when it sees nothing virtual.
    pub virtualization: Option<String>,
    /// `interface=driver` of each network device with a driver.
    pub nics: Vec<String>,
    /// `device=driver` of each block device with a driver.
    pub disks: Vec<String>,
}

impl GuestShape {
    /// The shape in a few words: vCPUs, RAM (to a tenth of a GiB, so that
    /// kernels' small reservations do not split identical guests), and the
    /// drivers of its NICs and disks, counted (without device names, which
    /// differ between identical guests).
    pub fn describe(&self) -> String {
        let mut drivers: Vec<&str> = self
            .nics
            .iter()
            .chain(&self.disks)
            .map(|d| d.split_once('=').map_or(d.as_str(), |(_, driver)| driver))
            .collect();
        drivers.sort_unstable();
        let mut text = self.size();
        let mut i = 0;
        while i < drivers.len() {
            let same = drivers[i..]
                .iter()
                .take_while(|d| **d == drivers[i])
                .count();
            text.push_str(", ");
            if same > 1 {
                text.push_str(&format!("{same}× "));
            }
            text.push_str(drivers[i]);
            i += same;
        }
        text
    }

    /// vCPUs and RAM: what guests of different technologies compared
    /// with each other should share.
    pub fn size(&self) -> String {
        format!(
            "{} vCPU, {:.1} GiB",
            self.vcpus,
            self.memory_bytes as f64 / f64::from(1u32 << 30)
        )
    }
}

impl PhaseOutcome {
    /// The name used in recordings and exports.
    pub fn name(self) -> &'static str {
        match self {
            PhaseOutcome::Completed => "completed",
            PhaseOutcome::Partial => "partial",
            PhaseOutcome::Failed => "failed",
            PhaseOutcome::TimedOut => "timed_out",
            PhaseOutcome::Skipped => "skipped",
            PhaseOutcome::Aborted => "aborted",
        }
    }
}

impl Event {
    /// The `type` of its serde form, which the recording indexes events by.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::SeriesDefined(_) => "series_defined",
            Event::Sample(_) => "sample",
            Event::PhaseStarted { .. } => "phase_started",
            Event::RunSpawned { .. } => "run_spawned",
            Event::RunStarted { .. } => "run_started",
            Event::RunTool { .. } => "run_tool",
            Event::Progress { .. } => "progress",
            Event::RunResult { .. } => "run_result",
            Event::RunEnded { .. } => "run_ended",
            Event::PhaseEnded { .. } => "phase_ended",
            Event::Note { .. } => "note",
            Event::Log { .. } => "log",
            Event::SessionEnded { .. } => "session_ended",
            Event::GuestState { .. } => "guest_state",
            Event::GuestClock { .. } => "guest_clock",
            Event::PhaseReleased { .. } => "phase_released",
        }
    }

    /// When the event happened; series definitions carry no time of their own.
    pub fn t(&self) -> Option<Nanos> {
        match self {
            Event::SeriesDefined(_) => None,
            Event::Sample(s) => Some(s.t),
            Event::PhaseStarted { t, .. }
            | Event::RunSpawned { t, .. }
            | Event::RunStarted { t, .. }
            | Event::RunTool { t, .. }
            | Event::Progress { t, .. }
            | Event::RunResult { t, .. }
            | Event::RunEnded { t, .. }
            | Event::PhaseEnded { t, .. }
            | Event::Note { t, .. }
            | Event::Log { t, .. }
            | Event::SessionEnded { t, .. }
            | Event::GuestState { t, .. }
            | Event::GuestClock { t, .. }
            | Event::PhaseReleased { t, .. } => Some(*t),
        }
    }
}

/// Reads CLOCK_MONOTONIC, the one clock of a session. Raw readings are
/// comparable across processes on the same host, which lets a benchmark copy
/// stamp its own start instead of the parent stamping the pipe's arrival.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(rc, 0, "CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The session clock: monotonic nanoseconds since the session began.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: u64,
}

impl Clock {
    pub fn start() -> Self {
        Clock {
            origin: monotonic_ns(),
        }
    }

    /// A clock whose zero is `origin` on CLOCK_MONOTONIC: a recording's
    /// (its header names it), or a fixed one for a recording made by hand.
    pub fn starting_at(origin: u64) -> Self {
        Clock { origin }
    }

    pub fn now(&self) -> Nanos {
        self.from_monotonic(monotonic_ns())
    }

    pub fn from_monotonic(&self, raw: u64) -> Nanos {
        raw.saturating_sub(self.origin)
    }

    pub fn to_monotonic(&self, t: Nanos) -> u64 {
        self.origin + t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_serde_form() {
        let event = Event::PhaseEnded {
            t: 1,
            phase: 0,
            outcome: PhaseOutcome::TimedOut,
        };
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["type"], event.kind());
        assert_eq!(json["outcome"], PhaseOutcome::TimedOut.name());
    }
}
