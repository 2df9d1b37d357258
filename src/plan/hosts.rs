//! The hypervisor hosts a plan's guests run on besides this machine. Each
//! is reached over SSH as a guest is (its key checked against known_hosts,
//! vmbench put there, its clock measured), and vmbench's agent samples it
//! there: its own /proc as `host:<name>`, and what it sees of each guest
//! that names it (interface, disk, cgroup, process; found by `discover`
//! there where the guest asks) as `host-seen:<guest>`.

use serde::{Deserialize, Serialize};

use super::{Count, Guest, Invalid, Plan, PlanDuration, ssh_port};

#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Host {
    pub name: toml::Spanned<String>,
    /// Host name or IP address.
    pub address: String,
    #[serde(default = "ssh_port")]
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A private key file; without it the SSH agent, then ~/.ssh's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Defaults to ~/.ssh/known_hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
    /// As for guests: how often the connection is probed, and how many
    /// silent probes make the host lost (default 5s × 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<PlanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_count: Option<Count>,
}

/// What a host is called in a guest's technology column and log lines.
pub const HOST_TECHNOLOGY: &str = "hypervisor-host";

impl Host {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// The host as a connection: reached, checked and given vmbench exactly
    /// as an SSH guest is (it never takes a benchmark's copy).
    pub fn as_connection(&self) -> Guest {
        Guest {
            identity: self.identity.clone(),
            known_hosts: self.known_hosts.clone(),
            keepalive: self.keepalive,
            keepalive_count: self.keepalive_count,
            ..Guest::over_ssh(
                self.name.clone(),
                HOST_TECHNOLOGY.into(),
                self.address.clone(),
                self.port,
                self.user.clone(),
            )
        }
    }
}

/// Hosts are named once and apart from guests; a guest names a host the
/// plan has, is reached over SSH, and has its technology named (discovery
/// there finds its identity, not what to compare it as before the session).
pub(super) fn validate_hosts(plan: &Plan) -> Result<(), Invalid> {
    for (i, host) in plan.hosts.iter().enumerate() {
        if host.user.is_none() {
            return Err((
                host.name.span(),
                format!("host[{i}].user"),
                format!("host {:?} needs a user, as an SSH guest does", host.name()),
            ));
        }
        let taken = plan.hosts[..i].iter().any(|h| h.name() == host.name())
            || plan.guests.iter().any(|g| g.name() == host.name());
        if taken {
            return Err((
                host.name.span(),
                format!("host[{i}].name"),
                format!(
                    "{:?} names another host or a guest already; each is told apart by its name",
                    host.name()
                ),
            ));
        }
    }
    for (i, guest) in plan.guests.iter().enumerate() {
        let Some(host) = &guest.host else {
            continue;
        };
        let field = format!("guest[{i}].host");
        if !plan.hosts.iter().any(|h| h.name() == host) {
            return Err((
                guest.name.span(),
                field,
                format!("no [[host]] is named {host:?}"),
            ));
        }
        if !guest.transport.is_remote() {
            return Err((
                guest.name.span(),
                field,
                "a local guest runs on this machine; `host` is for SSH guests on another".into(),
            ));
        }
        if guest.technology == "auto" {
            return Err((
                guest.name.span(),
                format!("guest[{i}].technology"),
                format!(
                    "technology = \"auto\" is found on this machine only; name what {} on {host} \
                     is (discover = true still finds its host-side identity there)",
                    guest.name()
                ),
            ));
        }
    }
    Ok(())
}

/// The guests that run on `host`, as the agent there is given them.
#[derive(Deserialize, Serialize, Debug, Default)]
pub struct HostSeenGuests {
    #[serde(default, rename = "guest")]
    pub guests: Vec<Guest>,
}

impl HostSeenGuests {
    pub fn on(plan: &Plan, host: &str) -> Self {
        HostSeenGuests {
            guests: plan
                .guests
                .iter()
                .filter(|g| g.host.as_deref() == Some(host))
                .cloned()
                .collect(),
        }
    }
}
