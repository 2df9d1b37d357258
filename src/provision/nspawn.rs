//! Container guests: systemd-nspawn on the guest image's tree (read-only,
//! each guest's writes on a tmpfs overlay, so one tree serves every
//! guest), joined to a network namespace of vmbench's on the fleet's
//! bridge, the data disk bound at /srv/vmbench, the guest's host key and
//! the fleet's client key bound read-only at /etc/vmbench, in a cgroup
//! with its shape. systemd is not PID 1 on every host, so nothing is
//! registered with machined (`--register=no --keep-unit`).

use std::process::{Command, Stdio};
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
        super::missing_programs(&["ip", "systemd-nspawn", "ssh-keygen", "mkfs.ext4", "losetup"])
    }

    fn create(&self, member: &Member, state: &mut State) -> Result<(), String> {
        let image = member
            .image
            .as_ref()
            .ok_or("a container guest needs the guest image")?;
        let disk = member.make_namespace_guest(state)?;
        let mount = member.dir.join("disk");
        std::fs::create_dir_all(&mount).map_err(|e| format!("{}: {e}", mount.display()))?;
        state.note(Resource::Mount {
            path: mount.clone(),
        })?;
        run("mount", &[&disk, &mount.to_string_lossy()])?;
        run("chmod", &["1777", &mount.to_string_lossy()])?;
        // What the guest's sshd reads: its host key and the client's key.
        let keys = member.dir.join("etc");
        std::fs::create_dir_all(&keys).map_err(|e| format!("{}: {e}", keys.display()))?;
        for (from, to) in [
            (
                member.dir.join("ssh_host_ed25519_key"),
                "ssh_host_ed25519_key",
            ),
            (member.fleet_dir.join("authorized_keys"), "authorized_keys"),
        ] {
            std::fs::copy(&from, keys.join(to)).map_err(|e| format!("{}: {e}", from.display()))?;
        }
        let sshd = "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e \
                    -o HostKey=/etc/vmbench/ssh_host_ed25519_key \
                    -o AuthorizedKeysFile=/etc/vmbench/authorized_keys";
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
            sshd.into(),
        ];
        let quoted: Vec<String> = words
            .iter()
            .map(|w| crate::transport::shell_quote(w))
            .collect();
        let log = member.log();
        let script = format!(
            "{} && exec {} >{} 2>&1 </dev/null",
            host::join_cgroup_script(&member.cgroup),
            quoted.join(" "),
            log.display()
        );
        // nspawn killed (as teardown does) leaves its propagation folder.
        state.note(Resource::Dir {
            path: format!("/run/systemd/nspawn/propagate/{}", member.netns).into(),
        })?;
        // In the background, a session of its own: the container lives
        // until its cgroup is emptied at teardown.
        Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting systemd-nspawn: {e}"))?;
        Ok(())
    }

    fn boot_log(&self, member: &Member) -> std::path::PathBuf {
        member.log()
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(30)
    }
}
