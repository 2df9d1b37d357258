//! Adaptive repetition: a benchmark with `until_rsd` runs a concurrency
//! level again until the relative spread of its aggregates is under the
//! bound, judged from the same results model as the report.

use std::collections::VecDeque;

use super::Orchestrator;
use crate::event::LogLevel;
use crate::plan::PlannedPhase;
use crate::results::{DEFAULT_SKEW_BOUND, Results};
use crate::stats::Summary;

impl Orchestrator {
    /// Another repetition of a phase whose benchmark repeats until its
    /// figures settle, if their spread is still above the bound.
    pub(super) fn another_repetition(
        &self,
        done: &PlannedPhase,
        queued: &VecDeque<PlannedPhase>,
    ) -> Option<PlannedPhase> {
        let bench = &self.plan.benchmarks[done.benchmark];
        let (bound, max) = bench.adaptive()?;
        let same = |p: &PlannedPhase| {
            p.benchmark == done.benchmark
                && p.technology == done.technology
                && p.concurrency == done.concurrency
        };
        if queued.iter().any(same) {
            return None;
        }
        let session = self.results.lock().ok()?;
        let results = Results::of_session(&session, "", DEFAULT_SKEW_BOUND);
        // This level's results on this technology (all of them for a
        // benchmark that mixes technologies).
        let level: Vec<&crate::results::PhaseResult> = results
            .phases
            .iter()
            .filter(|r| r.benchmark == bench.name && r.concurrency == done.concurrency)
            .filter(|r| done.technology.is_empty() || r.technology == done.technology)
            .collect();
        // Phases of this level that ran, whether or not they gave a result:
        // one whose copies all failed still counts towards the maximum.
        let runs = session
            .phases
            .iter()
            .filter(|p| p.benchmark == bench.name && p.concurrency == done.concurrency)
            .filter(|p| {
                done.technology.is_empty()
                    || session
                        .runs_of(p)
                        .next()
                        .is_none_or(|r| r.technology == done.technology)
            })
            .count() as u32;
        if runs >= max {
            return None;
        }
        let mut metrics: Vec<&str> = Vec::new();
        for r in &level {
            if !metrics.contains(&r.metric.as_str()) {
                metrics.push(&r.metric);
            }
        }
        let spreads: Vec<Option<f64>> = metrics
            .iter()
            .map(|metric| {
                let values: Vec<f64> = level
                    .iter()
                    .filter(|r| r.metric == *metric && r.counts(false))
                    .filter_map(|r| r.aggregate)
                    .collect();
                Summary::of(&values).and_then(|s| s.rsd_percent())
            })
            .collect();
        // Too few results to judge count as unsettled.
        let settled = !spreads.is_empty()
            && spreads
                .iter()
                .all(|s| s.is_some_and(|rsd| rsd < bound * 100.0));
        if settled {
            return None;
        }
        let worst = spreads.iter().flatten().fold(0.0f64, |a, b| a.max(*b));
        drop(session);
        self.log(
            LogLevel::Info,
            format!(
                "{} ×{}: relative spread {:.1} % after {runs} run(s), above {} %: one more",
                bench.name,
                done.concurrency,
                worst,
                bound * 100.0
            ),
        );
        Some(PlannedPhase {
            repetition: runs + 1,
            ..done.clone()
        })
    }
}
