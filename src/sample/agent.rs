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

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::proc_view::{Machine, ProcKind, ProcView};
use super::{PROC_UNITS, ProcFile, Registry, SeriesIds, next_tick};
use crate::bus::EventSink;
use crate::event::{
    Clock, Event, LogLevel, Nanos, Sample, SeriesDef, SeriesId, SeriesKind, monotonic_ns,
};

/// The agent's own process, so that what observing costs the guest is a
/// series of its own.
const OWN_SOURCE: &str = "/vmbench";

/// `vmbench agent`: samples this machine's /proc every `interval` and
/// writes the stream to `out` until writing fails (the SSH channel closed,
/// so nobody is listening any more).
pub fn run_agent(interval: Duration, out: &mut impl Write) -> io::Result<()> {
    let mut registry = Registry::new(SeriesIds::default());
    let mut view = ProcView::new("", Machine::Guest, &mut registry);
    let files: Vec<(ProcKind, ProcFile)> = ProcKind::ALL
        .iter()
        .map(|kind| Ok((*kind, ProcFile::open(kind.path())?)))
        .collect::<io::Result<_>>()?;
    let own = ProcFile::open("/proc/self/stat")?;
    let [utime, stime] = registry.define(
        OWN_SOURCE,
        ["cpu.utime", "cpu.stime"],
        [PROC_UNITS[0], PROC_UNITS[1]],
        SeriesKind::Counter,
    );
    let mut buf = Vec::with_capacity(64 << 10);
    let mut last: HashMap<SeriesId, u64> = HashMap::new();
    let mut line = String::with_capacity(4096);
    let interval = interval.as_nanos().max(1) as u64;
    let start = monotonic_ns();
    let mut due = start;
    loop {
        let t0 = monotonic_ns();
        let mut values = Vec::with_capacity(registry.count);
        line.clear();
        for (kind, file) in &files {
            let parsed = file
                .read_into(&mut buf)
                .map_err(anyhow::Error::from)
                .and_then(|bytes| view.parse(*kind, bytes, &mut registry, &mut values));
            if let Err(e) = parsed {
                line.push_str(&format!("E {}: {e}\n", kind.path()));
            }
        }
        if let Some((user, system)) = own.read_into(&mut buf).ok().and_then(own_times) {
            values.extend([(utime, user), (stime, system)]);
        }
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
        line.push_str(&format!("T {t}"));
        for (id, value) in values {
            // Every series once, then only what moved.
            match last.insert(id, value) {
                Some(before) if before == value => {}
                before => {
                    let delta = i128::from(value) - i128::from(before.unwrap_or(0));
                    line.push_str(&format!(" {id}:{delta}"));
                }
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        out.flush()?;
        (_, due) = next_tick(start, interval, monotonic_ns().max(due));
        std::thread::sleep(Duration::from_nanos(due.saturating_sub(monotonic_ns())));
    }
}

/// utime and stime from /proc/self/stat (fields 14 and 15, after the
/// command name in brackets, which may hold spaces).
fn own_times(stat: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(stat).ok()?;
    let mut fields = text.rsplit_once(')')?.1.split_whitespace().skip(11);
    Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
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
    /// Each series' latest value, to which a tick's differences are added.
    values: HashMap<u32, u64>,
    /// Guest CLOCK_MONOTONIC minus this host's, as measured at bring-up;
    /// None when it could not be, and ticks are stamped as they arrive.
    offset_ns: Option<i64>,
    /// Bytes read and not yet a whole line.
    pending: Vec<u8>,
    pub errors: Vec<String>,
}

impl AgentStream {
    pub fn new(guest: &str, ids: SeriesIds, offset_ns: Option<i64>) -> Self {
        AgentStream {
            prefix: format!("guest:{guest}"),
            registry: Registry::new(ids),
            ids: Vec::new(),
            values: HashMap::new(),
            offset_ns,
            pending: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Takes bytes from the channel; returns the series newly defined and
    /// the ticks completed by them, stamped on this host's session clock.
    pub fn take(&mut self, bytes: &[u8], clock: &Clock) -> Result<(Vec<SeriesDef>, Vec<Sample>)> {
        self.pending.extend_from_slice(bytes);
        let mut samples = Vec::new();
        let mut consumed = 0;
        while let Some(end) = self.pending[consumed..].iter().position(|b| *b == b'\n') {
            let line = std::str::from_utf8(&self.pending[consumed..consumed + end])
                .context("the agent wrote a line that is not UTF-8")?
                .to_string();
            consumed += end + 1;
            if let Some(sample) = self.line(&line, clock)? {
                samples.push(sample);
            }
        }
        self.pending.drain(..consumed);
        Ok((std::mem::take(&mut self.registry.new_defs), samples))
    }

    fn line(&mut self, line: &str, clock: &Clock) -> Result<Option<Sample>> {
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
                let source = match source {
                    "-" => self.prefix.clone(),
                    relative => format!("{}{relative}", self.prefix),
                };
                let [host_id] = self.registry.define(&source, [metric], [unit], kind);
                self.ids.retain(|(agent, _)| *agent != id);
                let at = self.ids.partition_point(|(_, h)| *h < host_id);
                self.ids.insert(at, (id, host_id));
                Ok(None)
            }
            Some("T") => {
                let guest_t: i128 = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .with_context(|| format!("the agent's tick has no time: {line:?}"))?;
                let t: Nanos = match self.offset_ns {
                    Some(offset) => {
                        clock.from_monotonic((guest_t - i128::from(offset)).max(0) as u64)
                    }
                    None => clock.now(),
                };
                for word in words.filter(|w| !w.is_empty()) {
                    let parsed = word.split_once(':').and_then(|(id, delta)| {
                        Some((id.parse::<u32>().ok()?, delta.parse::<i128>().ok()?))
                    });
                    let Some((id, delta)) = parsed else {
                        bail!("the agent wrote {word:?} in a tick");
                    };
                    let value = self.values.entry(id).or_insert(0);
                    *value = (i128::from(*value) + delta).clamp(0, i128::from(u64::MAX)) as u64;
                }
                // Every series this tick, moved or not: the model derives
                // rates from the points it has.
                let values = self
                    .ids
                    .iter()
                    .filter_map(|(id, host_id)| Some((*host_id, *self.values.get(id)?)))
                    .collect();
                Ok(Some(Sample { t, values }))
            }
            Some("E") => {
                self.errors.push(line[2..].to_string());
                Ok(None)
            }
            _ => bail!("the agent wrote {line:?}"),
        }
    }
}

/// A started agent: its channel, and the stream with what it said first.
pub struct Agent {
    channel: ssh2::Channel,
    stream: AgentStream,
    /// Bytes read while waiting for its first tick.
    first: Vec<u8>,
}

impl Agent {
    /// Starts `vmbench agent` on a session of its own and waits (at most
    /// `patience`) for its first tick: an agent that cannot run there
    /// (another architecture, a noexec /tmp) says so here, and the caller
    /// falls back to SFTP.
    pub fn start(
        session: &ssh2::Session,
        vmbench: &str,
        interval: Duration,
        stream: AgentStream,
        patience: Duration,
    ) -> Result<Agent> {
        let mut channel = session.channel_session().context("opening a channel")?;
        channel
            .exec(&format!(
                "exec {} agent --interval-ns {}",
                crate::transport::shell_quote(vmbench),
                interval.as_nanos()
            ))
            .context("starting vmbench agent")?;
        // Reads wake at least this often, so that a stop is seen.
        session.set_timeout(500);
        let deadline = std::time::Instant::now() + patience;
        let mut first = Vec::new();
        let mut buf = [0u8; 16 << 10];
        let whole_tick = |b: &[u8]| {
            b.ends_with(b"\n") && (b.starts_with(b"T ") || b.windows(3).any(|w| w == b"\nT "))
        };
        while !whole_tick(&first) {
            if std::time::Instant::now() > deadline {
                bail!("vmbench agent said nothing for {} s", patience.as_secs());
            }
            match channel.read(&mut buf) {
                Ok(0) => {
                    let mut why = String::new();
                    let _ = channel.stderr().read_to_string(&mut why);
                    bail!("vmbench agent ended at once: {}", why.trim());
                }
                Ok(n) => first.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e).context("reading vmbench agent"),
            }
        }
        Ok(Agent {
            channel,
            stream,
            first,
        })
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Reads a guest's agent on its own thread until `stop` says so, the bus
/// closes or the stream ends (a warning says why).
pub fn run_agent_sampler(
    agent: Agent,
    guest: String,
    clock: Clock,
    sink: EventSink,
    stop: Receiver<()>,
) {
    let Agent {
        mut channel,
        mut stream,
        first,
    } = agent;
    let warn = |text: String| {
        sink.send(Event::Log {
            t: clock.now(),
            level: LogLevel::Warn,
            text: format!("{guest}: {text}"),
        });
    };
    // Sends what a read completed; false when sampling must stop.
    let mut pass_on = |bytes: &[u8]| match stream.take(bytes, &clock) {
        Ok((defs, samples)) => {
            for def in defs {
                sink.send(Event::SeriesDefined(def));
            }
            for sample in samples {
                if !sink.send(Event::Sample(sample)) {
                    return false;
                }
            }
            for text in std::mem::take(&mut stream.errors) {
                warn(text);
            }
            true
        }
        Err(e) => {
            warn(format!("guest-side sampling stopped: {e:#}"));
            false
        }
    };
    if !pass_on(&first) {
        return;
    }
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match stop.try_recv() {
            Err(TryRecvError::Empty) => {}
            _ => return,
        }
        let n = match channel.read(&mut buf) {
            Ok(0) => {
                let mut why = String::new();
                let _ = channel.stderr().read_to_string(&mut why);
                warn(format!(
                    "guest-side sampling stopped: the agent ended{}",
                    if why.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why.trim())
                    }
                ));
                return;
            }
            Ok(n) => n,
            // The session's timeout: a chance to look at `stop`.
            Err(e) if is_timeout(&e) => continue,
            Err(e) => {
                warn(format!("guest-side sampling stopped: {e}"));
                return;
            }
        };
        if !pass_on(&buf[..n]) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_streams_this_machines_counters_and_its_own() {
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
        let ended = run_agent(Duration::from_millis(20), &mut out);
        assert_eq!(ended.map_err(|e| e.kind()), Err(io::ErrorKind::BrokenPipe));
        let text = String::from_utf8(out.0).expect("text");
        assert_eq!(text.lines().filter(|l| l.starts_with("T ")).count(), 3);
        assert!(text.contains(" c - cpu.user ticks\n"), "{text}");
        assert!(text.contains(" c /vmbench cpu.utime ticks\n"), "{text}");
        assert!(text.contains(" c /net/lo rx_bytes bytes\n"), "{text}");

        // The host's end: the same series under the guest's name, the
        // differences summed back into counters, the time moved onto this
        // host's clock by the offset.
        let clock = Clock::start();
        let offset = 5_000_000_000i64;
        let mut stream = AgentStream::new("vm1", SeriesIds::default(), Some(offset));
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
        let first_t: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("T ")?.split(' ').next()?.parse().ok())
            .expect("a tick time");
        assert_eq!(samples[0].t, clock.from_monotonic(first_t - offset as u64));
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
            let mut stream = AgentStream::new("vm", SeriesIds::default(), Some(0));
            assert!(stream.take(bad.as_bytes(), &clock).is_err(), "{bad:?}");
        }
        let mut stream = AgentStream::new("vm", SeriesIds::default(), None);
        let (_, samples) = stream
            .take(b"E /proc/diskstats: unreadable\nT 1\n", &clock)
            .expect("an error line is a warning");
        assert_eq!(samples.len(), 1);
        assert_eq!(stream.errors, ["/proc/diskstats: unreadable"]);
    }
}
