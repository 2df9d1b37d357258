//! Container guests: systemd-nspawn on the guest image's tree (read-only,
//! each guest's writes on a tmpfs overlay, so one tree serves every
//! guest), joined to a network namespace of vmbench's on the fleet's
//! bridge, the data disk bound at /srv/vmbench, the guest's host key and
//! the fleet's client key bound read-only at /etc/vmbench, in a cgroup
//! with its shape. systemd is not PID 1 on every host, so nothing is
//! registered with machined (`--register=no --keep-unit`). Without sshd
//! (`transport = "exec"`) the container's first process only waits, and
//! each command enters with `nsenter` from the guest's cgroup.

use std::time::Duration;

use super::host::{self, run};
use super::state::{Resource, State};
use super::{Member, Technology};

pub struct Nspawn;

impl Technology for Nspawn {
    fn describe(&self) -> String {
        let version = run("systemd-nspawn", &["--version"]).unwrap_or_default();
        version
            .lines()
            .next()
            .unwrap_or("systemd-nspawn")
            .trim()
            .to_string()
    }

    fn missing(&self) -> Vec<String> {
        super::missing_programs(&["ip", "systemd-nspawn", "mkfs.ext4", "losetup"])
    }

    fn exec_programs(&self) -> &'static [&'static str] {
        &["nsenter"]
    }

    fn create(&self, member: &Member, state: &mut State) -> Result<(), String> {
        let image = member.image_folder()?;
        let disk = member.make_namespace_guest(state)?;
        let mount = member.mount_data_disk(state, &disk)?;
        let keys = member.sshd_keys()?;
        let words = [
            "systemd-nspawn".to_string(),
            "-q".into(),
            "-D".into(),
            image.join("root").display().to_string(),
            "--volatile=overlay".into(),
            "--register=no".into(),
            "--keep-unit".into(),
            format!("--machine={}", member.netns),
            format!("--network-namespace-path=/run/netns/{}", member.netns),
            format!("--bind-ro={}:/etc/vmbench", keys.display()),
            format!("--bind={}:/srv/vmbench", mount.display()),
            "/bin/sh".into(),
            "-c".into(),
            member.container_init().into(),
        ];
        // nspawn killed (as teardown does) leaves its propagation folder.
        state.note(Resource::Dir {
            path: format!("/run/systemd/nspawn/propagate/{}", member.netns).into(),
        })?;
        // In the background: the container lives until its cgroup is
        // emptied at teardown.
        member.start_detached(&words)
    }

    fn boot_log(&self, member: &Member) -> std::path::PathBuf {
        member.log()
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// `nsenter` into every namespace of the container's first process.
    fn enter(&self, member: &Member) -> Result<Vec<String>, String> {
        let leader = host::namespace_leader(&member.netns).ok_or_else(|| {
            format!(
                "{}: the container's first process is not running",
                member.name
            )
        })?;
        Ok(member.enter_through(&[
            "nsenter".into(),
            "-t".into(),
            leader.to_string(),
            "-a".into(),
        ]))
    }
}
