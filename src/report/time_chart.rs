//! Lines against time, as the console draws them, for `:export view`: the
//! same SVG (and PNG, through `charts::png`) as the report's figures.

use anyhow::Result;
use plotters::prelude::*;

use super::charts::{SIZE, colour, finish};
use crate::format::si;

/// A chart of `lines` (label, points of (seconds into the session, value))
/// titled `title`, its y axis in `unit`.
pub fn svg(title: &str, unit: &str, lines: &[(String, Vec<(f64, f64)>)]) -> Result<String> {
    let points = || lines.iter().flat_map(|(_, p)| p.iter());
    let (from, to) = points().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    // One instant (or none) still gets an axis around it.
    let (from, to) = match (from < to, from <= to) {
        (true, _) => (from, to),
        (false, true) => (from - 1.0, to + 1.0),
        (false, false) => (0.0, 1.0),
    };
    let top = points().map(|p| p.1).fold(0.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(from..to, 0.0..(top * 1.1).max(f64::MIN_POSITIVE))?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_desc("session time (s)")
            .y_desc(unit)
            .y_label_formatter(&|y| si(*y))
            .draw()?;
        for (i, (label, points)) in lines.iter().enumerate() {
            let style = colour(i + 1).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        finish(&mut chart, &root, SeriesLabelPosition::UpperRight)?;
    }
    Ok(svg)
}
