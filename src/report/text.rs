//! Tables as text, markdown and CSV, and figures at the precision every
//! format shares: what each view of the report is printed with.

use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::Loss;

/// How many decimals a figure of this size needs, the same in every format
/// so that they carry the same numbers.
pub fn decimals(value: f64) -> usize {
    match value.abs() {
        v if v >= 1000.0 => 0,
        v if v >= 100.0 => 1,
        v if v >= 1.0 => 2,
        _ => 4,
    }
}

/// `value` at the precision `like` needs (an interval at its mean's).
pub fn number_like(value: f64, like: f64) -> String {
    format!("{value:.*}", decimals(like))
}

pub fn number(value: f64) -> String {
    number_like(value, value)
}

/// A value and its interval at the value's precision.
pub fn with_interval(value: f64, ci: Option<f64>) -> String {
    match ci {
        Some(ci) => format!("{} ± {}", number(value), number_like(ci, value)),
        None => number(value),
    }
}

pub fn percent(value: f64) -> String {
    format!("{value:.1}")
}

/// "12.3 ± 4.5 %", with `~` in front when it cannot be told from noise.
pub fn loss_text(loss: &Loss) -> String {
    let marker = if loss.significant { "" } else { "~" };
    match loss.ci {
        Some(ci) => format!("{marker}{} ± {} %", percent(loss.percent), percent(ci)),
        None => format!("{marker}{} %", percent(loss.percent)),
    }
}

pub fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A text table: columns from `right_from` on align right (figures), the
/// others left (names), under a rule.
pub fn aligned(header: &[String], rows: &[Vec<String>], right_from: usize) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            std::iter::once(header)
                .chain(rows.iter().map(Vec::as_slice))
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String], is_header: bool| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (text, w))| {
                if c >= right_from && !is_header {
                    format!("{text:>w$}")
                } else {
                    format!("{text:<w$}")
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header, true);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&(rule.join("  ") + "\n"));
    for row in rows {
        out.push_str(&line(row, false));
    }
    out
}

pub fn markdown(header: &[String], rows: &[Vec<String>], right_from: usize) -> String {
    let line = |cells: &[String]| {
        let cells: Vec<String> = cells.iter().map(|c| escape(c)).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(header);
    let align: Vec<String> = (0..header.len())
        .map(|c| if c >= right_from { "---:" } else { "---" }.to_string())
        .collect();
    out.push_str(&format!("| {} |\n", align.join(" | ")));
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

/// A view of the report as a titled table with notes under it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextTable {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Columns from this one on are figures, aligned right.
    #[serde(skip)]
    pub right_from: usize,
    pub notes: Vec<String>,
}

impl TextTable {
    pub fn to_table(&self) -> String {
        let mut out = format!("{}\n\n", self.title);
        out.push_str(&aligned(&self.header, &self.rows, self.right_from));
        for note in &self.notes {
            let _ = writeln!(out, "{note}");
        }
        out
    }

    pub fn to_markdown(&self) -> String {
        let mut out = format!("**{}**\n\n", escape(&self.title));
        out.push_str(&markdown(&self.header, &self.rows, self.right_from));
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                let _ = writeln!(out, "- {}", escape(note));
            }
        }
        out
    }

    /// The header and rows as printed; notes and title are not data.
    pub fn to_csv(&self) -> anyhow::Result<String> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.header)?;
        for row in &self.rows {
            writer.write_record(row)?;
        }
        Ok(String::from_utf8(writer.into_inner()?)?)
    }
}
