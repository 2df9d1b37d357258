//! The study's figures as SVG and PNG: score against the number of guests
//! per technology, network out and in per technology, disk read and write
//! for 1 and N guests, single and aggregate. Every bar and point carries its
//! 95 % interval. The SVG backend draws text as text; the PNG is that SVG
//! drawn by resvg with a font inside the binary, so no system font is needed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Matrix, Row};
use crate::format::si;
use crate::stats::Summary;
use crate::workload::WorkloadClass;

pub(super) const SIZE: (u32, u32) = (960, 540);

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

pub(super) fn colour(i: usize) -> RGBColor {
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

/// Writes every chart the matrix has data for, as SVG and as PNG; returns
/// their paths.
pub fn write_all(matrix: &Matrix, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for chart in render_all(matrix)? {
        let svg = dir.join(&chart.file);
        let png_path = svg.with_extension("png");
        let bitmap = png(&chart.svg).with_context(|| format!("drawing {}", png_path.display()))?;
        for (path, bytes) in [(svg, chart.svg.as_bytes()), (png_path, &bitmap[..])] {
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The font PNG charts are drawn with, inside the binary: no system font
/// is needed (see chart-font.LICENSE).
const FONT: &[u8] = include_bytes!("chart-font.ttf");

/// A chart's SVG as a PNG of the same size, drawn by resvg (pure Rust).
pub fn png(svg: &str) -> Result<Vec<u8>> {
    bitmap(svg)?.encode_png().context("encoding the PNG")
}

fn bitmap(svg: &str) -> Result<resvg::tiny_skia::Pixmap> {
    use resvg::{tiny_skia, usvg};
    let mut options = usvg::Options::default();
    let fonts = options.fontdb_mut();
    fonts.load_font_data(FONT.to_vec());
    fonts.set_sans_serif_family("DejaVu Sans");
    let tree = usvg::Tree::from_str(svg, &options).context("reading the chart's SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .context("the chart has no area to draw")?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    Ok(pixmap)
}

/// One of the study's figures, drawn.
pub struct Drawn {
    /// Its file name, e.g. `score-cpu.svg`.
    pub file: String,
    pub title: String,
    pub svg: String,
}

fn draw(
    file: String,
    title: String,
    paint: impl FnOnce(&mut String, &str) -> Result<()>,
) -> Result<Drawn> {
    let mut svg = String::new();
    paint(&mut svg, &title)?;
    Ok(Drawn { file, title, svg })
}

/// Every chart the matrix has data for.
pub fn render_all(matrix: &Matrix) -> Result<Vec<Drawn>> {
    let mut drawn = Vec::new();
    // Score against guests, one chart per workload metric: the aggregate,
    // and each guest's figure (the study's first figure).
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
        let name = slug(&title(rows[0]));
        for per_guest in [false, true] {
            let lines: Vec<Line> = matrix
                .technologies
                .iter()
                .enumerate()
                .map(|(t, technology)| Line {
                    label: technology.clone(),
                    colour: t,
                    points: rows
                        .iter()
                        .filter_map(|r| {
                            let cell = r.cells[t].as_ref()?;
                            let figure = if per_guest {
                                cell.per_guest?
                            } else {
                                cell.aggregate
                            };
                            Some((r.concurrency, figure))
                        })
                        .collect(),
                })
                .collect();
            let (file, what) = if per_guest {
                (format!("per-guest-{name}.svg"), "each guest's figure")
            } else {
                (format!("score-{name}.svg"), "aggregate")
            };
            drawn.push(draw(
                file,
                format!("{}: {what} against concurrent guests", title(rows[0])),
                |svg, caption| {
                    line_chart(
                        svg,
                        caption,
                        &lines,
                        &format!("{} [{}]", rows[0].metric, rows[0].unit),
                    )
                },
            )?);
        }
    }
    if let Some(net) = network_scaling(matrix) {
        drawn.push(net?);
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
            let series: Vec<Series> = net
                .iter()
                .map(|r| Series {
                    label: direction_label(r),
                    row: r,
                    reference: None,
                    per_guest: false,
                })
                .collect();
            drawn.push(draw(
                format!("network-{n}-guests.svg"),
                format!("Network, {n} concurrent guest(s): aggregate"),
                |svg, caption| bar_chart(svg, matrix, &series, caption, &net[0].unit),
            )?);
        }
        let disk: Vec<&Row> = matrix
            .rows
            .iter()
            .filter(|r| r.concurrency == n && r.class == WorkloadClass::Disk)
            .collect();
        if !disk.is_empty() {
            // One guest: its figure is the aggregate. N guests: each guest's
            // figure beside their sum, as the study showed them, and the
            // baseline where it ran fewer copies (the study's ran one).
            let series: Vec<Series> = disk
                .iter()
                .flat_map(|r| {
                    let reference = baseline_below(matrix, r);
                    let aggregate = Series {
                        label: format!("{} {} aggregate", r.workload, r.metric),
                        row: r,
                        reference,
                        per_guest: false,
                    };
                    let single = Series {
                        label: format!("{} {} per guest", r.workload, r.metric),
                        row: r,
                        reference,
                        per_guest: true,
                    };
                    if n > 1 {
                        vec![single, aggregate]
                    } else {
                        vec![aggregate]
                    }
                })
                .collect();
            drawn.push(draw(
                format!("disk-{n}-guests.svg"),
                format!("Disk, {n} concurrent guest(s)"),
                |svg, caption| bar_chart(svg, matrix, &series, caption, &disk[0].unit),
            )?);
        }
    }
    Ok(drawn)
}

fn direction_label(r: &Row) -> String {
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
}

/// The baseline's row of the same workload metric at the most copies it ran
/// below `row`'s, where it did not run `row`'s number.
fn baseline_below<'a>(matrix: &'a Matrix, row: &Row) -> Option<(usize, &'a Row)> {
    let b = matrix
        .technologies
        .iter()
        .position(|t| *t == matrix.baseline)?;
    if row.cells[b].is_some() {
        return None;
    }
    matrix
        .rows
        .iter()
        .filter(|r| {
            r.workload == row.workload
                && r.metric == row.metric
                && r.concurrency < row.concurrency
                && r.cells[b].is_some()
        })
        .max_by_key(|r| r.concurrency)
        .map(|r| (b, r))
}

/// Network inbound and outbound against the number of guests, a line per
/// technology and direction: the study's asymmetry and its trend.
fn network_scaling(matrix: &Matrix) -> Option<Result<Drawn>> {
    let net: Vec<&Row> = matrix
        .rows
        .iter()
        .filter(|r| matches!(r.class, WorkloadClass::NetOut | WorkloadClass::NetIn))
        .collect();
    let first = *net.first()?;
    // A line per technology and network workload (iperf3 outbound, inbound,
    // the built-in net...), inbound drawn thinner.
    let mut workloads: Vec<(&str, &str)> = Vec::new();
    for r in &net {
        if !workloads.contains(&(&r.workload, &r.metric)) {
            workloads.push((&r.workload, &r.metric));
        }
    }
    let mut lines: Vec<Line> = Vec::new();
    for (t, technology) in matrix.technologies.iter().enumerate() {
        for (workload, metric) in &workloads {
            let rows: Vec<&&Row> = net
                .iter()
                .filter(|r| r.workload == *workload && r.metric == *metric)
                .collect();
            let points: Vec<(u32, Summary)> = rows
                .iter()
                .filter_map(|r| Some((r.concurrency, r.cells[t].as_ref()?.aggregate)))
                .collect();
            if !points.is_empty() {
                lines.push(Line {
                    label: format!("{technology}, {}", direction_label(rows[0])),
                    colour: t,
                    points,
                });
            }
        }
    }
    (!lines.is_empty()).then(|| {
        draw(
            "network-scaling.svg".into(),
            "Network, outbound and inbound, against concurrent guests".into(),
            |svg, caption| line_chart(svg, caption, &lines, &format!("aggregate [{}]", first.unit)),
        )
    })
}

/// One technology's figures against the number of guests.
struct Line {
    label: String,
    colour: usize,
    points: Vec<(u32, Summary)>,
}

/// Lines against concurrent guests, each point with its interval; a
/// technology's second line (inbound) dashed by being drawn thinner.
fn line_chart(svg: &mut String, caption: &str, lines: &[Line], y_desc: &str) -> Result<()> {
    let max_n = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1);
    let top = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| upper(&p.1)))
        .fold(0.0, f64::max);
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 22))
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
        .y_desc(y_desc)
        .y_label_formatter(&|y| si(*y))
        .x_label_formatter(&|x| {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .draw()?;
    let mut seen: Vec<usize> = Vec::new();
    for line in lines.iter().filter(|l| !l.points.is_empty()) {
        let second = seen.contains(&line.colour);
        seen.push(line.colour);
        let style = colour(line.colour).stroke_width(if second { 1 } else { 2 });
        let points: Vec<(f64, Summary)> = line
            .points
            .iter()
            .map(|(n, s)| (f64::from(*n), *s))
            .collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(x, s)| (*x, s.mean)),
                style,
            ))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart.draw_series(points.iter().map(|(x, s)| {
            let ci = s.ci.unwrap_or(0.0);
            ErrorBar::new_vertical(*x, s.mean - ci, s.mean, s.mean + ci, style, 10)
        }))?;
        if second {
            chart.draw_series(
                points
                    .iter()
                    .map(|(x, s)| Circle::new((*x, s.mean), 4, style.filled())),
            )?;
        }
    }
    finish(&mut chart, &root, SeriesLabelPosition::LowerRight)
}

/// Bars of one quantity of one row.
struct Series<'a> {
    label: String,
    row: &'a Row,
    /// Where the baseline did not run the row's number of copies: its
    /// column and its row at the most it ran below that, drawn in its place
    /// as the reference. Only the baseline's: another technology's figure
    /// from fewer guests would pass for one at N.
    reference: Option<(usize, &'a Row)>,
    per_guest: bool,
}

impl Series<'_> {
    fn figure(&self, technology: usize) -> Option<Summary> {
        let reference = self
            .reference
            .filter(|(baseline, _)| *baseline == technology)
            .and_then(|(_, row)| row.cells[technology].as_ref());
        let cell = self.row.cells[technology].as_ref().or(reference)?;
        if self.per_guest {
            cell.per_guest
        } else {
            Some(cell.aggregate)
        }
    }
}

/// Technologies along x, a bar per series within each, with intervals.
fn bar_chart(
    svg: &mut String,
    matrix: &Matrix,
    series: &[Series],
    title: &str,
    unit: &str,
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
    let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
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
    for (t, (name, centre)) in matrix.technologies.iter().zip(&centres).enumerate() {
        let (x, y) = chart.backend_coord(&(*centre, 0.0));
        // The baseline drawn from fewer copies says how many.
        let name = match series
            .iter()
            .find(|s| s.row.cells[t].is_none())
            .and_then(|s| s.reference)
        {
            Some((baseline, r)) if baseline == t => format!("{name} (×{})", r.concurrency),
            _ => name.clone(),
        };
        root.draw(&Text::new(name, (x, y + 8), label.clone()))?;
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
pub(super) fn finish(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Options;
    use crate::report::fixtures::results;

    /// At 4 guests the baseline, which ran one copy, stands in from its
    /// one-copy row; a technology that ran only one guest does not.
    #[test]
    fn only_the_baseline_is_drawn_from_fewer_copies() {
        let results = results(&[
            ("bare-metal", 1, &[100.0, 100.0]),
            ("kvm", 1, &[90.0, 90.0]),
            ("kvm", 4, &[80.0, 80.0]),
            ("xen", 1, &[70.0, 70.0]),
        ]);
        let matrix = Matrix::build(&results, &Options::default());
        let at4 = matrix.rows.iter().find(|r| r.concurrency == 4).expect("×4");
        let series = Series {
            label: "x".into(),
            row: at4,
            reference: baseline_below(&matrix, at4),
            per_guest: true,
        };
        let figure = |t: &str| {
            let column = matrix
                .technologies
                .iter()
                .position(|x| x == t)
                .expect("column");
            series.figure(column).map(|s| s.mean)
        };
        assert_eq!(figure("bare-metal"), Some(100.0));
        assert_eq!(figure("kvm"), Some(80.0));
        assert_eq!(figure("xen"), None);
    }

    /// Text is drawn with the font inside the binary: without it, resvg
    /// leaves text out and the picture stays blank.
    #[test]
    fn png_text_is_drawn_without_a_system_font() {
        let svg = |text: &str| {
            format!(
                "<svg width=\"120\" height=\"40\" xmlns=\"http://www.w3.org/2000/svg\">\
                 <rect width=\"120\" height=\"40\" fill=\"white\"/>\
                 <text x=\"4\" y=\"30\" font-family=\"sans-serif\" font-size=\"24\">{text}</text></svg>"
            )
        };
        let inked = |text: &str| {
            bitmap(&svg(text))
                .expect("drawn")
                .pixels()
                .iter()
                .filter(|p| p.red() < 128)
                .count()
        };
        assert_eq!(inked(""), 0);
        // The signs the charts use are in the font too.
        for text in ["Gbit/s", "×1", "±", "µs"] {
            assert!(
                inked(text) > 20,
                "{text} drawn with {} dark pixels",
                inked(text)
            );
        }
        let encoded = png(&svg("1")).expect("png");
        assert_eq!(&encoded[..8], b"\x89PNG\r\n\x1a\n");
    }

    /// Each point of a line is drawn where the chart's own axes say its
    /// value is: x at its number of guests' tick, y between the labels of
    /// the y axis around it, as a reader would read it off.
    #[test]
    fn a_plotted_value_sits_at_its_coordinates_on_the_charts_axes() {
        let at = |mean| Summary {
            n: 1,
            mean,
            sd: None,
            ci: None,
        };
        let points = [(1, 100.0), (2, 50.0), (4, 25.0)];
        let lines = [Line {
            label: "kvm".into(),
            colour: 0,
            points: points.iter().map(|(n, v)| (*n, at(*v))).collect(),
        }];
        let mut svg = String::new();
        line_chart(&mut svg, "scaling", &lines, "ops/s").expect("drawn");
        let doc = roxmltree::Document::parse(&svg).expect("SVG");
        let number = |n: roxmltree::Node, attribute: &str| -> f64 {
            n.attribute(attribute)
                .expect(attribute)
                .parse()
                .expect("number")
        };
        // Tick labels: x ones under the plot (text-anchor middle), y ones
        // left of it (text-anchor end), by the number they show.
        let labels = |anchor: &str, axis: &str| -> Vec<(f64, f64)> {
            doc.descendants()
                .filter(|n| n.has_tag_name("text") && n.attribute("text-anchor") == Some(anchor))
                .filter_map(|n| Some((n.text()?.trim().parse().ok()?, number(n, axis))))
                .collect()
        };
        let x_ticks = labels("middle", "x");
        let y_ticks = labels("end", "y");
        assert!(y_ticks.len() >= 3, "{y_ticks:?}");
        let x_of = |guests: f64| {
            x_ticks
                .iter()
                .find(|(v, _)| *v == guests)
                .map(|(_, x)| *x)
                .expect("a tick for every number of guests")
        };
        let y_of = |value: f64| {
            let below = y_ticks.iter().rfind(|(v, _)| *v <= value).expect("below");
            let above = y_ticks.iter().find(|(v, _)| *v >= value).expect("above");
            if above.0 == below.0 {
                return below.1;
            }
            below.1 + (value - below.0) / (above.0 - below.0) * (above.1 - below.1)
        };
        let line = doc
            .descendants()
            .find(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
            .expect("the line");
        let drawn: Vec<(f64, f64)> = line
            .attribute("points")
            .expect("points")
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect();
        assert_eq!(drawn.len(), points.len(), "{drawn:?}");
        for ((guests, value), (x, y)) in points.iter().zip(&drawn) {
            // Whole pixels: within 1 of where the axes put it.
            assert!(
                (x - x_of(f64::from(*guests))).abs() <= 1.0,
                "×{guests}: x {x}"
            );
            assert!(
                (y - y_of(*value)).abs() <= 1.0,
                "{value}: y {y}, the axes say {}",
                y_of(*value)
            );
        }
    }
}
