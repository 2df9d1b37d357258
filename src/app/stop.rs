//! Stopping a live session, from any state and by any road: `q`, Ctrl-C,
//! SIGINT, SIGTERM, SIGHUP (the terminal closed), or a recording that can no
//! longer be written. The first request asks the orchestrator to wind down
//! (copies killed, guests closed, `session_ended` written); a second one,
//! or a wind-down that overruns its deadline, ends the session at once from
//! the front end, which writes the `session_ended` itself.

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::bus::Msg;
use crate::orchestrate::StopCause;

/// How long the orchestrator may take to wind down before the front end
/// ends the session without it: under the 5 s an operator is promised.
pub const WIND_DOWN: Duration = Duration::from_secs(4);

/// Exit status of a session ended at once by a second interrupt, as a
/// shell reports a process ended by SIGINT.
pub const AT_ONCE_STATUS: i32 = 130;

/// Delivers SIGINT, SIGTERM and SIGHUP to the front end as bus messages,
/// from a thread of its own, for the rest of the process.
pub fn forward_signals(tx: Sender<Msg>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if tx.send(Msg::Signal(signal)).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}

pub fn cause_of(signal: i32) -> StopCause {
    match signal {
        SIGINT => StopCause::Signal("SIGINT"),
        SIGTERM => StopCause::Signal("SIGTERM"),
        SIGHUP => StopCause::Signal("SIGHUP (terminal closed)"),
        _ => StopCause::Signal("a signal"),
    }
}

/// What the front end does about a stop request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStep {
    /// Ask the orchestrator to wind down.
    WindDown(StopCause),
    /// A second request: end now.
    AtOnce,
}

/// Whether, since when and why a stop was asked for.
#[derive(Debug, Default)]
pub struct Stopping {
    requested: Option<(Instant, StopCause)>,
}

impl Stopping {
    pub fn request(&mut self, cause: StopCause) -> StopStep {
        match self.requested {
            Some(_) => StopStep::AtOnce,
            None => {
                self.requested = Some((Instant::now(), cause));
                StopStep::WindDown(cause)
            }
        }
    }

    pub fn cause(&self) -> Option<StopCause> {
        self.requested.map(|(_, cause)| cause)
    }

    /// True once the wind-down has taken longer than it may.
    pub fn overdue(&self) -> bool {
        self.requested
            .is_some_and(|(since, _)| since.elapsed() >= WIND_DOWN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_request_ends_at_once() {
        let mut stopping = Stopping::default();
        assert!(!stopping.overdue());
        assert_eq!(
            stopping.request(StopCause::Signal("SIGTERM")),
            StopStep::WindDown(StopCause::Signal("SIGTERM"))
        );
        assert_eq!(stopping.request(StopCause::Operator), StopStep::AtOnce);
        assert_eq!(stopping.cause(), Some(StopCause::Signal("SIGTERM")));
    }
}
