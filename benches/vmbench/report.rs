//! The report's loss matrix, large and as shipped.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use vmbench::report::{Matrix, Options, load};
use vmbench::results::{Fingerprint, PhaseResult, Results};
use vmbench::workload::WorkloadClass;

use crate::time_us;

/// The loss matrix over a large study: 20 workload metrics × 8 levels of
/// concurrency × 4 technologies × 10 repetitions, and the shipped demo read
/// from its recording.
pub fn bench_report() {
    let mut results = Results::default();
    let mut phase = 0;
    for workload in 0..20 {
        for concurrency in 1..=8u32 {
            for (t, technology) in ["bare-metal", "kvm", "xen", "netns"].iter().enumerate() {
                for repetition in 1..=10u32 {
                    phase += 1;
                    let value = 1000.0 * f64::from(concurrency) / (1.0 + t as f64 * 0.1)
                        + f64::from(repetition);
                    results.phases.push(PhaseResult {
                        source: "bench".into(),
                        phase,
                        benchmark: format!("w{workload}-{technology}"),
                        workload: format!("w{workload}"),
                        class: WorkloadClass::Score,
                        technology: technology.to_string(),
                        concurrency,
                        repetition,
                        metric: "score".into(),
                        unit: "ops/s".into(),
                        higher_is_better: true,
                        aggregate: Some(value),
                        per_guest_mean: Some(value / f64::from(concurrency)),
                        window_start_s: None,
                        window_stop_s: None,
                        skew_ms: Some(0.1),
                        clock_uncertainty_ms: Some(0.05),
                        stop_gap_ms: Some(0.1),
                        copies: concurrency as usize,
                        contributing: concurrency as usize,
                        outcome: "completed",
                        flag: None,
                        fingerprint: Fingerprint::default(),
                    });
                }
            }
        }
    }
    let options = Options::default();
    let build_ms = time_us(1, || {
        black_box(Matrix::build(&results, &options).to_table());
    }) / 1e3;
    println!(
        "report: loss matrix of {} phase results ({} rows × 4 technologies), built and printed: {build_ms:.1} ms",
        results.phases.len(),
        20 * 8
    );
    let demo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/recordings/demo.vmb"));
    let start = Instant::now();
    let demo_results = load(
        &[demo.to_path_buf()],
        vmbench::results::DEFAULT_SKEW_BOUND,
        false,
    )
    .expect("the demo loads");
    let table = Matrix::build(&demo_results, &options).to_table();
    println!(
        "report: the shipped demo ({} kB, {} phases), read and printed: {:.1} ms",
        std::fs::metadata(demo).map_or(0, |m| m.len() / 1000),
        demo_results.phases.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    black_box(table);
}
