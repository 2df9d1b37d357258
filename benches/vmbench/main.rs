//! Performance figures of vmbench, measured in one run so that ratios are
//! comparable on a shared, noisy machine. `cargo bench` prints them; each
//! line says what its figure includes.
//!
//! - sampler: one tick against the bare open+read+parse of the same files;
//! - frame: TUI frame time with 16 copy panes;
//! - recording: replay of an hour of ticks, open to first frame;
//! - report: the loss matrix over 6,400 phase results, and over the demo;
//! - skew: start skew of 2 and N copies on testbed guests, on raw stamps of
//!   one clock: vmbench's barrier against parallel-ssh, cold and over open
//!   ControlMaster connections (root for the testbed, Debian's pssh);
//! - cost: CPU of `vmbench record` with 4 SSH guests at 1 Hz and 10 Hz, the
//!   whole process from exec to exit, beside sadc and dstat charged the same
//!   way (sysstat, dstat), and bytes per value of that real 1 Hz recording;
//! - sampling: what reading 16 guests' own counters at 10 Hz costs the
//!   host, off, over SFTP and by the agent, in one run.
//!
//! - scale (only when named): N guests' bring-up, the time between phases,
//!   vmbench's memory and series per guest.
//!
//! `VMBENCH_BENCH=group,...` runs only those groups (sampler, frame, replay,
//! report, skew, cost, sampling, and soak and scale, which run only when
//! named); `VMBENCH_BENCH_GUESTS=N` sets the larger guest count of the
//! skew and of sampling (16), and the scale run's (64).

mod cost;
mod frame;
mod recording;
mod report;
mod sampler;
mod scale;
mod skew;
mod soak;
mod testbed;

use std::time::Instant;

use vmbench::header::{Header, HostSpecs};

/// Guests the cost sessions run with: the study's scale is 8; 4 keeps two
/// 60-second sessions light on a 2-core machine.
const COST_GUESTS: usize = 4;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Microseconds per call, the median of 15 batches.
fn time_us(batch: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..batch {
        f();
    }
    median(
        (0..15)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..batch {
                    f();
                }
                start.elapsed().as_secs_f64() * 1e6 / batch as f64
            })
            .collect(),
    )
}

fn header(schedule_phases: usize) -> Header {
    let plan = vmbench::plan::LoadedPlan::embedded_default();
    // The default plan's phases, repeated to as many as asked for.
    let schedule = plan
        .plan
        .schedule(2)
        .into_iter()
        .cycle()
        .take(schedule_phases)
        .collect();
    Header::new(
        &plan,
        HostSpecs::of_this_host(),
        0,
        &vmbench::event::Clock::start(),
        schedule,
    )
}

fn main() {
    // `cargo test --benches` runs this binary too; benchmarks only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let many: usize = std::env::var("VMBENCH_BENCH_GUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    // `VMBENCH_BENCH=frame,replay cargo bench` runs only those groups:
    // sampler, frame, replay, report (no guests needed), skew, cost, sampling.
    let only = std::env::var("VMBENCH_BENCH").ok();
    let runs = |group: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|g| g == group))
    };
    if runs("sampler") {
        sampler::bench_sampler();
    }
    if runs("frame") {
        frame::bench_frame();
    }
    if runs("replay") {
        recording::bench_replay_open(dir.path());
        recording::bench_fold_and_record(dir.path());
    }
    if runs("report") {
        report::bench_report();
    }
    // The soak takes an hour and the scale run 64 guests: only when named.
    let named = |group: &str| {
        only.as_deref()
            .is_some_and(|o| o.split(',').any(|g| g == group))
    };
    let (soak, scale) = (named("soak"), named("scale"));
    if scale {
        let guests = std::env::var("VMBENCH_BENCH_GUESTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64);
        if testbed::up(guests) {
            scale::bench_scale(dir.path(), guests);
        } else {
            println!("scale: not measured, the testbed's {guests} guests did not come up");
        }
    }
    // Its guests are a fleet of its own: no testbed.
    if soak {
        let minutes = std::env::var("VMBENCH_SOAK_MINUTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        soak::bench_soak(dir.path(), many, minutes);
    }
    if !["skew", "cost", "sampling"].iter().any(|g| runs(g)) {
        return;
    }
    let testbed = testbed::up(many.max(COST_GUESTS));
    if !testbed {
        println!(
            "start skew, vmbench's cost and guest sampling: not measured, the testbed did not come \
             up (root and openssh-server are needed)"
        );
    }
    if testbed && runs("skew") {
        skew::bench_skew(dir.path(), many);
    }
    if runs("cost") {
        cost::bench_cpu_cost(dir.path(), if testbed { COST_GUESTS } else { 0 });
    }
    if testbed && runs("sampling") {
        cost::bench_guest_sampling(dir.path(), many);
    }
}
