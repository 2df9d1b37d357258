//! What vmbench costs the host it observes from, charged as sadc and dstat
//! are: the whole process from exec to exit, and what a real 1 Hz recording
//! takes on disk per sampled value.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use vmbench::event::Sample;
use vmbench::store::Reader;

use crate::testbed;

/// CPU seconds (user + system) a finished child used: itself, its threads
/// and whatever children it waited for, from exec to exit.
fn whole_process_cpu_seconds(command: Command) -> Option<f64> {
    run_to_exit(command).map(|usage| cpu_seconds(&usage))
}

/// Runs `command` to its exit and returns what the kernel counted of it,
/// exec to exit (its CPU, its most resident memory).
pub fn run_to_exit(mut command: Command) -> Option<libc::rusage> {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child just spawned; rusage is a plain C struct.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    (pid > 0).then_some(usage)
}

/// User + system seconds of a process's usage.
pub fn cpu_seconds(usage: &libc::rusage) -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU seconds the first n testbed guests' sshd have used, with everything
/// they ran and reaped (vmbench's sessions, its SFTP server, its janitors):
/// what vmbench costs on the guest side, which on the testbed is this host.
fn guests_sshd_cpu_seconds(n: usize) -> Option<f64> {
    let ticks = 100.0; // USER_HZ on Linux
    (1..=n)
        .map(|i| {
            let pid = std::fs::read_to_string(format!("{}/g{i}/sshd.pid", testbed::STATE)).ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok()?;
            // utime, stime, cutime, cstime: fields 14 to 17, after the
            // command name in brackets.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let sum: f64 = fields
                .get(11..15)?
                .iter()
                .map(|f| f.parse::<f64>().ok())
                .sum::<Option<f64>>()?;
            Some(sum / ticks)
        })
        .sum()
}

/// vmbench's CPU between its first and last self-sample: the steady part,
/// without start-up and shutdown.
fn self_sampled_cpu_seconds(reader: &Reader) -> Option<f64> {
    let ticks = reader.header.host.clock_ticks_per_sec as f64;
    let ids: Vec<u32> = reader
        .series
        .iter()
        .filter(|s| s.source == "vmbench" && s.metric.starts_with("cpu."))
        .map(|s| s.id)
        .collect();
    let samples = reader.samples(0, u64::MAX).ok()?;
    let total = |s: &Sample| {
        s.values
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .map(|(_, v)| *v)
            .sum::<u64>()
    };
    let own: Vec<&Sample> = samples.iter().filter(|s| total(s) > 0).collect();
    Some((total(own.last()?) - total(own.first()?)) as f64 / ticks)
}

/// Bytes on disk per sampled value: the whole file, and the samples alone.
fn bytes_per_value(path: &Path) -> Option<(f64, f64, usize)> {
    let reader = Reader::open(path).ok()?;
    let values: usize = reader
        .samples(0, u64::MAX)
        .ok()?
        .iter()
        .map(|s| s.values.len())
        .sum();
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    let tick_bytes: i64 = db
        .query_row("SELECT sum(length(data)) FROM ticks", [], |r| r.get(0))
        .ok()?;
    Some((
        Reader::size_on_disk(path) as f64 / values as f64,
        tick_bytes as f64 / values as f64,
        values,
    ))
}

/// A plan whose copies sleep for 60 s: all the session's work is vmbench's
/// own (bring-up, sampling, the barrier, shutdown), none of it a benchmark's.
fn idle_plan(interval: &str, guests: &str, copies: usize) -> String {
    format!(
        "name = \"overhead\"\ninterval = \"{interval}\"\n{guests}\
         [[benchmark]]\nname = \"idle\"\nworkload = {{ type = \"custom\", command = [\"sh\", \"-c\", \"sleep 60; echo 1\"], \
         result_regex = \"(\\\\d+)\", metric = \"idle\", unit = \"1\" }}\nduration = \"60s\"\nconcurrency = [{copies}]\n"
    )
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or("not measured (not installed?)".to_string(), |s| {
        format!("{:.0} ms", s * 1e3)
    })
}

/// `ssh_guests` testbed guests, or this host as a local guest when 0.
pub fn bench_cpu_cost(dir: &Path, ssh_guests: usize) {
    let exe = env!("CARGO_BIN_EXE_vmbench");
    let (guests, copies, who) = if ssh_guests > 0 {
        (
            testbed::guests(ssh_guests),
            ssh_guests,
            format!("{ssh_guests} SSH guests (their /proc over SFTP, their veths host-side)"),
        )
    } else {
        (
            "[[guest]]\nname = \"host\"\ntransport = \"local\"\ntechnology = \"bare-metal\"\n"
                .into(),
            1,
            "a local guest only (the testbed is not up)".into(),
        )
    };
    let mut one_hz_recording = None;
    for (label, interval) in [("1 Hz", "1s"), ("10 Hz", "100ms")] {
        let plan = dir.join(format!("idle-{interval}.toml"));
        std::fs::write(&plan, idle_plan(interval, &guests, copies)).expect("plan");
        let out = dir.join(format!("overhead-{interval}.vmb"));
        let mut record = Command::new(exe);
        record.arg("record").arg(&plan).arg("-o").arg(&out);
        let guest_side_before = (ssh_guests > 0)
            .then(|| guests_sshd_cpu_seconds(ssh_guests))
            .flatten();
        let started = Instant::now();
        let vmbench = std::thread::spawn(move || {
            let cpu = whole_process_cpu_seconds(record);
            (cpu, started.elapsed().as_secs_f64())
        });
        // sadc and dstat sample this host over the same 60 s, each as one
        // process from exec to exit.
        let others = (interval == "1s").then(|| {
            let sa = dir.join("sa");
            let mut sadc = Command::new("/usr/lib/sysstat/sadc");
            sadc.args(["-S", "DISK", "1", "61"]).arg(&sa);
            let mut dstat = Command::new("dstat");
            dstat.args(["--nocolor", "-cdnm", "1", "60"]);
            (
                std::thread::spawn(move || whole_process_cpu_seconds(sadc)),
                std::thread::spawn(move || whole_process_cpu_seconds(dstat)),
            )
        });
        let (cpu, wall) = vmbench.join().expect("vmbench measured");
        // The guests' sshd reap their sessions as the connections close.
        std::thread::sleep(std::time::Duration::from_secs(2));
        let guest_side = guest_side_before
            .zip(guests_sshd_cpu_seconds(ssh_guests))
            .map(|(before, after)| after - before);
        let steady = Reader::open(&out)
            .ok()
            .and_then(|r| self_sampled_cpu_seconds(&r));
        println!(
            "CPU of vmbench record at {label} with {who}, a 60 s phase of sleeping copies: {} over {wall:.0} s \
             from exec to exit (start-up, bring-up with its upload to every guest, sampling, shutdown), \
             {} of it between its first and last self-sample; on the guests' side (their sshd, SFTP \
             server and what vmbench ran there, the sleeping copies included): {}",
            ms(cpu),
            ms(steady),
            if ssh_guests > 0 {
                ms(guest_side)
            } else {
                "none".into()
            },
        );
        if let Some((sadc, dstat)) = others {
            println!(
                "CPU over the same 60 s at 1 Hz, this host only, exec to exit: sadc {}, dstat {}",
                ms(sadc.join().ok().flatten()),
                ms(dstat.join().ok().flatten())
            );
            one_hz_recording = Some(out);
        }
    }
    match one_hz_recording.as_deref().and_then(bytes_per_value) {
        Some((file, ticks, values)) => println!(
            "recording at real 1 s spacing ({values} values of real counters, {who}): \
             {file:.2} bytes per value for the whole file (header, plan, events included), \
             {ticks:.2} in its samples"
        ),
        None => println!("recording bytes per value: the 1 Hz session left no readable recording"),
    }
}

/// CPU seconds the agents on the guests used, from their own series in a
/// recording (each agent samples its own /proc/self/stat).
fn agents_cpu_seconds(recording: &Path) -> Option<f64> {
    let reader = Reader::open(recording).ok()?;
    let ticks = reader.header.host.clock_ticks_per_sec as f64;
    let ids: Vec<u32> = reader
        .series
        .iter()
        .filter(|s| s.source.ends_with("/vmbench") && s.metric.starts_with("cpu."))
        .map(|s| s.id)
        .collect();
    if ids.is_empty() {
        return None;
    }
    let mut first = std::collections::HashMap::new();
    let mut last = std::collections::HashMap::new();
    for sample in reader.samples(0, u64::MAX).ok()? {
        for (id, value) in sample.values.iter().filter(|(id, _)| ids.contains(id)) {
            first.entry(*id).or_insert(*value);
            last.insert(*id, *value);
        }
    }
    Some(
        ids.iter()
            .map(|id| last.get(id).copied().unwrap_or(0) - first.get(id).copied().unwrap_or(0))
            .sum::<u64>() as f64
            / ticks,
    )
}

/// What reading the guests' own counters costs, by the three ways a guest
/// can be sampled, in one run on the same guests: the same session (bring-
/// up, a 30 s phase of sleeping copies, shutdown) with guest-side sampling
/// off, over SFTP and by the agent, each as one process from exec to exit.
/// The difference from `off`, over every guest-tick, is the host's cost
/// of one guest's sample; the guests' side is their sshd and what it ran,
/// and the agents' own CPU from their series.
pub fn bench_guest_sampling(dir: &Path, guests: usize) {
    for (hz, interval) in [(10.0, "100ms"), (1.0, "1s")] {
        guest_sampling_at(dir, guests, hz, interval);
    }
}

fn guest_sampling_at(dir: &Path, guests: usize, hz: f64, interval: &str) {
    let exe = env!("CARGO_BIN_EXE_vmbench");
    let seconds = 30.0;
    let mut off = None;
    for mode in ["off", "sftp", "agent"] {
        let blocks = testbed::guests(guests).replace(
            "[[guest]]\n",
            &format!("[[guest]]\nsampling = \"{mode}\"\n"),
        );
        let plan = dir.join(format!("sampling-{mode}-{hz}hz.toml"));
        std::fs::write(
            &plan,
            idle_plan(interval, &blocks, guests)
                .replace("sleep 60", "sleep 30")
                .replace("\"60s\"", "\"30s\""),
        )
        .expect("plan");
        let out = dir.join(format!("sampling-{mode}-{hz}hz.vmb"));
        let mut record = Command::new(exe);
        record.arg("record").arg(&plan).arg("-o").arg(&out);
        let before = guests_sshd_cpu_seconds(guests);
        let cpu = whole_process_cpu_seconds(record);
        std::thread::sleep(std::time::Duration::from_secs(2));
        let guest_side = before
            .zip(guests_sshd_cpu_seconds(guests))
            .map(|(b, a)| a - b);
        let per_tick = match (mode, cpu, off) {
            ("off", Some(c), _) => {
                off = Some(c);
                String::new()
            }
            (_, Some(c), Some(o)) => format!(
                "; {:.3} ms of host CPU per guest-tick over `off` ({guests} guests × {} ticks), \
                 {:.2} % of a host core",
                (c - o) / (guests as f64 * seconds * hz) * 1e3,
                seconds * hz,
                (c - o) / seconds * 100.0
            ),
            _ => String::new(),
        };
        let agents = agents_cpu_seconds(&out).map_or(String::new(), |a| {
            format!("; the agents themselves {}", ms(Some(a)))
        });
        println!(
            "guest-side sampling {mode} at {hz} Hz on {guests} SSH guests, a 30 s phase: vmbench {} \
             from exec to exit{per_tick}; guests' sshd and what they ran {}{agents}",
            ms(cpu),
            ms(guest_side),
        );
    }
}
