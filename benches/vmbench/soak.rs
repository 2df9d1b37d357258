//! A long session's memory: `vmbench record` of a plan of one-minute phases
//! (sleeping copies on every guest, at 1 Hz) for as long as asked, its
//! resident memory read from /proc every 10 s. The guests are a fleet of
//! namespace guests vmbench makes for the session (on a bridge of its own,
//! 198.18.70.0/24), so the soak needs no testbed and leaves it alone. Run
//! only when named (`VMBENCH_BENCH=soak`; `VMBENCH_SOAK_MINUTES`, 60 by
//! default).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn bench_soak(dir: &Path, guests: usize, minutes: u32) {
    let exe = env!("CARGO_BIN_EXE_vmbench");
    let plan = format!(
        "name = \"soak\"\ninterval = \"1s\"\n\
         [[fleet]]\nname = \"soak\"\ntechnology = \"netns\"\ncount = {guests}\ndisk_mib = 64\n\
         addresses = \"198.18.70.0/24\"\n\
         [[benchmark]]\nname = \"idle\"\nworkload = {{ type = \"custom\", command = [\"sh\", \"-c\", \
         \"sleep 50; echo 1\"], result_regex = \"(\\\\d+)\", metric = \"idle\", unit = \"1\" }}\n\
         duration = \"55s\"\nconcurrency = [{guests}]\nrepetitions = {minutes}\n"
    );
    let plan_path = dir.join("soak.toml");
    std::fs::write(&plan_path, plan).expect("plan");
    let out = dir.join("soak.vmb");
    let mut child = Command::new(exe)
        .arg("record")
        .arg(&plan_path)
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("record starts");
    let began = Instant::now();
    let mut readings: Vec<(f64, u64)> = Vec::new();
    while child.try_wait().ok().flatten().is_none() {
        if let Some(kib) = rss_kib(child.id()) {
            readings.push((began.elapsed().as_secs_f64() / 60.0, kib));
        }
        std::thread::sleep(Duration::from_secs(10));
    }
    let at = |minute: f64| {
        readings
            .iter()
            .min_by(|a, b| (a.0 - minute).abs().total_cmp(&(b.0 - minute).abs()))
            .map_or("–".to_string(), |(m, kib)| {
                format!("{:.1} MB at {m:.1} min", *kib as f64 / 1024.0)
            })
    };
    let most = readings.iter().map(|r| r.1).max().unwrap_or(0);
    let total = readings.last().map_or(0.0, |r| r.0);
    let size = std::fs::metadata(&out).map_or(0, |m| m.len());
    println!(
        "soak: {guests} guests at 1 Hz, {minutes} one-minute phases, {total:.1} min in all: vmbench RSS \
         {} / {} / {} / {} / {} (at the start, after the first phase, at 10 and 30 min, at the \
         end), most {:.1} MB; recording {:.2} MB per minute",
        at(0.0),
        at(1.0),
        at(10.0),
        at(30.0),
        at(total),
        most as f64 / 1024.0,
        size as f64 / 1e6 / total.max(1.0)
    );
    // Every reading, for a plot.
    for (minute, kib) in readings {
        println!("soak rss {minute:.2} {kib}");
    }
}
