//! What a session says about itself, first in every recording: the host it
//! ran on, the plan and its schedule, the format. The model, the recorder
//! and the report all read it; it belongs to none of them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::Nanos;
use crate::plan::PlannedPhase;

/// The recording format this header describes (and this vmbench reads).
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HostSpecs {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub logical_cores: usize,
    pub physical_cores: Option<usize>,
    pub memory_bytes: u64,
    /// USER_HZ, the unit of every `ticks` series.
    pub clock_ticks_per_sec: u64,
    /// How this host is itself virtual, if it is (a "bare-metal" baseline
    /// measured on a VM, or in a Xen dom0, measures something else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualization: Option<String>,
}

impl HostSpecs {
    pub fn of_this_host() -> Self {
        let unknown =
            |r: Result<String, _>| r.unwrap_or_else(|_: sysinfo::Error| "unknown".to_string());
        let mut system = sysinfo::System::new().ok();
        if let Some(s) = system.as_mut() {
            s.refresh_memory();
            s.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        }
        HostSpecs {
            hostname: unknown(sysinfo::System::host_name()),
            os: unknown(sysinfo::System::long_os_version()),
            kernel: unknown(sysinfo::System::kernel_long_version()),
            arch: sysinfo::System::cpu_arch(),
            cpu_model: system
                .as_ref()
                .and_then(|s| s.cpus().first().map(|c| c.brand().trim().to_string()))
                .unwrap_or_else(|| "unknown".into()),
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            physical_cores: sysinfo::System::physical_core_count().ok(),
            memory_bytes: system.as_ref().map_or(0, |s| s.total_memory()),
            clock_ticks_per_sec: procfs::ticks_per_second(),
            virtualization: virtualization(
                &read_or_empty("/proc/cpuinfo"),
                &read_or_empty("/sys/hypervisor/type"),
                &read_or_empty("/proc/xen/capabilities"),
                &read_or_empty("/sys/class/dmi/id/sys_vendor"),
                &read_or_empty("/sys/class/dmi/id/product_name"),
            ),
        }
    }
}

fn read_or_empty(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// What tells that a host is virtual: a Xen dom0 (its control domain's
/// capabilities), a hypervisor it runs under (`/sys/hypervisor`, the CPU's
/// hypervisor flag) and what the firmware says it is (DMI).
pub fn virtualization(
    cpuinfo: &str,
    hypervisor: &str,
    xen_capabilities: &str,
    dmi_vendor: &str,
    dmi_product: &str,
) -> Option<String> {
    if xen_capabilities.contains("control_d") {
        return Some("a Xen dom0 (itself a domain of the hypervisor)".into());
    }
    let mut signs = Vec::new();
    if !hypervisor.trim().is_empty() {
        signs.push(format!("/sys/hypervisor says {}", hypervisor.trim()));
    }
    let flagged = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|w| w == "hypervisor"));
    if flagged {
        signs.push("the CPU's hypervisor flag".into());
    }
    // Hyper-V is "Microsoft Corporation" + "Virtual Machine" (a Surface is
    // Microsoft too); cloud firmware names the cloud.
    const VIRTUAL_FIRMWARE: [&str; 9] = [
        "QEMU",
        "KVM",
        "VMware",
        "VirtualBox",
        "innotek",
        "Xen",
        "Virtual Machine",
        "Amazon EC2",
        "Google Compute Engine",
    ];
    let firmware = format!("{} {}", dmi_vendor.trim(), dmi_product.trim());
    if VIRTUAL_FIRMWARE.iter().any(|v| firmware.contains(v)) {
        signs.push(format!("its firmware is {}", firmware.trim()));
    }
    (!signs.is_empty()).then(|| format!("a virtual machine ({})", signs.join(", ")))
}

/// What a recording says about itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Header {
    pub format_version: u32,
    pub vmbench_version: String,
    /// Wall-clock start, RFC 3339 UTC; session times are offsets from it.
    pub started_at: String,
    pub started_unix_ns: u64,
    /// Where session time 0 falls on this host's CLOCK_MONOTONIC: lines the
    /// recording up with what else this host logs on that clock (the
    /// kernel's log, perf, a test that injects a fault); older recordings
    /// have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monotonic_origin_ns: Option<u64>,
    pub host: HostSpecs,
    pub plan_name: String,
    pub plan_origin: String,
    pub plan_source: String,
    pub interval_ns: Nanos,
    pub schedule: Vec<PlannedPhase>,
    /// The guests vmbench made for the session, fleet by fleet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fleets: Vec<crate::event::FleetRecord>,
}

impl Header {
    /// The header of a session of `plan` on `host` started at
    /// `started_unix_ns` on `clock`, running `schedule`.
    pub fn new(
        plan: &crate::plan::LoadedPlan,
        host: HostSpecs,
        started_unix_ns: u64,
        clock: &crate::event::Clock,
        schedule: Vec<PlannedPhase>,
    ) -> Self {
        Header {
            format_version: FORMAT_VERSION,
            vmbench_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: humantime::format_rfc3339_nanos(
                std::time::UNIX_EPOCH + Duration::from_nanos(started_unix_ns),
            )
            .to_string(),
            started_unix_ns,
            monotonic_origin_ns: Some(clock.to_monotonic(0)),
            host,
            plan_name: plan.plan.name.clone(),
            plan_origin: plan.origin.clone(),
            plan_source: plan.source.clone(),
            interval_ns: plan.plan.interval.get().as_nanos() as Nanos,
            schedule,
            fleets: plan.made.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtual_host_is_told_from_bare_metal() {
        let bare = "flags\t\t: fpu vme de pse tsc msr pae mce\n";
        let guest = "flags\t\t: fpu vme de pse tsc hypervisor lahf_lm\n";
        assert_eq!(
            virtualization(bare, "", "", "Dell Inc.", "PowerEdge R650"),
            None
        );
        let vm = virtualization(guest, "", "", "QEMU", "Standard PC (i440FX + PIIX, 1996)")
            .expect("a VM");
        assert!(
            vm.contains("hypervisor flag") && vm.contains("QEMU"),
            "{vm}"
        );
        assert!(
            virtualization(bare, "xen", "control_d\n", "", "")
                .expect("dom0")
                .contains("dom0")
        );
        assert!(
            virtualization(bare, "xen", "", "", "")
                .expect("domU")
                .contains("/sys/hypervisor says xen")
        );
    }
}
