//! How a copy's rate was spread over its phase: a histogram of its
//! progress rates with the median, p5 and p95, and a mark when it has two
//! modes (a copy slowed halfway, a neighbour that came and went), which a
//! mean hides. The mark is Sarle's bimodality coefficient over 5/9, from
//! 20 progress points up: a single hump (normal, uniform at worst) stays
//! at or under 5/9, two separate humps go well over it.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Widget};

use super::theme::Theme;
use super::widgets::{centered, pane_block};
use super::{View, shown_runs};
use crate::format::figure;
use crate::model::{Run, Session};

/// Fewer progress points than this make no judgement of modes.
pub const LEAST_FOR_MODES: usize = 20;
/// Sarle's bound: a uniform distribution's coefficient.
const BIMODAL_OVER: f64 = 5.0 / 9.0;

#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// Points per bin, the bins evenly from `low` to `high` (the bars'
    /// scale, written before them).
    pub counts: Vec<u32>,
    pub low: f64,
    pub high: f64,
    pub median: f64,
    pub p5: f64,
    pub p95: f64,
    /// None under `LEAST_FOR_MODES` points.
    pub bimodal: Option<bool>,
    pub points: usize,
}

impl Distribution {
    /// The rates in `bins` bins between their least and most; None for
    /// fewer than two (a tool that reports only at its end).
    pub fn of(rates: &[f64], bins: usize) -> Option<Distribution> {
        let mut sorted: Vec<f64> = rates.iter().copied().filter(|r| r.is_finite()).collect();
        if sorted.len() < 2 || bins == 0 {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let (low, high) = (sorted[0], sorted[sorted.len() - 1]);
        let mut counts = vec![0u32; bins];
        let width = (high - low) / bins as f64;
        for r in &sorted {
            let bin = if width > 0.0 {
                (((r - low) / width) as usize).min(bins - 1)
            } else {
                bins / 2
            };
            counts[bin] += 1;
        }
        let quantile = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Some(Distribution {
            counts,
            low,
            high,
            median: quantile(0.5),
            p5: quantile(0.05),
            p95: quantile(0.95),
            bimodal: (sorted.len() >= LEAST_FOR_MODES).then(|| {
                bimodality(&sorted).is_some_and(|b| b > BIMODAL_OVER) && two_sizable_groups(&sorted)
            }),
            points: sorted.len(),
        })
    }

    /// The histogram in one line of block characters.
    pub fn bars(&self) -> String {
        const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let most = self.counts.iter().copied().max().unwrap_or(1).max(1);
        self.counts
            .iter()
            .map(|&c| match c {
                0 => ' ',
                c => BLOCKS[((c as usize * 8).div_ceil(most as usize) - 1).min(7)],
            })
            .collect()
    }
}

/// Whether the best split of the sorted values in two (the one that
/// leaves the most variance between the groups, as Otsu's threshold) has
/// a tenth of the points, and three at least, on each side: one outlier
/// (a warm-up tick) skews the coefficient as much as a second mode does.
fn two_sizable_groups(sorted: &[f64]) -> bool {
    let n = sorted.len();
    let total: f64 = sorted.iter().sum();
    let mut below = 0.0;
    let mut best = (0.0, 0usize);
    for (i, v) in sorted.iter().enumerate().take(n - 1) {
        below += v;
        let (k, rest) = ((i + 1) as f64, (n - i - 1) as f64);
        let between = k * rest * (below / k - (total - below) / rest).powi(2);
        if between > best.0 {
            best = (between, i + 1);
        }
    }
    let least = (n / 10).max(3);
    best.1 >= least && n - best.1 >= least
}

/// Sarle's bimodality coefficient with the sample corrections for
/// skewness and kurtosis; None for fewer than 4 points or no spread.
fn bimodality(values: &[f64]) -> Option<f64> {
    let n = values.len() as f64;
    if values.len() < 4 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n;
    let moment = |k: i32| values.iter().map(|v| (v - mean).powi(k)).sum::<f64>() / n;
    let (m2, m3, m4) = (moment(2), moment(3), moment(4));
    if m2 <= 0.0 {
        return None;
    }
    let g1 = m3 / m2.powf(1.5);
    let g2 = m4 / (m2 * m2) - 3.0;
    let skew = g1 * (n * (n - 1.0)).sqrt() / (n - 2.0);
    let kurtosis = ((n + 1.0) * g2 + 6.0) * (n - 1.0) / ((n - 2.0) * (n - 3.0));
    Some((skew * skew + 1.0) / (kurtosis + 3.0 * (n - 1.0).powi(2) / ((n - 2.0) * (n - 3.0))))
}

/// A copy's rates over its phase, in its moving metric.
pub fn rates_of(run: &Run) -> (Vec<f64>, Option<usize>) {
    match run.active_metric() {
        Some(m) => (run.rate_history(m).iter().map(|p| p.1).collect(), Some(m)),
        None => (Vec::new(), None),
    }
}

/// One line for a copy: its histogram and figures, or why there is none.
pub fn summary_line<'a>(run: &Run, bins: usize, theme: &Theme) -> Line<'a> {
    let (rates, metric) = rates_of(run);
    let unit = metric.map_or("", |m| run.metrics[m].unit.as_str());
    let dim = Style::new().fg(theme.dim.0);
    let Some(d) = Distribution::of(&rates, bins) else {
        let why = if run.ended.is_some() {
            "no progress to draw (the tool reports only at its end)"
        } else {
            "too few progress points yet to draw its spread"
        };
        return Line::styled(why, dim);
    };
    // The mark first, where a narrow pane still shows it; the bars' scale
    // (least to most rate) last.
    let mut spans = vec![Span::styled(d.bars(), Style::new().fg(theme.progress.0))];
    match d.bimodal {
        Some(true) => spans.push(Span::styled(
            " ◆ two modes",
            Style::new().fg(theme.warn.0).add_modifier(Modifier::BOLD),
        )),
        None => spans.push(Span::styled(format!(" ({} points)", d.points), dim)),
        Some(false) => {}
    }
    spans.push(Span::styled(
        format!(
            " med {} p5 {} p95 {} · {}–{}",
            figure(Some(d.median), unit),
            figure(Some(d.p5), unit),
            figure(Some(d.p95), unit),
            figure(Some(d.low), unit),
            figure(Some(d.high), unit)
        ),
        dim,
    ));
    Line::from(spans)
}

/// The overlay (`d`): every shown copy's distribution, a line each, under
/// its name.
pub fn render(buf: &mut Buffer, area: Rect, session: &Session, theme: &Theme, view: &View) {
    let popup = centered(
        area,
        area.width.saturating_sub(4).max(40),
        area.height.max(6),
    );
    Clear.render(popup, buf);
    let block = pane_block(
        " rate distribution per copy over its phase (◆: two modes; d or Esc closes) ".into(),
        theme,
        true,
    );
    let inner = block.inner(popup);
    block.render(popup, buf);
    let runs = shown_runs(session, view);
    if runs.is_empty() {
        Line::styled("no copies in this phase", Style::new().fg(theme.dim.0)).render(inner, buf);
        return;
    }
    let name_width = 16u16.min(inner.width / 3);
    let bins = (inner.width.saturating_sub(name_width) / 3).clamp(8, 40) as usize;
    for (row, run) in runs.iter().take(inner.height as usize).enumerate() {
        let y = inner.y + row as u16;
        let name = format!("{} #{}", session.guest_label(&run.guest), run.copy + 1);
        Span::raw(format!("{name:<w$}", w = name_width as usize)).render(
            Rect {
                x: inner.x,
                y,
                width: name_width,
                height: 1,
            },
            buf,
        );
        summary_line(run, bins, theme).render(
            Rect {
                x: inner.x + name_width,
                y,
                width: inner.width - name_width,
                height: 1,
            },
            buf,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_rates_a_copy_switched_between_are_two_modes_and_one_rate_is_not() {
        // A copy slowed halfway: 20 ticks at 10 M ops/s, then 20 at 5 M,
        // each with a little noise.
        let slowed: Vec<f64> = (0..40)
            .map(|i| if i < 20 { 10e6 } else { 5e6 } + (i % 3) as f64 * 1e4)
            .collect();
        let d = Distribution::of(&slowed, 10).expect("a distribution");
        assert_eq!(d.bimodal, Some(true), "{d:?}");
        assert_eq!(d.counts.iter().sum::<u32>(), 40);
        assert_eq!((d.counts[0] > 0, d.counts[9] > 0), (true, true));
        // Steady with noise: one hump.
        let steady: Vec<f64> = (0..40)
            .map(|i| 10e6 + ((i * 7919) % 13) as f64 * 1e4)
            .collect();
        let d = Distribution::of(&steady, 10).expect("a distribution");
        assert_eq!(d.bimodal, Some(false), "{d:?}");
        // One slow tick among steady ones is an outlier, not a mode.
        let mut warm_up = steady.clone();
        warm_up[0] = 2e6;
        let d = Distribution::of(&warm_up, 10).expect("a distribution");
        assert_eq!(d.bimodal, Some(false), "{d:?}");
        // Too few points to judge modes; too few to draw at all.
        assert_eq!(
            Distribution::of(&slowed[..10], 10).expect("drawn").bimodal,
            None
        );
        assert!(Distribution::of(&[1.0], 10).is_none());
    }

    #[test]
    fn the_overlay_marks_the_copy_slowed_halfway_and_not_its_steady_neighbour() {
        use crate::event::Event;
        use crate::ui::fixtures::{draw, live_view, many_copies};
        let mut session = many_copies(2);
        // vm00's copy (run 10): 40 more ticks of 250 ms, at 10 M ops/s
        // and then at 5 M; vm01's (run 11) steady at 11 M.
        let (mut slowed, mut steady) = (2e7, 2.2e7);
        for i in 1..=40u64 {
            slowed += if i <= 20 { 2.5e6 } else { 1.25e6 };
            steady += 2.75e6;
            for (run, done) in [(10, slowed), (11, steady)] {
                session.apply(&Event::Progress {
                    t: 8_100_000_000 + i * 250_000_000,
                    run,
                    metric: 0,
                    done,
                });
            }
        }
        let mut view = live_view();
        view.overlay = crate::ui::Overlay::Distribution;
        let terminal = draw(&session, &view, 120, 40);
        let buffer = terminal.backend().buffer();
        let line_of = |who: &str| -> String {
            (0..40)
                .map(|y| {
                    (0..120)
                        .map(|x| buffer[(x, y)].symbol())
                        .collect::<String>()
                })
                .find(|l| l.contains(who))
                .unwrap_or_else(|| panic!("no line for {who}"))
        };
        assert!(
            line_of("vm00 #1").contains("two modes"),
            "{}",
            line_of("vm00 #1")
        );
        assert!(
            !line_of("vm01 #2").contains("two modes"),
            "{}",
            line_of("vm01 #2")
        );
        assert!(
            line_of("vm01 #2").contains("med 11.0M"),
            "{}",
            line_of("vm01 #2")
        );
    }

    #[test]
    fn quantiles_and_bars_read_as_expected() {
        let rates: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = Distribution::of(&rates, 4).expect("a distribution");
        assert_eq!((d.p5, d.median, d.p95), (6.0, 51.0, 95.0));
        assert_eq!(d.counts, [25, 25, 25, 25]);
        assert_eq!(d.bars(), "████");
    }

    #[test]
    fn the_coefficient_matches_its_definition_on_a_hand_computed_case() {
        // 0,0,0,0,1,1,1,1 (n = 8): g1 = 0, g2 = -2; the corrected
        // kurtosis is ((9 × -2) + 6) × 7 / (6 × 5) = -2.8 and the bound's
        // term 3 × 49 / 30 = 4.9, so BC = 1 / 2.1.
        let bc = bimodality(&[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]).expect("spread");
        assert!((bc - 1.0 / 2.1).abs() < 1e-12, "{bc}");
    }
}
