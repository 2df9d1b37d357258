//! One host sampler tick against the least any sampler must do with the same
//! files.

use std::hint::black_box;

use vmbench::sample::{HostSampler, SeriesIds};

use crate::time_us;

/// What any sampler must at least do: open, read and minimally parse each
/// file the sampler reads.
fn bare_read_and_parse(files: &[&str]) -> u64 {
    let mut sum = 0u64;
    for path in files {
        let text = std::fs::read_to_string(path).expect("readable /proc file");
        for line in text.lines() {
            for field in line.split_ascii_whitespace() {
                if let Ok(v) = field.parse::<u64>() {
                    sum = sum.wrapping_add(v);
                }
            }
        }
    }
    sum
}

pub fn bench_sampler() {
    let files = HostSampler::files_per_tick();
    let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc");
    sampler.sample(0);
    let mut t = 0;
    let sampler_us = time_us(200, || {
        t += 1;
        black_box(sampler.sample(t));
    });
    let bare_us = time_us(200, || {
        black_box(bare_read_and_parse(&files));
    });
    let values = sampler.sample(t + 1).values.len();
    println!(
        "sampler tick: {sampler_us:.1} µs ({values} values) vs bare open+read+parse of the same {} files {bare_us:.1} µs: {:.2}×",
        files.len(),
        sampler_us / bare_us
    );
}
