//! The replay producer: a recording's events paced by their session time,
//! seeks by time and by phase, following a recording still being written,
//! and the phase gate that keeps the two sides of an A/B replay aligned.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Bus, Consumer};
use crate::bus::EventSink;
use crate::event::{Event, LogLevel, Nanos};
use crate::model::Session;
use crate::store::{Reader, Writer, is_being_written};

/// Commands to the replay producer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplayControl {
    SetPaused(bool),
    /// So many nanoseconds back (negative) or on.
    Seek(i64),
    /// To a session time.
    SeekTo(Nanos),
    /// To the start of the phase so many phases back or on from the one
    /// playing; on past the last, to the end.
    SeekPhases(isize),
    /// To the phase of this number (1 is the first).
    SeekPhase(u32),
    /// To the recording's end as it is now: following a live session.
    SeekEnd,
    Speed(f64),
    /// Start no more than this many phases in playback (None: no limit):
    /// the side of an A/B replay that is ahead waits at the next phase's
    /// start for the other.
    Gate(Option<usize>),
}

/// Session time read from the recording per query.
const REPLAY_CHUNK: Nanos = 30 * 1_000_000_000;
/// How often a recording is looked at for news: its end, its writer.
const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// How far behind a live writer's last commit a follower reads: a writer
/// may still commit a sample as late as the store lets one arrive (a
/// guest's, stamped on its clock), and one commit later.
const FOLLOW_MARGIN: Nanos = crate::store::LATE_ARRIVAL + 1_000_000_000;

pub struct Replay {
    pub control: std::sync::mpsc::Sender<ReplayControl>,
    pub end: Nanos,
}

impl Replay {
    /// Opens a recording to play at `speed`; `follow` starts at its end,
    /// to watch a session that is still being recorded.
    pub fn open(path: &Path, speed: f64, follow: bool) -> Result<(Replay, Consumer, Bus)> {
        let reader = Reader::open(path)?;
        let end = reader.end()?;
        let session = Session::new(reader.header.clone());
        let (tx, rx) = channel();
        let (control_tx, control_rx) = channel();
        if follow {
            let _ = control_tx.send(ReplayControl::SeekEnd);
        }
        let sink = EventSink::new(tx.clone());
        let player = Player::new(reader, path.to_path_buf(), speed);
        std::thread::Builder::new()
            .name("replay".into())
            .spawn(move || {
                let result = player.run(&sink, control_rx);
                sink.done(result.map_err(|e| format!("{e:#}")));
            })?;
        Ok((
            Replay {
                control: control_tx,
                end,
            },
            Consumer::new(session, None),
            Bus { rx, tx },
        ))
    }
}

/// Where a seek lands, from the phases' start times, the recording's end
/// (as far as it may be read) and the position. None: nowhere to go.
pub fn seek_target(
    starts: &[Nanos],
    end: Nanos,
    position: Nanos,
    playing: Option<usize>,
    command: ReplayControl,
) -> Option<Nanos> {
    // One nanosecond into a phase, so that the phase has started there.
    let into = |t: Nanos| (t + 1).min(end);
    let target = match command {
        ReplayControl::Seek(delta) => position.saturating_add_signed(delta),
        ReplayControl::SeekTo(t) => t,
        ReplayControl::SeekEnd => end,
        ReplayControl::SeekPhase(number) => into(*starts.get((number as usize).checked_sub(1)?)?),
        ReplayControl::SeekPhases(by) => {
            // From the phase playing (counted as played, not by time: a
            // sample stamped with a phase's start plays before it starts).
            let to = match playing {
                Some(i) => i as isize + by,
                None if by > 0 => by - 1,
                // Back from before the first phase: nowhere.
                None => return None,
            };
            match usize::try_from(to) {
                Ok(i) if i < starts.len() => into(starts[i]),
                // On past the last phase: the end.
                Ok(_) => end,
                // Back before the first: the first.
                Err(_) => into(*starts.first()?),
            }
        }
        ReplayControl::SetPaused(_) | ReplayControl::Speed(_) | ReplayControl::Gate(_) => {
            return None;
        }
    };
    Some(target.min(end))
}

/// The replay thread's state.
struct Player {
    reader: Reader,
    path: PathBuf,
    speed: f64,
    paused: bool,
    gate: Option<usize>,
    /// Session time of the last event played.
    position: Nanos,
    /// A wall-clock instant and the position it stood for.
    anchor: (Instant, Nanos),
    pending: VecDeque<Event>,
    /// Events before this time have been read.
    loaded_to: Nanos,
    /// Phases started so far in what was played.
    phases_started: usize,
    series_sent: usize,
    /// What the consumer was last told of the recording.
    told: Option<(Nanos, Writer)>,
    /// The recording will not grow: its session ended, or its writer is gone.
    complete: bool,
    last_look: Option<Instant>,
}

impl Player {
    fn new(reader: Reader, path: PathBuf, speed: f64) -> Self {
        Player {
            reader,
            path,
            speed,
            paused: false,
            gate: None,
            position: 0,
            anchor: (Instant::now(), 0),
            pending: VecDeque::new(),
            loaded_to: 0,
            phases_started: 0,
            series_sent: 0,
            told: None,
            complete: false,
            last_look: None,
        }
    }

    /// The writer's state and how far the recording may be read now.
    fn look(&mut self, sink: &EventSink) -> Result<(Writer, Nanos)> {
        // The lock first, then the end: a writer that writes its end and
        // closes between the two looks is seen as finished, not gone.
        let writing = is_being_written(&self.path);
        let end = self.reader.end()?;
        let writer = if self
            .reader
            .has_ended_since(end.saturating_sub(REPLAY_CHUNK))?
        {
            Writer::Finished
        } else if writing {
            Writer::Writing
        } else {
            Writer::Gone
        };
        if self.told != Some((end, writer)) {
            self.told = Some((end, writer));
            sink.recording(end, writer);
        }
        self.last_look = Some(Instant::now());
        let readable = match writer {
            Writer::Writing => end.saturating_sub(FOLLOW_MARGIN),
            Writer::Finished | Writer::Gone => end + 1,
        };
        Ok((writer, readable))
    }

    fn send_new_series(&mut self, sink: &EventSink) -> Result<()> {
        self.reader.refresh_series()?;
        for def in self.reader.series.iter().skip(self.series_sent) {
            sink.send(Event::SeriesDefined(def.clone()));
        }
        self.series_sent = self.reader.series.len();
        Ok(())
    }

    /// Reads the next stretch of the recording, as far as it may be read.
    fn load(&mut self, sink: &EventSink) -> Result<()> {
        let (writer, readable) = self.look(sink)?;
        let to = readable.min(self.loaded_to + REPLAY_CHUNK);
        if to > self.loaded_to {
            self.send_new_series(sink)?;
            let events = self.reader.timeline(self.loaded_to, self.loaded_to, to)?;
            self.pending.extend(events);
            self.loaded_to = to;
        }
        if writer == Writer::Gone && self.pending.is_empty() && self.loaded_to >= readable {
            let end = self.reader.end()?;
            sink.send(Event::Log {
                t: end,
                level: LogLevel::Warn,
                text: format!(
                    "the recording stops at {} without an end: its writer is gone \
                     (killed or crashed); everything it committed is here",
                    crate::format::clock(end)
                ),
            });
            self.complete = true;
            sink.done(Ok(()));
        }
        Ok(())
    }

    /// Rebuilds the consumer's model at `target`: every event before it,
    /// and the samples its history window can hold.
    fn seek(&mut self, sink: &EventSink, target: Nanos) -> Result<()> {
        sink.reset();
        for event in self.reader.series_events() {
            sink.send(event);
        }
        self.series_sent = self.reader.series.len();
        let history = self.reader.header.interval_ns.max(1) * crate::model::SERIES_HISTORY as Nanos;
        self.phases_started = 0;
        for event in self
            .reader
            .timeline(0, target.saturating_sub(history), target)?
        {
            if matches!(event, Event::PhaseStarted { .. }) {
                self.phases_started += 1;
            }
            sink.send(event);
        }
        self.position = target;
        self.loaded_to = target;
        self.pending.clear();
        self.complete = false;
        self.anchor = (Instant::now(), target);
        Ok(())
    }

    /// True when the next event must wait: a phase past the gate.
    fn held_at_gate(&self) -> bool {
        matches!(
            (self.gate, self.pending.front()),
            (Some(gate), Some(Event::PhaseStarted { .. })) if self.phases_started >= gate
        )
    }

    fn run(mut self, sink: &EventSink, control: Receiver<ReplayControl>) -> Result<()> {
        for event in self.reader.series_events() {
            sink.send(event);
        }
        self.series_sent = self.reader.series.len();
        loop {
            if self.pending.is_empty() && !self.complete {
                self.load(sink)?;
            } else if !self.complete && self.last_look.is_none_or(|at| at.elapsed() >= FOLLOW_POLL)
            {
                // Paused, or with events still to play: the end and the
                // writer are still looked at, so the header stays true.
                self.look(sink)?;
            }
            let next = self.pending.front().map(|e| e.t().unwrap_or(self.position));
            let stopped = self.paused || self.held_at_gate();
            let wait = match (stopped, next) {
                (false, Some(t)) => {
                    let behind = t.saturating_sub(self.anchor.1) as f64 / self.speed;
                    let due = self.anchor.0 + Duration::from_nanos(behind as u64);
                    due.saturating_duration_since(Instant::now())
                }
                _ if self.complete => Duration::from_secs(3600),
                _ => FOLLOW_POLL,
            };
            match control.recv_timeout(wait) {
                Ok(ReplayControl::SetPaused(p)) => {
                    self.paused = p;
                    self.anchor = (Instant::now(), self.position);
                }
                Ok(ReplayControl::Speed(s)) => {
                    self.speed = s;
                    self.anchor = (Instant::now(), self.position);
                }
                Ok(ReplayControl::Gate(gate)) => {
                    let was_held = self.held_at_gate();
                    self.gate = gate;
                    if was_held && !self.held_at_gate() {
                        // The wait at the gate is not time to catch up on.
                        self.anchor = (Instant::now(), self.position);
                    }
                }
                Ok(seek) => {
                    let (_, readable) = self.look(sink)?;
                    let starts = self.reader.phase_starts()?;
                    let end = readable.min(self.reader.end()?);
                    let playing = self.phases_started.checked_sub(1);
                    if let Some(target) = seek_target(&starts, end, self.position, playing, seek) {
                        self.seek(sink, target)?;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
                Err(RecvTimeoutError::Timeout) => {
                    if stopped {
                        continue;
                    }
                    let Some(event) = self.pending.pop_front() else {
                        continue;
                    };
                    self.position = event.t().unwrap_or(self.position);
                    if matches!(event, Event::PhaseStarted { .. }) {
                        self.phases_started += 1;
                    }
                    let ended = matches!(event, Event::SessionEnded { .. });
                    if !sink.send(event) {
                        return Ok(());
                    }
                    if ended {
                        self.complete = true;
                        self.pending.clear();
                        sink.done(Ok(()));
                    }
                }
            }
        }
    }
}

/// The phase gate of an A/B replay: how many phases each side may start.
/// A side may start its next phase once the other has ended its current
/// one too, so that both start each phase together; a side whose
/// recording has nothing more to play (its session ended, or its writer
/// is gone) holds nobody back.
pub fn phase_gate(a: &Consumer, b: &Consumer) -> Option<usize> {
    let may_start = |side: &Consumer| -> Option<usize> {
        let s = &side.session;
        if s.ended.is_some() || side.finished() {
            return None;
        }
        let between_phases = s.phases.last().is_none_or(|p| p.ended.is_some());
        Some(s.phases.len() + usize::from(between_phases))
    };
    match (may_start(a), may_start(b)) {
        (Some(x), Some(y)) => Some(x.min(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn seeks_by_phase_land_inside_the_phase_and_stop_at_the_ends() {
        let starts = [10 * S, 20 * S, 30 * S];
        let end = 40 * S;
        // The phase playing is the one last started in playback.
        let playing_at = |position: Nanos| starts.iter().rposition(|s| *s <= position);
        let seek =
            |position, command| seek_target(&starts, end, position, playing_at(position), command);
        // Exactly at a phase's start, that phase is the one playing.
        assert_eq!(seek(20 * S, ReplayControl::SeekPhases(1)), Some(30 * S + 1));
        assert_eq!(
            seek(20 * S, ReplayControl::SeekPhases(-1)),
            Some(10 * S + 1)
        );
        assert_eq!(seek(25 * S, ReplayControl::SeekPhases(0)), Some(20 * S + 1));
        // On past the last: the end; back past the first: the first.
        assert_eq!(seek(35 * S, ReplayControl::SeekPhases(1)), Some(end));
        assert_eq!(
            seek(15 * S, ReplayControl::SeekPhases(-5)),
            Some(10 * S + 1)
        );
        // Before the first phase: `]` goes to it, `[` nowhere.
        assert_eq!(seek(S, ReplayControl::SeekPhases(1)), Some(10 * S + 1));
        assert_eq!(seek(S, ReplayControl::SeekPhases(-1)), None);
        assert_eq!(seek(S, ReplayControl::SeekPhase(3)), Some(30 * S + 1));
        assert_eq!(seek(S, ReplayControl::SeekPhase(4)), None);
        assert_eq!(seek(S, ReplayControl::SeekPhase(0)), None);
        assert_eq!(seek(S, ReplayControl::SeekTo(99 * S)), Some(end));
        assert_eq!(seek(5 * S, ReplayControl::Seek(-10 * S as i64)), Some(0));
        // Paused on a sample stamped with a phase's start, before that phase
        // started in playback: `]` goes to that phase, not past it.
        assert_eq!(
            seek_target(&starts, end, 20 * S, Some(0), ReplayControl::SeekPhases(1)),
            Some(20 * S + 1)
        );
    }

    #[test]
    fn a_recording_without_phases_has_no_phase_to_go_to() {
        let seek = |command| seek_target(&[], 5 * S, S, None, command);
        assert_eq!(seek(ReplayControl::SeekPhases(-1)), None);
        assert_eq!(seek(ReplayControl::SeekPhases(0)), None);
        // On past the last phase there is: the end.
        assert_eq!(seek(ReplayControl::SeekPhases(1)), Some(5 * S));
        assert_eq!(seek(ReplayControl::SeekPhase(1)), None);
    }

    /// Waits until the recorder has committed up to `t`.
    fn committed(recorder: &crate::store::Recorder, t: Nanos) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while recorder.committed_until() < t {
            assert!(Instant::now() < deadline, "the recorder did not commit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Takes the follower's messages until `done` says so.
    fn follow_until(consumer: &mut Consumer, bus: &Bus, done: impl Fn(&Consumer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(consumer) {
            assert!(
                Instant::now() < deadline,
                "the follower did not get there: {:?}",
                consumer.recording
            );
            if let Ok(msg) = bus.rx.recv_timeout(Duration::from_millis(50)) {
                consumer.take(msg);
            }
        }
    }

    #[test]
    fn a_follower_misses_no_late_event_and_sees_a_writer_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("live.vmb");
        let recorder = crate::store::Recorder::create(&path, &crate::model::tests::test_header())
            .expect("create");
        recorder
            .record(Event::SeriesDefined(crate::event::SeriesDef {
                id: 0,
                source: "host".into(),
                metric: "procs_running".into(),
                unit: "tasks".into(),
                kind: crate::event::SeriesKind::Gauge,
            }))
            .expect("record");
        let sample = |t: Nanos| {
            Event::Sample(crate::event::Sample {
                t,
                values: vec![(0, t / S)],
            })
        };
        for second in 0..=20 {
            recorder.record(sample(second * S)).expect("record");
        }
        committed(&recorder, 20 * S);
        let (_replay, mut follower, bus) = Replay::open(&path, 1000.0, true).expect("follows");
        follow_until(&mut follower, &bus, |c| {
            c.recording == Some((20 * S, Writer::Writing)) && c.session.now >= 8 * S
        });
        // An event 5 s older than the newest sample (the store lets a
        // guest's be up to 10 s late), committed after the follower jumped
        // to the end: the margin keeps it ahead of the follower.
        recorder
            .record(Event::Log {
                t: 15 * S + 1,
                level: LogLevel::Info,
                text: "late, but not lost".into(),
            })
            .expect("record");
        for second in 21..=24 {
            recorder.record(sample(second * S)).expect("record");
        }
        recorder
            .record(Event::SessionEnded {
                t: 24 * S,
                reason: "plan completed".into(),
            })
            .expect("record");
        recorder.close().expect("close");
        follow_until(&mut follower, &bus, Consumer::finished);
        assert_eq!(follower.recording, Some((24 * S, Writer::Finished)));
        assert!(
            follower
                .session
                .log
                .iter()
                .any(|l| l.text == "late, but not lost"),
            "{:?}",
            follower.session.log
        );
        assert!(follower.session.ended.is_some());
    }

    #[test]
    fn a_side_starts_its_next_phase_when_the_other_has_ended_its_current_one() {
        let events = crate::model::tests::fixture_events("two_copies.jsonl");
        let index_of =
            |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred).expect("in the fixture");
        let first_end = index_of(&|e| matches!(e, Event::PhaseEnded { phase: 0, .. }));
        let second_start = index_of(&|e| matches!(e, Event::PhaseStarted { phase: 1, .. }));
        let side = || Consumer::new(Session::new(crate::model::tests::test_header()), None);
        let (mut a, mut b) = (side(), side());
        for e in &events[..first_end] {
            a.apply(e.clone());
            b.apply(e.clone());
        }
        // Both in phase 1: neither may start a second.
        assert_eq!(phase_gate(&a, &b), Some(1));
        for e in &events[first_end..second_start] {
            a.apply(e.clone());
        }
        // A has ended phase 1, B has not: A waits.
        assert_eq!(phase_gate(&a, &b), Some(1));
        for e in &events[first_end..second_start] {
            b.apply(e.clone());
        }
        assert_eq!(
            phase_gate(&a, &b),
            Some(2),
            "both ended phase 1: both go on"
        );
        // A side whose writer is gone, with no end recorded: its producer
        // has finished, and it holds nobody back either.
        let mut gone = side();
        for e in &events[..first_end] {
            gone.apply(e.clone());
        }
        gone.take(crate::bus::Msg::ProducerDone(Ok(())));
        assert_eq!(
            phase_gate(&a, &gone),
            None,
            "a gone writer holds nobody back"
        );
        let t = b.session.now;
        b.apply(Event::SessionEnded {
            t,
            reason: "plan completed".into(),
        });
        assert_eq!(phase_gate(&a, &b), None, "B has ended: A goes on alone");
    }
}
