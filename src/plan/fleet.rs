//! `[[fleet]]`: `count` identical guests that vmbench makes itself, with
//! one technology's own tool, measures and removes. A fleet becomes plan
//! guests named `<fleet>-1` .. `<fleet>-<count>`, reached over SSH at the
//! addresses of its range; how to reach each (key, known_hosts, its tap or
//! veth, cgroup, process) is filled in when the fleet is made.

use serde::{Deserialize, Serialize};

use super::{Count, Guest, PlanDuration, Transport};

/// The technologies a fleet can be made of on a Linux host.
#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum FleetTechnology {
    /// A network namespace on this host's root filesystem, its own sshd.
    Netns,
    /// systemd-nspawn on the guest image's tree, in a namespace of vmbench's.
    Nspawn,
    /// A QEMU virtual machine booting the guest image (KVM where a KVM
    /// guest really boots here, else TCG).
    Qemu,
    /// gVisor's runsc sandbox on the guest image's tree.
    Gvisor,
    /// User-mode Linux booting the guest image (one CPU).
    Uml,
    /// A libvirt domain (QEMU; TCG unless KVM boots here) booting the
    /// guest image, through this host's running libvirtd.
    Libvirt,
}

impl FleetTechnology {
    pub fn name(self) -> &'static str {
        match self {
            FleetTechnology::Netns => "netns",
            FleetTechnology::Nspawn => "nspawn",
            FleetTechnology::Qemu => "qemu",
            FleetTechnology::Gvisor => "gvisor",
            FleetTechnology::Uml => "uml",
            FleetTechnology::Libvirt => "libvirt",
        }
    }

    /// Whether its guests boot the guest image (the netns guest runs this
    /// host's own programs).
    pub fn uses_image(self) -> bool {
        !matches!(self, FleetTechnology::Netns)
    }
}

/// Where a fleet's guests run on this host's cores.
#[derive(Deserialize, Serialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Each guest on cores of its own (`vcpus` each): refused when the
    /// fleet needs more cores than the host has.
    Pinned,
    /// Every guest on the same fewest cores (`vcpus` of them).
    Packed,
    /// No pinning: the host's scheduler places them.
    #[default]
    Floating,
}

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    pub name: toml::Spanned<String>,
    pub technology: FleetTechnology,
    pub count: Count,
    /// How the session reaches its guests: over SSH (an sshd in each, the
    /// default), or `exec` for containers without sshd (`ip netns exec`,
    /// `nsenter`, `runsc exec`; virtual machines have no such way in).
    #[serde(default = "over_ssh")]
    pub transport: Transport,
    /// What the comparison calls these guests; defaults to the
    /// technology's name (`netns`, `nspawn`, `qemu-tcg` or `qemu-kvm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default = "one")]
    pub vcpus: Count,
    /// MiB of memory per guest (a cgroup limit for namespace and container
    /// guests, the VM's RAM for QEMU).
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    /// MiB of the data disk each guest has at /srv/vmbench (ext4 on a file).
    #[serde(default = "default_disk")]
    pub disk_mib: u32,
    #[serde(default)]
    pub placement: Placement,
    /// The fleet's /24, the host at .1 and guests from .10 on; defaults to
    /// 198.18.(16 + the fleet's index).0/24, apart from the testbed's
    /// 198.18.0.0/24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<String>,
    /// The session goes on when at least this many guests came up (default:
    /// all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready: Option<Count>,
    /// How long the guests have to answer over SSH once all are started;
    /// defaults to the technology's (netns 15 s, nspawn 30 s, QEMU 180 s:
    /// TCG boots slowly). A guest past it is named with its boot log's tail
    /// and left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_within: Option<PlanDuration>,
    /// Leave the fleet running at the end (printed: how to reach it and
    /// remove it with `vmbench fleet down`).
    #[serde(default)]
    pub keep: bool,
    /// The guest image (`vmbench image build`) for technologies that boot
    /// one; defaults to the one built from vmbench's inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

fn over_ssh() -> Transport {
    Transport::Ssh
}

fn one() -> Count {
    Count(1)
}

fn default_memory() -> u32 {
    512
}

fn default_disk() -> u32 {
    1024
}

impl Fleet {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// The network part of its /24 (`198.18.16`).
    pub fn network(&self, index: usize) -> String {
        match &self.addresses {
            Some(cidr) => cidr
                .trim_end_matches("/24")
                .rsplit_once('.')
                .map_or_else(|| cidr.clone(), |(net, _)| net.to_string()),
            None => format!("198.18.{}", 16 + index),
        }
    }

    /// The address of guest `i` (0-based).
    pub fn guest_address(&self, index: usize, i: usize) -> String {
        format!("{}.{}", self.network(index), 10 + i)
    }

    pub fn host_address(&self, index: usize) -> String {
        format!("{}.1", self.network(index))
    }

    pub fn guest_name(&self, i: usize) -> String {
        format!("{}-{}", self.name(), i + 1)
    }

    /// What its guests are called in the comparison until the fleet is
    /// made (QEMU's accelerator is known only then).
    pub fn label(&self) -> String {
        self.label
            .clone()
            .unwrap_or_else(|| self.technology.name().to_string())
    }

    /// Its guests as plan entries, reached over SSH as root (the key and
    /// known_hosts are the fleet's own) or through the command that enters
    /// each, set when it is made.
    pub fn guests(&self, index: usize) -> Vec<Guest> {
        (0..self.count.0 as usize)
            .map(|i| {
                let over_ssh = Guest::over_ssh(
                    toml::Spanned::new(self.name.span(), self.guest_name(i)),
                    self.label(),
                    self.guest_address(index, i),
                    22,
                    Some("root".into()),
                );
                let guest = Guest {
                    fleet: Some(self.name().to_string()),
                    ..over_ssh
                };
                match self.transport {
                    Transport::Exec => Guest {
                        transport: Transport::Exec,
                        address: None,
                        user: None,
                        ..guest
                    },
                    _ => guest,
                }
            })
            .collect()
    }

    /// Why this fleet's shape cannot be made on any host, or None.
    pub fn refusal(&self, index: usize) -> Option<(&'static str, String)> {
        let name = self.name();
        if self.count.0 == 0 || self.count.0 > 240 {
            return Some(("count", format!("fleet {name:?}: 1 to 240 guests")));
        }
        if self.vcpus.0 == 0 || self.vcpus.0 > 64 {
            return Some(("vcpus", format!("fleet {name:?}: 1 to 64 vCPUs")));
        }
        match (self.transport, self.technology) {
            (Transport::Local, _) => {
                return Some((
                    "transport",
                    format!("fleet {name:?}: its guests are reached by \"ssh\" or \"exec\""),
                ));
            }
            (
                Transport::Exec,
                FleetTechnology::Qemu | FleetTechnology::Uml | FleetTechnology::Libvirt,
            ) => {
                return Some((
                    "transport",
                    format!(
                        "fleet {name:?}: a {} guest has a kernel of its own, which no command of \
                         this host enters; it is reached over SSH (transport = \"exec\" is for \
                         netns, nspawn and gvisor)",
                        self.technology.name()
                    ),
                ));
            }
            _ => {}
        }
        if self.technology == FleetTechnology::Uml && self.vcpus.0 > 1 {
            return Some((
                "vcpus",
                format!(
                    "fleet {name:?}: UML in Debian 12 has one CPU (its kernel is built without \
                     SMP), so a uml fleet has vcpus = 1"
                ),
            ));
        }
        let least_memory = match self.technology {
            // The Debian kernel and sshd under TCG or as UML.
            FleetTechnology::Qemu | FleetTechnology::Uml | FleetTechnology::Libvirt => 256,
            _ => 64,
        };
        if self.memory_mib < least_memory {
            return Some((
                "memory_mib",
                format!(
                    "fleet {name:?}: {} guests need at least {least_memory} MiB each",
                    self.technology.name()
                ),
            ));
        }
        if self.disk_mib < 64 {
            return Some((
                "disk_mib",
                format!(
                    "fleet {name:?}: a data disk of at least 64 MiB (ext4 and bonnie++ need room)"
                ),
            ));
        }
        if let Some(min) = self.min_ready
            && (min.0 == 0 || min.0 > self.count.0)
        {
            return Some((
                "min_ready",
                format!("fleet {name:?}: min_ready is 1 to count ({})", self.count.0),
            ));
        }
        let network = self.network(index);
        let octets: Vec<u8> = network.split('.').filter_map(|o| o.parse().ok()).collect();
        let inside = octets.len() == 3 && octets[0] == 198 && (octets[1] == 18 || octets[1] == 19);
        if !inside
            || self
                .addresses
                .as_deref()
                .is_some_and(|a| !a.ends_with("/24"))
        {
            return Some((
                "addresses",
                format!(
                    "fleet {name:?}: addresses must be a /24 inside 198.18.0.0/15 (the benchmarking \
                     range), e.g. \"198.18.16.0/24\"; got {network}"
                ),
            ));
        }
        if octets == [198, 18, 0] {
            return Some((
                "addresses",
                format!("fleet {name:?}: 198.18.0.0/24 is the testbed's; give another /24"),
            ));
        }
        None
    }

    /// How many cores its placement takes for itself (pinned fleets only).
    pub fn pinned_cores(&self) -> usize {
        match self.placement {
            Placement::Pinned => self.vcpus.0 as usize * self.count.0 as usize,
            _ => 0,
        }
    }

    /// Which cores guest `i` may run on, on a host with `cores` cores, its
    /// fleet's pinned cores starting at `first` (after earlier pinned
    /// fleets'); None for any; Err when pinning needs more cores than
    /// there are.
    pub fn cores_of(
        &self,
        i: usize,
        first: usize,
        cores: usize,
    ) -> Result<Option<Vec<usize>>, String> {
        let vcpus = self.vcpus.0 as usize;
        match self.placement {
            Placement::Floating => Ok(None),
            Placement::Packed => Ok(Some((0..vcpus.min(cores)).collect())),
            Placement::Pinned => {
                let needed = first + self.pinned_cores();
                if needed > cores {
                    return Err(format!(
                        "fleet {:?}: pinned placement needs cores {first} to {} ({} guests × \
                         {vcpus} vCPUs, after the earlier pinned fleets' {first}) and this host \
                         has {cores}; use placement = \"packed\" or \"floating\", or fewer guests",
                        self.name(),
                        needed - 1,
                        self.count.0
                    ));
                }
                Ok(Some((first + i * vcpus..first + (i + 1) * vcpus).collect()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::LoadedPlan;

    fn plan_of(fleets: &str) -> Result<LoadedPlan, String> {
        let source = format!(
            "name = \"f\"\n{fleets}\n[[benchmark]]\nname = \"cpu\"\nworkload = {{ type = \"cpu\" }}\n\
             duration = \"1s\"\nconcurrency = [1]\n"
        );
        LoadedPlan::parse(&source, "f.toml").map_err(|e| e.to_string())
    }

    const TWO_PINNED: &str = "[[fleet]]\nname = \"a\"\ntechnology = \"netns\"\ncount = 2\nplacement = \"pinned\"\n\
                              [[fleet]]\nname = \"b\"\ntechnology = \"nspawn\"\ncount = 1\nvcpus = 2\nplacement = \"pinned\"\n";

    #[test]
    fn pinned_fleets_take_cores_after_one_another_and_too_many_are_refused_with_the_counts() {
        let plan = plan_of(TWO_PINNED).expect("valid").plan;
        let (a, b) = (&plan.fleets[0], &plan.fleets[1]);
        let first_of_b = a.pinned_cores();
        assert_eq!(a.cores_of(1, 0, 8), Ok(Some(vec![1])));
        assert_eq!(b.cores_of(0, first_of_b, 8), Ok(Some(vec![2, 3])));
        // Four cores are enough, three are not: refused when the plan is
        // loaded on this host, with what it needs.
        assert!(plan.overcrowded(4).is_empty());
        let refusals = plan.overcrowded(3);
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert!(
            refusals[0].contains("fleet \"b\": pinned placement needs cores 2 to 3")
                && refusals[0].contains("this host has 3"),
            "{refusals:?}"
        );
    }

    #[test]
    fn a_uml_fleet_of_more_than_one_cpu_is_refused_with_the_reason() {
        let error =
            plan_of("[[fleet]]\nname = \"u\"\ntechnology = \"uml\"\ncount = 1\nvcpus = 2\n")
                .expect_err("refused");
        assert!(
            error.contains("fleet[0].vcpus") && error.contains("UML in Debian 12 has one CPU"),
            "{error}"
        );
        assert!(plan_of("[[fleet]]\nname = \"u\"\ntechnology = \"uml\"\ncount = 2\n").is_ok());
    }

    #[test]
    fn exec_fleets_are_containers_whose_guests_get_their_command_when_made() {
        for vm in ["qemu", "uml", "libvirt"] {
            let error = plan_of(&format!(
                "[[fleet]]\nname = \"v\"\ntechnology = \"{vm}\"\ntransport = \"exec\"\ncount = 1\n"
            ))
            .expect_err("refused");
            assert!(
                error.contains("fleet[0].transport") && error.contains("reached over SSH"),
                "{error}"
            );
        }
        let error = plan_of(
            "[[fleet]]\nname = \"c\"\ntechnology = \"nspawn\"\ntransport = \"local\"\ncount = 1\n",
        )
        .expect_err("refused");
        assert!(error.contains("fleet[0].transport"), "{error}");
        let plan = plan_of(
            "[[fleet]]\nname = \"c\"\ntechnology = \"nspawn\"\ntransport = \"exec\"\ncount = 2\n",
        )
        .expect("valid")
        .plan;
        for guest in &plan.guests {
            assert_eq!(guest.transport, crate::plan::Transport::Exec);
            assert_eq!(
                (guest.address.as_deref(), guest.exec.as_deref()),
                (None, None)
            );
        }
    }

    #[test]
    fn two_fleets_on_one_address_range_are_refused() {
        let error = plan_of(
            "[[fleet]]\nname = \"a\"\ntechnology = \"netns\"\ncount = 1\naddresses = \"198.18.50.0/24\"\n\
             [[fleet]]\nname = \"b\"\ntechnology = \"nspawn\"\ncount = 1\naddresses = \"198.18.50.0/24\"\n",
        )
        .expect_err("refused");
        assert!(
            error.contains("fleet[1].addresses") && error.contains("both on 198.18.50.0/24"),
            "{error}"
        );
        // A listed range that is another fleet's default is the same range.
        let error = plan_of(
            "[[fleet]]\nname = \"a\"\ntechnology = \"netns\"\ncount = 1\n\
             [[fleet]]\nname = \"b\"\ntechnology = \"nspawn\"\ncount = 1\naddresses = \"198.18.16.0/24\"\n",
        )
        .expect_err("refused");
        assert!(error.contains("both on 198.18.16.0/24"), "{error}");
    }
}
