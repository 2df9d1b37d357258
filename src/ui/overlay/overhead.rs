//! Host-seen against guest-seen load, per guest: what the host spent on
//! each guest against what it saw itself.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table, Widget};

use crate::format::bytes_rate;
use crate::model::Session;
use crate::ui::theme::Theme;
use crate::ui::widgets::pane_block;

/// Per guest: what the host spent on it against what it saw itself, over
/// the last interval and over the last phase it ran in.
pub fn render(
    buf: &mut Buffer,
    area: Rect,
    session: &Session,
    theme: &Theme,
    net: fn(f64) -> String,
) {
    Clear.render(area, buf);
    let block = pane_block(
        " overhead: host-seen ÷ guest-seen (cpu in cores) ".into(),
        theme,
        true,
    );
    let inner = block.inner(area);
    block.render(area, buf);
    let cell = |host: Option<f64>, guest: Option<f64>, format: fn(f64) -> String| {
        let dash = |v: Option<f64>| v.map_or("–".to_string(), format);
        let ratio =
            crate::results::ratio(host, guest).map_or(String::new(), |r| format!("  ×{r:.2}"));
        format!("{} / {}{ratio}", dash(host), dash(guest))
    };
    let cores = |c: f64| format!("{c:.2}");
    let row = |label: String, tech: String, f: &crate::model::GuestFigures| {
        Row::new(vec![
            Cell::from(label),
            Cell::from(tech),
            Cell::from(cell(f.host_cpu, f.guest_cpu, cores)),
            Cell::from(cell(f.host_net, f.guest_net, net)),
            Cell::from(cell(f.host_disk, f.guest_disk, bytes_rate)),
        ])
    };
    let mut names: Vec<&str> = session.guests.iter().map(|(g, _)| g.as_str()).collect();
    for run in session.runs.values() {
        if !names.contains(&run.guest.as_str()) {
            names.push(&run.guest);
        }
    }
    let measured = |f: &crate::model::GuestFigures| {
        f.host_side()
            .iter()
            .chain(&f.guest_side())
            .any(Option::is_some)
    };
    let mut rows = Vec::new();
    for guest in names {
        let last_run = session.runs.values().rev().find(|r| r.guest == guest);
        let technology = last_run.map_or_else(String::new, |r| r.technology.clone());
        let live = session.guest_figures(guest);
        if !measured(&live) {
            continue;
        }
        rows.push(row(guest.to_string(), technology, &live));
        let last_phase = last_run
            .and_then(|r| session.phase(r.phase))
            .filter(|p| p.ended.is_some());
        if let Some(phase) = last_phase {
            rows.push(
                row(
                    format!("  phase {}", phase.id + 1),
                    String::new(),
                    &session.phase_figures(phase, guest),
                )
                .style(Style::new().fg(theme.dim.0)),
            );
        }
    }
    if rows.is_empty() {
        Paragraph::new("No guest over SSH in this session: nothing to reconcile.")
            .style(Style::new().fg(theme.dim.0))
            .render(inner, buf);
        return;
    }
    let header = Row::new([
        "guest",
        "technology",
        "cpu host / guest",
        "net host / guest",
        "disk host / guest",
    ])
    .style(Style::new().fg(theme.dim.0).add_modifier(Modifier::BOLD));
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(10),
            Constraint::Min(18),
            Constraint::Min(20),
            Constraint::Min(20),
        ],
    )
    .header(header)
    .column_spacing(2);
    Widget::render(table, inner, buf);
}

#[cfg(test)]
mod tests {
    use crate::ui::Overlay;
    use crate::ui::fixtures::{SIZES, draw, live_view, seen_guests};

    #[test]
    fn host_seen_against_guest_seen_per_guest() {
        let mut view = live_view();
        view.overlay = Overlay::Overhead;
        for (w, h) in SIZES {
            let name = format!("overhead_{w}x{h}");
            insta::assert_snapshot!(name, draw(&seen_guests(), &view, w, h).backend());
        }
    }
}
