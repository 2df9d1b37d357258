//! QEMU guests: the guest image's kernel, initramfs and root disk (a
//! snapshot: every guest boots the same image and writes nowhere), a data
//! disk of its own, virtio net on a tap on the fleet's bridge, `vcpus` and
//! `memory_mib` as given, in a cgroup with its placement. KVM only where a
//! KVM guest really boots on this host (tried once, remembered in
//! /var/cache/vmbench/kvm-boots), TCG otherwise.

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::host::{self, run};
use super::state::State;
use super::{Member, Technology};

pub struct Qemu {
    /// `kvm` or `tcg`, chosen at the first guest.
    accel: Mutex<Option<&'static str>>,
}

const KVM_MEMORY: &str = "/var/cache/vmbench/kvm-boots";

/// How long QEMU's first process may take to hand over to its daemon (it
/// opens the images and the tap; the guest boots afterwards).
const START_LIMIT: Duration = Duration::from_secs(30);

/// Whether a KVM guest was found to boot on this host (by a QEMU fleet's
/// first guest; false until one tried).
pub fn kvm_boots() -> bool {
    Qemu::remembered() == Some(true)
}

impl Qemu {
    pub fn new() -> Self {
        Qemu {
            accel: Mutex::new(None),
        }
    }

    /// The accelerator the fleet uses, once its first guest was made.
    pub fn accel(&self) -> Option<&'static str> {
        *self.accel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What was learned of KVM here before: Some(true) when a guest booted.
    fn remembered() -> Option<bool> {
        let text = std::fs::read_to_string(KVM_MEMORY).ok()?;
        let version = run("qemu-system-x86_64", &["--version"]).ok()?;
        let first = version.lines().next().unwrap_or_default();
        // A new QEMU is tried again.
        text.contains(first).then(|| text.starts_with("yes"))
    }

    fn remember(booted: bool) {
        let version = run("qemu-system-x86_64", &["--version"]).unwrap_or_default();
        let _ = std::fs::create_dir_all("/var/cache/vmbench");
        let _ = std::fs::write(
            KVM_MEMORY,
            format!(
                "{} {}\n",
                if booted { "yes" } else { "no" },
                version.lines().next().unwrap_or_default()
            ),
        );
    }

    fn start(&self, member: &Member, accel: &str, disk: &str) -> Result<(), String> {
        let image = member.image_folder()?;
        let client = std::fs::read(member.fleet_dir.join("id_ed25519.pub"))
            .map_err(|e| format!("the fleet's client key: {e}"))?;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let append = format!(
            "console=ttyS0 panic=-1 vmbench.name={} vmbench.ip={}/24 vmbench.key={}",
            member.name,
            member.address,
            b64(&client),
        );
        let cpu = if accel == "kvm" { "host" } else { "max" };
        let console = member.log();
        let _ = std::fs::remove_file(&console);
        let words: Vec<String> = vec![
            "qemu-system-x86_64".into(),
            "-name".into(),
            format!("{},debug-threads=on", member.name),
            "-machine".into(),
            "pc".into(),
            "-accel".into(),
            accel.into(),
            "-cpu".into(),
            cpu.into(),
            "-smp".into(),
            member.vcpus.to_string(),
            "-m".into(),
            member.memory_mib.to_string(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
            "-serial".into(),
            format!("file:{}", console.display()),
            "-kernel".into(),
            image.join("vmlinux").display().to_string(),
            "-initrd".into(),
            image.join("initrd.cpio").display().to_string(),
            "-append".into(),
            append,
            "-drive".into(),
            format!(
                "file={},if=virtio,format=raw,snapshot=on",
                image.join("root.img").display()
            ),
            "-drive".into(),
            format!("file={disk},if=virtio,format=raw,cache=none"),
            "-netdev".into(),
            format!("tap,id=net0,ifname={},script=no,downscript=no", member.link),
            "-device".into(),
            format!("virtio-net-pci,netdev=net0,mac={}", member.mac()),
            "-pidfile".into(),
            member.dir.join("qemu.pid").display().to_string(),
            "-daemonize".into(),
        ];
        // The daemon forks from a shell already in the guest's cgroup.
        let script = member.exec_in_cgroup(&words);
        // QEMU's first process returns once its daemon is set up; a pipe
        // would be held by the daemon until then, so stderr goes to a file.
        let errors = member.dir.join("qemu-start.log");
        let stderr =
            std::fs::File::create(&errors).map_err(|e| format!("{}: {e}", errors.display()))?;
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("starting QEMU: {e}"))?;
        let deadline = Instant::now() + START_LIMIT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Self::kill(member);
                    return Err(format!(
                        "QEMU did not finish starting within {} s: {}",
                        START_LIMIT.as_secs(),
                        host::tail(&errors, 5)
                    ));
                }
            }
        };
        if !status.success() {
            return Err(format!("QEMU did not start: {}", host::tail(&errors, 5)));
        }
        Ok(())
    }

    fn kill(member: &Member) {
        if let Some(pid) = std::fs::read_to_string(member.dir.join("qemu.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // SAFETY: a plain kill of the pid QEMU wrote for this guest.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Technology for Qemu {
    fn describe(&self) -> String {
        let version = run("qemu-system-x86_64", &["--version"]).unwrap_or_default();
        let accel = self.accel().unwrap_or("accelerator not chosen");
        format!(
            "{} ({accel})",
            version.lines().next().unwrap_or("QEMU").trim()
        )
    }

    fn missing(&self) -> Vec<String> {
        super::missing_programs(&["ip", "qemu-system-x86_64", "mkfs.ext4", "losetup"])
    }

    fn create(&self, member: &Member, state: &mut State) -> Result<(), String> {
        host::make_tap(state, &member.link, &member.bridge)?;
        let disk = member.make_seeded_disk(state)?;
        host::make_cgroup(state, &member.cgroup, &member.shape(true))?;
        let chosen = self.accel();
        if let Some(accel) = chosen {
            return self.start(member, accel, &disk);
        }
        // The first guest finds out whether KVM really boots a guest here:
        // /dev/kvm may open and a Linux guest still fail under it.
        let kvm_usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        let try_kvm = kvm_usable && Self::remembered() != Some(false);
        // QEMU itself may refuse KVM at once (here: "failed to set MSR").
        if try_kvm && self.start(member, "kvm", &disk).is_ok() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if host::answers(&member.address) {
                    Self::remember(true);
                    *self.accel.lock().unwrap_or_else(|e| e.into_inner()) = Some("kvm");
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            Self::kill(member);
        }
        if try_kvm {
            Self::remember(false);
        }
        *self.accel.lock().unwrap_or_else(|e| e.into_inner()) = Some("tcg");
        self.start(member, "tcg", &disk)
    }

    fn boot_log(&self, member: &Member) -> std::path::PathBuf {
        member.log()
    }

    fn deadline(&self) -> Duration {
        // A Debian kernel and sshd under TCG on a loaded 2-core host.
        Duration::from_secs(180)
    }
}
