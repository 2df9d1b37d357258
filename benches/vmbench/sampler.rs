//! One host sampler tick against the least any sampler must do with the same
//! files, read the same way.

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;

use vmbench::sample::{HostSampler, SeriesIds};

use crate::time_us;

/// The floor: the files the sampler reads, kept open as it keeps them, each
/// read whole from offset 0 and every number in it parsed.
fn read_and_parse(files: &[File], buf: &mut Vec<u8>) -> u64 {
    let mut sum = 0u64;
    for file in files {
        buf.clear();
        let mut chunk = [0u8; 16 << 10];
        loop {
            let n = file
                .read_at(&mut chunk, buf.len() as u64)
                .expect("readable /proc file");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        for field in buf.split(|b| b.is_ascii_whitespace()) {
            if let Some(v) = std::str::from_utf8(field)
                .ok()
                .and_then(|f| f.parse::<u64>().ok())
            {
                sum = sum.wrapping_add(v);
            }
        }
    }
    sum
}

pub fn bench_sampler() {
    let paths = HostSampler::files_per_tick();
    let files: Vec<File> = paths
        .iter()
        .map(|p| File::open(p).expect("readable /proc file"))
        .collect();
    let mut buf = Vec::with_capacity(64 << 10);
    let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc");
    sampler.sample(0);
    let mut t = 0;
    let sampler_us = time_us(200, || {
        t += 1;
        black_box(sampler.sample(t));
    });
    let floor_us = time_us(200, || {
        black_box(read_and_parse(&files, &mut buf));
    });
    let values = sampler.sample(t + 1).values.len();
    println!(
        "sampler tick: {sampler_us:.1} µs ({values} values) vs the floor of the same {} files kept open, \
         re-read from offset 0 and every number parsed, {floor_us:.1} µs: {:.2}×",
        paths.len(),
        sampler_us / floor_us
    );
}
