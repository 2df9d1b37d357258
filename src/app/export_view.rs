//! `X` and `:export view`: what is on screen, kept — its text, and each
//! chart in view as SVG and PNG with its data as CSV — in `recordings/` of
//! the current folder (never beside a replayed recording, which may be
//! read-only), named by the session and the time of the export.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;

use crate::event::NANOS_PER_SEC;
use crate::model::Session;
use crate::ui::theme::Theme;
use crate::ui::{View, in_view, render};

/// Writes the view's files into `folder` and returns their paths.
pub fn write(
    session: &Session,
    view: &View,
    theme: &Theme,
    screen: Rect,
    folder: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(folder).with_context(|| format!("making {}", folder.display()))?;
    // To the millisecond: two exports in one second keep both.
    let now = humantime::format_rfc3339_millis(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let stem = format!("{}-view-{now}", slug(&session.header.plan_name));
    let mut written = Vec::new();
    let mut put = |name: String, bytes: &[u8]| -> Result<()> {
        let path = folder.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    put(
        format!("{stem}.txt"),
        screen_text(session, view, theme, screen)?.as_bytes(),
    )?;
    for chart in in_view::charts(session, view) {
        let seconds = |t: u64| t as f64 / NANOS_PER_SEC;
        let lines: Vec<(String, Vec<(f64, f64)>)> = chart
            .lines
            .iter()
            .map(|(label, points)| {
                (
                    label.clone(),
                    points.iter().map(|(t, v)| (seconds(*t), *v)).collect(),
                )
            })
            .collect();
        let title = format!("{} ({})", chart.name, chart.unit);
        let svg = crate::report::time_chart::svg(&title, chart.unit, &lines)?;
        put(format!("{stem}-{}.svg", chart.name), svg.as_bytes())?;
        put(
            format!("{stem}-{}.png", chart.name),
            &crate::report::charts::png(&svg)?,
        )?;
        let mut csv = String::from("series,t_s,value\n");
        for (label, points) in &lines {
            for (t, v) in points {
                let _ = writeln!(csv, "\"{}\",{t},{v}", label.replace('"', "\"\""));
            }
        }
        put(format!("{stem}-{}.csv", chart.name), csv.as_bytes())?;
    }
    Ok(written)
}

/// The screen as it is drawn, as text: a line per row, spaces trimmed.
fn screen_text(session: &Session, view: &View, theme: &Theme, screen: Rect) -> Result<String> {
    let mut terminal = Terminal::new(TestBackend::new(screen.width, screen.height))?;
    terminal.draw(|frame| render(frame, session, theme, view))?;
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..screen.height {
        let row: String = (0..screen.width).map(|x| buffer[(x, y)].symbol()).collect();
        text.push_str(row.trim_end());
        text.push('\n');
    }
    Ok(text)
}

fn slug(name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    match slug.trim_matches('-') {
        "" => "session".into(),
        s => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::fixtures::{live_view, many_copies};

    #[test]
    fn the_view_is_written_as_text_and_each_chart_as_svg_png_and_csv() {
        let dir = tempfile::tempdir().expect("tempdir");
        let session = many_copies(3);
        let theme = Theme::built_in("dark").expect("shipped");
        let files = write(
            &session,
            &live_view(),
            &theme,
            Rect::new(0, 0, 120, 40),
            dir.path(),
        )
        .expect("written");
        let names: Vec<String> = files
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let text = std::fs::read_to_string(&files[0]).expect("text");
        assert!(
            names[0].ends_with(".txt") && text.contains("vm02 #3"),
            "{text}"
        );
        for chart in ["host-cpu", "host-net", "host-disk", "copies"] {
            for ext in ["svg", "png", "csv"] {
                assert!(
                    names
                        .iter()
                        .any(|n| n.ends_with(&format!("-{chart}.{ext}"))),
                    "{chart}.{ext}: {names:?}"
                );
            }
        }
        let copies = files
            .iter()
            .find(|p| p.to_string_lossy().ends_with("-copies.csv"))
            .expect("the copies' data");
        let data = std::fs::read_to_string(copies).expect("csv");
        assert!(
            data.starts_with("series,t_s,value\n\"vm00 #1 cpu\","),
            "{data}"
        );
        let png = files
            .iter()
            .find(|p| p.to_string_lossy().ends_with("-copies.png"))
            .expect("png");
        assert!(std::fs::read(png).expect("png").starts_with(b"\x89PNG"));
    }
}
