//! gVisor guests: `runsc run` of an OCI bundle whose root is the guest
//! image's tree (read-only; /run and /tmp in the sandbox's memory), the
//! data disk bound at /srv/vmbench, the keys at /etc/vmbench, started in a
//! network namespace of vmbench's on the fleet's bridge, its processes in
//! the guest's cgroup (`--ignore-cgroups`: runsc makes none of its own).
//!
//! Every system call of the guest's programs is intercepted (the ptrace
//! platform: the 2022 runsc in Debian 12 knows no systrap). Its own network
//! stack (netstack) refuses to start on these machines ("cannot run with
//! network enabled in root network namespace": it cannot read PID 1's
//! namespace here), so the sandbox uses `--network=host` inside the
//! guest's own namespace: sockets are intercepted, TCP/IP is this host's.
//! Without sshd (`transport = "exec"`) the sandbox's first process only
//! waits, and each command enters with `runsc exec`.

use std::time::Duration;

use serde_json::json;

use super::host::run;
use super::state::State;
use super::{Member, Technology};

pub struct Gvisor;

/// What sshd needs to start inside the sandbox: bind port 22, chroot and
/// change user for privilege separation, read its keys.
const CAPABILITIES: [&str; 10] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE",
    "CAP_NET_RAW",
];

/// The OCI runtime spec of a guest.
fn bundle_config(member: &Member, root: &str, keys: &str, disk: &str) -> serde_json::Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", member.container_init()],
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": CAPABILITIES,
                "effective": CAPABILITIES,
                "permitted": CAPABILITIES,
            },
        },
        "root": {"path": root, "readonly": true},
        "hostname": member.name,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/etc/vmbench", "type": "bind", "source": keys, "options": ["rbind", "ro"]},
            {"destination": "/srv/vmbench", "type": "bind", "source": disk, "options": ["rbind", "rw"]},
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "network", "path": format!("/run/netns/{}", member.netns)},
            ],
        },
    })
}

/// `runsc COMMAND ARGS... ID` from the guest's network namespace, runsc's
/// own state in the guest's folder (removed with it).
fn runsc(member: &Member, command: &[&str]) -> Vec<String> {
    let mut words: Vec<String> = [
        "ip",
        "netns",
        "exec",
        &member.netns,
        "runsc",
        "--root",
        &member.dir.join("runsc").to_string_lossy(),
        "--ignore-cgroups",
        "--network=host",
    ]
    .iter()
    .chain(command)
    .map(|w| w.to_string())
    .collect();
    words.push(member.netns.clone());
    words
}

impl Technology for Gvisor {
    fn describe(&self) -> String {
        let version = run("runsc", &["--version"]).unwrap_or_default();
        format!(
            "{} (ptrace platform, --network=host in the guest's namespace)",
            version.lines().next().unwrap_or("runsc").trim()
        )
    }

    fn missing(&self) -> Vec<String> {
        super::missing_programs(&["ip", "runsc", "mkfs.ext4", "losetup"])
    }

    fn create(&self, member: &Member, state: &mut State) -> Result<(), String> {
        let image = member.image_folder()?;
        let disk = member.make_namespace_guest(state)?;
        let mount = member.mount_data_disk(state, &disk)?;
        let keys = member.sshd_keys()?;
        let bundle = member.dir.join("bundle");
        std::fs::create_dir_all(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
        let config = bundle_config(
            member,
            &image.join("root").to_string_lossy(),
            &keys.to_string_lossy(),
            &mount.to_string_lossy(),
        );
        std::fs::write(bundle.join("config.json"), config.to_string())
            .map_err(|e| format!("{}: {e}", bundle.display()))?;
        member.start_detached(&runsc(
            member,
            &["run", "--bundle", &bundle.to_string_lossy()],
        ))
    }

    fn boot_log(&self, member: &Member) -> std::path::PathBuf {
        member.log()
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// `runsc exec` into the sandbox: the command runs under the sentry,
    /// its system calls intercepted as the guest's own are. From the
    /// guest's network namespace: runsc finds its sandbox through an
    /// abstract socket there (outside, it calls the sandbox "stopped").
    fn enter(&self, member: &Member) -> Result<Vec<String>, String> {
        Ok(member.enter_through(&runsc(member, &["exec"])))
    }
}
