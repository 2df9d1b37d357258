//! User-mode Linux guests: `linux.uml`, a Linux kernel that runs as
//! processes of this host (the nearest living relative of Xen's
//! paravirtualization that needs no hardware support), booting the guest
//! image's disk (a copy-on-write file of its own beside the data disk, so
//! that one image serves every guest), its network a tap on the fleet's
//! bridge (the vector driver), `memory_mib` as its RAM, in a cgroup with
//! its placement. Debian 12's UML kernel has one CPU: a fleet asking for
//! more is refused when the plan is read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::host::{self, run};
use super::state::State;
use super::{Member, Technology};

pub struct Uml;

/// The image's root disk as UML guests open it: a copy of their own. UML
/// locks the file it boots from, and QEMU then refuses to open the same
/// file ("Failed to get \"consistent read\" lock"), so UML and QEMU or
/// libvirt guests of one plan could not run together; UML guests share
/// the copy among themselves. Made once per image, whole or not at all.
fn uml_backing(image: &Path) -> Result<PathBuf, String> {
    let copy = image.join("root-uml.img");
    if copy.exists() {
        return Ok(copy);
    }
    let part = image.join(format!("root-uml.img.{}", std::process::id()));
    std::fs::copy(image.join("root.img"), &part)
        .and_then(|_| std::fs::rename(&part, &copy))
        .map_err(|e| {
            let _ = std::fs::remove_file(&part);
            format!("copying the image's disk for UML: {e}")
        })?;
    Ok(copy)
}

impl Technology for Uml {
    fn describe(&self) -> String {
        let version = run("linux.uml", &["--version"]).unwrap_or_default();
        format!(
            "user-mode Linux {} (one CPU, vector tap network)",
            version.trim()
        )
    }

    fn missing(&self) -> Vec<String> {
        super::missing_programs(&["ip", "linux.uml", "mkfs.ext4", "losetup"])
    }

    fn create(&self, member: &Member, state: &mut State) -> Result<(), String> {
        let image = member.image_folder()?;
        host::make_tap(state, &member.link, &member.bridge)?;
        let disk = member.make_seeded_disk(state)?;
        host::make_cgroup(state, &member.cgroup, &member.shape(true))?;
        // The image's writes go to a file of the guest's own beside its
        // data disk (removed with the session's disks folder).
        let cow = member.disk_image.with_extension("cow");
        let backing = uml_backing(image)?;
        let client = std::fs::read(member.fleet_dir.join("id_ed25519.pub"))
            .map_err(|e| format!("the fleet's client key: {e}"))?;
        let words = [
            "linux.uml".to_string(),
            format!("mem={}M", member.memory_mib),
            format!("ubd0={},{}", cow.display(), backing.display()),
            format!("ubd1={disk}"),
            "root=/dev/ubda".into(),
            "rw".into(),
            "init=/sbin/vmbench-init".into(),
            format!(
                "vec0:transport=tap,ifname={},mac={},gro=1",
                member.link,
                member.mac()
            ),
            // Its console (kernel messages, the host key's public half) to
            // the boot log; no terminals.
            "con0=null,fd:1".into(),
            "con=null".into(),
            format!("vmbench.name={}", member.name),
            format!("vmbench.ip={}/24", member.address),
            format!(
                "vmbench.key={}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &client)
            ),
        ];
        member.start_detached(&words)
    }

    fn boot_log(&self, member: &Member) -> std::path::PathBuf {
        member.log()
    }

    fn deadline(&self) -> Duration {
        // A whole kernel's boot in processes of this host, then sshd.
        Duration::from_secs(90)
    }
}
