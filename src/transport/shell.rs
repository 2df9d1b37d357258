//! What preparing, checking and sampling a guest need of the way it is
//! reached, whether over SSH or through a command (`ip netns exec g1`):
//! short commands run to their end, a file written, a conversation with
//! one command (the clock probe), and the janitor of vmbench's folder.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use crate::event::monotonic_ns;

/// Runs commands inside a guest.
pub trait Shell {
    /// What removes vmbench's folder on the guest once the session ends,
    /// however it ends.
    type Janitor: Send;

    /// Runs a short script to its end: (exit code, stdout, stderr), within
    /// the link's usual patience.
    fn run(&self, script: &str) -> Result<(i32, String, String)>;

    /// Runs a script that may take longer, giving it `patience`.
    fn run_within(&self, script: &str, patience: Duration) -> Result<(i32, String, String)>;

    /// Writes `bytes` to a new file at `path` on the guest.
    fn upload(&self, path: &str, bytes: &[u8]) -> Result<()>;

    /// Measures the guest's clock offset against this host's and the round
    /// trip it was measured with, by talking to `vmbench workload clock`.
    fn measure_clock(&self, vmbench: &str, deadline: Instant) -> Result<(i64, u64)>;

    /// Starts the janitor of `dir` (see `janitor_script`).
    fn start_janitor(&self, dir: &str, patience: Duration) -> Result<Self::Janitor>;

    /// Ends the janitor's input and waits (briefly) until it has cleaned up.
    fn finish_janitor(janitor: Self::Janitor);
}

/// What was learned while reaching a guest, whatever the way.
#[derive(Debug, Clone, Copy)]
pub struct Reached {
    /// This host's address as the guest sees it, e.g. for a network sink.
    pub local_ip: IpAddr,
    pub connect_time: Duration,
    /// How long the guest may stay silent before it counts as lost.
    pub silence_limit: Duration,
}

/// A command on the guest that waits for its input to end and then removes
/// `dir`. Its input ends when vmbench finishes it, or when the link goes
/// away for any reason, a crash or kill -9 of vmbench included.
///
/// The link writes a heartbeat to it at every keepalive, from its first
/// turn on; once the first has come, a janitor that hears none for
/// `patience` cleans up too, so that a session whose link died unseen (the
/// link cut, then vmbench gone) cannot keep its folder while the guest
/// still believes in the link. Before the first heartbeat (the upload, the
/// other guests' bring-up) only the end of its input counts, however long
/// that takes.
///
/// While it lives it holds a lock on `DIR/.alive`, which the sweep of
/// orphaned folders respects where it cannot see the janitor's process.
pub fn janitor_script(dir: &str, patience: Duration) -> String {
    let alive = super::shell_quote(&format!("{dir}/.alive"));
    format!(
        "if command -v flock >/dev/null 2>&1 && exec 9>>{alive}; then flock -n 9; fi; \
         if command -v timeout >/dev/null 2>&1; then \
         if [ \"$(head -c1 | wc -c)\" -eq 1 ]; then \
         while [ \"$(timeout {} head -c1 | wc -c)\" -eq 1 ]; do :; done; fi; \
         else cat >/dev/null; fi; rm -rf {}",
        patience.as_secs().max(1),
        super::shell_quote(dir)
    )
}

/// NTP's estimate over a conversation with `vmbench workload clock`, which
/// answers each line with its monotonic clock: the guest read its clock
/// halfway through the round trip; the round trip with the least delay
/// bounds the error best. Rounds after `deadline` are not started (each
/// blocking step is bounded by the link), so a slow guest costs a bounded
/// wait.
pub fn clock_rounds(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    deadline: Instant,
) -> Result<(i64, u64)> {
    const ROUNDS: usize = 16;
    let mut best: Option<(i64, u64)> = None;
    let mut line = String::new();
    for _ in 0..ROUNDS {
        if Instant::now() >= deadline {
            break;
        }
        let sent = monotonic_ns();
        writer.write_all(b"\n")?;
        writer.flush()?;
        line.clear();
        reader.read_line(&mut line)?;
        let received = monotonic_ns();
        let guest: u64 = line
            .trim()
            .parse()
            .map_err(|_| anyhow!("unexpected clock answer {line:?}"))?;
        let rtt = received - sent;
        let offset = guest as i64 - (sent + rtt / 2) as i64;
        if best.is_none_or(|(_, r)| rtt < r) {
            best = Some((offset, rtt));
        }
    }
    best.ok_or_else(|| anyhow!("no clock answer"))
}
