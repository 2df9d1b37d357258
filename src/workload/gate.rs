//! `vmbench workload gate`: puts an external tool behind the same barrier as
//! the built-in workloads. It checks the tool is there and new enough, waits
//! at the gate, starts the tool at the release instant, and relays each line
//! of its standard output stamped with this machine's monotonic clock, so
//! that progress is timed where it happens, not where it is received.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use super::builtin::{Line, emit, wait_at_gate};
use crate::event::monotonic_ns;

pub struct GateArgs {
    /// The command that prints the tool's version, e.g. `iperf3 --version`.
    pub probe: Vec<String>,
    /// The oldest version (major, minor) the adapter can read.
    pub min_version: Option<(u32, u32)>,
    pub argv: Vec<String>,
}

/// The first `major.minor` in a version text: "iperf 3.12 (cJSON …)" → (3, 12).
pub fn version_numbers(text: &str) -> Option<(u32, u32)> {
    let re = regex::Regex::new(r"(\d+)\.(\d+)").expect("a valid pattern");
    let caps = re.captures(text)?;
    Some((caps[1].parse().ok()?, caps[2].parse().ok()?))
}

/// The line of a tool's version output that names it, else the first one.
fn version_line(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.to_ascii_lowercase().contains("version"))
        .or(lines.first())
        .map_or_else(String::new, |l| (*l).to_string())
}

fn probe(args: &GateArgs) -> Result<()> {
    let Some((program, rest)) = args.probe.split_first() else {
        return Ok(());
    };
    let out = match Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("{program} is not installed on this machine (not found in PATH)")
        }
        Err(e) => bail!("cannot run {program}: {e}"),
    };
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let version = version_line(&text);
    emit(&Line::Version {
        tool: program.clone(),
        text: version.clone(),
    });
    if let Some((major, minor)) = args.min_version {
        match version_numbers(&version) {
            Some(found) if found >= (major, minor) => {}
            Some((a, b)) => {
                bail!("{program} {a}.{b} is too old; vmbench reads {major}.{minor} or newer")
            }
            None => bail!("cannot read {program}'s version from {version:?}"),
        }
    }
    Ok(())
}

pub fn run_gate(args: GateArgs) -> Result<()> {
    let Some((program, rest)) = args.argv.split_first() else {
        bail!("nothing to run behind the gate");
    };
    probe(&args)?;
    if !wait_at_gate(true) {
        return Ok(());
    }
    emit(&Line::Start {
        mono_ns: monotonic_ns(),
    });
    // Same process group as the gate, so that cancelling kills both.
    let mut command = Command::new(program);
    command
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The tool dies with the gate: a gate killed on its own (by hand, by
    // the OOM killer) must not leave the tool running and its copy open.
    // SAFETY: die_with_parent only calls prctl, async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(
            &mut command,
            crate::transport::die_with_parent,
        );
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let stdout = child.stdout.take().context("the tool's stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_else(|e| format!("(unreadable output: {e})"));
        emit(&Line::Tool {
            mono_ns: monotonic_ns(),
            line,
        });
    }
    let status = child.wait().context("waiting for the tool")?;
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => std::process::exit(code),
        (None, Some(signal)) => bail!("{program} was killed by signal {signal}"),
        _ => bail!("{program} ended abnormally"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_what_tools_print() {
        assert_eq!(version_numbers("iperf 3.12 (cJSON 1.7.15)"), Some((3, 12)));
        assert_eq!(version_numbers("fio-3.33"), Some((3, 33)));
        assert_eq!(
            version_numbers("stress-ng, version 0.15.06 (gcc 12.2.0, x86_64 Linux)"),
            Some((0, 15))
        );
        assert_eq!(version_numbers("no digits"), None);
        assert_eq!(
            version_line("usage: bonnie++ [-d scratch-dir]\nVersion: 2.00a\n"),
            "Version: 2.00a"
        );
    }
}
