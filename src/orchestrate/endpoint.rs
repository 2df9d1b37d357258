//! A plan's guest as the transport reaches it.

use std::time::Duration;

use crate::plan::Guest;
use crate::transport::{Endpoint, LinkPolicy};

/// How to reach `guest` over SSH (its address, user, identity, the
/// known_hosts file its key must be in) or through its `exec` command, and its keepalive and reconnect
/// rules (defaults: 5 s × 3, no reconnect; reconnecting: 3 attempts from 2 s).
pub fn endpoint_of(guest: &Guest) -> Endpoint {
    Endpoint {
        name: guest.name().to_string(),
        address: guest.address.clone().unwrap_or_default(),
        port: guest.port,
        user: guest.user.clone().unwrap_or_default(),
        identity: guest.identity_path(),
        known_hosts: guest.known_hosts_path(),
        exec: guest.exec.clone(),
        policy: LinkPolicy {
            keepalive: guest.keepalive.map_or(Duration::from_secs(5), |d| d.0),
            keepalive_count: guest.keepalive_count.map_or(3, |c| c.0),
            reconnect_attempts: if guest.reconnect {
                guest.reconnect_attempts.map_or(3, |c| c.0)
            } else {
                0
            },
            reconnect_backoff: guest
                .reconnect_backoff
                .map_or(Duration::from_secs(2), |d| d.0),
        },
    }
}
