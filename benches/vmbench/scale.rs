//! Scale: `vmbench record` on N namespace guests of the testbed at 1 Hz,
//! 5-second phases of the built-in `cpu` at 1, N/4, N/2 and N copies (the
//! shape of the run that found bring-up at 68 s and 10–18 s from phase to
//! phase on 64 guests). Figures, all of this one session:
//! - ready: from vmbench's exec to the last guest's `ready`, and to the
//!   first phase's start;
//! - between phases: from a phase's end to the next one's release (what
//!   vmbench adds: clocks measured again, copies staged, the barrier);
//! - memory: the most resident (the kernel's ru_maxrss, exec to exit), per
//!   guest, and the series the recording defines (per guest);
//! - CPU: user + system of the whole process, exec to exit.
//!
//! `VMBENCH_BENCH=scale`, `VMBENCH_BENCH_GUESTS=N` (64 by default here).

use std::path::Path;
use std::process::Command;

use vmbench::event::{Event, GuestState};
use vmbench::store::Reader;

use crate::cost::{cpu_seconds, run_to_exit};
use crate::testbed;

pub fn bench_scale(dir: &Path, guests: usize) {
    let exe = env!("CARGO_BIN_EXE_vmbench");
    let mut levels = vec![1, guests / 4, guests / 2, guests];
    levels.dedup();
    let levels: Vec<String> = levels.iter().map(ToString::to_string).collect();
    let plan = format!(
        "name = \"scale\"\ninterval = \"1s\"\n{}\
         [[benchmark]]\nname = \"cpu\"\nworkload = {{ type = \"cpu\" }}\nduration = \"5s\"\n\
         concurrency = [{}]\n",
        testbed::guests(guests),
        levels.join(", ")
    );
    let plan_path = dir.join("scale.toml");
    std::fs::write(&plan_path, plan).expect("plan");
    let out = dir.join("scale.vmb");
    let _ = std::fs::remove_file(&out);
    let spawned = vmbench::event::monotonic_ns();
    let mut record = Command::new(exe);
    record.arg("record").arg(&plan_path).arg("-o").arg(&out);
    let usage = run_to_exit(record).expect("record runs");
    let cpu = cpu_seconds(&usage);
    let wall = (vmbench::event::monotonic_ns() - spawned) as f64 / 1e9;
    let Ok(reader) = Reader::open(&out) else {
        println!("scale: {guests} guests: the session left no recording");
        return;
    };
    let events = reader.events(0, u64::MAX).expect("events");
    // Session times, moved onto this process's clock by the header's origin.
    let origin = reader.header.monotonic_origin_ns.unwrap_or(spawned);
    let since_exec = |t: u64| (origin + t).saturating_sub(spawned) as f64 / 1e9;
    let ready: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::GuestState {
                t,
                state: GuestState::Ready { .. },
                ..
            } => Some(*t),
            _ => None,
        })
        .collect();
    // A phase's copies begin work at its release; `phase_started` comes
    // before the clocks are measured again and the copies are staged.
    let starts: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseReleased { t, .. } => Some(*t),
            _ => None,
        })
        .collect();
    let ends: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseEnded { t, .. } => Some(*t),
            _ => None,
        })
        .collect();
    let gaps: Vec<String> = ends
        .iter()
        .zip(starts.iter().skip(1))
        .map(|(end, next)| format!("{:.2}", next.saturating_sub(*end) as f64 / 1e9))
        .collect();
    let guest_series = reader
        .series
        .iter()
        .filter(|s| s.source.starts_with("guest:"))
        .count();
    let most_mb = usage.ru_maxrss as f64 / 1024.0;
    println!(
        "scale: {guests} guests, phases of 5 s at {} copies: {} of {guests} ready at {} s after exec, \
         first release at {} s; between phases (end to next release) {} s; whole session {wall:.1} s, \
         CPU {cpu:.1} s; most resident {most_mb:.1} MB ({:.2} MB per guest); {} series, {:.1} per \
         guest from inside it",
        levels.join("/"),
        ready.len(),
        ready
            .iter()
            .max()
            .map_or("–".into(), |t| format!("{:.1}", since_exec(*t))),
        starts
            .first()
            .map_or("–".into(), |t| format!("{:.1}", since_exec(*t))),
        gaps.join(", "),
        most_mb / guests as f64,
        reader.series.len(),
        guest_series as f64 / guests as f64,
    );
}
