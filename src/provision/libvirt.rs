//! libvirt guests: domains defined from generated XML through `virsh` —
//! the guest image's kernel and initramfs, its root disk the image's
//! (transient: each domain's writes go to an overlay libvirt makes and
//! drops, the image shared by all), the data disk, virtio net on the
//! fleet's bridge (never libvirt's `default` network, 192.168.122.0/24),
//! `vcpus`, memory and pinning as libvirt's own `<vcpu>`, `<memory>` and
//! `cpuset`. The domain type is `qemu` (TCG) unless a KVM guest really
//! boots here (what the QEMU fleets found, remembered). The same XML
//! serves Xen's libxl driver (`xen:///system`) as a PVH domain; no Xen
//! host is here, so that form is checked with `virt-xml-validate` only.

use std::path::Path;
use std::time::Duration;

use super::host::run_within;
use super::state::{Resource, State};
use super::{Member, Technology};

/// Where vmbench's domains live: this host's system libvirtd.
pub const URI: &str = "qemu:///system";

const VIRTLOGD_SOCKET: &str = "/run/libvirt/virtlogd-sock";

/// How long a quick question to libvirtd (version, destroy) may take.
pub const VIRSH_ASKS: Duration = Duration::from_secs(30);

pub struct Libvirt {
    /// `qemu` or `kvm`, as the QEMU fleets found KVM to boot or not.
    kind: &'static str,
}

/// Which hypervisor a domain's XML is written for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Hypervisor {
    /// QEMU under TCG.
    Qemu,
    Kvm,
    /// Xen's libxl driver, a PVH guest.
    Xen,
}

/// What a domain is made of, apart from the guest it is.
pub struct DomainParts<'a> {
    pub name: &'a str,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub cpuset: Option<String>,
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub cmdline: &'a str,
    pub root: &'a Path,
    pub data: &'a str,
    pub bridge: &'a str,
    pub tap: &'a str,
    pub mac: &'a str,
    pub console: &'a Path,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// The domain's XML for `hypervisor`.
pub fn domain_xml(parts: &DomainParts, hypervisor: Hypervisor) -> String {
    let e = |t: &str| escape(t);
    let path = |p: &Path| escape(&p.to_string_lossy());
    let cpuset = parts
        .cpuset
        .as_ref()
        .map_or_else(String::new, |c| format!(" cpuset='{}'", e(c)));
    let (domain_type, os_type, cpu, disk_bus, root_dev, data_dev, extra) = match hypervisor {
        Hypervisor::Xen => (
            "xen",
            "<type arch='x86_64' machine='xenpvh'>xenpvh</type>".to_string(),
            String::new(),
            "xen",
            "xvda",
            "xvdb",
            String::new(),
        ),
        kvm_or_tcg => (
            if kvm_or_tcg == Hypervisor::Kvm {
                "kvm"
            } else {
                "qemu"
            },
            "<type arch='x86_64' machine='pc'>hvm</type>".to_string(),
            if kvm_or_tcg == Hypervisor::Kvm {
                "<cpu mode='host-passthrough'/>".to_string()
            } else {
                "<cpu mode='maximum'/>".to_string()
            },
            "virtio",
            "vda",
            "vdb",
            // QEMU as root, files left as they are: the image is shared
            // by every guest and must not be relabelled for one.
            "<seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>"
                .to_string(),
        ),
    };
    // ACPI: libvirt adds a transient disk's overlay by PCI hotplug.
    let features = if hypervisor == Hypervisor::Xen {
        ""
    } else {
        "<features><acpi/></features>"
    };
    let model = if hypervisor == Hypervisor::Xen {
        String::new()
    } else {
        "<model type='virtio'/>".to_string()
    };
    format!(
        "<domain type='{domain_type}'>
  <name>{name}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu placement='static'{cpuset}>{vcpus}</vcpu>
  <os>
    {os_type}
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  {features}
  {cpu}
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{root}'/>
      <target dev='{root_dev}' bus='{disk_bus}'/>
      <transient shareBacking='yes'/>
    </disk>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw'/>
      <source dev='{data}'/>
      <target dev='{data_dev}' bus='{disk_bus}'/>
    </disk>
    <interface type='bridge'>
      <source bridge='{bridge}'/>
      <target dev='{tap}'/>
      <mac address='{mac}'/>
      {model}
    </interface>
    <serial type='file'>
      <source path='{console}'/>
      <target port='0'/>
    </serial>
  </devices>
  {extra}
</domain>
",
        name = e(parts.name),
        memory = parts.memory_mib,
        vcpus = parts.vcpus,
        kernel = path(parts.kernel),
        initrd = path(parts.initrd),
        cmdline = e(parts.cmdline),
        root = path(parts.root),
        data = e(parts.data),
        bridge = e(parts.bridge),
        tap = e(parts.tap),
        mac = e(parts.mac),
        console = path(parts.console),
    )
}

impl Libvirt {
    pub(super) fn new() -> Self {
        Libvirt {
            kind: if super::qemu::kvm_boots() {
                "kvm"
            } else {
                "qemu"
            },
        }
    }

    /// Whether this host's libvirtd answers.
    fn answers() -> bool {
        run_within("virsh", &["-c", URI, "version"], VIRSH_ASKS).is_ok()
    }
}

impl Technology for Libvirt {
    fn describe(&self) -> String {
        let version = run_within("virsh", &["-c", URI, "version", "--daemon"], VIRSH_ASKS)
            .unwrap_or_default();
        let daemon = version
            .lines()
            .find(|l| l.contains("daemon"))
            .unwrap_or("libvirtd")
            .trim()
            .to_string();
        format!("{daemon}; domain type '{}' at {URI}", self.kind)
    }

    fn missing(&self) -> Vec<String> {
        let mut missing = super::missing_programs(&["virsh", "mkfs.ext4"]);
        if missing.is_empty() && !Self::answers() {
            missing.push(format!(
                "a running libvirtd at {URI} (start it: libvirtd -d; vmbench never starts or \
                 configures it)"
            ));
        }
        // libvirtd hands a domain's console to virtlogd; without it every
        // domain fails to start.
        if !Path::new(VIRTLOGD_SOCKET).exists() {
            missing.push(format!(
                "a running virtlogd ({VIRTLOGD_SOCKET}; start it: virtlogd -d)"
            ));
        }
        missing
    }

    fn create(&self, member: &Member, state: &mut State) -> Result<(), String> {
        let image = member.image_folder()?;
        let data = member.make_seeded_disk(state)?;
        let client = std::fs::read(member.fleet_dir.join("id_ed25519.pub"))
            .map_err(|e| format!("the fleet's client key: {e}"))?;
        let cmdline = format!(
            "console=ttyS0 panic=-1 vmbench.name={} vmbench.ip={}/24 vmbench.key={}",
            member.name,
            member.address,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &client)
        );
        let domain = member.netns.clone();
        let xml = domain_xml(
            &DomainParts {
                name: &domain,
                vcpus: member.vcpus,
                memory_mib: member.memory_mib,
                cpuset: member.cores.as_ref().map(|c| {
                    c.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                }),
                kernel: &image.join("vmlinux"),
                initrd: &image.join("initrd.cpio"),
                cmdline: &cmdline,
                root: &image.join("root.img"),
                data: &data,
                bridge: &member.bridge,
                tap: &member.link,
                mac: &member.mac(),
                console: &member.log(),
            },
            if self.kind == "kvm" {
                Hypervisor::Kvm
            } else {
                Hypervisor::Qemu
            },
        );
        let file = member.dir.join("domain.xml");
        std::fs::write(&file, &xml).map_err(|e| format!("{}: {e}", file.display()))?;
        // libvirt drops the transient disk's overlay when the domain ends,
        // but not if libvirtd is gone by then.
        state.note(Resource::File {
            path: image.join(format!("root.img.TRANSIENT-{domain}")),
        })?;
        // libvirt makes the tap and removes it with the domain (torn down
        // first: last noted).
        state.note(Resource::Link {
            name: member.link.clone(),
        })?;
        state.note(Resource::Domain {
            uri: URI.into(),
            name: domain.clone(),
        })?;
        // About 36 s here before QEMU even starts; a stuck libvirtd ends
        // the guest, not the bring-up.
        run_within(
            "virsh",
            &["-c", URI, "create", &file.to_string_lossy()],
            Duration::from_secs(180),
        )
        .map(drop)
    }

    fn boot_log(&self, member: &Member) -> std::path::PathBuf {
        member.log()
    }

    fn deadline(&self) -> Duration {
        // The same boot as a QEMU guest's, under TCG.
        Duration::from_secs(180)
    }

    fn destroy(&self, member: &Member) {
        let _ = run_within("virsh", &["-c", URI, "destroy", &member.netns], VIRSH_ASKS);
    }

    fn cgroup(&self, _member: &Member) -> Option<String> {
        // libvirt puts the domain in a cgroup of its own, named its way:
        // the host-side cost is read from its QEMU process instead.
        None
    }

    fn process(&self, member: &Member) -> Option<String> {
        // QEMU's `-name guest=<domain>,debug-threads=on` (names are
        // vmbench-<hex>-<fleet>-<n>: nothing a regex reads differently).
        Some(format!("guest={},", member.netns))
    }
}
