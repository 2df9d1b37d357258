//! The testbed's guests as tests use them: bringing it up once, plans that
//! name its guests, and what a test may look at on them. Namespace guests
//! share this host's /tmp and PID space, so a test looks only at its own
//! session's folders and processes, named by its recording.

use super::{Bounded, COMMAND_LIMIT};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use vmbench::event::{Event, GuestState};
use vmbench::store::Reader;

pub const GUESTS: usize = 4;
/// QEMU virtual machines q1..: the testbed's real hypervisor guests.
pub const VMS: usize = 1;
pub const STATE: &str = "/run/vmbench-testbed";

fn script() -> String {
    format!("{}/tests/testbed/testbed", env!("CARGO_MANIFEST_DIR"))
}

/// Brings the testbed up (idempotent) and hands out one turn at a time. A
/// test that broke a guest on purpose brings it back with [`restore`].
pub fn testbed() -> Turn {
    static UP: OnceLock<()> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    UP.get_or_init(restore);
    Turn {
        _held: TURN.lock().unwrap_or_else(|e| e.into_inner()),
    }
}

/// A test's turn on the testbed. A test that fails (a fault test may fail
/// with a guest killed or its link cut) leaves the testbed whole for the
/// next one: its failure stays its own.
pub struct Turn {
    _held: MutexGuard<'static, ()>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // No assert: a panic while panicking aborts every test.
            if let Ok(mut up) = Command::new(script())
                .args(["up", &GUESTS.to_string(), &VMS.to_string()])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
            {
                super::wait_or_kill(&mut up, COMMAND_LIMIT);
            }
        }
    }
}

/// `testbed up`: restarts whatever guest or VM is down, rewrites known_hosts.
pub fn restore() {
    let out = Command::new(script())
        .args(["up", &GUESTS.to_string(), &VMS.to_string()])
        .output_within(COMMAND_LIMIT);
    assert!(
        out.status.success(),
        "`testbed up {GUESTS} {VMS}` failed (it needs root, openssh-server and qemu-system-x86): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn guest(i: usize, known_hosts: &str) -> String {
    format!(
        "[[guest]]\nname = \"g{i}\"\ntransport = \"ssh\"\ntechnology = \"netns\"\n\
         address = \"198.18.0.{}\"\nuser = \"root\"\nidentity = \"{STATE}/id_ed25519\"\n\
         known_hosts = \"{known_hosts}\"\ninterface = \"vmbt-g{i}h\"\n\
         image = \"/var/tmp/vmbench-testbed/g{i}.img\"\ncgroup = \"/vmbench-testbed/g{i}\"\n\n",
        10 + i
    )
}

pub fn plan_text(guests: &str, benchmarks: &str) -> String {
    format!(
        "name = \"testbed-test\"\ninterval = \"500ms\"\n\n[[guest]]\nname = \"host\"\n\
         transport = \"local\"\ntechnology = \"bare-metal\"\n\n{guests}{benchmarks}"
    )
}

pub fn all_guests() -> String {
    (1..=GUESTS)
        .map(|i| guest(i, &format!("{STATE}/known_hosts")))
        .collect()
}

pub fn write_plan(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).expect("plan written");
    path
}

/// Runs a command on a testbed machine over the testbed's own ssh.
pub fn ssh_to(address: &str, command: &str) -> std::process::Output {
    Command::new("ssh")
        .args([
            "-i",
            &format!("{STATE}/id_ed25519"),
            "-o",
            &format!("UserKnownHostsFile={STATE}/known_hosts"),
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            &format!("root@{address}"),
            command,
        ])
        .output_within(COMMAND_LIMIT)
}

/// What `ps` shows inside a guest.
pub fn processes_in(i: usize) -> String {
    let out = ssh_to(&format!("198.18.0.{}", 10 + i), "ps -eo pid,args");
    assert!(
        out.status.success(),
        "ssh g{i}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every event of a recording (it may still be being written).
pub fn events_of(recording: &Path) -> Vec<Event> {
    Reader::open(recording)
        .ok()
        .and_then(|r| r.events(0, u64::MAX).ok())
        .unwrap_or_default()
}

/// Polls a recording until `seen` holds for its events.
pub fn wait_for(recording: &Path, what: &str, limit: Duration, seen: impl Fn(&[Event]) -> bool) {
    let deadline = Instant::now() + limit;
    while !seen(&events_of(recording)) {
        assert!(
            Instant::now() < deadline,
            "not seen within {limit:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The folder this session put vmbench in on each guest that got ready.
pub fn session_folders(events: &[Event]) -> Vec<(String, PathBuf)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::GuestState {
                guest,
                state: GuestState::Ready { info },
                ..
            } => {
                let path = PathBuf::from(info.vmbench.as_ref().ok()?);
                Some((guest.clone(), path.parent()?.to_path_buf()))
            }
            _ => None,
        })
        .collect()
}

/// Processes on this machine (namespace guests share its PID space) whose
/// command line names `needle`.
pub fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if line.contains(needle) {
            found.push(format!("{}: {line}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// Waits until none of this session's folders on the namespace guests is
/// left and no process names one; panics with what is left after `limit`.
pub fn assert_nothing_left(events: &[Event], limit: Duration) {
    let folders = session_folders(events);
    assert!(!folders.is_empty(), "the session readied no guest");
    let deadline = Instant::now() + limit;
    for (guest, dir) in &folders {
        loop {
            let shown = dir.display().to_string();
            let procs = processes_naming(&shown);
            if !dir.exists() && procs.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{guest}: {shown} exists: {}; processes naming it: {procs:?}",
                dir.exists()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
