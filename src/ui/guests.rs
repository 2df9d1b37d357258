//! Before the first phase: each guest's connection, as far as it has got.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::filter::Filter;
use super::theme::Theme;
use super::widgets::pane_block;
use crate::event::GuestState;
use crate::model::Session;

pub fn render(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    filter: Option<&Filter>,
) {
    let title = if session.guests.is_empty() {
        " copies ".to_string()
    } else {
        match session.hosts().len() {
            0 => format!(" guests ({}) ", session.guests.len()),
            hosts => format!(
                " guests ({}) on {} hosts ",
                session.guests.len().saturating_sub(hosts),
                hosts + 1
            ),
        }
    };
    let block = pane_block(title, theme, false);
    let inner = block.inner(area);
    block.render(area, buf);
    if session.guests.is_empty() {
        Paragraph::new("no benchmark has run yet")
            .style(Style::new().fg(theme.dim.0))
            .render(inner, buf);
        return;
    }
    let lines = grouped_lines(session, theme, filter);
    for (row, line) in lines.into_iter().take(inner.height as usize).enumerate() {
        line.render(
            Rect {
                y: inner.y + row as u16,
                height: 1,
                ..inner
            },
            buf,
        );
    }
}

/// One line per guest; with `[[host]]`s in the plan, grouped under the
/// machine each runs on (this one first), each host with its own state.
fn grouped_lines<'a>(
    session: &'a Session,
    theme: &Theme,
    filter: Option<&Filter>,
) -> Vec<Line<'a>> {
    let hosts = session.hosts();
    let line = |name: &str, state: &GuestState, indent: &str| {
        guest_line(session, theme, name, state, indent)
    };
    let kept = |name: &str| {
        filter.is_none_or(|f| {
            let technology = session
                .plan
                .as_ref()
                .and_then(|p| p.guests.iter().find(|g| g.name() == name))
                .map(|g| g.technology.as_str());
            f.keeps_guest(name, technology, session)
        })
    };
    if hosts.is_empty() {
        return session
            .guests
            .iter()
            .filter(|(n, _)| kept(n))
            .map(|(n, s)| line(n, s, ""))
            .collect();
    }
    let heading = |text: String| Line::styled(text, Style::new().fg(theme.accent.0));
    let mut lines = vec![heading("this machine".into())];
    // The guests on `host` (None: this machine), indented under it.
    let on = |host: Option<&str>| -> Vec<Line<'a>> {
        session
            .guests
            .iter()
            .filter(|(name, _)| {
                !hosts.contains(&name.as_str()) && session.host_of(name) == host && kept(name)
            })
            .map(|(n, s)| line(n, s, "  "))
            .collect()
    };
    lines.extend(on(None));
    for host in &hosts {
        match session.guests.iter().find(|(name, _)| name == host) {
            Some((name, state)) => lines.push(line(name, state, "")),
            None => lines.push(heading(host.to_string())),
        }
        lines.extend(on(Some(host)));
    }
    lines
}

fn guest_line<'a>(
    session: &Session,
    theme: &Theme,
    name: &str,
    state: &GuestState,
    indent: &str,
) -> Line<'a> {
    let (text, colour) = guest_state_text(state, theme);
    // The clock as measured again before the latest phase.
    let drift = session
        .clocks
        .get(name)
        .map_or(String::new(), |(_, u, drift)| {
            format!(
                "  drift {:+.3} ms ±{:.3}",
                *drift as f64 / 1e6,
                *u as f64 / 1e6
            )
        });
    let name = format!("{indent}{name}");
    Line::from(vec![
        Span::raw(format!("{name:<12} ")),
        Span::styled(text, Style::new().fg(colour)),
        Span::styled(drift, Style::new().fg(theme.dim.0)),
    ])
}

pub fn guest_state_text(state: &GuestState, theme: &Theme) -> (String, Color) {
    match state {
        GuestState::Connecting => ("connecting…".into(), theme.dim.0),
        GuestState::Ready { info } => {
            let clock = match (info.clock_offset_ns, info.clock_rtt_ns) {
                (Some(offset), Some(rtt)) => format!(
                    "clock {:+.3} ms ±{:.3}",
                    offset as f64 / 1e6,
                    rtt as f64 / 2e6
                ),
                _ => "clock unmeasured".into(),
            };
            let workloads = match &info.vmbench {
                Ok(_) => String::new(),
                Err(why) => format!(" · {why}"),
            };
            (
                format!(
                    "ready  {} {}  connect {:.0} ms  {clock}{workloads}",
                    info.arch, info.kernel, info.connect_ms
                ),
                theme.good.0,
            )
        }
        GuestState::Failed { reason } => (format!("failed: {reason}"), theme.bad.0),
        GuestState::Lost { reason } => (format!("LOST: {reason}"), theme.bad.0),
        GuestState::Reconnecting { attempt } => {
            (format!("reconnecting… (attempt {attempt})"), theme.warn.0)
        }
        GuestState::Closed => ("closed".into(), theme.dim.0),
    }
}

#[cfg(test)]
mod tests {
    use crate::ui::fixtures::{draw, guests_connecting, live_view};

    #[test]
    fn guests_are_grouped_under_the_machine_they_run_on() {
        use crate::event::{Event, GuestState};
        let source = "name = \"two\"\n[[host]]\nname = \"h2\"\naddress = \"10.0.0.2\"\nuser = \"root\"\n\
                      [[guest]]\nname = \"kvm-1\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\naddress = \"10.0.0.11\"\nuser = \"root\"\n\
                      [[guest]]\nname = \"kvm-2\"\nhost = \"h2\"\ntransport = \"ssh\"\ntechnology = \"kvm\"\naddress = \"10.0.0.12\"\nuser = \"root\"\n\
                      [[benchmark]]\nname = \"cpu\"\nworkload = { type = \"cpu\" }\nduration = \"1s\"\nconcurrency = [1]\n";
        let mut session = crate::model::Session::new(crate::model::tests::test_header());
        session.plan = Some(
            crate::plan::LoadedPlan::parse(source, "two.toml")
                .expect("plan")
                .plan,
        );
        // States arrive in any order; the pane keeps the machines'.
        for guest in ["kvm-2", "h2", "kvm-1"] {
            session.apply(&Event::GuestState {
                t: 1,
                guest: guest.into(),
                state: GuestState::Connecting,
            });
        }
        let text = crate::ui::fixtures::screen_text(&session, &live_view(), 80, 24);
        assert!(text.contains(" guests (2) on 2 hosts "), "{text}");
        let rows: Vec<&str> = text
            .lines()
            .map(|l| l.trim_matches(['│', ' ']))
            .filter(|l| {
                ["this machine", "kvm-", "h2"]
                    .iter()
                    .any(|s| l.starts_with(s))
            })
            .collect();
        assert_eq!(
            rows.iter()
                .map(|r| r.split_whitespace().next().unwrap_or_default())
                .collect::<Vec<_>>(),
            ["this", "kvm-1", "h2", "kvm-2"],
            "{text}"
        );
    }

    #[test]
    fn guests_show_their_connection_before_the_first_phase() {
        for (w, h) in crate::ui::fixtures::SIZES {
            let terminal = draw(&guests_connecting(), &live_view(), w, h);
            insta::assert_snapshot!(format!("guests_{w}x{h}"), terminal.backend());
        }
    }
}
