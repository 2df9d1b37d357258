//! Statistics over repetitions: mean, standard deviation and a Student's t
//! confidence interval for one technology's figures, and Welch's interval
//! for its difference from the baseline. Nothing here knows about sessions.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The confidence level of every interval vmbench prints.
pub const CONFIDENCE: f64 = 0.95;

/// The two-sided critical value of Student's t for `df` degrees of freedom
/// (fractional for Welch's approximation).
fn t_critical(df: f64) -> f64 {
    StudentsT::new(0.0, 1.0, df)
        .map(|t| t.inverse_cdf(1.0 - (1.0 - CONFIDENCE) / 2.0))
        .unwrap_or(f64::NAN)
}

/// Figures of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1); None below two values.
    pub sd: Option<f64>,
    /// Half-width of the 95 % interval of the mean; None below two values.
    pub ci: Option<f64>,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Summary> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (n > 1).then(|| {
            let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
            (ss / (n - 1) as f64).sqrt()
        });
        let ci = sd.map(|sd| t_critical((n - 1) as f64) * sd / (n as f64).sqrt());
        Some(Summary { n, mean, sd, ci })
    }

    /// Relative standard deviation in percent, the bound adaptive
    /// repetition aims under.
    pub fn rsd_percent(&self) -> Option<f64> {
        self.sd
            .filter(|_| self.mean != 0.0)
            .map(|sd| sd / self.mean.abs() * 100.0)
    }

    fn variance_of_mean(&self) -> Option<f64> {
        self.sd.map(|sd| sd * sd / self.n as f64)
    }
}

/// How much worse a technology did than the baseline, in percent of the
/// baseline's mean: positive is a loss, whichever way the metric points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Loss {
    pub percent: f64,
    /// Half-width of Welch's 95 % interval of the difference, in percent of
    /// the baseline's mean; None when either side has fewer than two values.
    pub ci: Option<f64>,
    /// Whether the interval excludes zero. Without an interval nothing can
    /// be told from noise, so the difference is not significant.
    pub significant: bool,
}

impl Loss {
    pub fn between(baseline: &Summary, other: &Summary, higher_is_better: bool) -> Option<Loss> {
        if baseline.mean == 0.0 {
            return None;
        }
        let worse_by = if higher_is_better {
            baseline.mean - other.mean
        } else {
            other.mean - baseline.mean
        };
        let percent = worse_by / baseline.mean.abs() * 100.0;
        let ci = match (baseline.variance_of_mean(), other.variance_of_mean()) {
            (Some(vb), Some(vo)) => {
                let se2 = vb + vo;
                let half = if se2 == 0.0 {
                    0.0
                } else {
                    // Welch–Satterthwaite degrees of freedom.
                    let df = se2 * se2
                        / (vb * vb / (baseline.n - 1) as f64 + vo * vo / (other.n - 1) as f64);
                    t_critical(df) * se2.sqrt()
                };
                Some(half / baseline.mean.abs() * 100.0)
            }
            _ => None,
        };
        Some(Loss {
            percent,
            ci,
            significant: ci.is_some_and(|ci| percent.abs() > ci),
        })
    }
}

/// Power at which repetitions are planned: the usual 80 % chance of seeing
/// a difference that is really there.
pub const POWER: f64 = 0.80;

/// The most repetitions a plan is told it may need; beyond this the two are
/// as good as the same.
pub const MAX_REPETITIONS: usize = 10_000;

/// Repetitions each side needs to tell two means apart at 95 % with 80 %
/// power, if the difference and spreads are what was observed (two-sample
/// t, the spreads pooled): the smallest n with (t₀.₉₇₅ + t₀.₈₀)·s·√(2/n) ≤ d
/// at 2n − 2 degrees of freedom. None without a spread on both sides, with
/// no difference, or past [`MAX_REPETITIONS`].
pub fn repetitions_to_tell_apart(a: &Summary, b: &Summary) -> Option<usize> {
    let (sd_a, sd_b) = (a.sd?, b.sd?);
    let difference = (a.mean - b.mean).abs();
    if difference == 0.0 {
        return None;
    }
    let pooled = ((sd_a * sd_a + sd_b * sd_b) / 2.0).sqrt();
    (2..=MAX_REPETITIONS).find(|&n| {
        let df = (2 * n - 2) as f64;
        let t = |p: f64| {
            StudentsT::new(0.0, 1.0, df)
                .map(|t| t.inverse_cdf(p))
                .unwrap_or(f64::NAN)
        };
        (t(1.0 - (1.0 - CONFIDENCE) / 2.0) + t(POWER)) * pooled * (2.0 / n as f64).sqrt()
            <= difference
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn student_t_interval_of_three_values() {
        // mean 100, sd 10, t(0.975, 2) = 4.302652729749464
        let s = Summary::of(&[90.0, 100.0, 110.0]).expect("values");
        assert_eq!(s.n, 3);
        assert!(close(s.mean, 100.0));
        assert!(close(s.sd.expect("sd"), 10.0));
        assert!(close(
            s.ci.expect("ci"),
            4.302652729749464 * 10.0 / 3f64.sqrt()
        ));
        assert!(close(s.rsd_percent().expect("rsd"), 10.0));
    }

    #[test]
    fn one_value_has_no_interval() {
        let s = Summary::of(&[5.0]).expect("value");
        assert_eq!((s.sd, s.ci), (None, None));
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn welch_interval_of_a_loss() {
        // Baseline 100 ± sd 10 (n 3), other 80 ± sd 5 (n 3): a 20 % loss.
        // se² = 100/3 + 25/3 = 41.667; df = se⁴ / ((100/3)²/2 + (25/3)²/2)
        // = 2.941176; t(0.975, 2.941176) = 3.2187586145 (scipy.stats.t.ppf),
        // so the interval is ± 3.2187586145 × √41.667 = ± 20.776998 %.
        let base = Summary::of(&[90.0, 100.0, 110.0]).expect("values");
        let other = Summary::of(&[75.0, 80.0, 85.0]).expect("values");
        let loss = Loss::between(&base, &other, true).expect("loss");
        assert!(close(loss.percent, 20.0));
        let ci = loss.ci.expect("ci");
        assert!((ci - 20.776_997_515_9).abs() < 1e-6, "{ci}");
        // 20 ± 20.78 % includes no loss at all: three noisy runs tell nothing.
        assert!(!loss.significant);
        // Lower is better: the same figures are a 20 % gain, a negative loss.
        let gain = Loss::between(&base, &other, false).expect("loss");
        assert!(close(gain.percent, -20.0));
    }

    #[test]
    fn a_steady_loss_is_significant() {
        // sd 2 on both sides: se² = 8/3, df = 4, t(0.975, 4) = 2.7764451052.
        let base = Summary::of(&[98.0, 100.0, 102.0]).expect("values");
        let other = Summary::of(&[78.0, 80.0, 82.0]).expect("values");
        let loss = Loss::between(&base, &other, true).expect("loss");
        assert!(close(loss.percent, 20.0));
        assert!((loss.ci.expect("ci") - 4.533_915_871_1).abs() < 1e-6);
        assert!(loss.significant);
    }

    #[test]
    fn a_loss_inside_its_interval_is_not_significant() {
        let base = Summary::of(&[90.0, 100.0, 110.0]).expect("values");
        let other = Summary::of(&[88.0, 98.0, 108.0]).expect("values");
        let loss = Loss::between(&base, &other, true).expect("loss");
        assert!(!loss.significant);
        let single = Summary::of(&[50.0]).expect("value");
        let loss = Loss::between(&base, &single, true).expect("loss");
        assert_eq!((loss.ci, loss.significant), (None, false));
    }

    /// Checked against scipy 1.17: the smallest n with
    /// (t.ppf(0.975, 2n-2) + t.ppf(0.80, 2n-2)) * sqrt(2 s² / n) <= d.
    #[test]
    fn repetitions_to_tell_two_means_apart() {
        let of = |mean: f64, sd: f64| Summary {
            n: 3,
            mean,
            sd: Some(sd),
            ci: None,
        };
        assert_eq!(
            repetitions_to_tell_apart(&of(100.0, 2.0), &of(95.0, 2.0)),
            Some(4)
        );
        assert_eq!(
            repetitions_to_tell_apart(&of(100.0, 2.0), &of(99.0, 2.0)),
            Some(64)
        );
        // Unequal spreads are pooled.
        assert_eq!(
            repetitions_to_tell_apart(&of(3.42, 1.0), &of(4.55, 3.0)),
            Some(63)
        );
        assert_eq!(
            repetitions_to_tell_apart(&of(3.42, 1.0), &of(4.55, 1.0)),
            Some(14)
        );
        assert_eq!(
            repetitions_to_tell_apart(&of(0.0, 10.0), &of(0.5, 10.0)),
            Some(6281)
        );
        assert_eq!(
            repetitions_to_tell_apart(&of(0.0, 10.0), &of(0.1, 10.0)),
            None
        );
        assert_eq!(
            repetitions_to_tell_apart(&of(1.0, 1.0), &of(1.0, 1.0)),
            None
        );
        let single = Summary::of(&[1.0]).expect("value");
        assert_eq!(repetitions_to_tell_apart(&single, &of(2.0, 1.0)), None);
    }
}
