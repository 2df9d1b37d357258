//! Pieces every pane is built of: its frame, a centred popup, and time
//! charts whose axes say when and how much.

use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Block, BorderType, Borders, Chart, Dataset, GraphType, Widget};

use super::theme::Theme;
use crate::event::{NANOS_PER_SEC, Nanos};
use crate::format::clock;

pub fn pane_block<'a>(title: String, theme: &Theme, selected: bool) -> Block<'a> {
    let (border, kind) = if selected {
        (
            Style::new()
                .fg(theme.border_selected.0)
                .add_modifier(Modifier::BOLD),
            BorderType::Thick,
        )
    } else {
        (Style::new().fg(theme.border.0), BorderType::Plain)
    };
    let title_style = if selected {
        Style::new()
            .fg(theme.border_selected.0)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(theme.title.0)
    };
    Block::new()
        .borders(Borders::ALL)
        .border_type(kind)
        .border_style(border)
        .title(Span::styled(title, title_style))
}

pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

/// The stretch of session time a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from: Nanos,
    pub to: Nanos,
}

impl Window {
    pub fn contains(&self, t: Nanos) -> bool {
        (self.from..=self.to).contains(&t)
    }

    fn seconds(&self) -> [f64; 2] {
        [
            self.from as f64 / NANOS_PER_SEC,
            self.to.max(self.from + 1) as f64 / NANOS_PER_SEC,
        ]
    }

    /// The x axis: session time, labelled at both ends.
    pub fn axis<'a>(&self, theme: &Theme) -> Axis<'a> {
        Axis::default()
            .bounds(self.seconds())
            .style(Style::new().fg(theme.dim.0))
            .labels([clock(self.from), clock(self.to)])
    }
}

/// One line of a time chart: its colour and its (time, value) points.
pub struct Line {
    pub colour: Color,
    pub points: Vec<(Nanos, f64)>,
}

/// How high a chart's value axis goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Top {
    /// A round number at or above the highest point and this.
    AtLeast(f64),
    /// This (memory's total): the line's height is its share.
    Exactly(f64),
}

/// Lines over `window` on a value axis from 0 to `top`, labelled at 0,
/// the middle and the top by `label`.
pub fn time_chart(
    buf: &mut Buffer,
    area: Rect,
    window: Window,
    lines: &[Line],
    top: Top,
    label: fn(f64) -> String,
    theme: &Theme,
) {
    if area.height < 3 || area.width < 10 {
        return;
    }
    let data: Vec<Vec<(f64, f64)>> = lines
        .iter()
        .map(|l| {
            l.points
                .iter()
                .filter(|(t, _)| window.contains(*t))
                .map(|(t, v)| (*t as f64 / NANOS_PER_SEC, *v))
                .collect()
        })
        .collect();
    // A window older than the history the model holds (a past phase, live):
    // said, rather than drawn as a flat nothing.
    let older_than_held = data.iter().all(Vec::is_empty)
        && lines
            .iter()
            .any(|l| l.points.first().is_some_and(|p| p.0 > window.to));
    if older_than_held {
        let text = "not held any more: replay the recording to see it";
        let width = (text.chars().count() as u16).min(area.width);
        let at = centered(area, width, 1);
        buf.set_stringn(
            at.x,
            at.y,
            text,
            area.width as usize,
            Style::new().fg(theme.dim.0),
        );
        return;
    }
    let highest = |least: f64| data.iter().flatten().map(|p| p.1).fold(least, f64::max);
    let top = match top {
        Top::AtLeast(least) => round_up(highest(least)),
        Top::Exactly(top) if top > 0.0 => top,
        Top::Exactly(_) => 1.0,
    };
    let datasets = lines
        .iter()
        .zip(&data)
        .map(|(line, points)| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(line.colour))
                .data(points)
        })
        .collect();
    let labels = if area.height >= 5 {
        vec!["0".to_string(), label(top / 2.0), label(top)]
    } else {
        vec!["0".to_string(), label(top)]
    };
    // A short chart keeps its rows for the lines: the time labels and
    // their axis take two, so they go below six rows.
    let x_axis = if area.height >= 6 {
        window.axis(theme).labels_alignment(Alignment::Right)
    } else {
        Axis::default().bounds(window.seconds())
    };
    Chart::new(datasets)
        .x_axis(x_axis)
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .style(Style::new().fg(theme.dim.0))
                .labels(labels),
        )
        .legend_position(None)
        .render(area, buf);
}

/// The next of 1, 2, 2.5, 5 times a power of ten at or above `value`, so
/// that axis labels read as round numbers.
pub fn round_up(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|v| *v >= value * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

/// Legend items packed into as few lines of `width` as they fit in, a
/// space between two on a line, an item never split across two lines.
pub fn pack<'a>(items: Vec<Vec<Span<'a>>>, width: u16) -> Vec<ratatui::text::Line<'a>> {
    let mut lines: Vec<Vec<Span<'a>>> = vec![Vec::new()];
    let mut used = 0;
    for item in items {
        let w: usize = item.iter().map(Span::width).sum();
        let line = lines.last_mut().expect("one line at least");
        if used == 0 {
            used = w;
        } else if used + 1 + w <= width as usize {
            line.push(Span::raw(" "));
            used += 1 + w;
        } else {
            lines.push(Vec::new());
            used = w;
        }
        lines.last_mut().expect("one line at least").extend(item);
    }
    lines.into_iter().map(ratatui::text::Line::from).collect()
}

/// A row of block characters for the last values, scaled to their peak: a
/// sparkline that fits in a table cell.
pub fn spark_text(values: &[f64], width: usize) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let shown = &values[values.len().saturating_sub(width)..];
    let peak = shown.iter().copied().fold(0.0, f64::max);
    shown
        .iter()
        .map(|v| {
            if peak <= 0.0 {
                LEVELS[0]
            } else {
                LEVELS[((v / peak) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(round_up(0.0), 1.0);
        assert_eq!(round_up(0.7), 1.0);
        assert_eq!(round_up(1.0), 1.0);
        assert_eq!(round_up(1.2), 2.0);
        assert_eq!(round_up(2.2), 2.5);
        assert_eq!(round_up(3.0), 5.0);
        assert_eq!(round_up(730e6), 1e9);
        assert_eq!(round_up(100.0), 100.0);
    }

    #[test]
    fn spark_text_scales_to_its_peak_and_keeps_the_newest() {
        assert_eq!(spark_text(&[0.0, 1.0, 2.0, 4.0], 3), "▃▅█");
        assert_eq!(spark_text(&[0.0, 0.0], 4), "▁▁");
    }
}
