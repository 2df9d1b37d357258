//! `vmbench report --html FILE`: one self-contained page a team can share to
//! decide — every view's table, the study's charts inline, what was left out
//! and why, and where the figures came from (hosts, guests' shapes, tool
//! versions, plans). No script, no external file.

use std::fmt::Write as _;

use super::Matrix;
use super::charts::Drawn;
use super::text::TextTable;
use crate::header::Header;
use crate::results::Results;

/// Text made safe inside HTML elements and attributes.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn table(out: &mut String, t: &TextTable) {
    let _ = writeln!(out, "<h2>{}</h2>\n<table>\n<thead><tr>", esc(&t.title));
    for (i, h) in t.header.iter().enumerate() {
        let class = if i >= t.right_from {
            " class=\"n\""
        } else {
            ""
        };
        let _ = write!(out, "<th{class}>{}</th>", esc(h));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = match (i >= t.right_from, cell.starts_with('~')) {
                (true, true) => " class=\"n dim\"",
                (true, false) => " class=\"n\"",
                _ => "",
            };
            let _ = write!(out, "<td{class}>{}</td>", esc(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    if !t.notes.is_empty() {
        out.push_str("<ul class=\"notes\">\n");
        for note in &t.notes {
            let _ = writeln!(out, "<li>{}</li>", esc(note));
        }
        out.push_str("</ul>\n");
    }
}

fn key_values(out: &mut String, pairs: &[(&str, String)]) {
    out.push_str("<table class=\"kv\">\n");
    for (k, v) in pairs {
        let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    out.push_str("</table>\n");
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}\
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.2em .7em;border-bottom:1px solid #ddd;text-align:left}\
.n{text-align:right;font-variant-numeric:tabular-nums}.dim{color:#888}.notes{color:#555;font-size:.9em}\
.kv th{font-weight:normal;color:#555}figure{margin:1em 0}svg{max-width:100%;height:auto}\
pre{background:#f6f6f6;padding:.5em;overflow-x:auto}";

/// The whole page. `views` are the tables in the order shown; `sources`
/// each recording's name and header.
pub fn page(
    title: &str,
    views: &[TextTable],
    charts: &[Drawn],
    matrix: &Matrix,
    results: &Results,
    sources: &[(String, Header)],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>",
        esc(title),
        esc(title)
    );
    let _ = writeln!(
        out,
        "<p>Technologies: {}. Baseline: {}. Every figure is a mean over repetitions \
         ± its 95 % interval; <span class=\"dim\">~</span> marks a difference that is not \
         significant.</p>",
        esc(&matrix.technologies.join(", ")),
        esc(&matrix.baseline)
    );
    if !matrix.validity.is_empty() {
        out.push_str("<h2>Read these first</h2>\n<ul>\n");
        for v in &matrix.validity {
            let _ = writeln!(out, "<li><strong>{}</strong></li>", esc(v));
        }
        out.push_str("</ul>\n");
    }
    for view in views {
        table(&mut out, view);
    }
    if !charts.is_empty() {
        out.push_str("<h2>Charts</h2>\n");
        for chart in charts {
            // The SVG as plotters drew it: elements only, no script.
            let _ = writeln!(
                out,
                "<figure id=\"{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
                esc(&chart.file),
                chart.svg,
                esc(&chart.title)
            );
        }
    }
    out.push_str("<h2>Where the figures came from</h2>\n");
    for (name, header) in sources {
        let host = &header.host;
        let _ = writeln!(out, "<h3>{}</h3>", esc(name));
        key_values(
            &mut out,
            &[
                ("recorded", header.started_at.clone()),
                ("vmbench", header.vmbench_version.clone()),
                (
                    "plan",
                    format!("{} ({})", header.plan_name, header.plan_origin),
                ),
                ("host", host.hostname.clone()),
                (
                    "OS, kernel",
                    format!("{}, {} ({})", host.os, host.kernel, host.arch),
                ),
                (
                    "CPU",
                    format!("{}, {} logical cores", host.cpu_model, host.logical_cores),
                ),
                (
                    "memory",
                    format!("{:.1} GiB", host.memory_bytes as f64 / (1u64 << 30) as f64),
                ),
                (
                    "virtual",
                    host.virtualization
                        .clone()
                        .unwrap_or_else(|| "no sign of it".into()),
                ),
            ],
        );
        let _ = writeln!(
            out,
            "<details><summary>The plan as it ran</summary><pre>{}</pre></details>",
            esc(&header.plan_source)
        );
    }
    if !results.guest_shapes.is_empty() {
        let rows = results
            .guest_shapes
            .iter()
            .map(|(technology, guest, shape)| {
                vec![technology.clone(), guest.clone(), shape.describe()]
            })
            .collect();
        table(
            &mut out,
            &TextTable {
                title: "Guests as they saw themselves at bring-up".into(),
                header: ["technology", "guest", "shape"].map(String::from).to_vec(),
                rows,
                right_from: 3,
                notes: Vec::new(),
            },
        );
    }
    if !results.tools.is_empty() {
        let rows = results
            .tools
            .iter()
            .map(|(technology, tool, version)| {
                vec![technology.clone(), tool.clone(), version.clone()]
            })
            .collect();
        table(
            &mut out,
            &TextTable {
                title: "Tools and the versions they reported".into(),
                header: ["technology", "tool", "version"].map(String::from).to_vec(),
                rows,
                right_from: 3,
                notes: Vec::new(),
            },
        );
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_recordings_cannot_become_markup() {
        let t = TextTable {
            title: "<script>".into(),
            header: vec!["a&b".into()],
            rows: vec![vec!["\"x\" <b>".into()]],
            right_from: 1,
            notes: vec!["1 < 2".into()],
        };
        let mut out = String::new();
        table(&mut out, &t);
        assert!(!out.contains("<script>") && !out.contains("<b>"), "{out}");
        assert!(
            out.contains("&lt;script&gt;")
                && out.contains("a&amp;b")
                && out.contains("&quot;x&quot;")
        );
    }
}
