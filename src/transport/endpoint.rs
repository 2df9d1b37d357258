//! Where a machine is and how to reach it, over SSH or through a command:
//! what the transport needs of a guest, a hypervisor host or a fleet's
//! guest, and nothing of the plan it came from.

use std::path::PathBuf;
use std::time::Duration;

/// When a link counts as lost, and whether it is connected again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPolicy {
    pub keepalive: Duration,
    pub keepalive_count: u32,
    /// Attempts before each phase; 0 when the machine is not reconnected.
    pub reconnect_attempts: u32,
    pub reconnect_backoff: Duration,
}

impl LinkPolicy {
    /// How long a machine may send nothing before it counts as lost.
    pub fn silence_limit(&self) -> Duration {
        self.keepalive * self.keepalive_count.max(1)
    }
}

/// A machine reached over SSH, or through a command when `exec` is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// What the session calls it (a guest's or host's name).
    pub name: String,
    /// Host name or IP address.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// A private key file; without it the SSH agent, then ~/.ssh/id_ed25519,
    /// id_ecdsa and id_rsa are tried.
    pub identity: Option<PathBuf>,
    /// Where its host key must already be (or is written with
    /// `--accept-new`): never trusted on first use otherwise.
    pub known_hosts: PathBuf,
    /// The command line that runs a command inside the machine; when
    /// given, none of the SSH fields above is used.
    pub exec: Option<Vec<String>>,
    pub policy: LinkPolicy,
}

impl Endpoint {
    /// `address:port`, IPv6 in brackets; an exec machine's command line.
    pub fn socket_text(&self) -> String {
        if let Some(argv) = &self.exec {
            return super::shell_command(argv);
        }
        if self.address.contains(':') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }

    /// The name a known_hosts file gives it.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }
}
