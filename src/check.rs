//! `vmbench check PLAN`: before a long session, reach every guest the way a
//! session would and say, in one table, what would go wrong.

use std::fmt::Write as _;
use std::sync::Barrier;

use crate::plan::{Guest, LoadedPlan, Transport};
use crate::transport::{self, GuestInfo, ssh};

pub struct GuestCheck {
    pub guest: String,
    pub address: String,
    pub technology: String,
    pub outcome: Result<Reached, String>,
}

pub struct Reached {
    pub info: Option<GuestInfo>,
    pub key_added: bool,
    /// Problems that do not stop the guest from being reached.
    pub problems: Vec<String>,
}

fn check_guest(guest: &Guest, plan: &str, unknown: ssh::UnknownKey, quiet: &Barrier) -> GuestCheck {
    let outcome = match guest.transport {
        Transport::Local => Ok(Reached {
            info: None,
            key_added: false,
            problems: Vec::new(),
        }),
        Transport::Ssh => reach(guest, plan, unknown, quiet),
    };
    GuestCheck {
        guest: guest.name().to_string(),
        address: match guest.transport {
            Transport::Local => "(this host)".into(),
            Transport::Ssh => format!(
                "{}@{}",
                guest.user.as_deref().unwrap_or(""),
                guest.endpoint()
            ),
        },
        technology: guest.technology.clone(),
        outcome,
    }
}

fn reach(
    guest: &Guest,
    plan: &str,
    unknown: ssh::UnknownKey,
    quiet: &Barrier,
) -> Result<Reached, String> {
    let connection = match ssh::connect(guest, unknown) {
        Ok(c) => c,
        Err(e) => {
            quiet.wait();
            return Err(e.describe(plan, guest.address.as_deref().unwrap_or_default()));
        }
    };
    let key_added = connection.host_key_added;
    let exe = std::env::current_exe().map_err(|e| format!("finding vmbench: {e}"))?;
    let transport::Prepared { info, janitor } =
        transport::prepare(&connection, &guest.endpoint(), &exe, quiet)
            .map_err(|e| format!("{e:#}"))?;
    if let Some(janitor) = janitor {
        janitor.finish();
    }
    let mut problems = Vec::new();
    if let Err(why) = &info.vmbench {
        problems.push(why.clone());
    }
    Ok(Reached {
        info: Some(info),
        key_added,
        problems,
    })
}

/// Checks every guest at once (each waits only for its own network).
pub fn check_plan(plan: &LoadedPlan, unknown: ssh::UnknownKey) -> Vec<GuestCheck> {
    let ssh_guests = plan
        .plan
        .guests
        .iter()
        .filter(|g| g.transport == Transport::Ssh)
        .count();
    let quiet = Barrier::new(ssh_guests);
    std::thread::scope(|scope| {
        let quiet = &quiet;
        let handles: Vec<_> = plan
            .plan
            .guests
            .iter()
            .map(|g| scope.spawn(move || check_guest(g, &plan.origin, unknown, quiet)))
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
    let problems = problems(checks);
    if !problems.is_empty() {
        out.push('\n');
        for p in problems {
            let _ = writeln!(out, "{p}");
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
