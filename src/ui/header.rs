//! The top line: plan, phase, time, feed, and what vmbench itself costs
//! the host, so that an operator sees the observer's share live.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::theme::Theme;
use super::{Feed, View, Writer};
use crate::format::{clock, speed};
use crate::model::Session;

/// The header's words, long or short: at 80 columns the short ones keep
/// the phase, the times and the feed on the line.
fn texts(session: &Session, view: &View, short: bool) -> (String, String, String) {
    let newest = session.phases.len().checked_sub(1);
    let label = |i: usize| {
        let full = session.phase_label(i);
        if short {
            full.replacen("phase ", "", 1).replacen(" rep ", " r", 1)
        } else {
            full
        }
    };
    let state = if session.current_phase().is_some() {
        label(newest.unwrap_or(0))
    } else if session.ended.is_some() || view.finished {
        "finished".to_string()
    } else if matches!(view.feed, Feed::Live { waiting: true, .. }) && session.phases.is_empty() {
        "waiting: press s to start".to_string()
    } else if let Some(last) = newest {
        format!("after {}", label(last))
    } else {
        "waiting".to_string()
    };
    let times = if short {
        format!("{} +{}", clock(session.now), clock(session.remaining()))
    } else {
        format!(
            "{} elapsed  {} left",
            clock(session.now),
            clock(session.remaining())
        )
    };
    let feed = match &view.feed {
        Feed::Live { .. } => "LIVE".to_string(),
        Feed::Replay {
            speed: pace,
            paused,
            end,
            writer,
        } => format!(
            "{} {}{} {}/{}{}",
            if short { "▶" } else { "REPLAY" },
            if *paused { "paused " } else { "" },
            speed(*pace),
            clock(session.now),
            clock(*end),
            match writer {
                Writer::Finished => "",
                Writer::Writing if short => " follow",
                Writer::Writing => " following",
                Writer::Gone => " writer gone",
            }
        ),
    };
    (state, times, feed)
}

pub fn render(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme, view: &View) {
    let dim = Style::new().fg(theme.dim.0);
    let width = area.width as usize;
    let build = |short: bool| {
        let (mut state, times, feed) = texts(session, view, short);
        let mut plan = format!("{} ", session.header.plan_name);
        if short {
            // The times and the feed stay whole; the plan's name goes, then
            // the state is cut, as far as it takes.
            let fixed = times.chars().count() + feed.chars().count() + 7;
            let room = width.saturating_sub(fixed);
            if plan.chars().count() + state.chars().count() > room {
                plan.clear();
            }
            if state.chars().count() > room {
                state = state
                    .chars()
                    .take(room.saturating_sub(1))
                    .collect::<String>()
                    + "…";
            }
        }
        let mut spans = Vec::new();
        if !short {
            spans.push(Span::styled(
                " vmbench ",
                Style::new().fg(theme.title.0).add_modifier(Modifier::BOLD),
            ));
        }
        spans.extend([
            Span::styled(plan, Style::new().fg(theme.accent.0)),
            Span::raw(format!(" {state}  ")),
            Span::styled(times, dim),
            Span::raw("  "),
            Span::styled(
                feed,
                Style::new().fg(theme.accent.0).add_modifier(Modifier::BOLD),
            ),
        ]);
        if view.display_paused {
            spans.push(Span::styled(
                if short { " PAUSED" } else { " DISPLAY PAUSED" },
                Style::new().fg(theme.warn.0).add_modifier(Modifier::BOLD),
            ));
        }
        Line::from(spans)
    };
    let mut line = build(false);
    if line.width() > width {
        line = build(true);
    }
    let used = line.width();
    line.render(area, buf);
    // vmbench's own CPU, on the right when there is room for it: on this
    // host, and the mean of its agents' on the guests.
    if let Some(own) = session.process_cpu_percent("vmbench") {
        let agents: Vec<f64> = session
            .guests
            .iter()
            .filter_map(|(guest, _)| session.process_cpu_percent(&format!("guest:{guest}/vmbench")))
            .collect();
        let on_guests = if agents.is_empty() {
            String::new()
        } else {
            let mean = agents.iter().sum::<f64>() / agents.len() as f64;
            format!(", {mean:.1}% on each guest")
        };
        let cost = format!(" vmbench itself {own:.1}% cpu{on_guests} ");
        let room = area.width as usize;
        if used + cost.chars().count() < room {
            let width = cost.chars().count() as u16;
            Span::styled(cost, dim).render(
                Rect {
                    x: area.right() - width,
                    width,
                    ..area
                },
                buf,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::event::{Event, Sample, SeriesKind};
    use crate::ui::fixtures::{SIZES, define, draw, live_view, session};
    use crate::ui::{Feed, View, Writer};

    fn top_line(session: &crate::model::Session, view: &View, width: u16) -> String {
        let terminal = draw(session, view, width, 24);
        let buffer = terminal.backend().buffer();
        (0..width).map(|x| buffer[(x, 0)].symbol()).collect()
    }

    #[test]
    fn replay_says_where_it_is_and_whether_the_recording_is_still_written() {
        for (writer, said) in [
            (Writer::Finished, None),
            (Writer::Writing, Some("following")),
            (Writer::Gone, Some("writer gone")),
        ] {
            let view = View::new(Feed::Replay {
                speed: 4.0,
                paused: true,
                end: 12_000_000_000,
                writer,
            });
            let line = top_line(&session(), &view, 120);
            assert!(line.contains("REPLAY paused 4× 00:10/00:12"), "{line}");
            match said {
                Some(text) => assert!(line.contains(text), "{line}"),
                None => assert!(!line.contains("follow") && !line.contains("gone"), "{line}"),
            }
            // At 80 columns the short words keep the state, the times and
            // the feed on the line.
            let narrow = top_line(&session(), &view, 80);
            assert!(narrow.contains("00:10/00:12"), "{narrow}");
            if let Some(text) = said {
                assert!(narrow.contains(&text[..6]), "{narrow}");
            }
            if writer == Writer::Writing {
                for (w, h) in SIZES {
                    insta::assert_snapshot!(
                        format!("replay_following_{w}x{h}"),
                        draw(&session(), &view, w, h).backend()
                    );
                }
            }
        }
    }

    #[test]
    fn a_long_plan_and_phase_leave_the_feed_whole_at_80_columns() {
        let mut session = crate::ui::fixtures::many_copies(64);
        session.header.plan_name = "study-2009-around-cores-kvm-versus-xen-hvm".into();
        for writer in [Writer::Writing, Writer::Gone] {
            let view = View::new(Feed::Replay {
                speed: 1.0,
                paused: false,
                end: 600_000_000_000,
                writer,
            });
            let line = top_line(&session, &view, 80);
            let said = if writer == Writer::Writing {
                "follow"
            } else {
                "writer gone"
            };
            assert!(line.contains(said) && line.contains("/10:00"), "{line}");
        }
    }

    #[test]
    fn vmbench_own_cpu_shows_where_there_is_room() {
        let mut session = session();
        define(
            &mut session,
            90,
            "vmbench",
            "cpu.utime",
            SeriesKind::Counter,
        );
        define(
            &mut session,
            91,
            "vmbench",
            "cpu.stime",
            SeriesKind::Counter,
        );
        // 3 + 1 ticks in a second at 100 ticks a second: 4 % of a core.
        for (i, (u, s)) in [(0, 0), (3, 1)].into_iter().enumerate() {
            session.apply(&Event::Sample(Sample {
                t: 11_000_000_000 + i as u64 * 1_000_000_000,
                values: vec![(90, u), (91, s)],
            }));
        }
        assert!(top_line(&session, &live_view(), 200).contains("vmbench itself 4.0% cpu "));
        assert!(!top_line(&session, &live_view(), 60).contains("vmbench itself"));
        // Two guests' agents at 1 % and 3 % of a core: 2 % on each, on average.
        for (i, (guest, ticks)) in [("kvm-1", 1), ("kvm-2", 3)].into_iter().enumerate() {
            session.apply(&Event::GuestState {
                t: 1,
                guest: guest.into(),
                state: crate::event::GuestState::Connecting,
            });
            let id = 92 + i as u32;
            define(
                &mut session,
                id,
                &format!("guest:{guest}/vmbench"),
                "cpu.utime",
                SeriesKind::Counter,
            );
            for (k, value) in [0, ticks].into_iter().enumerate() {
                session.apply(&Event::Sample(Sample {
                    t: 11_000_000_000 + k as u64 * 1_000_000_000,
                    values: vec![(id, value)],
                }));
            }
        }
        let line = top_line(&session, &live_view(), 200);
        assert!(
            line.contains("vmbench itself 4.0% cpu, 2.0% on each guest"),
            "{line}"
        );
    }

    #[test]
    fn waiting_for_the_operator() {
        let mut session = crate::model::Session::new(crate::model::tests::test_header());
        session.apply(&Event::Log {
            t: 0,
            level: crate::event::LogLevel::Info,
            text: "ready: press s to start the plan".into(),
        });
        let view = View::new(Feed::Live { waiting: true });
        for (w, h) in SIZES {
            insta::assert_snapshot!(
                format!("waiting_{w}x{h}"),
                draw(&session, &view, w, h).backend()
            );
        }
    }
}
