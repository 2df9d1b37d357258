//! Reaching a machine behind one interface: the host itself (the baseline)
//! through `local`, guests over SSH through `ssh`. Either way a command is
//! started in its own process group, its output streams back line by line,
//! a release line can be written to it, its group can be killed, and the
//! link says whether the machine is still there.
//!
//! Preparing a guest puts this very binary there, so that the built-in
//! workloads and the clock probe run the same code on every guest.

mod endpoint;
pub mod exec;
mod guest_link;
pub mod local;
pub mod pool;
pub mod quiet;
pub mod shell;
pub mod ssh;

pub use endpoint::{Endpoint, LinkPolicy};
pub use guest_link::GuestLink;
pub use pool::{GuestPool, PoolContext, SamplingHook};
pub use quiet::Quiet;
pub use shell::{Reached, Shell};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use sha2::{Digest, Sha256};

pub use crate::event::GuestInfo;

/// The vmbench binary's bytes and digest, read once per process.
struct Image {
    path: PathBuf,
    bytes: Vec<u8>,
    sha256: String,
}

fn image_of(path: &Path) -> Result<Arc<Image>, String> {
    static IMAGE: Mutex<Option<Arc<Image>>> = Mutex::new(None);
    let mut cached = IMAGE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(image) = cached.as_ref().filter(|i| i.path == path) {
        return Ok(image.clone());
    }
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let image = Arc::new(Image {
        path: path.to_path_buf(),
        bytes,
        sha256,
    });
    *cached = Some(image.clone());
    Ok(image)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// For a child between fork and exec: it is killed when the thread that
/// started it ends, so that a kill -9 of vmbench leaves it not running.
/// (A process it forks is not: what it starts must end on its own cue.)
pub fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl is async-signal-safe and touches only the calling
    // process, the child.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    Ok(())
}

/// SIGKILL to a process group; the caller started its leader and has not
/// reaped it, so the id names no other process.
pub fn kill_group(pgid: u32) {
    // SAFETY: killpg takes any id; the caller vouches for which group.
    unsafe { libc::killpg(pgid as libc::pid_t, libc::SIGKILL) };
}

/// Quotes one word for a POSIX shell.
pub fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&b))
    {
        return word.to_string();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

pub fn shell_command(argv: &[String]) -> String {
    argv.iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Learns the guest's architecture and kernel, puts the vmbench binary in a fresh
/// folder there (checksum verified) and measures the clock offset with it.
///
/// Uploads to several guests at once disturb each other's clock probes, so
/// each guest waits at `quiet` (shared by all guests being prepared) between
/// its upload and its probe; one that fails before leaves it.
pub fn prepare<S: Shell>(
    shell: &S,
    reached: Reached,
    address: &str,
    vmbench: &Path,
    quiet: &Quiet,
) -> Result<Prepared<S::Janitor>> {
    let mut arrival = quiet::Arrival::new(quiet);
    // What the guest is, in one command: each one a guest runs costs its
    // shell's start-up files (a `.bashrc` that starts pyenv: 0.15 s here).
    // Well past the point where vmbench itself would call the guest lost:
    // a guest busy starting 128 shells (each of which reads its start-up
    // files) is slow, not gone.
    let patience = (reached.silence_limit * 2).max(std::time::Duration::from_secs(30));
    let set_up = ssh::UPLOADS.take();
    let probing = std::time::Instant::now();
    let (_, out, err) = shell
        .run_within(&format!("{BASICS_PROBE}\n{SHAPE_PROBE}"), patience)
        .context("asking the guest what it is (uname and a few files)")?;
    let first_command = probing.elapsed();
    let value = |key: &str| probed(&out, key).next().unwrap_or_default().to_string();
    let (arch, kernel) = (value("arch"), value("kernel"));
    if arch.is_empty() {
        bail!("`uname` failed on the guest: {}", err.trim());
    }
    let boot_id = Some(value("boot_id")).filter(|id| !id.is_empty());
    let shape = Some(parse_shape(&out));
    // Guests that share a /tmp (namespace guests, on one kernel) need its
    // leftovers swept once per bring-up, not once each.
    let tmp = value("tmp");
    let sweep = boot_id
        .as_ref()
        .filter(|_| !tmp.is_empty())
        .is_none_or(|id| quiet.once(&format!("sweep /tmp of {id} {tmp}")));
    let (vmbench, janitor, from_cache) = install(shell, &arch, vmbench, patience, sweep);
    drop(set_up);
    arrival.arrive();
    let clock_turn = ssh::CLOCK_PROBES.take();
    let (clock_offset_ns, clock_rtt_ns) = match &vmbench {
        Ok(path) => match shell.measure_clock(
            path,
            std::time::Instant::now() + std::time::Duration::from_secs(30),
        ) {
            Ok((offset, rtt)) => (Some(offset), Some(rtt)),
            Err(_) => (None, None),
        },
        Err(_) => (None, None),
    };
    drop(clock_turn);
    let info = GuestInfo {
        address: address.to_string(),
        local_ip: reached.local_ip,
        arch,
        kernel,
        connect_ms: reached.connect_time.as_secs_f64() * 1e3,
        clock_offset_ns,
        clock_rtt_ns,
        vmbench,
        shape,
        boot_id,
    };
    Ok(Prepared {
        info,
        janitor,
        from_cache,
        first_command,
    })
}

/// The guest's architecture, kernel, boot id and its /tmp (device:inode),
/// in lines of `key value`.
const BASICS_PROBE: &str = r#"echo "arch $(uname -m)"
echo "kernel $(uname -r)"
echo "boot_id $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
echo "tmp $(stat -c %d:%i /tmp 2>/dev/null)""#;

/// The values of `key` in a probe's `key value` lines.
fn probed<'a>(out: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
    out.lines()
        .filter_map(move |l| l.strip_prefix(key)?.strip_prefix(' '))
        .map(str::trim)
}

/// What a guest is, in lines of `key value`: read with the basics every
/// Linux guest has, no tool of vmbench's needed. Only devices with a
/// driver are looked at (a host's dozens of loop devices start nothing).
const SHAPE_PROBE: &str = r#"echo "vcpus $(nproc)"
echo "memory_kib $(awk '/^MemTotal/{print $2}' /proc/meminfo)"
echo "flags $(grep -m1 '^flags' /proc/cpuinfo)"
echo "hypervisor $(cat /sys/hypervisor/type 2>/dev/null)"
echo "xen $(cat /proc/xen/capabilities 2>/dev/null)"
echo "vendor $(cat /sys/class/dmi/id/sys_vendor 2>/dev/null)"
echo "product $(cat /sys/class/dmi/id/product_name 2>/dev/null)"
for l in /sys/class/net/*/device/driver; do [ -e "$l" ] || continue; n=${l%/device/driver}; d=$(readlink "$l"); echo "nic ${n##*/}=${d##*/}"; done
for l in /sys/block/*/device/driver; do [ -e "$l" ] || continue; b=${l%/device/driver}; d=$(readlink "$l"); echo "disk ${b##*/}=${d##*/}"; done
true"#;

fn parse_shape(out: &str) -> crate::event::GuestShape {
    let value = |key| probed(out, key).next().unwrap_or_default();
    let all = |key| -> Vec<String> { probed(out, key).map(String::from).collect() };
    crate::event::GuestShape {
        vcpus: value("vcpus").parse().unwrap_or(0),
        memory_bytes: value("memory_kib").parse::<u64>().unwrap_or(0) * 1024,
        virtualization: crate::header::virtualization(
            value("flags"),
            value("hypervisor"),
            value("xen"),
            value("vendor"),
            value("product"),
        ),
        nics: all("nic"),
        disks: all("disk"),
    }
}

/// A guest made ready, and what removes vmbench from it afterwards.
pub struct Prepared<J> {
    pub info: GuestInfo,
    pub janitor: Option<J>,
    /// vmbench came from the guest's cache, not over the network.
    pub from_cache: bool,
    /// How long the first command took there (a shell and a few tools).
    pub first_command: std::time::Duration,
}

/// Where vmbench now is on the guest, or why it cannot run there; and the
/// janitor of its folder, started as soon as the folder exists.
fn install<S: Shell>(
    shell: &S,
    arch: &str,
    vmbench: &Path,
    patience: std::time::Duration,
    sweep: bool,
) -> (Result<String, String>, Option<S::Janitor>, bool) {
    let ours = std::env::consts::ARCH;
    if arch != ours {
        let why = format!(
            "the guest is {arch} and this vmbench is built for {ours}, so the built-in \
             workloads cannot run there (external tools can)"
        );
        return (Err(why), None, false);
    }
    let step =
        |what: &str, e: anyhow::Error| format!("putting vmbench on the guest: {what}: {e:#}");
    // Folders whose session ended without its janitor (vmbench killed while
    // the link was cut, the janitor later killed with sshd) go first, in
    // the same command.
    let make = "mktemp -d /tmp/vmbench.XXXXXX";
    let command = if sweep {
        format!("{SWEEP_ORPHANS}; {make}")
    } else {
        make.to_string()
    };
    let dir = match shell.run_within(&command, patience) {
        Ok((0, out, _)) => out.trim().to_string(),
        Ok((_, _, err)) => {
            let why = format!(
                "cannot make a folder under /tmp on the guest: {}",
                err.trim()
            );
            return (Err(why), None, false);
        }
        Err(e) => return (Err(step("mktemp", e)), None, false),
    };
    let janitor = match shell.start_janitor(&dir, patience) {
        Ok(j) => j,
        Err(e) => {
            let _ = shell.run(&format!("rm -rf {}", shell_quote(&dir)));
            return (Err(step("cleanup watch", e)), None, false);
        }
    };
    let path = format!("{dir}/vmbench");
    match copy_and_verify(shell, vmbench, &path) {
        Ok((path, from_cache)) => (Ok(path), Some(janitor), from_cache),
        Err(why) => {
            // A half-made upload is removed now, not when the session ends;
            // if even that fails, the next connection's sweep removes it.
            let _ = shell.run(&format!("rm -rf {}", shell_quote(&dir)));
            (Err(why), Some(janitor), false)
        }
    }
}

/// Removes `/tmp/vmbench.*` folders whose janitor holds no lock on their
/// `.alive` file (`shell::janitor_script`; a /tmp shared by guests whose
/// PID namespaces differ shows no other process) and that no process on
/// the guest names (every copy and every janitor has its folder in its
/// command line), and that are over 10 s old, so that a session being set
/// up right now (between mktemp and its janitor, milliseconds) keeps its
/// own. The `[v]` keeps grep from finding the pattern in its own command
/// line.
pub const SWEEP_ORPHANS: &str = r#"for d in $(find /tmp -maxdepth 1 -type d -name 'vmbench.*' ! -newermt '-10 seconds' 2>/dev/null); do n=${d#/tmp/vmbench.}; if [ -e "$d/.alive" ] && command -v flock >/dev/null 2>&1 && ! flock -n "$d/.alive" true; then continue; fi; grep -qs "/tmp/[v]mbench\.$n" /proc/[0-9]*/cmdline || rm -rf "$d"; done; true"#;

/// Where a guest keeps the vmbench binaries it was sent, by their SHA-256,
/// for this user only: the next session (or the next guest on the same
/// disk, as namespace guests are) copies the binary there instead of
/// receiving it again. A file is used only if its checksum is the one
/// this vmbench has, checked after the copy as after an upload.
fn cache_of(sha256: &str) -> String {
    format!("\"${{TMPDIR:-/var/tmp}}/vmbench-cache-$(id -u)/{sha256}\"")
}

/// Keeps a checked binary in the guest's cache, written aside and renamed
/// so that no session ever copies half of one. Best effort: a guest
/// without room simply receives the binary next time.
fn keep_in_cache(shell: &impl Shell, sha256: &str, path: &str) {
    let cache = cache_of(sha256);
    let command = format!(
        "d=$(dirname {cache}) && mkdir -p \"$d\" && chmod 700 \"$d\" && \
         cp {path} {cache}.$$ && mv {cache}.$$ {cache}",
        path = shell_quote(path)
    );
    let _ = shell.run(&command);
}

/// Puts vmbench at `path` on the guest, from its cache when it holds the
/// same binary, else over SFTP, and checks it there: its checksum and
/// that it runs. Whether it came from the cache is said in the result.
fn copy_and_verify(
    shell: &impl Shell,
    vmbench: &Path,
    path: &str,
) -> Result<(String, bool), String> {
    let image = image_of(vmbench)?;
    // From the cache and checked in one command; a miss fails the check.
    let from_cache = format!(
        "test -f {cache} && cp {cache} {path} && ",
        cache = cache_of(&image.sha256),
        path = shell_quote(path)
    );
    if let Ok(path) = verify(shell, &image, path, &from_cache) {
        return Ok((path, true));
    }
    let step =
        |what: &str, e: anyhow::Error| format!("putting vmbench on the guest: {what}: {e:#}");
    shell
        .upload(path, &image.bytes)
        .map_err(|e| step("upload", e))?;
    let path = verify(shell, &image, path, "")?;
    keep_in_cache(shell, &image.sha256, &path);
    Ok((path, false))
}

/// Checks the binary at `path`, after running `first` (which ends in
/// `&&`, or is empty): its checksum is this vmbench's and it runs.
fn verify(shell: &impl Shell, image: &Image, path: &str, first: &str) -> Result<String, String> {
    let step =
        |what: &str, e: anyhow::Error| format!("putting vmbench on the guest: {what}: {e:#}");
    let check = format!(
        "{first}chmod 755 {0} && sha256sum {0} && {0} --version",
        shell_quote(path)
    );
    // Hashing and starting the binary take their time on a slow guest (a
    // VM under emulation reads a test build at a few MB/s): the wait grows
    // with the binary instead of failing a healthy guest.
    let patience = std::time::Duration::from_secs(15 + (image.bytes.len() as u64 >> 21));
    let (code, out, err) = shell
        .run_within(&check, patience)
        .map_err(|e| step("check", e))?;
    let sum = out.split_whitespace().next().unwrap_or_default();
    if code != 0 || sum != image.sha256 {
        let why = if sum.is_empty() || sum == image.sha256 {
            format!("it does not run there ({})", last_line(&err))
        } else {
            "its checksum differs after the upload".to_string()
        };
        return Err(format!(
            "the built-in workloads cannot run on this guest: vmbench was copied but {why}"
        ));
    }
    Ok(path.to_string())
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no error output")
}

pub type ExecId = u64;

/// A command started through a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exec {
    pub id: ExecId,
    /// Its process on this host; None on a guest.
    pub pid: Option<u32>,
}

/// What a command sends back: lines of output, then exactly one `Exited`.
#[derive(Debug)]
pub enum ExecOutput {
    Stdout(String),
    Stderr(String),
    Exited(ExecEnd),
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    Code(i32),
    /// ssh2 reports status 0 for a command killed by a signal; the signal
    /// name is what tells.
    Signal(String),
    /// The machine was lost before the command ended.
    Lost(String),
    /// The machine answered but the command could not run or be fed.
    Refused(String),
}

impl ExecEnd {
    pub fn success(&self) -> bool {
        *self == ExecEnd::Code(0)
    }

    pub fn of_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ExecEnd::Code(code),
            (None, Some(signal)) => ExecEnd::Signal(signal_name(signal)),
            _ => ExecEnd::Code(-1),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ExecEnd::Code(c) => format!("exited with status {c}"),
            ExecEnd::Signal(s) => format!("killed by SIG{s}"),
            ExecEnd::Lost(why) => format!("connection lost: {why}"),
            ExecEnd::Refused(why) => why.clone(),
        }
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGKILL => "KILL".into(),
        libc::SIGTERM => "TERM".into(),
        libc::SIGINT => "INT".into(),
        libc::SIGSEGV => "SEGV".into(),
        libc::SIGABRT => "ABRT".into(),
        libc::SIGPIPE => "PIPE".into(),
        libc::SIGHUP => "HUP".into(),
        other => other.to_string(),
    }
}

/// Whether a machine can still be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    Up,
    /// Its connection broke (EOF, reset, keepalives unanswered): commands
    /// on it have ended as lost and new ones end so at once.
    Lost(String),
}

/// One way to reach a machine; the orchestrator drives copies through it
/// without knowing which.
#[derive(Clone)]
pub enum Link {
    Local(local::Link),
    Guest(GuestLink),
}

impl Link {
    /// Starts `argv` in its own process group; its output and its end come
    /// back on `output`. On a lost machine the end arrives at once.
    pub fn exec(
        &self,
        argv: &[String],
        output: tokio::sync::mpsc::UnboundedSender<ExecOutput>,
    ) -> Result<Exec, String> {
        match self {
            Link::Local(link) => link.exec(argv, output),
            Link::Guest(link) => Ok(Exec {
                id: link.exec(shell_command(argv), output),
                pid: None,
            }),
        }
    }

    /// Writes a line to the command's stdin (its release).
    pub fn write(&self, id: ExecId, line: &str) -> Result<(), String> {
        match self {
            Link::Local(link) => link.write(id, line),
            Link::Guest(link) => match link.liveness() {
                Liveness::Up => {
                    link.write(id, line.as_bytes());
                    Ok(())
                }
                Liveness::Lost(why) => Err(format!("guest lost: {why}")),
            },
        }
    }

    /// Kills the command's whole process group.
    pub fn kill(&self, id: ExecId) {
        match self {
            Link::Local(link) => link.kill(id),
            Link::Guest(link) => link.kill(id),
        }
    }

    pub fn liveness(&self) -> Liveness {
        match self {
            Link::Local(_) => Liveness::Up,
            Link::Guest(link) => link.liveness(),
        }
    }
}

/// A prepared guest: its link and what was learned.
#[derive(Clone)]
pub struct Remote {
    pub link: GuestLink,
    pub info: Arc<GuestInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_shape_is_read_from_what_the_probe_prints() {
        // What SHAPE_PROBE printed on the testbed's QEMU VM.
        let out = "vcpus 1\nmemory_kib 488428\nflags flags\t\t: fpu de pse tsc msr pae hypervisor lahf_lm\n\
                   hypervisor \nxen \nvendor QEMU\nproduct Standard PC (i440FX + PIIX, 1996)\n\
                   nic eth0=virtio_net\ndisk vda=virtio_blk\ndisk vdb=virtio_blk\n";
        let shape = parse_shape(out);
        assert_eq!(shape.vcpus, 1);
        assert_eq!(shape.memory_bytes, 488_428 * 1024);
        assert!(
            shape
                .virtualization
                .as_deref()
                .is_some_and(|v| v.contains("QEMU"))
        );
        assert_eq!(shape.nics, ["eth0=virtio_net"]);
        assert_eq!(shape.disks, ["vda=virtio_blk", "vdb=virtio_blk"]);
        assert_eq!(
            shape.describe(),
            "1 vCPU, 0.5 GiB, 2× virtio_blk, virtio_net"
        );
    }

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(
            shell_quote("/tmp/vmbench.x/vmbench"),
            "/tmp/vmbench.x/vmbench"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
