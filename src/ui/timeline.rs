//! The timeline under the header: every planned phase as a segment as long
//! as it ran (or is planned to run), coloured by its outcome, with notes,
//! faults and flagged phases marked where they happened.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};

use super::View;
use super::theme::Theme;
use crate::event::{LogLevel, Nanos, PhaseOutcome};
use crate::model::{LogKind, Session};

/// A phase's place on the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    /// Where it starts, in timeline time (phases laid end to end).
    start: Nanos,
    length: Nanos,
    /// How much of it has run.
    ran: Nanos,
    state: SegmentState,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SegmentState {
    Planned,
    Running,
    Ended(PhaseOutcome),
}

/// One segment per phase, in the order they run: the ones that ran as
/// long as they ran, the running one as long as planned or longer, then
/// the planned ones still ahead (added repetitions included) as planned.
/// Segment i is the session's phase i while there is one.
fn segments(session: &Session) -> Vec<Segment> {
    let ahead = session.planned_ahead();
    let mut start = 0;
    let mut out = Vec::with_capacity(session.phases.len() + ahead.len());
    let ran = session.phases.iter().map(|p| match p.ended {
        Some((t, outcome)) => {
            let ran = t.saturating_sub(p.started);
            (ran, ran, SegmentState::Ended(outcome))
        }
        None => {
            let ran = session.now.saturating_sub(p.started);
            (ran.max(p.duration), ran, SegmentState::Running)
        }
    });
    let planned = ahead.iter().map(|p| (p.duration, 0, SegmentState::Planned));
    for (length, ran, state) in ran.chain(planned) {
        let length = length.max(1);
        out.push(Segment {
            start,
            length,
            ran,
            state,
        });
        start += length;
    }
    out
}

/// Where session time `t` falls on the timeline: inside the phase that
/// ran then, or at the start of the next phase when between phases.
fn place(session: &Session, segments: &[Segment], t: Nanos) -> Option<Nanos> {
    let mut after = None;
    for (phase, segment) in session.phases.iter().zip(segments) {
        let end = phase.ended.map_or(session.now, |(e, _)| e);
        if (phase.started..=end).contains(&t) {
            return Some(segment.start + (t - phase.started).min(segment.length - 1));
        }
        if phase.started > t && after.is_none() {
            after = Some(segment.start);
        }
    }
    // After the last phase that ran (a plan held with `a`): at the start of
    // the next planned one, else at the end.
    after
        .or_else(|| segments.get(session.phases.len()).map(|s| s.start))
        .or_else(|| segments.last().map(|s| s.start + s.length - 1))
}

/// The phase (an index into the session's phases) drawn at column `x` of
/// a timeline `width` wide; None for one still to come.
pub fn phase_at(session: &Session, width: u16, x: u16) -> Option<usize> {
    let segments = segments(session);
    let total = segments.last().map(|s| s.start + s.length)?;
    if width == 0 || x >= width {
        return None;
    }
    let at = ((u128::from(x) * 2 + 1) * u128::from(total) / (2 * u128::from(width))) as Nanos;
    let index = segments.iter().rposition(|s| s.start <= at)?;
    (index < session.phases.len()).then_some(index)
}

pub fn render(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme, view: &View) {
    let segments = segments(session);
    let Some(total) = segments.last().map(|s| s.start + s.length) else {
        return;
    };
    if area.width == 0 {
        return;
    }
    let width = u64::from(area.width);
    let column_of = |at: Nanos| ((u128::from(at) * u128::from(width)) / u128::from(total)) as u16;
    let cursor = view.cursor;
    let colour = |state: SegmentState| -> Color {
        match state {
            SegmentState::Planned => theme.dim.0,
            SegmentState::Running => theme.progress.0,
            SegmentState::Ended(PhaseOutcome::Completed) => theme.good.0,
            SegmentState::Ended(PhaseOutcome::Skipped) => theme.dim.0,
            SegmentState::Ended(PhaseOutcome::Partial | PhaseOutcome::Aborted) => theme.warn.0,
            SegmentState::Ended(_) => theme.bad.0,
        }
    };
    let mut segment = 0;
    for x in 0..area.width {
        // The middle of the column, in timeline time.
        let at = ((u128::from(x) * 2 + 1) * u128::from(total) / (2 * u128::from(width))) as Nanos;
        while segment + 1 < segments.len() && segments[segment + 1].start <= at {
            segment += 1;
        }
        let s = segments[segment];
        let first = column_of(s.start) == x;
        let done = at < s.start + s.ran;
        let symbol = match (first && column_of(s.length) >= 3, s.state, done) {
            (true, _, _) => "┣",
            (false, SegmentState::Planned, _) | (false, SegmentState::Running, false) => "─",
            _ => "━",
        };
        let mut style = Style::new().fg(if s.state == SegmentState::Running && !done {
            theme.dim.0
        } else {
            colour(s.state)
        });
        if cursor == Some(segment) {
            style = style.add_modifier(Modifier::REVERSED);
        }
        buf[(area.x + x, area.y)]
            .set_symbol(symbol)
            .set_style(style);
    }
    // Marks: flagged phases in their middle, then notes and faults where
    // they happened (a fault wins a shared column).
    let mut marks: Vec<(Nanos, &str, Color)> = Vec::new();
    for result in session.results.phases.iter().filter(|r| r.flag.is_some()) {
        let index = session.phases.iter().position(|p| p.id + 1 == result.phase);
        if let Some(s) = index.and_then(|i| segments.get(i)) {
            marks.push((s.start + s.length / 2, "!", theme.warn.0));
        }
    }
    for line in &session.log {
        let mark = match (line.kind, line.level) {
            (LogKind::Note, _) => ("◆", theme.accent.0),
            (_, LogLevel::Error) if line.kind != LogKind::Phase => ("✖", theme.bad.0),
            _ => continue,
        };
        if let Some(at) = place(session, &segments, line.t) {
            marks.push((at, mark.0, mark.1));
        }
    }
    for (at, symbol, colour) in marks {
        let x = column_of(at).min(area.width - 1);
        let cell = &mut buf[(area.x + x, area.y)];
        cell.set_symbol(symbol).set_fg(colour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::{draw, live_view, session};

    #[test]
    fn phases_lie_end_to_end_as_long_as_they_ran() {
        let session = session();
        let segments = segments(&session);
        assert_eq!(segments.len(), session.phases_in_all());
        for (phase, s) in session.phases.iter().zip(&segments) {
            let (end, outcome) = phase.ended.expect("the fixture's phases ended");
            assert_eq!(s.length, end - phase.started);
            assert_eq!(s.state, SegmentState::Ended(outcome));
        }
        for pair in segments.windows(2) {
            assert_eq!(pair[1].start, pair[0].start + pair[0].length);
        }
    }

    #[test]
    fn a_repetition_added_by_an_adaptive_benchmark_gets_its_segment() {
        let mut session = session();
        let planned = session.phases_in_all();
        // A third repetition of the fixture's phases, not in the schedule.
        let t = session.now + 1;
        session.apply(&crate::event::Event::PhaseStarted {
            t,
            phase: 2,
            benchmark: "cpu".into(),
            workload: "cpu".into(),
            concurrency: 2,
            repetition: 3,
            duration: 4_000_000_000,
        });
        session.apply(&crate::event::Event::Note {
            t: t + 1,
            text: "inside the added repetition".into(),
        });
        assert_eq!(session.phases_in_all(), planned + 1);
        assert_eq!(
            session.phase_label(2),
            format!("phase 3/{} cpu ×2 rep 3", planned + 1)
        );
        let segments = segments(&session);
        assert_eq!(segments.len(), planned + 1);
        assert_eq!(segments[2].state, SegmentState::Running);
        assert_eq!(segments[2].length, 4_000_000_000);
        // The planned phases still ahead follow it, as planned.
        let ahead = session.planned_ahead();
        assert_eq!(segments[3].length, ahead[0].duration);
        let at = place(&session, &segments, t + 1).expect("placed");
        assert_eq!(at, segments[2].start + 1);
    }

    #[test]
    fn a_note_made_while_the_plan_is_held_sits_at_the_next_phase() {
        let session = session();
        let segments = segments(&session);
        let after_last = session
            .phases
            .last()
            .and_then(|p| p.ended)
            .expect("ended")
            .0
            + 1;
        assert_eq!(
            place(&session, &segments, after_last),
            Some(segments[session.phases.len()].start)
        );
    }

    #[test]
    fn a_note_is_marked_inside_its_phase() {
        let mut session = session();
        let (id, started) = (session.phases[1].id, session.phases[1].started);
        let t = started + 1;
        session.apply(&crate::event::Event::Note {
            t,
            text: "BIOS update".into(),
        });
        let segments = segments(&session);
        let at = place(&session, &segments, t).expect("placed");
        assert_eq!(at, segments[id as usize].start + 1);
        let mut view = live_view();
        view.cursor = Some(0);
        let terminal = draw(&session, &view, 80, 24);
        let buffer = terminal.backend().buffer();
        let row: String = (0..80)
            .map(|x| buffer[(x, 1)].symbol().to_string())
            .collect();
        assert!(row.contains('◆'), "{row}");
        // The phase under the cursor is drawn reversed.
        assert!(buffer[(0, 1)].modifier.contains(Modifier::REVERSED));
    }
}
