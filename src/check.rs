//! `vmbench check PLAN`: before a long session, reach every guest the way a
//! session would and say, in one table, what would go wrong.

use std::fmt::Write as _;

use crate::plan::{Guest, LoadedPlan, Plan, Transport};
use crate::transport::{self, GuestInfo, ssh};
use crate::workload;

pub struct GuestCheck {
    pub guest: String,
    pub address: String,
    pub technology: String,
    pub outcome: Result<Reached, String>,
}

pub struct Reached {
    pub info: Option<GuestInfo>,
    pub key_added: bool,
    /// Each tool the plan runs there and its version, as found.
    pub tools: Vec<(String, String)>,
    /// Problems that do not stop the guest from being reached.
    pub problems: Vec<String>,
    /// What would not stop the session but may mislead its figures.
    pub warnings: Vec<String>,
}

/// What the probe found on one guest.
#[derive(Debug, Default, PartialEq)]
struct Findings {
    tools: Vec<(String, String)>,
    problems: Vec<String>,
    warnings: Vec<String>,
}

/// What the plan needs on one guest: tools (with the oldest version vmbench
/// reads) and room for data sets in folders.
#[derive(Debug, Default, PartialEq)]
pub struct Needs {
    pub tools: Vec<(&'static str, (u32, u32))>,
    pub room: Vec<Room>,
}

/// Room a benchmark's data sets need in one folder of a guest.
#[derive(Debug, PartialEq)]
pub struct Room {
    pub dir: String,
    /// Per copy; None means twice the machine's RAM (bonnie++'s default).
    pub bytes: Option<u64>,
    /// Copies on this guest at the largest concurrency.
    pub copies: u64,
    pub bench: String,
    /// Whether the guest's RAM can stand in for the disk: in a guest (the
    /// host may cache its virtual disk) or through this host's page cache.
    pub cache_can_hold_it: bool,
}

pub fn needs(plan: &Plan, guest: &Guest, cores: usize) -> Needs {
    let mut needs = Needs::default();
    for bench in &plan.benchmarks {
        // Copies go round-robin over the guests of one technology.
        let Some(guests) = plan
            .technology_groups(bench)
            .into_iter()
            .map(|group| group.guests)
            .find(|guests| guests.iter().any(|g| g.name() == guest.name()))
        else {
            continue;
        };
        let Some(position) = guests.iter().position(|g| g.name() == guest.name()) else {
            continue;
        };
        let max = bench
            .concurrency
            .levels(cores)
            .into_iter()
            .max()
            .unwrap_or(1) as usize;
        // Copy i runs on guest i mod len.
        let copies_here = (0..max).filter(|i| i % guests.len() == position).count() as u64;
        if copies_here == 0 {
            continue;
        }
        if let (Some(tool), Some(min)) = (bench.workload.tool(), bench.workload.min_version()) {
            if !needs.tools.iter().any(|(t, _)| *t == tool) {
                needs.tools.push((tool, min));
            }
        }
        if let Some((dir, bytes)) = bench.workload.data_set() {
            needs.room.push(Room {
                dir: dir.display().to_string(),
                bytes,
                copies: copies_here,
                bench: bench.name.clone(),
                cache_can_hold_it: guest.transport.is_remote()
                    || bench.workload.goes_through_page_cache(),
            });
        }
    }
    needs
}

/// One shell script that reports every needed tool's version, the free
/// space of every folder and the RAM, in sections.
fn probe_script(needs: &Needs) -> String {
    let mut script = String::new();
    for (tool, _) in &needs.tools {
        let t = transport::shell_quote(tool);
        let _ = writeln!(
            script,
            "echo '== tool {tool}'; if command -v {t} >/dev/null 2>&1; then {t} --version 2>&1 | grep -i -m 1 version || {t} --version 2>&1 | head -n 1; else echo '== missing'; fi"
        );
    }
    for Room { dir, .. } in &needs.room {
        let _ = writeln!(
            script,
            "echo '== room {dir}'; df -Pk {} 2>&1 | tail -n 1",
            transport::shell_quote(dir)
        );
    }
    script.push_str("echo '== mem'; grep MemTotal /proc/meminfo\n");
    script
}

/// Found versions, problems and warnings from the probe script's output.
fn judge(needs: &Needs, output: &str) -> Findings {
    let mut sections: Vec<(String, Vec<&str>)> = Vec::new();
    for line in output.lines() {
        match line.strip_prefix("== ") {
            Some(head) if head != "missing" => sections.push((head.to_string(), Vec::new())),
            _ => {
                if let Some((_, body)) = sections.last_mut() {
                    body.push(line);
                }
            }
        }
    }
    let body = |head: &str| {
        sections
            .iter()
            .find(|(h, _)| h == head)
            .map(|(_, b)| b.clone())
    };
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for (tool, (major, minor)) in &needs.tools {
        let lines = body(&format!("tool {tool}")).unwrap_or_default();
        if lines.is_empty() || output.contains(&format!("== tool {tool}\n== missing")) {
            problems.push(format!("{tool} is not installed (not found in PATH)"));
            continue;
        }
        let text = lines.join("\n");
        let version = text
            .lines()
            .find(|l| l.to_ascii_lowercase().contains("version"))
            .or(text.lines().find(|l| !l.trim().is_empty()))
            .unwrap_or("")
            .trim()
            .to_string();
        match crate::workload::gate::version_numbers(&version) {
            Some(v) if v >= (*major, *minor) => {}
            Some((a, b)) => problems.push(format!(
                "{tool} {a}.{b} is too old; vmbench reads {major}.{minor} or newer"
            )),
            None => problems.push(format!("cannot read {tool}'s version from {version:?}")),
        }
        found.push((tool.to_string(), version));
    }
    let ram_kib: Option<u64> = body("mem").and_then(|l| {
        l.first()
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
    });
    for room in &needs.room {
        let Room {
            dir,
            bytes,
            copies,
            bench,
            ..
        } = room;
        let small = bytes
            .zip(ram_kib)
            .filter(|_| room.cache_can_hold_it)
            .and_then(|(b, k)| workload::small_data_set(b, k * 1024));
        if let Some(why) = small {
            warnings.push(format!("{bench}: {why}"));
        }
        let per_copy = bytes.or(ram_kib.map(|k| k * 1024 * 2));
        let free_kib: Option<u64> = body(&format!("room {dir}")).and_then(|l| {
            l.first()
                .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        });
        match (free_kib, per_copy) {
            (None, _) => problems.push(format!(
                "{dir} (for {bench}) does not exist or cannot be read"
            )),
            (Some(free), Some(per_copy)) if free * 1024 < per_copy * copies => {
                problems.push(format!(
                    "{dir} has {} free; {bench} needs {} ({copies} × {})",
                    mib(free * 1024),
                    mib(per_copy * copies),
                    mib(per_copy)
                ));
            }
            _ => {}
        }
    }
    Findings {
        tools: found,
        problems,
        warnings,
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

fn probe(needs: &Needs, run: impl FnOnce(&str) -> anyhow::Result<String>) -> Findings {
    if needs.tools.is_empty() && needs.room.is_empty() {
        return Findings::default();
    }
    match run(&probe_script(needs)) {
        Ok(output) => judge(needs, &output),
        Err(e) => Findings {
            problems: vec![format!("cannot look for tools: {e:#}")],
            ..Findings::default()
        },
    }
}

fn check_guest(
    guest: &Guest,
    plan: &LoadedPlan,
    unknown: ssh::UnknownKey,
    quiet: &transport::Quiet,
) -> GuestCheck {
    let needs = needs(&plan.plan, guest, cores());
    let outcome = match guest.transport {
        Transport::Local => {
            let findings = probe(&needs, |script| {
                let out = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(script)
                    .output()?;
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            });
            Ok(Reached {
                info: None,
                key_added: false,
                tools: findings.tools,
                problems: findings.problems,
                warnings: findings.warnings,
            })
        }
        Transport::Ssh | Transport::Exec => reach(guest, &plan.origin, unknown, quiet, &needs),
    };
    GuestCheck {
        guest: guest.name().to_string(),
        address: match guest.transport {
            Transport::Local => "(this host)".into(),
            Transport::Ssh => format!(
                "{}@{}",
                guest.user.as_deref().unwrap_or(""),
                guest.socket_text()
            ),
            Transport::Exec => transport::shell_command(guest.exec.as_deref().unwrap_or_default()),
        },
        technology: guest.technology.clone(),
        outcome,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn reach(
    guest: &Guest,
    plan: &str,
    unknown: ssh::UnknownKey,
    quiet: &transport::Quiet,
    needs: &Needs,
) -> Result<Reached, String> {
    let endpoint = crate::orchestrate::endpoint_of(guest);
    if endpoint.exec.is_some() {
        let (shell, reached) =
            transport::exec::connect(&endpoint).inspect_err(|_| quiet.leave())?;
        return look(&shell, reached, &endpoint, false, quiet, needs);
    }
    let connection = match ssh::connect(&endpoint, unknown) {
        Ok(c) => c,
        Err(e) => {
            quiet.leave();
            return Err(e.describe(plan, &endpoint.address));
        }
    };
    let key_added = connection.host_key_added;
    look(
        &connection.session,
        connection.reached(),
        &endpoint,
        key_added,
        quiet,
        needs,
    )
}

/// Puts vmbench on a guest just reached, takes it away again, and looks
/// there for what the plan needs.
fn look<S: transport::Shell>(
    shell: &S,
    reached: transport::Reached,
    endpoint: &transport::Endpoint,
    key_added: bool,
    quiet: &transport::Quiet,
    needs: &Needs,
) -> Result<Reached, String> {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            quiet.leave();
            return Err(format!("finding vmbench: {e}"));
        }
    };
    let transport::Prepared { info, janitor, .. } =
        transport::prepare(shell, reached, &endpoint.socket_text(), &exe, quiet)
            .map_err(|e| format!("{e:#}"))?;
    if let Some(janitor) = janitor {
        S::finish_janitor(janitor);
    }
    let mut findings = probe(needs, |script| {
        let (_, out, _) = shell.run(script)?;
        Ok(out)
    });
    if let Err(why) = &info.vmbench {
        findings.problems.push(why.clone());
    }
    Ok(Reached {
        info: Some(info),
        key_added,
        tools: findings.tools,
        problems: findings.problems,
        warnings: findings.warnings,
    })
}

/// Checks every guest and hypervisor host at once (each waits only for
/// its own network); a host is reached as a guest is, and runs no tool.
pub fn check_plan(plan: &LoadedPlan, unknown: ssh::UnknownKey) -> Vec<GuestCheck> {
    let hosts: Vec<crate::plan::Guest> =
        plan.plan.hosts.iter().map(|h| h.as_connection()).collect();
    let machines: Vec<&crate::plan::Guest> = plan.plan.guests.iter().chain(&hosts).collect();
    let ssh_machines = machines.iter().filter(|g| g.transport.is_remote()).count();
    let quiet = transport::Quiet::new(ssh_machines);
    std::thread::scope(|scope| {
        let quiet = &quiet;
        let handles: Vec<_> = machines
            .iter()
            .map(|g| scope.spawn(move || check_guest(g, plan, unknown, quiet)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a guest check does not panic"))
            .collect()
    })
}

pub fn render(checks: &[GuestCheck]) -> String {
    let mut out = String::new();
    let rows: Vec<[String; 7]> = checks
        .iter()
        .map(|c| {
            let (state, arch, connect, clock) = match &c.outcome {
                Err(_) => ("FAILED".to_string(), "-".into(), "-".into(), "-".into()),
                Ok(r) => {
                    let state = match (r.key_added, r.problems.is_empty()) {
                        (true, true) => "ok (host key added)",
                        (false, true) => "ok",
                        (_, false) => "PROBLEM",
                    };
                    match &r.info {
                        None => (
                            state.to_string(),
                            std::env::consts::ARCH.into(),
                            "-".into(),
                            "0 (host clock)".into(),
                        ),
                        Some(i) => (
                            state.to_string(),
                            i.arch.clone(),
                            format!("{:.0} ms", i.connect_ms),
                            match (i.clock_offset_ns, i.clock_rtt_ns) {
                                (Some(o), Some(rtt)) => {
                                    format!("{:+.3} ms ±{:.3}", o as f64 / 1e6, rtt as f64 / 2e6)
                                }
                                _ => "unmeasured".into(),
                            },
                        ),
                    }
                }
            };
            [
                c.guest.clone(),
                c.technology.clone(),
                c.address.clone(),
                state,
                arch,
                connect,
                clock,
            ]
        })
        .collect();
    let header = [
        "GUEST",
        "TECHNOLOGY",
        "ADDRESS",
        "STATE",
        "ARCH",
        "CONNECT",
        "CLOCK OFFSET",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(&widths) {
            let _ = write!(text, "{cell:<width$}  ");
        }
        text.trim_end().to_string()
    };
    out.push_str(&line(&header));
    out.push('\n');
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
        out.push('\n');
    }
    for c in checks {
        if let Ok(r) = &c.outcome {
            if !r.tools.is_empty() {
                let tools: Vec<String> = r.tools.iter().map(|(t, v)| format!("{t}: {v}")).collect();
                let _ = writeln!(out, "{}: {}", c.guest, tools.join("; "));
            }
        }
    }
    let problems = problems(checks);
    if !problems.is_empty() {
        out.push('\n');
        for p in problems {
            let _ = writeln!(out, "{p}");
        }
    }
    for c in checks {
        if let Ok(r) = &c.outcome {
            for w in &r.warnings {
                let _ = writeln!(out, "warning: {}: {w}", c.guest);
            }
        }
    }
    out
}

/// One line per problem, each naming its guest.
pub fn problems(checks: &[GuestCheck]) -> Vec<String> {
    let mut lines = Vec::new();
    for c in checks {
        match &c.outcome {
            Err(why) => lines.push(format!("{}: {why}", c.guest)),
            Ok(r) => lines.extend(r.problems.iter().map(|p| format!("{}: {p}", c.guest))),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "name = \"t\"\n\
        [[guest]]\nname = \"a\"\ntransport = \"local\"\ntechnology = \"x\"\n\
        [[guest]]\nname = \"b\"\ntransport = \"local\"\ntechnology = \"x\"\n\
        [[benchmark]]\nname = \"f\"\nworkload = { type = \"fio\", size = \"1GiB\", dir = \"/data\" }\nduration = \"1s\"\nconcurrency = [1, 3]\n\
        [[benchmark]]\nname = \"n\"\nworkload = { type = \"iperf3\" }\nduration = \"1s\"\nconcurrency = [1]\nguests = [\"b\"]\n";

    #[test]
    fn needs_count_the_copies_each_guest_gets_at_the_largest_concurrency() {
        let plan = LoadedPlan::parse(PLAN, "t.toml").expect("valid").plan;
        let a = needs(&plan, &plan.guests[0], 2);
        assert_eq!(a.tools, [("fio", (3, 0))]);
        // Copies 0 and 2 of 3 run on the first of two guests.
        assert_eq!(
            a.room,
            [Room {
                dir: "/data".into(),
                bytes: Some(1 << 30),
                copies: 2,
                bench: "f".into(),
                // fio's direct I/O on this host: its RAM cannot hold it.
                cache_can_hold_it: false,
            }]
        );
        let b = needs(&plan, &plan.guests[1], 2);
        assert_eq!(b.tools, [("fio", (3, 0)), ("iperf3", (3, 1))]);
        assert_eq!(b.room[0].copies, 1);
    }

    #[test]
    fn the_probe_output_gives_versions_missing_tools_and_room() {
        let plan = LoadedPlan::parse(PLAN, "t.toml").expect("valid").plan;
        let b = needs(&plan, &plan.guests[1], 2);
        let output = "== tool fio\nfio-2.2\n== tool iperf3\n== missing\n\
                      == room /data\n/dev/vdb 1024 0 524288 0% /data\n== mem\nMemTotal: 2048000 kB\n";
        let findings = judge(&b, output);
        assert_eq!(findings.tools, [("fio".to_string(), "fio-2.2".to_string())]);
        assert_eq!(
            findings.problems,
            [
                "fio 2.2 is too old; vmbench reads 3.0 or newer",
                "iperf3 is not installed (not found in PATH)",
                "/data has 512 MiB free; f needs 1024 MiB (1 × 1024 MiB)"
            ]
        );
        // fio's direct I/O on this host: its RAM cannot stand in for the disk.
        assert!(findings.warnings.is_empty(), "{:?}", findings.warnings);
    }

    #[test]
    fn a_data_set_under_twice_the_ram_is_warned_of_where_a_cache_can_hold_it() {
        let room = |bench: &str, cache_can_hold_it| Room {
            dir: "/data".into(),
            bytes: Some(1 << 30),
            copies: 1,
            bench: bench.into(),
            cache_can_hold_it,
        };
        let needs = Needs {
            tools: Vec::new(),
            room: vec![room("in-a-guest", true), room("direct-on-the-host", false)],
        };
        let output =
            "== room /data\n/dev/vdb 1024 0 4194304 0% /data\n== mem\nMemTotal: 2048000 kB\n";
        assert_eq!(
            judge(&needs, output).warnings,
            [
                "in-a-guest: its data set (1024 MiB) is under twice the RAM (2000 MiB), the \
              study's rule for disk figures: caches can hold it, so its figure may be partly \
              memory's"
            ]
        );
    }

    #[test]
    fn a_data_set_twice_the_ram_or_more_gets_no_warning_where_a_cache_could_hold_it() {
        // 1 GiB in a guest (its page cache could hold it) against RAM of
        // just over half of it, exactly half, and less.
        let needs = Needs {
            tools: Vec::new(),
            room: vec![Room {
                dir: "/data".into(),
                bytes: Some(1 << 30),
                copies: 1,
                bench: "in-a-guest".into(),
                cache_can_hold_it: true,
            }],
        };
        let with_ram = |kib: u64| {
            let output = format!(
                "== room /data\n/dev/vdb 1024 0 4194304 0% /data\n== mem\nMemTotal: {kib} kB\n"
            );
            judge(&needs, &output).warnings
        };
        assert_eq!(with_ram(524_289).len(), 1, "just under twice the RAM");
        assert_eq!(with_ram(524_288), Vec::<String>::new(), "exactly twice");
        assert_eq!(with_ram(262_144), Vec::<String>::new(), "four times");
    }
}
