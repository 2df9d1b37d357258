//! Which block devices a guest that shares its host's kernel calls its own.
//!
//! A namespace or container guest reads its host's /proc/diskstats: every
//! device of the machine, the other guests' disks among them (at 64
//! namespace guests, each listed the 70 loop devices of the machine). Those
//! are the host's to report, once. Such a guest's disks are the devices its
//! own mounts are on (its /proc/self/mountinfo, by major:minor) and the
//! whole disk of a mounted partition, decided from the mounts it has when
//! its sampling starts. A guest with a kernel of its own (a VM) keeps every
//! device that does I/O.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Whether a guest whose kernel has `boot_id` runs on this host's kernel.
pub fn shares_this_hosts_kernel(boot_id: Option<&str>) -> bool {
    static OURS: OnceLock<Option<String>> = OnceLock::new();
    let ours = OURS.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.trim().to_string())
    });
    boot_id.is_some() && boot_id == ours.as_deref()
}

/// The devices (major, minor) a guest's mounts are on.
pub(super) struct MountedDevices(HashSet<(u32, u32)>);

impl MountedDevices {
    /// From /proc/self/mountinfo: `id parent major:minor root mountpoint …`.
    /// Major 0 is no block device (proc, tmpfs, overlay).
    pub(super) fn parse(mountinfo: &str) -> Self {
        let devices = mountinfo
            .lines()
            .filter_map(|line| {
                let (major, minor) = line.split_whitespace().nth(2)?.split_once(':')?;
                Some((major.parse().ok()?, minor.parse().ok()?))
            })
            .filter(|&(major, _)| major != 0)
            .collect();
        MountedDevices(devices)
    }

    pub(super) fn count(&self) -> usize {
        self.0.len()
    }

    /// Whether `disk` is the guest's: mounted itself, or the disk of a
    /// mounted partition among `all` (name, major, minor).
    pub(super) fn owns<'a>(
        &self,
        disk: (&str, u32, u32),
        all: impl IntoIterator<Item = (&'a str, u32, u32)>,
        partition_of: impl Fn(&str, &str) -> bool,
    ) -> bool {
        let (name, major, minor) = disk;
        self.0.contains(&(major, minor))
            || all.into_iter().any(|(part, major, minor)| {
                self.0.contains(&(major, minor)) && partition_of(part, name)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A namespace guest's mountinfo on the testbed: its image on loop3 at
    /// /srv/vmbench, the host's root on vda1, and no-device mounts.
    const MOUNTINFO: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
25 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
30 22 0:25 / /tmp rw,nosuid,nodev shared:14 - tmpfs tmpfs rw
301 22 7:3 / /srv/vmbench rw,relatime - ext4 /dev/loop3 rw
";

    #[test]
    fn a_guest_owns_the_devices_its_mounts_are_on_and_the_disk_of_a_mounted_partition() {
        let mounted = MountedDevices::parse(MOUNTINFO);
        assert_eq!(mounted.count(), 2);
        let all = [
            ("vda", 254, 0),
            ("vda1", 254, 1),
            ("loop3", 7, 3),
            ("loop4", 7, 4),
        ];
        let partition_of = |part: &str, disk: &str| part == "vda1" && disk == "vda";
        let owned: Vec<&str> = all
            .iter()
            .filter(|d| mounted.owns(**d, all, partition_of))
            .map(|d| d.0)
            .collect();
        // loop4 is another guest's disk.
        assert_eq!(owned, ["vda", "vda1", "loop3"]);
    }
}
