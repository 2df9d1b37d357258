//! Namespace guests: a network namespace on the fleet's bridge, this
//! host's own sshd and programs inside it (the lightest isolation there
//! is, the nearest to bare metal), the data disk mounted at /srv/vmbench
//! in its own mount namespace, a cgroup with its shape. Without sshd
//! (`transport = "exec"`), each command enters through `ip netns exec`
//! from the cgroup, the disk bound at /srv/vmbench in its mount namespace.

use std::process::Command;
use std::time::Duration;

use super::host::{self, run};
use super::state::State;
use super::{Member, Technology};

pub struct Netns;

/// The sshd of a guest: its own host key, the fleet's client key, key-only
/// root login, SFTP inside (the agent's fallback).
fn sshd_config(member: &Member) -> String {
    format!(
        "ListenAddress {address}:22\n\
         HostKey {dir}/ssh_host_ed25519_key\n\
         PidFile {dir}/sshd.pid\n\
         AuthorizedKeysFile {fleet}/authorized_keys\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         StrictModes no\n\
         UseDNS no\n\
         PrintMotd no\n\
         Subsystem sftp internal-sftp\n",
        address = member.address,
        dir = member.dir.display(),
        fleet = member.fleet_dir.display(),
    )
}

impl Technology for Netns {
    fn describe(&self) -> String {
        let sshd = run("sh", &["-c", "/usr/sbin/sshd -V 2>&1 | head -1"]).unwrap_or_default();
        let ip = run("ip", &["-V"]).unwrap_or_default();
        format!("{} with {}", ip.trim(), sshd.trim())
    }

    fn missing(&self) -> Vec<String> {
        super::missing_programs(&["ip", "mkfs.ext4", "losetup"])
    }

    fn ssh_programs(&self) -> &'static [&'static str] {
        &["/usr/sbin/sshd", "ssh-keygen"]
    }

    fn create(&self, member: &Member, state: &mut State) -> Result<(), String> {
        let disk = member.make_namespace_guest(state)?;
        std::fs::create_dir_all("/srv/vmbench").map_err(|e| format!("/srv/vmbench: {e}"))?;
        if !member.sshd {
            // Each command enters with a mount namespace of its own
            // (`ip netns exec`), where `enter` binds the disk anew.
            member.mount_data_disk(state, &disk)?;
            return Ok(());
        }
        let config = member.dir.join("sshd_config");
        std::fs::write(&config, sshd_config(member))
            .map_err(|e| format!("{}: {e}", config.display()))?;
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let log = member.log();
        // `ip netns exec` gives sshd a mount namespace of its own, where
        // the data disk is mounted; both go with the namespace.
        let script = format!(
            "{join} && exec ip netns exec {ns} sh -c 'mount {disk} /srv/vmbench && chmod 1777 \
             /srv/vmbench && exec /usr/sbin/sshd -f {config} -E {log}'",
            join = host::join_cgroup_script(&member.cgroup),
            ns = member.netns,
            config = config.display(),
            log = log.display(),
        );
        let status = Command::new("sh")
            .args(["-c", &script])
            .status()
            .map_err(|e| format!("starting sshd: {e}"))?;
        if !status.success() {
            return Err(format!("sshd did not start: {}", host::tail(&log, 5)));
        }
        Ok(())
    }

    fn boot_log(&self, member: &Member) -> std::path::PathBuf {
        member.log()
    }

    fn deadline(&self) -> Duration {
        Duration::from_secs(15)
    }

    fn enter(&self, member: &Member) -> Result<Vec<String>, String> {
        let bind = format!(
            "mount --bind {} /srv/vmbench && exec \"$@\"",
            crate::transport::shell_quote(&member.data_disk_mount().to_string_lossy())
        );
        Ok(member.enter_through(&[
            "ip".into(),
            "netns".into(),
            "exec".into(),
            member.netns.clone(),
            "sh".into(),
            "-c".into(),
            bind,
            member.name.clone(),
        ]))
    }
}
