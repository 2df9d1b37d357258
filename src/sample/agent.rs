//! What a guest sees of itself, sampled on the guest by vmbench itself
//! (`vmbench agent`, the binary already uploaded to run the copies) on its
//! own drift-free schedule and streamed back over one SSH channel. The
//! host then decodes a line per tick instead of making four SFTP round
//! trips per tick per guest.
//!
//! The stream is text, a line each:
//! - `D <id> <c|g> <source> <metric> <unit>`: a series the agent defined;
//!   the source is relative to the guest (`-` for the guest as a whole,
//!   `/cpu0`, `/net/eth0`, `/vmbench` for the agent itself);
//! - `T <t> <id>:<delta> ...`: a tick at guest CLOCK_MONOTONIC `t`, each
//!   counter that moved as the difference from its last value (the first
//!   time, from 0);
//! - `E <text>`: a file the agent could not read or parse.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::host_seen::HostSeenGuest;
use super::own_disks::MountedDevices;
use super::proc_view::{Machine, ProcKind, ProcView};
use super::process::{WatchedProcess, sample_process};
use super::{ProcFile, Registry, SeriesIds, grid_before, next_tick};
use crate::event::{Clock, Nanos, RunId, Sample, SeriesDef, SeriesId, SeriesKind, monotonic_ns};
use crate::plan::HostSeenGuests;

/// The agent's own process (its CPU and I/O), so that what observing costs
/// the guest is a series of its own.
const OWN_SOURCE: &str = "/vmbench";

/// When the host last wrote a heartbeat.
#[derive(Default)]
struct Heard {
    last_ms: AtomicU64,
}

/// Counts the host's heartbeats on stdin, on a thread of its own; the
/// receiver disconnects the moment the input closes.
fn listen_for_heartbeats(
    input: impl Read + Send + 'static,
) -> io::Result<(Arc<Heard>, Receiver<()>)> {
    let heard = Arc::new(Heard::default());
    heard
        .last_ms
        .store(monotonic_ns() / 1_000_000, Ordering::Relaxed);
    let shared = heard.clone();
    let (open, closed) = channel::<()>();
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || {
            let _open = open;
            let mut input = input;
            let mut byte = [0u8; 64];
            while matches!(input.read(&mut byte), Ok(n) if n > 0) {
                shared
                    .last_ms
                    .store(monotonic_ns() / 1_000_000, Ordering::Relaxed);
            }
        })?;
    Ok((heard, closed))
}

/// `vmbench agent`: samples this machine's /proc every `interval` (on the
/// instants `grid_phase` past a multiple of it, when given: the host's
/// grid on this clock) and writes the stream to `out`. It ends when the host says nothing on
/// `heartbeats` for `silence` (a cut link leaves a blocked writer and no
/// error), when its input closes, or when writing fails: a guest is never
/// left with an agent nobody reads.
///
/// On a hypervisor host (`host_seen` given: the guests that run there) it
/// reads /proc as a host's, and samples what it sees of each guest as
/// `host-seen:<guest>`, after looking for those that ask for discovery
/// among the QEMU, libvirt and Xen guests there (said in `I` lines).
/// A guest that shares its host's kernel (`mounted_disks_only`) reports as
/// its disks only the devices its mounts are on (see `own_disks`).
pub fn run_agent(
    interval: Duration,
    grid_phase: Option<Nanos>,
    silence: Duration,
    host_seen: Option<HostSeenGuests>,
    mounted_disks_only: bool,
    heartbeats: impl Read + Send + 'static,
    out: &mut impl Write,
) -> io::Result<()> {
    let (heard, closed) = listen_for_heartbeats(heartbeats)?;
    // Its pid, for a host that gives up on it (stopped, hung) to end it.
    writeln!(out, "P {}", std::process::id())?;
    let mut registry = Registry::new(SeriesIds::default());
    let machine = if host_seen.is_some() {
        Machine::Host
    } else {
        Machine::Guest
    };
    let mut view = ProcView::new("", machine, &mut registry);
    let mut line = String::with_capacity(4096);
    if mounted_disks_only && machine == Machine::Guest {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mounted = MountedDevices::parse(&mountinfo);
        let _ = writeln!(
            line,
            "I this guest shares its host's kernel: its disks are the {} block devices its mounts are on, not the host's others",
            mounted.count()
        );
        view.keep_only_mounted(mounted);
    }
    let mut errors = Vec::new();
    let mut xentop = None;
    let mut guests = host_seen.unwrap_or_default().guests;
    for note in crate::discover::fill_in_guests(guests.iter_mut()) {
        let _ = writeln!(line, "I {note}");
    }
    let mut seen: Vec<HostSeenGuest> = guests
        .iter()
        .map(|g| HostSeenGuest::open(g, &mut registry, &mut xentop, &mut errors))
        .collect();
    let mut files: Vec<(ProcKind, ProcFile)> = Vec::new();
    for kind in ProcKind::ALL {
        match ProcFile::open(kind.path()) {
            Ok(file) => files.push((kind, file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !kind.required() => {
                let _ = writeln!(line, "I {}", kind.missing_note());
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", kind.path()))),
        }
    }
    let own = WatchedProcess::open_at(RunId::MAX, "self", OWN_SOURCE, &mut registry)?;
    let mut buf = Vec::with_capacity(64 << 10);
    // Each series' last value sent, at its id (this registry numbers from 0).
    let mut last: Vec<Option<u64>> = Vec::new();
    let interval = interval.as_nanos().max(1) as u64;
    let silence_ms = silence.as_millis() as u64;
    let mut due = monotonic_ns();
    let start = grid_phase.map_or(due, |phase| grid_before(due, interval, phase));
    loop {
        let now_ms = monotonic_ns() / 1_000_000;
        let quiet_ms = now_ms.saturating_sub(heard.last_ms.load(Ordering::Relaxed));
        if quiet_ms > silence_ms {
            return Ok(());
        }
        let t0 = monotonic_ns();
        let mut values = Vec::with_capacity(registry.count);
        view.read_files(&files, &mut buf, &mut registry, &mut values, &mut errors);
        for guest in &mut seen {
            guest.sample(&view, xentop.as_ref(), &mut buf, &mut values);
        }
        for e in errors.drain(..) {
            // One line each: the host reads the stream line by line, and a
            // library's message may hold a newline of its own.
            let _ = writeln!(line, "E {}", e.replace('\n', "; "));
        }
        sample_process(&own, &mut buf, &mut values);
        let t = t0 + (monotonic_ns() - t0) / 2;
        for def in std::mem::take(&mut registry.new_defs) {
            let kind = match def.kind {
                SeriesKind::Counter => 'c',
                SeriesKind::Gauge => 'g',
            };
            let source = if def.source.is_empty() {
                "-"
            } else {
                &def.source
            };
            line.push_str(&format!(
                "D {} {kind} {source} {} {}\n",
                def.id, def.metric, def.unit
            ));
        }
        // Writing into a String cannot fail.
        let _ = write!(line, "T {t}");
        for (id, value) in values {
            // Every series once, then only what moved.
            if last.len() <= id as usize {
                last.resize(id as usize + 1, None);
            }
            match last[id as usize].replace(value) {
                Some(before) if before == value => {}
                before => {
                    let delta = i128::from(value) - i128::from(before.unwrap_or(0));
                    let _ = write!(line, " {id}:{delta}");
                }
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        out.flush()?;
        line.clear();
        (_, due) = next_tick(start, interval, monotonic_ns().max(due));
        // Until the next tick, or at once when the input closes.
        let wait = Duration::from_nanos(due.saturating_sub(monotonic_ns()));
        if matches!(
            closed.recv_timeout(wait),
            Err(RecvTimeoutError::Disconnected)
        ) {
            return Ok(());
        }
    }
}

/// The host's end of the stream: the agent's series as this session's,
/// its ticks as samples on the host's clock.
pub struct AgentStream {
    prefix: String,
    registry: Registry,
    /// The agent's series ids and this session's, in the session's order:
    /// a sample lists its values by rising id, which the recording's
    /// encoding stores in the fewest bytes.
    ids: Vec<(u32, SeriesId)>,
    /// Each series' latest value, at the agent's id (the agent numbers its
    /// series from 0), to which a tick's differences are added.
    values: Vec<Option<u64>>,
    /// The guest's clock, as its ticks tell it.
    clock: ClockFilter,
    /// Bytes read and not yet a whole line.
    pending: Vec<u8>,
    /// What the agent could not read, each said once.
    errors: Vec<String>,
    /// What the agent said for the log (a host's discovery of its guests).
    notes: Vec<String>,
    said: std::collections::HashSet<String>,
    /// The agent's process on its machine, as it said.
    pid: Option<u32>,
    /// A hypervisor host's agent names the guests it sees in full; a
    /// guest's may name only parts of itself.
    full_names: bool,
    /// What earlier agents' own counters reached, added to the current
    /// one's (see `restart`).
    carried: std::collections::HashMap<SeriesId, u64>,
    /// This session's id of every series an agent of this guest defined,
    /// so that a restarted agent's series continue the same ones.
    known: std::collections::HashMap<(String, String), SeriesId>,
}

/// How far back the ticks that bound a guest's clock offset are kept: long
/// enough to meet a tick that was not delayed, short enough to follow a
/// clock that drifts (a VM's under emulation drifts by parts per thousand).
const OFFSET_WINDOW: u64 = 10_000_000_000;

/// Follows a guest's clock from its ticks: a tick cannot arrive before it
/// was stamped, so its guest time minus its arrival time bounds the offset
/// (guest minus host) from below, and the least delayed tick of the recent
/// ones bounds it best. Each tick is then placed on this host's clock to
/// within the least delay seen, its spacing the guest's own.
#[derive(Default)]
struct ClockFilter {
    bounds: std::collections::VecDeque<(u64, i128)>,
}

impl ClockFilter {
    /// Takes a tick stamped `guest_t` that arrived at `arrival` (host
    /// CLOCK_MONOTONIC).
    fn note(&mut self, guest_t: i128, arrival: u64) {
        self.bounds
            .push_back((arrival, guest_t - i128::from(arrival)));
        while self
            .bounds
            .front()
            .is_some_and(|(at, _)| at + OFFSET_WINDOW < arrival)
        {
            self.bounds.pop_front();
        }
    }

    /// The best estimate of the offset from the recent ticks.
    fn offset(&self) -> i128 {
        self.bounds
            .iter()
            .map(|(_, bound)| *bound)
            .max()
            .unwrap_or(0)
    }
}

/// A tick as the agent stamped it: its guest time and its values.
type Tick = (i128, Vec<(SeriesId, u64)>);

/// More series than any guest defines (its every CPU, device and
/// interface): an id past it is a stream gone wrong, not a table to grow.
const MOST_AGENT_SERIES: usize = 1 << 20;

/// The longest line an agent writes (a first tick of every counter of a
/// large guest); longer is a stream gone wrong.
const LONGEST_LINE: usize = 4 << 20;

impl AgentStream {
    /// A guest's agent's stream: its series as `guest:<name>...`.
    pub fn new(guest: &str, ids: SeriesIds) -> Self {
        Self::under(format!("guest:{guest}"), ids, false)
    }

    /// A hypervisor host's agent's stream: its own series as
    /// `host:<name>...`, its guests' as `host-seen:<guest>`.
    pub fn for_host(host: &str, ids: SeriesIds) -> Self {
        Self::under(format!("host:{host}"), ids, true)
    }

    fn under(prefix: String, ids: SeriesIds, full_names: bool) -> Self {
        AgentStream {
            pid: None,
            full_names,
            carried: std::collections::HashMap::new(),
            prefix,
            registry: Registry::new(ids),
            ids: Vec::new(),
            values: Vec::new(),
            clock: ClockFilter::default(),
            pending: Vec::new(),
            errors: Vec::new(),
            notes: Vec::new(),
            said: std::collections::HashSet::new(),
            known: std::collections::HashMap::new(),
        }
    }

    /// Ready for a new agent on the same guest: its ids are its own, its
    /// first tick counts from zero again, and the series it defines that
    /// the last one did continue under the same ids (the guest's clock,
    /// and what was said, are kept).
    ///
    /// The agent's own process is a new one: its counters start from zero,
    /// so the last agent's totals are carried over and its series go on
    /// growing (what observing cost the guest, across restarts).
    pub fn restart(&mut self) {
        let own = format!("{}{OWN_SOURCE}", self.prefix);
        for ((source, _), host_id) in &self.known {
            let last = self
                .ids
                .iter()
                .find(|(_, h)| h == host_id)
                .and_then(|(agent_id, _)| self.values.get(*agent_id as usize).copied().flatten());
            if let (true, Some(last)) = (*source == own, last) {
                *self.carried.entry(*host_id).or_insert(0) += last;
            }
        }
        self.ids.clear();
        self.values.clear();
        self.pending.clear();
        self.pid = None;
    }

    /// The agent's process, which a host that gave up on it ends (a
    /// stopped agent never sees its channel close).
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// What the agent said for the log since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// What the agent could not read since the last call, each only the
    /// first time it is said.
    pub fn take_errors(&mut self) -> Vec<String> {
        std::mem::take(&mut self.errors)
    }

    /// Takes bytes from the channel; returns the series newly defined and
    /// the ticks completed by them, stamped on this host's session clock.
    pub fn take(&mut self, bytes: &[u8], clock: &Clock) -> Result<(Vec<SeriesDef>, Vec<Sample>)> {
        self.take_at(bytes, clock, monotonic_ns())
    }

    /// The same, the bytes having arrived at `arrival` (host monotonic).
    fn take_at(
        &mut self,
        bytes: &[u8],
        clock: &Clock,
        arrival: u64,
    ) -> Result<(Vec<SeriesDef>, Vec<Sample>)> {
        self.pending.extend_from_slice(bytes);
        let mut ticks = Vec::new();
        let mut consumed = 0;
        while let Some(end) = self.pending[consumed..].iter().position(|b| *b == b'\n') {
            let line = std::str::from_utf8(&self.pending[consumed..consumed + end])
                .context("the agent wrote a line that is not UTF-8")?
                .to_string();
            consumed += end + 1;
            if let Some(tick) = self.line(&line)? {
                self.clock.note(tick.0, arrival);
                ticks.push(tick);
            }
        }
        // Ticks that arrived together share the estimate they all make.
        let offset = self.clock.offset();
        let samples = ticks
            .into_iter()
            .map(|(guest_t, values)| Sample {
                t: clock.from_monotonic((guest_t - offset).max(0) as u64),
                values,
            })
            .collect();
        self.pending.drain(..consumed);
        if self.pending.len() > LONGEST_LINE {
            bail!("the agent wrote a line of over {LONGEST_LINE} bytes");
        }
        Ok((std::mem::take(&mut self.registry.new_defs), samples))
    }

    /// A line: a tick's guest time and values, or nothing for the others.
    fn line(&mut self, line: &str) -> Result<Option<Tick>> {
        let mut words = line.split(' ');
        match words.next() {
            Some("D") => {
                let (Some(id), Some(kind), Some(source), Some(metric), Some(unit)) = (
                    words.next().and_then(|w| w.parse::<u32>().ok()),
                    words.next(),
                    words.next(),
                    words.next(),
                    words.next(),
                ) else {
                    bail!("the agent defined a series badly: {line:?}");
                };
                let kind = match kind {
                    "c" => SeriesKind::Counter,
                    "g" => SeriesKind::Gauge,
                    other => bail!("the agent named a series kind {other:?}"),
                };
                // `-` is the machine, `/...` a part of it; a host's agent
                // names what it sees of a guest in full (`host-seen:g3`).
                let source = match source {
                    "-" => self.prefix.clone(),
                    relative if relative.starts_with('/') => format!("{}{relative}", self.prefix),
                    seen if self.full_names && seen.starts_with("host-seen:") => seen.to_string(),
                    other => bail!("a guest's agent named a source outside it: {other:?}"),
                };
                if id as usize >= MOST_AGENT_SERIES {
                    bail!("the agent numbered a series {id}, past any guest's count");
                }
                let key = (source, metric.to_string());
                let host_id = match self.known.get(&key) {
                    Some(id) => *id,
                    None => {
                        let [id] = self.registry.define(&key.0, [metric], [unit], kind);
                        self.known.insert(key, id);
                        id
                    }
                };
                self.ids.retain(|(agent, _)| *agent != id);
                let at = self.ids.partition_point(|(_, h)| *h < host_id);
                self.ids.insert(at, (id, host_id));
                if self.values.len() <= id as usize {
                    self.values.resize(id as usize + 1, None);
                }
                Ok(None)
            }
            Some("T") => {
                let guest_t: i128 = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .with_context(|| format!("the agent's tick has no time: {line:?}"))?;
                for word in words.filter(|w| !w.is_empty()) {
                    let parsed = word.split_once(':').and_then(|(id, delta)| {
                        Some((id.parse::<u32>().ok()?, delta.parse::<i128>().ok()?))
                    });
                    let Some((id, delta)) = parsed else {
                        bail!("the agent wrote {word:?} in a tick");
                    };
                    let Some(value) = self.values.get_mut(id as usize) else {
                        bail!("the agent sent series {id} before defining it");
                    };
                    let before = value.unwrap_or(0);
                    *value =
                        Some((i128::from(before) + delta).clamp(0, i128::from(u64::MAX)) as u64);
                }
                // Every series this tick, moved or not: the model derives
                // rates from the points it has.
                let values = self
                    .ids
                    .iter()
                    .filter_map(|(id, host_id)| {
                        let carried = self.carried.get(host_id).copied().unwrap_or(0);
                        Some((*host_id, self.values[*id as usize]? + carried))
                    })
                    .collect();
                Ok(Some((guest_t, values)))
            }
            Some("E") => {
                let text = line.get(2..).unwrap_or_default().to_string();
                if self.said.insert(text.clone()) {
                    self.errors.push(text);
                }
                Ok(None)
            }
            Some("I") => {
                self.notes
                    .push(line.get(2..).unwrap_or_default().to_string());
                Ok(None)
            }
            Some("P") => {
                self.pid = words.next().and_then(|w| w.parse().ok());
                Ok(None)
            }
            _ => bail!("the agent wrote {line:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_streams_this_machines_counters_and_its_own() {
        // The session's clock starts before the agent's first tick.
        let clock = Clock::start();
        /// Takes three ticks, then closes the channel as a gone host would.
        struct ThreeTicks(Vec<u8>, usize);
        impl Write for ThreeTicks {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                self.1 += 1;
                if self.1 == 3 {
                    return Err(io::ErrorKind::BrokenPipe.into());
                }
                Ok(())
            }
        }
        let mut out = ThreeTicks(Vec::new(), 0);
        let ended = run_agent(
            Duration::from_millis(20),
            Some(7_000_000),
            Duration::from_secs(3600),
            None,
            false,
            Silent,
            &mut out,
        );
        assert_eq!(ended.map_err(|e| e.kind()), Err(io::ErrorKind::BrokenPipe));
        let text = String::from_utf8(out.0).expect("text");
        assert_eq!(text.lines().filter(|l| l.starts_with("T ")).count(), 3);
        assert!(text.contains(" c - cpu.user ticks\n"), "{text}");
        assert!(text.contains(" c /vmbench cpu.utime ticks\n"), "{text}");
        assert!(text.contains(" c /net/lo rx_bytes bytes\n"), "{text}");

        // The host's end: the same series under the guest's name, the
        // differences summed back into counters, the ticks on this host's
        // clock with their own spacing.
        let mut stream = AgentStream::new("vm1", SeriesIds::default());
        // Split mid-line, as a channel may deliver it.
        let (a, b) = text.as_bytes().split_at(text.len() / 2);
        let (mut defs, mut samples) = stream.take(a, &clock).expect("first half");
        let (more_defs, more_samples) = stream.take(b, &clock).expect("second half");
        defs.extend(more_defs);
        samples.extend(more_samples);
        assert_eq!(samples.len(), 3);
        let user = defs
            .iter()
            .find(|d| d.source == "guest:vm1" && d.metric == "cpu.user")
            .expect("cpu.user");
        assert!(defs.iter().any(|d| d.source == "guest:vm1/vmbench"));
        let users: Vec<u64> = samples
            .iter()
            .map(|s| {
                s.values
                    .iter()
                    .find(|(id, _)| *id == user.id)
                    .expect("every tick")
                    .1
            })
            .collect();
        assert!(
            users[0] > 0 && users.windows(2).all(|w| w[0] <= w[1]),
            "{users:?}"
        );
        // What /proc/stat says now is at least what the agent said then.
        let now = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
        let user_now: u64 = now
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("user");
        assert!(
            users[2] <= user_now && user_now - users[2] < 10_000,
            "{users:?} {user_now}"
        );
        let times: Vec<u64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("T ")?.split(' ').next()?.parse().ok())
            .collect();
        // Arrived together: one offset, the agent's spacing kept, and none
        // stamped later than it arrived.
        let mut whole = AgentStream::new("vm1", SeriesIds::default());
        let (_, together) = whole.take(text.as_bytes(), &clock).expect("whole");
        assert_eq!(together[2].t - together[0].t, times[2] - times[0]);
        assert!(together[2].t <= clock.now());
    }

    #[test]
    fn a_guest_clock_is_followed_by_its_least_delayed_ticks() {
        let s = 1_000_000_000u64;
        let mut filter = ClockFilter::default();
        let mut offset = |guest_t: u64, arrival: u64| {
            filter.note(i128::from(guest_t), arrival);
            filter.offset()
        };
        let five = 5 * i128::from(s);
        // The guest's clock runs 5 s ahead; ticks arrive 2 ms, then 1 ms late.
        assert_eq!(offset(105 * s, 100 * s + 2_000_000), five - 2_000_000);
        assert_eq!(offset(106 * s, 101 * s + 1_000_000), five - 1_000_000);
        // A late tick does not move the estimate.
        assert_eq!(offset(107 * s, 102 * s + 300_000_000), five - 1_000_000);
        // The guest's clock falls behind by 50 ms; once the earlier ticks
        // are out of the window, the estimate follows it.
        assert_eq!(
            offset(150 * s - 50_000_000, 145 * s + 1_000_000),
            five - 51_000_000
        );
    }

    /// A host that keeps its side open and says nothing.
    struct Silent;

    impl Read for Silent {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_secs(3600));
            Ok(0)
        }
    }

    #[test]
    fn an_agent_nobody_listens_to_ends_by_itself() {
        // Its input closed: the host's side of the channel is gone.
        let mut out = Vec::new();
        let ended = run_agent(
            Duration::from_millis(10),
            None,
            Duration::from_secs(3600),
            None,
            false,
            io::empty(),
            &mut out,
        );
        assert!(ended.is_ok());
        // No heartbeat for its silence limit: a cut link, where writes
        // would block rather than fail.
        let mut out = Vec::new();
        let ended = run_agent(
            Duration::from_millis(10),
            None,
            Duration::from_millis(100),
            None,
            false,
            Silent,
            &mut out,
        );
        assert!(ended.is_ok());
        let ticks = String::from_utf8(out).expect("text");
        assert!(ticks.lines().filter(|l| l.starts_with("T ")).count() >= 1);
    }

    #[test]
    fn a_garbled_stream_is_an_error_not_a_panic() {
        let clock = Clock::start();
        for bad in [
            "X\n",
            "D 1 q - m u\n",
            "T\n",
            "T 5 1:x\n",
            "D one c - m u\n",
            "\u{fffd}\n",
        ] {
            let mut stream = AgentStream::new("vm", SeriesIds::default());
            assert!(stream.take(bad.as_bytes(), &clock).is_err(), "{bad:?}");
        }
        let mut stream = AgentStream::new("vm", SeriesIds::default());
        let (_, samples) = stream
            .take(
                b"E /proc/diskstats: unreadable\nT 1\nE /proc/diskstats: unreadable\nE\nT 2\n",
                &clock,
            )
            .expect("an error line is a warning");
        assert_eq!(samples.len(), 2);
        // Said once, however often the agent says it.
        assert_eq!(stream.take_errors(), ["/proc/diskstats: unreadable", ""]);
        // Ticks keep the guest's spacing.
        assert_eq!(samples[1].t - samples[0].t, 1);
    }

    #[test]
    fn only_a_hosts_agent_names_sources_outside_itself() {
        let clock = Clock::start();
        let line = b"D 0 c host-seen:g3 cpu.cgroup_ns ns\nT 1 0:5\n";
        let mut guest = AgentStream::new("vm", SeriesIds::default());
        let refused = guest.take(line, &clock).expect_err("refused");
        assert!(refused.to_string().contains("outside it"), "{refused}");
        let mut host = AgentStream::for_host("h2", SeriesIds::default());
        // Its guests as it sees them, not another machine's counters.
        let mut other = AgentStream::for_host("h2", SeriesIds::default());
        assert!(other.take(b"D 0 c host cpu.user ticks\n", &clock).is_err());
        let (defs, samples) = host.take(line, &clock).expect("taken");
        assert_eq!(defs[0].source, "host-seen:g3");
        assert_eq!(samples[0].values, [(defs[0].id, 5)]);
        let (defs, _) = host
            .take(
                b"D 1 c /cpu0 cpu.user ticks\nD 2 g - mem.total bytes\n",
                &clock,
            )
            .expect("taken");
        let sources: Vec<&str> = defs.iter().map(|d| d.source.as_str()).collect();
        assert_eq!(sources, ["host:h2/cpu0", "host:h2"]);
    }

    #[test]
    fn a_restarted_agent_continues_the_same_series_and_its_own_counters_grow_on() {
        let clock = Clock::start();
        let mut stream = AgentStream::new("vm", SeriesIds::default());
        let first = b"D 0 c - cpu.user ticks\nD 1 c /vmbench cpu.utime ticks\nT 1 0:1000 1:40\n";
        let (defs, _) = stream.take(first, &clock).expect("taken");
        let (user, own) = (defs[0].id, defs[1].id);
        // The new agent numbers its series otherwise; the machine's counter
        // goes on from the kernel's value, its own process starts from 0.
        stream.restart();
        let second = b"D 7 c /vmbench cpu.utime ticks\nD 3 c - cpu.user ticks\nT 2 3:1100 7:2\n";
        let (defs, samples) = stream.take(second, &clock).expect("taken");
        assert!(defs.is_empty(), "defined again: {defs:?}");
        let mut values = samples[0].values.clone();
        values.sort();
        assert_eq!(values, [(user, 1100), (own, 42)]);
    }
}
