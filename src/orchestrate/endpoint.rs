//! A plan's guest as the transport reaches it.

use crate::plan::Guest;
use crate::transport::{Endpoint, LinkPolicy};

/// How to reach `guest` over SSH: its address, user, identity, the
/// known_hosts file its key must be in, and its keepalive and reconnect
/// rules (defaults: 5 s × 3, no reconnect; reconnecting: 3 attempts from 2 s).
pub fn endpoint_of(guest: &Guest) -> Endpoint {
    let liveness = guest.liveness();
    Endpoint {
        name: guest.name().to_string(),
        address: guest.address.clone().unwrap_or_default(),
        port: guest.port,
        user: guest.user.clone().unwrap_or_default(),
        identity: guest.identity_path(),
        known_hosts: guest.known_hosts_path(),
        policy: LinkPolicy {
            keepalive: liveness.keepalive,
            keepalive_count: liveness.keepalive_count,
            reconnect_attempts: liveness.reconnect_attempts,
            reconnect_backoff: liveness.reconnect_backoff,
        },
    }
}
