//! The study's figures as SVG: score against the number of guests per
//! technology, network out and in per technology, disk read and write for 1
//! and N guests, single and aggregate. Every bar and point carries its 95 %
//! interval. The SVG backend draws text as text, so no font library is needed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Matrix, Row};
use crate::stats::Summary;
use crate::ui::si;
use crate::workload::WorkloadClass;

const SIZE: (u32, u32) = (960, 540);

/// Colours by technology column, the same in every chart.
const COLOURS: [RGBColor; 8] = [
    RGBColor(0x33, 0x33, 0x33),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x17, 0xbe, 0xcf),
];

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// A file name from a title: lower case, dashes for anything else.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// "sysbench cpu events", or "cpu" where the metric repeats the workload.
fn title(row: &Row) -> String {
    if row.workload.ends_with(&row.metric) {
        row.workload.clone()
    } else {
        format!("{} {}", row.workload, row.metric)
    }
}

fn upper(s: &Summary) -> f64 {
    s.mean + s.ci.unwrap_or(0.0)
}

/// Writes every chart the matrix has data for; returns their paths.
pub fn write_all(matrix: &Matrix, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    // Score against guests, one chart per workload metric.
    let mut scored: Vec<(&str, &str)> = Vec::new();
    for row in matrix
        .rows
        .iter()
        .filter(|r| r.class == WorkloadClass::Score)
    {
        let key = (row.workload.as_str(), row.metric.as_str());
        if !scored.contains(&key) {
            scored.push(key);
        }
    }
    for (workload, metric) in scored {
        let rows: Vec<&Row> = matrix
            .rows
            .iter()
            .filter(|r| r.workload == workload && r.metric == metric)
            .collect();
        let path = dir.join(format!("score-{}.svg", slug(&title(rows[0]))));
        score_chart(matrix, &rows, &path)?;
        written.push(path);
    }
    let mut levels: Vec<u32> = matrix.rows.iter().map(|r| r.concurrency).collect();
    levels.sort_unstable();
    levels.dedup();
    for &n in &levels {
        let net: Vec<&Row> = matrix
            .rows
            .iter()
            .filter(|r| r.concurrency == n)
            .filter(|r| matches!(r.class, WorkloadClass::NetOut | WorkloadClass::NetIn))
            .collect();
        if !net.is_empty() {
            let path = dir.join(format!("network-{n}-guests.svg"));
            let series: Vec<Series> = net
                .iter()
                .map(|r| Series {
                    label: {
                        let direction = if r.class == WorkloadClass::NetIn {
                            "inbound"
                        } else {
                            "outbound"
                        };
                        if r.workload.contains(direction) {
                            title(r)
                        } else {
                            format!("{direction}: {}", title(r))
                        }
                    },
                    row: r,
                    per_guest: false,
                })
                .collect();
            bar_chart(
                matrix,
                &series,
                &format!("Network, {n} concurrent guest(s): aggregate"),
                &net[0].unit,
                &path,
            )?;
            written.push(path);
        }
        let disk: Vec<&Row> = matrix
            .rows
            .iter()
            .filter(|r| r.concurrency == n && r.class == WorkloadClass::Disk)
            .collect();
        if !disk.is_empty() {
            let path = dir.join(format!("disk-{n}-guests.svg"));
            // One guest: its figure is the aggregate. N guests: each guest's
            // figure beside their sum, as the study showed them.
            let series: Vec<Series> = disk
                .iter()
                .flat_map(|r| {
                    let aggregate = Series {
                        label: format!("{} {} aggregate", r.workload, r.metric),
                        row: r,
                        per_guest: false,
                    };
                    let single = Series {
                        label: format!("{} {} per guest", r.workload, r.metric),
                        row: r,
                        per_guest: true,
                    };
                    if n > 1 {
                        vec![single, aggregate]
                    } else {
                        vec![aggregate]
                    }
                })
                .collect();
            bar_chart(
                matrix,
                &series,
                &format!("Disk, {n} concurrent guest(s)"),
                &disk[0].unit,
                &path,
            )?;
            written.push(path);
        }
    }
    Ok(written)
}

fn score_chart(matrix: &Matrix, rows: &[&Row], path: &Path) -> Result<()> {
    let first = rows[0];
    let max_n = rows.iter().map(|r| r.concurrency).max().unwrap_or(1);
    let top = rows
        .iter()
        .flat_map(|r| r.cells.iter().flatten())
        .map(|c| upper(&c.aggregate))
        .fold(0.0, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: aggregate against concurrent guests", title(first)),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(
            0.5..f64::from(max_n) + 0.5,
            0.0..(top * 1.1).max(f64::MIN_POSITIVE),
        )?;
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .x_desc("concurrent guests")
        .x_labels(max_n as usize + 1)
        .y_desc(format!("{} [{}]", first.metric, first.unit))
        .y_label_formatter(&|y| si(*y))
        .x_label_formatter(&|x| {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .draw()?;
    for (t, technology) in matrix.technologies.iter().enumerate() {
        let points: Vec<(f64, Summary)> = rows
            .iter()
            .filter_map(|r| {
                r.cells[t]
                    .as_ref()
                    .map(|c| (f64::from(r.concurrency), c.aggregate))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let style = colour(t).stroke_width(2);
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(x, s)| (*x, s.mean)),
                style,
            ))?
            .label(technology.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(points.iter().map(|(x, s)| {
            let ci = s.ci.unwrap_or(0.0);
            ErrorBar::new_vertical(*x, s.mean - ci, s.mean, s.mean + ci, style, 10)
        }))?;
    }
    finish(&mut chart, &root, SeriesLabelPosition::LowerRight)
}

/// Bars of one quantity of one row.
struct Series<'a> {
    label: String,
    row: &'a Row,
    per_guest: bool,
}

impl Series<'_> {
    fn figure(&self, technology: usize) -> Option<Summary> {
        let cell = self.row.cells[technology].as_ref()?;
        if self.per_guest {
            cell.per_guest
        } else {
            Some(cell.aggregate)
        }
    }
}

/// Technologies along x, a bar per series within each, with intervals.
fn bar_chart(
    matrix: &Matrix,
    series: &[Series],
    title: &str,
    unit: &str,
    path: &Path,
) -> Result<()> {
    let slots = series.len() + 1;
    let categories = matrix.technologies.len();
    let top = (0..categories)
        .flat_map(|t| series.iter().filter_map(move |s| s.figure(t)))
        .map(|s| upper(&s))
        .fold(0.0, f64::max);
    let centres: Vec<f64> = (0..categories)
        .map(|t| (t * slots) as f64 + series.len() as f64 / 2.0)
        .collect();
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(
            -0.5..(categories * slots) as f64 - 0.5,
            0.0..(top * 1.25).max(f64::MIN_POSITIVE),
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(0)
        .y_desc(unit)
        .y_label_formatter(&|y| si(*y))
        .draw()?;
    // Technology names under their group of bars, in the image's own pixels
    // (the axis's ticks fall where its numbers are round, not where groups are).
    let label = ("sans-serif", 16)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (name, centre) in matrix.technologies.iter().zip(&centres) {
        let (x, y) = chart.backend_coord(&(*centre, 0.0));
        root.draw(&Text::new(name.clone(), (x, y + 8), label.clone()))?;
    }
    for (i, s) in series.iter().enumerate() {
        let fill = colour(i + 1);
        let bars: Vec<(f64, Summary)> = (0..categories)
            .filter_map(|t| s.figure(t).map(|f| ((t * slots + i) as f64, f)))
            .collect();
        chart
            .draw_series(
                bars.iter()
                    .map(|(x, f)| Rectangle::new([(*x, 0.0), (*x + 0.9, f.mean)], fill.filled())),
            )?
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill.filled()));
        chart.draw_series(bars.iter().map(|(x, f)| {
            let ci = f.ci.unwrap_or(0.0);
            ErrorBar::new_vertical(*x + 0.45, f.mean - ci, f.mean, f.mean + ci, BLACK, 8)
        }))?;
    }
    finish(&mut chart, &root, SeriesLabelPosition::UpperRight)
}

type Chart<'a> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The legend, and the file written.
fn finish(
    chart: &mut Chart<'_>,
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    legend: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(legend)
        .draw()?;
    root.present()?;
    Ok(())
}
