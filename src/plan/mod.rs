//! The TOML plan: guests, benchmarks and the sweep. Parsing errors name the
//! file, line, column and field; the embedded default plan runs when the user
//! gives none.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::input::{InputError, parse_toml};
use crate::workload::WorkloadSpec;

mod fleet;
mod hosts;
mod inventory;
mod phases;
pub use fleet::{Fleet, FleetTechnology, Placement};
pub use hosts::{HOST_TECHNOLOGY, Host, HostSeenGuests};
pub use inventory::InventorySpec;
pub use phases::PlannedPhase;

pub const DEFAULT_PLAN_NAME: &str = "<embedded default plan>";
pub const DEFAULT_PLAN_SOURCE: &str = include_str!("../plans/default.toml");

/// The plans built into vmbench, by name: `vmbench plans NAME` prints one
/// to start a plan of one's own from, wherever vmbench is installed.
pub const BUILT_IN: [(&str, &str, &str); 3] = [
    (
        "default",
        "a short baseline of this host (what `vmbench` runs)",
        DEFAULT_PLAN_SOURCE,
    ),
    (
        "study-2009",
        "the Xen-vs-KVM study's method on 1-8 guests (edit its guests)",
        include_str!("../plans/study-2009.toml"),
    ),
    (
        "technologies",
        "bare metal against six technologies whose guests vmbench makes, 1-4 guests",
        include_str!("../plans/technologies.toml"),
    ),
];

pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// How often counters are sampled.
    #[serde(default = "default_interval")]
    pub interval: Interval,
    /// `planned` (benchmarks in plan order, concurrency levels in order,
    /// repetitions innermost) or `random` (all phases shuffled, so that a
    /// drift over the session, such as a warming machine, spreads evenly).
    #[serde(default)]
    pub order: Order,
    /// The shuffle's seed; without it a random one is used and logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, rename = "guest")]
    pub guests: Vec<Guest>,
    /// Guests and hosts taken from an Ansible inventory as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<InventorySpec>,
    /// Hypervisor hosts other than this machine, on which guests run.
    #[serde(default, rename = "host", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Host>,
    /// Guests vmbench makes, measures and removes itself.
    #[serde(default, rename = "fleet", skip_serializing_if = "Vec::is_empty")]
    pub fleets: Vec<Fleet>,
    #[serde(rename = "benchmark")]
    pub benchmarks: Vec<Benchmark>,
}

/// A guest, or the host itself for the baseline. (serde cannot deny unknown
/// keys through `flatten`, so every key is a field here.)
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Guest {
    pub name: toml::Spanned<String>,
    pub transport: Transport,
    /// What the comparison groups by: `bare-metal`, `kvm`, `xen-hvm`, ...
    pub technology: String,

    // How vmbench reaches an `ssh` guest.
    /// Host name or IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default = "ssh_port")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A private key file; without it the SSH agent, then ~/.ssh/id_ed25519,
    /// id_ecdsa and id_rsa are tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Defaults to ~/.ssh/known_hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
    /// How vmbench reaches an `exec` guest: the command line that runs a
    /// command inside it, e.g. `["ip", "netns", "exec", "g1"]`; the
    /// command follows as `sh -c SCRIPT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,

    // How the host sees the guest; each part given becomes host-seen series.
    /// Its tap or veth interface on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Its disk as the host sees it: a block device such as `loop3`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_device: Option<String>,
    /// ...or the image file behind a loop device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Its cgroup path, the same under cgroup v2 and each v1 hierarchy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Its process: a pid, a pid file, or a regular expression over
    /// /proc/*/cmdline (arguments joined by spaces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pidfile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// A Xen domain's name: its CPU, network and disk counters come from
    /// xentop on this dom0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xen_domain: Option<String>,
    /// Find this guest among the host's QEMU, libvirt and Xen guests (by
    /// name, or by the MAC its address answers from) and fill in what the
    /// keys above leave out; `technology = "auto"` then names its
    /// hypervisor and accelerator (`qemu-kvm`, `qemu-tcg`, `xen`).
    #[serde(default)]
    pub discover: bool,

    // What happens when an `ssh` guest's connection breaks.
    /// How often the connection is probed; a guest whose side stays silent
    /// for `keepalive_count` probes is lost (default 5s × 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<PlanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_count: Option<Count>,
    /// Connect a lost guest again before the next phase that needs it (a
    /// rebooted VM, a restarted sshd): host key checked, vmbench uploaded
    /// and the clock measured anew. Without it, later copies on a lost
    /// guest fail at once.
    #[serde(default)]
    pub reconnect: bool,
    /// Attempts per phase (default 3), the first after `reconnect_backoff`
    /// (default 2s), each later one waiting twice as long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_attempts: Option<Count>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_backoff: Option<PlanDuration>,

    /// How an `ssh` guest's own counters are read: by vmbench's agent on
    /// the guest (the default), over SFTP (where vmbench cannot run), or
    /// not at all (host-seen only).
    #[serde(default)]
    pub sampling: GuestSampling,
    /// The `[[host]]` this guest runs on, whose agent sees its host side;
    /// without it, this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The `[[fleet]]` that makes this guest (never written in a plan: a
    /// fleet's guests come from its entry).
    #[serde(skip)]
    pub fleet: Option<String>,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum GuestSampling {
    #[default]
    Agent,
    Sftp,
    Off,
}

fn ssh_port() -> u16 {
    22
}

impl Guest {
    /// A guest reached over SSH, every key not given at its default (what
    /// a `[[host]]` and a fleet's guests are to the session).
    pub fn over_ssh(
        name: toml::Spanned<String>,
        technology: String,
        address: String,
        port: u16,
        user: Option<String>,
    ) -> Guest {
        Guest {
            name,
            transport: Transport::Ssh,
            technology,
            address: Some(address),
            port,
            user,
            identity: None,
            known_hosts: None,
            exec: None,
            interface: None,
            block_device: None,
            image: None,
            cgroup: None,
            pid: None,
            pidfile: None,
            process: None,
            xen_domain: None,
            discover: false,
            keepalive: None,
            keepalive_count: None,
            reconnect: false,
            reconnect_attempts: None,
            reconnect_backoff: None,
            sampling: GuestSampling::Agent,
            host: None,
            fleet: None,
        }
    }

    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// Where to connect, as `address:port` (IPv6 in brackets).
    pub fn socket_text(&self) -> String {
        let address = self.address.as_deref().unwrap_or("");
        if address.contains(':') {
            format!("[{address}]:{}", self.port)
        } else {
            format!("{address}:{}", self.port)
        }
    }

    pub fn known_hosts_path(&self) -> PathBuf {
        expand_home(self.known_hosts.as_deref().unwrap_or("~/.ssh/known_hosts"))
    }

    pub fn identity_path(&self) -> Option<PathBuf> {
        self.identity.as_deref().map(expand_home)
    }

    pub fn has_host_identity(&self) -> bool {
        self.interface.is_some()
            || self.block_device.is_some()
            || self.image.is_some()
            || self.cgroup.is_some()
            || self.pid.is_some()
            || self.pidfile.is_some()
            || self.process.is_some()
            || self.xen_domain.is_some()
            || self.discover
    }
}

pub use crate::input::expand_home;

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// The host itself: the bare-metal baseline.
    Local,
    /// A guest reached over SSH.
    Ssh,
    /// A guest reached through a command that runs a command inside it
    /// (`ip netns exec NAME`, `nsenter -t PID -a`, `kubectl exec -i POD --`):
    /// containers and pods without sshd.
    Exec,
}

impl Transport {
    /// Reached through a link of its own (SSH or a command), prepared and
    /// sampled as a guest is; only the baseline is not.
    pub fn is_remote(self) -> bool {
        self != Transport::Local
    }
}

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Benchmark {
    pub name: String,
    pub workload: WorkloadSpec,
    pub duration: PlanDuration,
    pub concurrency: Concurrency,
    #[serde(default = "one")]
    pub repetitions: Count,
    /// A phase still running this long after its release is stopped and
    /// recorded as timed out. Defaults to twice the duration plus 30 s.
    #[serde(default)]
    pub timeout: Option<PlanDuration>,
    /// Guests the copies run on, in order; copy i of a phase runs on guest
    /// i mod len of those of the phase's technology. Defaults to every
    /// guest of the plan.
    #[serde(default)]
    pub guests: Vec<toml::Spanned<String>>,
    /// Repeat each concurrency level beyond `repetitions` until the relative
    /// standard deviation of its aggregates is under this share ("5%")...
    #[serde(default)]
    pub until_rsd: Option<Share>,
    /// ...or it has run this many times (default 10).
    #[serde(default)]
    pub max_repetitions: Option<toml::Spanned<Count>>,
    /// Run copies on guests of every technology together in one phase
    /// (copy i on guest i mod len of all its guests), instead of once per
    /// technology.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mix_technologies: bool,
}

#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    #[default]
    Planned,
    Random,
}

/// A share written as a percentage, "5%", above 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share(pub f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.strip_suffix('%')
            .and_then(|p| p.trim().parse::<f64>().ok())
            .filter(|p| *p > 0.0 && *p < 100.0)
            .map(|p| Share(p / 100.0))
            .ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not a percentage such as \"5%\""))
            })
    }
}

impl Serialize for Share {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}%", self.0 * 100.0))
    }
}

/// Repetitions an adaptive benchmark stops at when its spread stays high.
pub const DEFAULT_MAX_REPETITIONS: u32 = 10;

impl Benchmark {
    /// The bound and the most repetitions, for a benchmark that repeats
    /// until its figures settle.
    pub fn adaptive(&self) -> Option<(f64, u32)> {
        let bound = self.until_rsd?.0;
        let max = self
            .max_repetitions
            .as_ref()
            .map_or(DEFAULT_MAX_REPETITIONS, |m| m.get_ref().0);
        Some((bound, max.max(self.repetitions.0)))
    }

    pub fn timeout(&self) -> Duration {
        self.timeout_for(1)
    }

    /// How long a phase of `copies` copies may run: the plan's timeout, or
    /// twice the duration plus 30 s, and for a tool that runs until its data
    /// set is done (bonnie++) at least 1.5 × what that takes on a disk all
    /// copies share at a conservative rate, plus a minute.
    pub fn timeout_for(&self, copies: u32) -> Duration {
        if let Some(t) = &self.timeout {
            return t.0;
        }
        let base = self.duration.0 * 2 + Duration::from_secs(30);
        match self.expected_length(copies) {
            Some(expected) => base.max(expected.mul_f64(1.5) + Duration::from_secs(60)),
            None => base,
        }
    }

    /// What a run-to-completion workload of `copies` copies is expected to
    /// take on one disk shared at `SHARED_DISK_RATE`; None for workloads
    /// that stop at their duration (or whose data set is the guest's RAM,
    /// unknown until it is reached).
    pub fn expected_length(&self, copies: u32) -> Option<Duration> {
        let bytes = self.workload.bytes_to_completion()?;
        Some(Duration::from_secs_f64(
            bytes as f64 * f64::from(copies) / SHARED_DISK_RATE,
        ))
    }
}

/// A conservative rate for a disk every copy shares (one spinning disk
/// under several guests), in bytes per second.
pub const SHARED_DISK_RATE: f64 = 100e6;

fn default_interval() -> Interval {
    Interval(PlanDuration(Duration::from_secs(1)))
}

fn one() -> Count {
    Count(1)
}

/// A human duration such as `10s`, `2m` or `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanDuration(pub Duration);

impl<'de> Deserialize<'de> for PlanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let parsed = humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write it like \"10s\", \"2m\" or \"500ms\""
            ))
        })?;
        if parsed.is_zero() {
            return Err(serde::de::Error::custom(
                "a duration must be longer than 0s",
            ));
        }
        Ok(PlanDuration(parsed))
    }
}

impl Serialize for PlanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// The sampling interval, bounded so that a typo cannot make the sampler
/// disturb what it measures (too fast) or see nothing (too slow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interval(pub PlanDuration);

impl Interval {
    pub fn get(&self) -> Duration {
        self.0.0
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dur = PlanDuration::deserialize(d)?;
        if dur.0 < MIN_INTERVAL || dur.0 > MAX_INTERVAL {
            return Err(serde::de::Error::custom(format!(
                "interval {} is outside 100ms..60s",
                humantime::format_duration(dur.0)
            )));
        }
        Ok(Interval(dur))
    }
}

/// A positive whole number (repetitions, concurrency levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Count(pub u32);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if !(1..=4096).contains(&n) {
            return Err(serde::de::Error::custom(format!(
                "{n} is not a count from 1 to 4096"
            )));
        }
        Ok(Count(n as u32))
    }
}

/// Numbers of concurrent copies to sweep: a list such as `[1, 2, 4, 8]`
/// (whose entries may be relative to this host's core count: `"cores"`,
/// `"cores-1"`, `"cores+1"`), `"up-to-cores"` for 1, 2, 4, ... up to and
/// including the core count, or `"around-cores"` for 1, 2, 4, ... then
/// cores − 1, cores and cores + 1: the study's question of whether the
/// hypervisor needs a core of its own. Resolved when a session starts, on
/// the host it runs on; the header's schedule keeps what it became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Concurrency {
    List(Vec<Level>),
    UpToCores,
    AroundCores,
}

/// One entry of a concurrency list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Count(u32),
    /// The host's core count plus this.
    Cores(i32),
}

impl Level {
    fn resolve(self, cores: u32) -> u32 {
        match self {
            Level::Count(n) => n,
            Level::Cores(delta) => (i64::from(cores) + i64::from(delta)).clamp(1, 4096) as u32,
        }
    }

    fn parse(word: &str) -> Option<Level> {
        let rest = word.trim().strip_prefix("cores")?.trim();
        if rest.is_empty() {
            return Some(Level::Cores(0));
        }
        let (sign, digits) = match rest.split_at(1) {
            ("+", d) => (1, d),
            ("-", d) => (-1, d),
            _ => return None,
        };
        let n: i32 = digits
            .trim()
            .parse()
            .ok()
            .filter(|n| (0..=4096).contains(n))?;
        Some(Level::Cores(sign * n))
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Level::Count(n) => write!(f, "{n}"),
            Level::Cores(0) => f.write_str("cores"),
            Level::Cores(d) => write!(f, "cores{d:+}"),
        }
    }
}

/// 1, 2, 4, ... below `limit`.
fn powers_of_two_below(limit: u32) -> impl Iterator<Item = u32> {
    std::iter::successors(Some(1u32), |n| n.checked_mul(2)).take_while(move |n| *n < limit)
}

impl Concurrency {
    /// The numbers of copies on a host with `cores` cores, each once, in the
    /// order given.
    pub fn levels(&self, cores: usize) -> Vec<u32> {
        let cores = cores.clamp(1, 4096) as u32;
        let all: Vec<u32> = match self {
            Concurrency::List(list) => list.iter().map(|l| l.resolve(cores)).collect(),
            Concurrency::UpToCores => powers_of_two_below(cores).chain([cores]).collect(),
            Concurrency::AroundCores => powers_of_two_below(cores - 1)
                .chain([cores - 1, cores, cores + 1])
                .filter(|n| *n >= 1)
                .collect(),
        };
        let mut levels = Vec::with_capacity(all.len());
        for n in all {
            if !levels.contains(&n) {
                levels.push(n);
            }
        }
        levels
    }

    /// Whether the levels depend on the host's core count.
    pub fn follows_cores(&self) -> bool {
        match self {
            Concurrency::List(list) => list.iter().any(|l| matches!(l, Level::Cores(_))),
            Concurrency::UpToCores | Concurrency::AroundCores => true,
        }
    }
}

impl std::fmt::Display for Concurrency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Concurrency::List(list) => {
                let entries: Vec<String> = list.iter().map(ToString::to_string).collect();
                write!(f, "[{}]", entries.join(", "))
            }
            Concurrency::UpToCores => f.write_str("up-to-cores"),
            Concurrency::AroundCores => f.write_str("around-cores"),
        }
    }
}

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entry {
            Count(i64),
            Word(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<Entry>),
            Word(String),
        }
        let bad = || {
            serde::de::Error::custom(
                "concurrency must be \"up-to-cores\", \"around-cores\" or a non-empty list of counts \
                 such as [1, 2, 4] (entries may be \"cores\", \"cores-1\", \"cores+1\")",
            )
        };
        match Raw::deserialize(d).map_err(|_| bad())? {
            Raw::Word(w) if w == "up-to-cores" => Ok(Concurrency::UpToCores),
            Raw::Word(w) if w == "around-cores" => Ok(Concurrency::AroundCores),
            Raw::Word(_) => Err(bad()),
            Raw::List(list) if list.is_empty() => Err(bad()),
            Raw::List(list) => list
                .into_iter()
                .map(|entry| match entry {
                    Entry::Count(n) if (1..=4096).contains(&n) => Ok(Level::Count(n as u32)),
                    Entry::Count(n) => Err(serde::de::Error::custom(format!(
                        "concurrency {n} is not a count from 1 to 4096"
                    ))),
                    Entry::Word(w) => Level::parse(&w).ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "concurrency {w:?} is not a count, \"cores\", \"cores-N\" or \"cores+N\""
                        ))
                    }),
                })
                .collect::<Result<_, _>>()
                .map(Concurrency::List),
        }
    }
}

impl Serialize for Concurrency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Concurrency::List(list) => list.serialize(s),
            Concurrency::UpToCores | Concurrency::AroundCores => s.collect_str(self),
        }
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Level::Count(n) => s.serialize_u32(n),
            Level::Cores(_) => s.collect_str(self),
        }
    }
}

pub type PlanError = InputError;

/// A plan together with the text it came from, which the recording keeps.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub plan: Plan,
    pub source: String,
    pub origin: String,
    /// How the plan's fleets were made, once they were (the header keeps it).
    pub made: Vec<crate::event::FleetRecord>,
}

impl LoadedPlan {
    pub fn embedded_default() -> Self {
        Self::parse(DEFAULT_PLAN_SOURCE, DEFAULT_PLAN_NAME)
            .expect("the embedded default plan is valid (checked by a test)")
    }

    pub fn from_file(path: &Path) -> Result<Self, PlanError> {
        let origin = path.display().to_string();
        let source =
            std::fs::read_to_string(path).map_err(|e| InputError::unreadable(&origin, &e))?;
        Self::parse(&source, &origin)
    }

    pub fn load(path: Option<&PathBuf>) -> Result<Self, PlanError> {
        match path {
            Some(p) => Self::from_file(p),
            None => Ok(Self::embedded_default()),
        }
    }

    pub fn parse(source: &str, origin: &str) -> Result<Self, PlanError> {
        let mut plan: Plan = parse_toml(source, origin)?;
        // The inventory's members are written into the text, which is then
        // read as a whole (and, marked, never expanded again).
        if let Some(spec) = &plan.inventory
            && !source
                .lines()
                .any(|line| line.starts_with(inventory::EXPANDED_MARK))
        {
            let entries = inventory::expand(spec, origin).map_err(|message| {
                InputError::at(source, origin, None, "inventory.file".into(), message)
            })?;
            return Self::parse(&format!("{source}{entries}"), origin);
        }
        // A fleet's guests follow the listed ones, fleet by fleet.
        for (index, fleet) in plan.fleets.iter().enumerate() {
            let twin = plan.fleets[..index]
                .iter()
                .find(|other| other.name() == fleet.name() || other.label() == fleet.label());
            let same_range = plan.fleets[..index]
                .iter()
                .enumerate()
                .find(|(i, other)| other.network(*i) == fleet.network(index))
                .map(|(_, other)| {
                    (
                        "addresses",
                        format!(
                            "fleets {:?} and {:?} are both on {}.0/24: each fleet needs a range \
                             of its own (its bridge routes it)",
                            other.name(),
                            fleet.name(),
                            fleet.network(index)
                        ),
                    )
                });
            let refusal = fleet.refusal(index).or(same_range).or_else(|| {
                twin.map(|other| {
                    (
                        "label",
                        format!(
                            "fleets {:?} and {:?} have the same name or technology label {:?}: \
                             phases run per technology, so give one a `label` (or a name) of \
                             its own",
                            other.name(),
                            fleet.name(),
                            fleet.label()
                        ),
                    )
                })
            });
            if let Some((field, message)) = refusal {
                return Err(InputError::at(
                    source,
                    origin,
                    Some(fleet.name.span()),
                    format!("fleet[{index}].{field}"),
                    message,
                ));
            }
        }
        let made: Vec<Guest> = plan
            .fleets
            .iter()
            .enumerate()
            .flat_map(|(index, fleet)| fleet.guests(index))
            .collect();
        plan.guests.extend(made);
        validate(&plan).map_err(|(span, field, message)| {
            InputError::at(source, origin, Some(span), field, message)
        })?;
        Ok(LoadedPlan {
            plan,
            source: source.to_string(),
            origin: origin.to_string(),
            made: Vec::new(),
        })
    }
}

type Invalid = (std::ops::Range<usize>, String, String);

/// Rules that cross fields, which serde cannot see one field at a time.
fn validate(plan: &Plan) -> Result<(), Invalid> {
    if plan.guests.is_empty() {
        return Err((0..0, "guest".into(), "the plan names no guest".into()));
    }
    if plan.benchmarks.is_empty() {
        return Err((
            0..0,
            "benchmark".into(),
            "the plan names no benchmark".into(),
        ));
    }
    for (i, guest) in plan.guests.iter().enumerate() {
        if plan.guests[..i]
            .iter()
            .any(|g| g.name.get_ref() == guest.name.get_ref())
        {
            return Err((
                guest.name.span(),
                format!("guest[{i}].name"),
                format!("guest name {:?} is used twice", guest.name.get_ref()),
            ));
        }
    }
    for (i, guest) in plan.guests.iter().enumerate() {
        validate_guest(guest).map_err(|(field, message)| {
            (guest.name.span(), format!("guest[{i}].{field}"), message)
        })?;
    }
    hosts::validate_hosts(plan)?;
    for (b, bench) in plan.benchmarks.iter().enumerate() {
        if let Some(max) = &bench.max_repetitions {
            if bench.until_rsd.is_none() {
                return Err((
                    max.span(),
                    format!("benchmark[{b}].max_repetitions"),
                    "max_repetitions goes with until_rsd (repeat until the spread is under it)"
                        .into(),
                ));
            }
            if max.get_ref().0 < bench.repetitions.0 {
                return Err((
                    max.span(),
                    format!("benchmark[{b}].max_repetitions"),
                    format!(
                        "max_repetitions {} is below repetitions {}",
                        max.get_ref().0,
                        bench.repetitions.0
                    ),
                ));
            }
        }
        if plan.benchmarks[..b]
            .iter()
            .any(|other| other.name == bench.name)
        {
            return Err((
                0..0,
                format!("benchmark[{b}].name"),
                format!(
                    "benchmark name {:?} is used twice; results are told apart by it",
                    bench.name
                ),
            ));
        }
        for (g, name) in bench.guests.iter().enumerate() {
            if !plan
                .guests
                .iter()
                .any(|guest| guest.name.get_ref() == name.get_ref())
            {
                return Err((
                    name.span(),
                    format!("benchmark[{b}].guests[{g}]"),
                    format!("no guest is named {:?}", name.get_ref()),
                ));
            }
        }
    }
    Ok(())
}

/// Which keys go with which transport, and which exclude each other.
fn validate_guest(guest: &Guest) -> Result<(), (&'static str, String)> {
    let name = guest.name();
    match guest.transport {
        Transport::Local => {
            let ssh_keys = [
                ("exec", guest.exec.is_some()),
                ("address", guest.address.is_some()),
                ("user", guest.user.is_some()),
                ("identity", guest.identity.is_some()),
                ("known_hosts", guest.known_hosts.is_some()),
                ("keepalive", guest.keepalive.is_some()),
                ("keepalive_count", guest.keepalive_count.is_some()),
                ("reconnect", guest.reconnect),
                ("reconnect_attempts", guest.reconnect_attempts.is_some()),
                ("reconnect_backoff", guest.reconnect_backoff.is_some()),
            ];
            if let Some((key, _)) = ssh_keys.iter().find(|(_, given)| *given) {
                return Err((
                    key,
                    format!(
                        "guest {name:?} is local; `{key}` only goes with transport = \"{}\"",
                        if *key == "exec" { "exec" } else { "ssh" }
                    ),
                ));
            }
        }
        Transport::Exec => {
            // A fleet's guest gets its command when the fleet is made.
            if guest.fleet.is_none() && guest.exec.as_ref().is_none_or(|argv| argv.is_empty()) {
                return Err((
                    "exec",
                    format!(
                        "exec guest {name:?} needs `exec`, the command line that runs a command \
                         inside it (e.g. [\"ip\", \"netns\", \"exec\", \"g1\"])"
                    ),
                ));
            }
            let ssh_keys = [
                ("address", guest.address.is_some()),
                ("user", guest.user.is_some()),
                ("identity", guest.identity.is_some()),
                ("known_hosts", guest.known_hosts.is_some()),
            ];
            if let Some((key, _)) = ssh_keys.iter().find(|(_, given)| *given) {
                return Err((
                    key,
                    format!(
                        "guest {name:?} is reached by `exec`; `{key}` only goes with transport = \"ssh\""
                    ),
                ));
            }
            if guest.sampling == GuestSampling::Sftp {
                return Err((
                    "sampling",
                    format!(
                        "guest {name:?} is reached by `exec`, which has no SFTP: its counters come \
                         from vmbench's agent (sampling = \"agent\") or not at all (\"off\")"
                    ),
                ));
            }
        }
        Transport::Ssh => {
            if guest.exec.is_some() {
                return Err((
                    "exec",
                    format!(
                        "guest {name:?} is reached over SSH; `exec` goes with transport = \"exec\""
                    ),
                ));
            }
            if guest.address.as_deref().is_none_or(str::is_empty) {
                return Err(("address", format!("ssh guest {name:?} needs an address")));
            }
            if guest.user.as_deref().is_none_or(str::is_empty) {
                return Err(("user", format!("ssh guest {name:?} needs a user")));
            }
        }
    }
    if guest.keepalive_count.is_some_and(|c| c.0 < 2) {
        return Err((
            "keepalive_count",
            "at least 2: a reply always comes a little after the next probe is due".into(),
        ));
    }
    if guest
        .keepalive
        .is_some_and(|k| k.0 < Duration::from_secs(1))
    {
        return Err((
            "keepalive",
            "a keepalive under 1s would count a busy guest as lost".into(),
        ));
    }
    if (guest.reconnect_attempts.is_some() || guest.reconnect_backoff.is_some()) && !guest.reconnect
    {
        return Err((
            "reconnect_attempts",
            format!(
                "guest {name:?}: reconnect_attempts and reconnect_backoff go with reconnect = true"
            ),
        ));
    }
    if guest.technology == "auto" && !guest.discover {
        return Err((
            "technology",
            format!("guest {name:?}: technology \"auto\" needs discover = true"),
        ));
    }
    if guest.block_device.is_some() && guest.image.is_some() {
        return Err((
            "image",
            "give the guest's disk as `block_device` or as `image`, not both".into(),
        ));
    }
    let process_keys = [
        guest.pid.is_some(),
        guest.pidfile.is_some(),
        guest.process.is_some(),
    ];
    if process_keys.iter().filter(|given| **given).count() > 1 {
        return Err((
            "process",
            "give the guest's process as one of `pid`, `pidfile` or `process`".into(),
        ));
    }
    if let Some(pattern) = &guest.process {
        regex::Regex::new(pattern)
            .map_err(|e| ("process", format!("not a regular expression: {e}")))?;
    }
    Ok(())
}

impl Plan {
    /// What concurrency levels that follow the core count became on a host
    /// with `cores` cores, a line per benchmark.
    pub fn core_relative_levels(&self, cores: usize) -> Vec<String> {
        self.benchmarks
            .iter()
            .filter(|b| b.concurrency.follows_cores())
            .map(|b| {
                let levels: Vec<String> = b
                    .concurrency
                    .levels(cores)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                format!(
                    "{}: concurrency {} on {cores} cores is {}",
                    b.name,
                    b.concurrency,
                    levels.join(", ")
                )
            })
            .collect()
    }

    /// Shortens every benchmark's duration and timeout by `factor`, keeping
    /// each at least a second; the recording's schedule shows the result.
    pub fn scale_durations(&mut self, factor: f64) {
        let scale = |d: Duration| d.mul_f64(factor).max(Duration::from_secs(1));
        for bench in &mut self.benchmarks {
            // bonnie++ runs for as long as its data set takes, whatever the
            // plan says; shortening its timeout would only cut it off.
            if matches!(bench.workload, WorkloadSpec::Bonnie { .. }) {
                continue;
            }
            let timeout = bench.timeout();
            bench.duration = PlanDuration(scale(bench.duration.0));
            // The default timeout follows the new duration; a given one scales.
            if bench.timeout.is_some() {
                bench.timeout = Some(PlanDuration(scale(timeout).max(bench.duration.0 * 2)));
            }
        }
    }

    /// Benchmarks whose given timeout is likely too short for what their
    /// largest phase has to move, one line each (said by `vmbench check`).
    pub fn timeout_warnings(&self, cores: usize) -> Vec<String> {
        let mut warnings = Vec::new();
        for bench in self.benchmarks.iter().filter(|b| b.timeout.is_some()) {
            let copies = bench
                .concurrency
                .levels(cores)
                .into_iter()
                .max()
                .unwrap_or(1);
            if let Some(expected) = bench.expected_length(copies)
                && bench.timeout_for(copies) < expected
            {
                warnings.push(format!(
                    "{}: ×{copies} moves about {} at {} MB/s on a shared disk, \
                     longer than its timeout of {}",
                    bench.name,
                    humantime::format_duration(Duration::from_secs(expected.as_secs())),
                    SHARED_DISK_RATE / 1e6,
                    humantime::format_duration(bench.timeout_for(copies))
                ));
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_plan_parses() {
        let plan = LoadedPlan::embedded_default().plan;
        assert_eq!(plan.guests.len(), 1);
        assert!(plan.benchmarks.len() >= 3);
    }

    #[test]
    fn up_to_cores_doubles_and_ends_at_the_core_count() {
        assert_eq!(Concurrency::UpToCores.levels(1), vec![1]);
        assert_eq!(Concurrency::UpToCores.levels(2), vec![1, 2]);
        assert_eq!(Concurrency::UpToCores.levels(6), vec![1, 2, 4, 6]);
        assert_eq!(Concurrency::UpToCores.levels(8), vec![1, 2, 4, 8]);
    }

    #[test]
    fn copies_that_outnumber_their_guests_are_refused_or_warned_of_where_technologies_mix() {
        let plan = LoadedPlan::parse(
            "name = \"t\"\n\
             [[guest]]\nname = \"h\"\ntransport = \"local\"\ntechnology = \"b\"\n\
             [[guest]]\nname = \"v1\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\naddress = \"192.0.2.1\"\nuser = \"u\"\n\
             [[guest]]\nname = \"v2\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\naddress = \"192.0.2.2\"\nuser = \"u\"\n\
             [[benchmark]]\nname = \"bm\"\nworkload = { type = \"cpu\" }\nduration = \"1s\"\nconcurrency = \"around-cores\"\nguests = [\"h\"]\n\
             [[benchmark]]\nname = \"vm\"\nworkload = { type = \"cpu\" }\nduration = \"1s\"\nconcurrency = \"around-cores\"\nguests = [\"v1\", \"v2\"]\n",
            "p.toml",
        )
        .expect("valid")
        .plan;
        // One technology's phases refuse more copies than it has guests.
        assert!(plan.overcrowded(1).is_empty());
        assert_eq!(plan.overcrowded(4).len(), 1, "{:?}", plan.overcrowded(4));
        let mut plan = plan;
        plan.benchmarks[1].mix_technologies = true;
        assert!(plan.overcrowded(4).is_empty());
        // On 1 core: 1 and 2 copies, one per guest.
        assert!(plan.crowding_warnings(1).is_empty());
        // On 4 cores, 5 copies on 2 guests; the host's copies are processes.
        assert_eq!(
            plan.crowding_warnings(4),
            [
                "vm: ×5 runs on 2 guests, so some run 3 copies at once; give each copy a guest of \
              its own to compare N guests"
            ]
        );
    }

    #[test]
    fn around_cores_asks_the_free_core_question_on_any_host() {
        let around = |cores| Concurrency::AroundCores.levels(cores);
        // The study's 8-core host: 7 and 8 VMs, and one past the cores.
        assert_eq!(around(8), [1, 2, 4, 7, 8, 9]);
        assert_eq!(around(32), [1, 2, 4, 8, 16, 31, 32, 33]);
        assert_eq!(around(2), [1, 2, 3]);
        assert_eq!(around(1), [1, 2]);
        assert_eq!(around(5), [1, 2, 4, 5, 6]);
    }

    #[test]
    fn a_list_may_name_counts_relative_to_the_cores() {
        let plan = |concurrency: &str| {
            LoadedPlan::parse(
                &format!(
                    "name = \"t\"\n[[guest]]\nname = \"h\"\ntransport = \"local\"\ntechnology = \"b\"\n\
                     [[benchmark]]\nname = \"c\"\nworkload = {{ type = \"cpu\" }}\nduration = \"1s\"\n\
                     concurrency = {concurrency}\n"
                ),
                "p.toml",
            )
        };
        let mixed = plan("[1, \"cores-1\", \"cores\", \"cores + 1\"]").expect("valid");
        let concurrency = &mixed.plan.benchmarks[0].concurrency;
        assert_eq!(concurrency.levels(8), [1, 7, 8, 9]);
        // On 2 cores "cores-1" is 1 again: each level once.
        assert_eq!(concurrency.levels(2), [1, 2, 3]);
        assert!(concurrency.follows_cores());
        assert_eq!(concurrency.to_string(), "[1, cores-1, cores, cores+1]");
        assert_eq!(
            mixed.plan.core_relative_levels(8),
            ["c: concurrency [1, cores-1, cores, cores+1] on 8 cores is 1, 7, 8, 9"]
        );
        assert_eq!(
            serde_json::to_string(concurrency).expect("json"),
            "[1,\"cores-1\",\"cores\",\"cores+1\"]"
        );
        let fixed = plan("[1, 2]").expect("valid");
        assert!(!fixed.plan.benchmarks[0].concurrency.follows_cores());
        let around = plan("\"around-cores\"").expect("valid");
        assert_eq!(
            around.plan.benchmarks[0].concurrency.levels(4),
            [1, 2, 3, 4, 5]
        );
        for bad in ["[\"cores*2\"]", "[\"core\"]", "[0]", "\"around\"", "[]"] {
            let message = plan(bad).expect_err(bad).to_string();
            assert!(message.contains("concurrency"), "{bad}: {message}");
        }
        let named = plan("[2, \"cpus\"]").expect_err("cpus").to_string();
        assert!(
            named.contains("\"cpus\" is not a count, \"cores\", \"cores-N\" or \"cores+N\""),
            "{named}"
        );
    }

    fn error_of(source: &str) -> PlanError {
        LoadedPlan::parse(source, "p.toml").expect_err("plan must be rejected")
    }

    const HEAD: &str = "name = \"t\"\n[[guest]]\nname = \"host\"\ntransport = \"local\"\ntechnology = \"bare-metal\"\n";

    #[test]
    fn bad_duration_names_line_and_field() {
        let e = error_of(&format!(
            "{HEAD}[[benchmark]]\nname = \"c\"\nworkload = {{ type = \"cpu\" }}\nduration = \"ten\"\nconcurrency = [1]\n"
        ));
        assert_eq!((e.line, e.field.as_str()), (9, "benchmark[0].duration"));
        assert!(e.message.contains("invalid duration"), "{e}");
        assert!(
            e.to_string()
                .starts_with("p.toml:9:12: field `benchmark[0].duration`"),
            "{e}"
        );
    }

    #[test]
    fn interval_out_of_range_is_rejected() {
        let e = error_of(&format!("interval = \"10ms\"\n{HEAD}"));
        assert_eq!((e.line, e.field.as_str()), (1, "interval"));
    }

    #[test]
    fn unknown_key_is_rejected() {
        let e = error_of(&format!("{HEAD}colour = 3\n"));
        assert_eq!((e.line, e.field.as_str()), (6, "guest[0].colour"));
    }

    #[test]
    fn unknown_guest_reference_is_located() {
        let e = error_of(&format!(
            "{HEAD}[[benchmark]]\nname = \"c\"\nworkload = {{ type = \"cpu\" }}\nduration = \"1s\"\nconcurrency = [1]\nguests = [\"nope\"]\n"
        ));
        assert_eq!((e.line, e.field.as_str()), (11, "benchmark[0].guests[0]"));
    }

    const BENCH: &str = "[[benchmark]]\nname = \"c\"\nworkload = { type = \"cpu\" }\nduration = \"1s\"\nconcurrency = [1]\n";

    #[test]
    fn ssh_guests_need_an_address_and_a_user() {
        let e = error_of(&format!(
            "{HEAD}[[guest]]\nname = \"vm\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\nuser = \"root\"\n{BENCH}"
        ));
        assert_eq!((e.line, e.field.as_str()), (7, "guest[1].address"));
        assert!(e.message.contains("needs an address"), "{e}");
        let e = error_of(&format!(
            "{HEAD}[[guest]]\nname = \"vm\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\naddress = \"198.18.0.11\"\n{BENCH}"
        ));
        assert_eq!(e.field, "guest[1].user");
    }

    #[test]
    fn exec_guests_need_their_command_and_take_no_ssh_keys_and_no_sftp() {
        let exec = "[[guest]]\nname = \"c\"\ntransport = \"exec\"\ntechnology = \"lxc\"\n";
        let e = error_of(&format!("{HEAD}{exec}{BENCH}"));
        assert_eq!(e.field, "guest[1].exec");
        assert!(e.message.contains("needs `exec`"), "{e}");
        let e = error_of(&format!("{HEAD}{exec}exec = []\n{BENCH}"));
        assert_eq!(e.field, "guest[1].exec");
        let with = |extra: &str| {
            error_of(&format!(
                "{HEAD}{exec}exec = [\"lxc-attach\", \"-n\", \"c\", \"--\"]\n{extra}\n{BENCH}"
            ))
        };
        let e = with("address = \"198.18.0.11\"");
        assert_eq!(e.field, "guest[1].address");
        assert!(e.message.contains("reached by `exec`"), "{e}");
        let e = with("sampling = \"sftp\"");
        assert_eq!(e.field, "guest[1].sampling");
        assert!(e.message.contains("no SFTP"), "{e}");
        let e = error_of(&format!(
            "{HEAD}[[guest]]\nname = \"vm\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\n\
             address = \"198.18.0.11\"\nuser = \"root\"\nexec = [\"env\"]\n{BENCH}"
        ));
        assert_eq!(e.field, "guest[1].exec");
        let e = error_of(&format!("{HEAD}exec = [\"env\"]\n{BENCH}"));
        assert_eq!(e.field, "guest[0].exec");
    }

    #[test]
    fn a_run_to_completion_tool_gets_a_timeout_its_data_set_fits() {
        // The study's bonnie++: 4 GiB on 8 guests at once moves 4 passes ×
        // 4 GiB × 8 = 128 GiB, about 23 min at 100 MB/s on a shared disk;
        // 2 × 10 min + 30 s would cut it off.
        let bonnie = |timeout: &str| {
            format!(
                "name = \"b\"\n[[guest]]\nname = \"h\"\ntransport = \"local\"\ntechnology = \"x\"\n\
                 [[benchmark]]\nname = \"bonnie\"\nworkload = {{ type = \"bonnie\", size = \"4GiB\" }}\n\
                 duration = \"10m\"\nconcurrency = [1, 8]\n{timeout}"
            )
        };
        let plan = LoadedPlan::parse(&bonnie(""), "b.toml")
            .expect("valid")
            .plan;
        let bench = &plan.benchmarks[0];
        let expected = bench.expected_length(8).expect("run to completion");
        assert_eq!(expected.as_secs(), 1374);
        // 1.5 × 1374.4 s + 60 s.
        assert_eq!(bench.timeout_for(8).as_secs(), 2121);
        // One copy alone is within the old default.
        assert_eq!(bench.timeout_for(1), Duration::from_secs(20 * 60 + 30));
        assert!(plan.timeout_warnings(8).is_empty(), "no timeout given");
        let given = LoadedPlan::parse(&bonnie("timeout = \"20m30s\"\n"), "b.toml")
            .expect("valid")
            .plan;
        assert_eq!(
            given.timeout_warnings(8),
            [
                "bonnie: ×8 moves about 22m 54s at 100 MB/s on a shared disk, longer than its \
              timeout of 20m 30s"
            ]
        );
    }

    #[test]
    fn liveness_keys_are_checked() {
        let ssh = "[[guest]]\nname = \"vm\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\n\
                   address = \"198.18.0.11\"\nuser = \"root\"\n";
        let e = error_of(&format!("{HEAD}{ssh}keepalive_count = 1\n{BENCH}"));
        assert_eq!(e.field, "guest[1].keepalive_count");
        let e = error_of(&format!("{HEAD}{ssh}reconnect_attempts = 5\n{BENCH}"));
        assert!(e.message.contains("go with reconnect = true"), "{e}");
        let e = error_of(&format!("{HEAD}reconnect = true\n{BENCH}"));
        assert!(
            e.message.contains("only goes with transport = \"ssh\""),
            "{e}"
        );
        let plan = LoadedPlan::parse(
            &format!("{HEAD}{ssh}keepalive = \"2s\"\nreconnect = true\n{BENCH}"),
            "p.toml",
        )
        .expect("valid");
        let liveness = crate::orchestrate::endpoint_of(&plan.plan.guests[1]).policy;
        assert_eq!(liveness.silence_limit(), Duration::from_secs(6));
        assert_eq!(liveness.reconnect_attempts, 3);
    }

    #[test]
    fn ssh_keys_on_a_local_guest_and_two_disks_are_refused() {
        let e = error_of(&format!("{HEAD}address = \"10.0.0.1\"\n{BENCH}"));
        assert_eq!((e.line, e.field.as_str()), (3, "guest[0].address"));
        let e = error_of(&format!(
            "{HEAD}block_device = \"loop0\"\nimage = \"/x.img\"\n{BENCH}"
        ));
        assert_eq!(e.field, "guest[0].image");
        let e = error_of(&format!("{HEAD}process = \"qemu(\"\n{BENCH}"));
        assert_eq!(e.field, "guest[0].process");
        assert!(e.message.contains("regular expression"), "{e}");
        let e = error_of(&format!("{HEAD}port = \"ssh\"\n{BENCH}"));
        assert_eq!((e.line, e.field.as_str()), (6, "guest[0].port"));
    }

    #[test]
    fn the_testbed_plan_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/plan.toml");
        let plan = LoadedPlan::from_file(Path::new(path)).expect("valid").plan;
        assert_eq!(plan.guests.len(), 4);
        assert_eq!(plan.guests[0].socket_text(), "198.18.0.11:22");
        assert!(plan.guests[0].has_host_identity());
        // Its workloads are the default plan's, so the two recordings pool.
        let default = LoadedPlan::embedded_default().plan;
        let workloads = |p: &Plan| {
            p.benchmarks
                .iter()
                .map(|b| (b.workload.parameters(), b.duration))
                .collect::<Vec<_>>()
        };
        assert_eq!(workloads(&plan), workloads(&default));
    }

    #[test]
    fn the_study_plan_parses_and_shortens_to_minutes() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/plans/study-2009.toml");
        let mut plan = LoadedPlan::from_file(Path::new(path)).expect("valid").plan;
        // On the study's 8 cores: 7, 8 and 9 guests ask the free-core question.
        let levels: Vec<u32> = plan.benchmarks[1].concurrency.levels(8);
        assert_eq!(levels, [1, 2, 4, 7, 8, 9]);
        assert_eq!(plan.order, Order::Random);
        assert!(
            plan.benchmarks.iter().all(|b| b.repetitions.0 >= 3),
            "every cell gets an interval"
        );
        let total = |p: &Plan| {
            p.schedule(8)
                .iter()
                .map(|s| s.duration)
                .sum::<crate::event::Nanos>()
        };
        let hours = total(&plan) as f64 / 3600e9;
        assert!((6.0..9.0).contains(&hours), "a night, {hours:.1} h planned");
        plan.scale_durations(0.01);
        let sysbench = &plan.benchmarks[0];
        assert_eq!(sysbench.duration.0, Duration::from_millis(1800));
        let bonnie = plan.benchmarks.last().expect("disk");
        assert_eq!(
            bonnie.duration.0,
            Duration::from_secs(600),
            "bonnie++ is not cut"
        );
    }

    #[test]
    fn random_order_is_a_permutation_fixed_by_the_seed() {
        let text = |seed: u64| {
            format!(
                "order = \"random\"\nseed = {seed}\n{HEAD}[[benchmark]]\nname = \"c\"\nworkload = {{ type = \"cpu\" }}\nduration = \"1s\"\nconcurrency = [1, 2, 3]\nrepetitions = 3\n"
            )
        };
        let schedule = |seed| {
            LoadedPlan::parse(&text(seed), "p.toml")
                .expect("valid plan")
                .plan
                .schedule(4)
        };
        let planned: Vec<(u32, u32)> = (1..=3).flat_map(|c| (1..=3).map(move |r| (c, r))).collect();
        let shuffled: Vec<(u32, u32)> = schedule(7)
            .iter()
            .map(|p| (p.concurrency, p.repetition))
            .collect();
        assert_ne!(shuffled, planned);
        let mut sorted = shuffled.clone();
        sorted.sort();
        assert_eq!(sorted, planned);
        assert_eq!(schedule(7), schedule(7));
        assert_ne!(schedule(7), schedule(8));
    }

    #[test]
    fn adaptive_repetition_keys_are_checked() {
        let bench = |extra: &str| {
            format!(
                "{HEAD}[[benchmark]]\nname = \"c\"\nworkload = {{ type = \"cpu\" }}\nduration = \"1s\"\nconcurrency = [1]\nrepetitions = 3\n{extra}"
            )
        };
        let err = |extra: &str| {
            LoadedPlan::parse(&bench(extra), "p.toml")
                .expect_err("invalid")
                .to_string()
        };
        assert!(
            err("until_rsd = \"5%\"\nmax_repetitions = 2\n").contains(
                "field `benchmark[0].max_repetitions`: max_repetitions 2 is below repetitions 3"
            ),
            "{}",
            err("until_rsd = \"5%\"\nmax_repetitions = 2\n")
        );
        assert!(err("max_repetitions = 5\n").contains("max_repetitions goes with until_rsd"));
        assert!(err("until_rsd = \"five\"\n").contains("is not a percentage such as \"5%\""));
        let plan = LoadedPlan::parse(&bench("until_rsd = \"5%\"\n"), "p.toml")
            .expect("valid")
            .plan;
        assert_eq!(plan.benchmarks[0].adaptive(), Some((0.05, 10)));
    }

    #[test]
    fn schedule_puts_repetitions_innermost() {
        let plan = LoadedPlan::parse(
            &format!(
                "{HEAD}[[benchmark]]\nname = \"c\"\nworkload = {{ type = \"cpu\" }}\nduration = \"1s\"\nconcurrency = [1, 2]\nrepetitions = 2\n"
            ),
            "p.toml",
        )
        .expect("valid plan")
        .plan;
        let order: Vec<(u32, u32)> = plan
            .schedule(4)
            .iter()
            .map(|p| (p.concurrency, p.repetition))
            .collect();
        assert_eq!(order, vec![(1, 1), (1, 2), (2, 1), (2, 2)]);
    }
}
