//! Reaching an exec guest the first time, and the address it reaches this
//! host back at (for a network sink): over SSH that is the connection's own
//! local address; here there is no connection, so it is worked out from
//! what the guest says of its network.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::Instant;

use super::super::endpoint::Endpoint;
use super::super::shell::Reached;
use super::{RUN_PATIENCE, Shell, stderr_note};

/// What the guest says of its network: its addresses, then its routes.
/// Either may be missing (a sandbox's /proc): that costs only the address.
const NETWORK_PROBE: &str =
    "cat /proc/net/fib_trie 2>/dev/null; echo '--- routes'; cat /proc/net/route 2>/dev/null; true";

/// Runs a command in the guest: it is reachable this way, and how long
/// that took; and the address it reaches this host at.
pub fn connect(machine: &Endpoint) -> Result<(Shell, Reached), String> {
    let Some(prefix) = machine.exec.clone().filter(|p| !p.is_empty()) else {
        return Err("no command to reach it by (`exec`)".into());
    };
    let shell = Shell::new(prefix);
    let began = Instant::now();
    let (code, out, err) = shell
        .run_fed(NETWORK_PROBE, None, RUN_PATIENCE)
        .map_err(|e| format!("`{}` cannot run a command there: {e:#}", shell.describe()))?;
    if code != 0 {
        return Err(format!(
            "`{}` cannot run a command there: status {code}{}",
            shell.describe(),
            stderr_note(&err)
        ));
    }
    let (trie, table) = out.split_once("--- routes").unwrap_or((&out, ""));
    Ok((
        shell,
        Reached {
            local_ip: IpAddr::V4(local_address(&own_addresses(trie), &routes(table))),
            connect_time: began.elapsed(),
            silence_limit: machine.policy.silence_limit(),
        },
    ))
}

/// This host's address as the guest reaches it: the one this host sends
/// from towards one of the guest's own addresses (a fleet's bridge, a pod's
/// network; connecting a UDP socket sends nothing); else (a guest whose
/// /proc has no fib_trie: gVisor) this host's address on a network the
/// guest is on directly; else the guest's default gateway when this host
/// has it; else the loopback (a guest in this host's own network, or in
/// none of its own).
fn local_address(guest: &[Ipv4Addr], routes: &[Route]) -> Ipv4Addr {
    let towards = |to: Ipv4Addr| -> Option<Ipv4Addr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        socket.connect((to, 9)).ok()?;
        match socket.local_addr().ok()?.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        }
    };
    let is_mine = |ip: Ipv4Addr| UdpSocket::bind((ip, 0)).is_ok();
    guest
        .iter()
        .filter(|ip| !ip.is_loopback())
        .find_map(|ip| towards(*ip))
        .or_else(|| {
            routes
                .iter()
                .filter(|r| r.mask != 0 && r.gateway.is_unspecified())
                .find_map(|r| {
                    let on_it = |ip: &Ipv4Addr| u32::from(*ip) & r.mask == r.destination;
                    towards(Ipv4Addr::from(r.destination | 1)).filter(on_it)
                })
        })
        .or_else(|| {
            routes
                .iter()
                .find(|r| r.mask == 0 && !r.gateway.is_unspecified())
                .map(|r| r.gateway)
                .filter(|gateway| is_mine(*gateway))
        })
        .unwrap_or(Ipv4Addr::LOCALHOST)
}

/// The guest's own IPv4 addresses, from /proc/net/fib_trie: each address
/// line (`|-- 198.18.16.10`) followed by a `/32 host LOCAL` line.
fn own_addresses(trie: &str) -> Vec<Ipv4Addr> {
    let mut found: Vec<Ipv4Addr> = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in trie.lines() {
        let line = line.trim();
        if let Some(address) = line.strip_prefix("|-- ") {
            last = address.parse().ok();
        } else if line.starts_with("/32 host LOCAL")
            && let Some(ip) = last
            && !found.contains(&ip)
        {
            found.push(ip);
        }
    }
    found
}

/// A route of the guest's main table (addresses as integers in the
/// usual order, 198.18.16.0 being 0xC6121000).
#[derive(Debug, PartialEq, Eq)]
struct Route {
    destination: u32,
    gateway: Ipv4Addr,
    mask: u32,
}

/// The routes in /proc/net/route, whose addresses are the kernel's
/// network-order words printed as this machine's integers.
fn routes(table: &str) -> Vec<Route> {
    let address = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .ok()
            .map(|word| Ipv4Addr::from(word.to_ne_bytes()))
    };
    table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(Route {
                destination: u32::from(address(fields.get(1)?)?),
                gateway: address(fields.get(2)?)?,
                mask: u32::from(address(fields.get(7)?)?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/net/fib_trie and /proc/net/route in a fleet's namespace guest
    /// (198.18.16.10/24 on eth0, no default route), as `cat` printed them.
    const TRIE: &str = "Main:\n  +-- 0.0.0.0/1 2 0 2\n     +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n           |-- 127.0.0.0\n              /8 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n        |-- 127.255.255.255\n           /32 link BROADCAST\n  +-- 198.18.16.0/24 2 0 2\n     |-- 198.18.16.0\n        /24 link UNICAST\n     |-- 198.18.16.10\n        /32 host LOCAL\nLocal:\n  +-- 198.18.16.0/24 2 0 2\n     |-- 198.18.16.10\n        /32 host LOCAL\n";
    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t001012C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn a_guests_own_addresses_are_read_from_its_fib_trie() {
        assert_eq!(
            own_addresses(TRIE),
            [Ipv4Addr::LOCALHOST, Ipv4Addr::new(198, 18, 16, 10)]
        );
        assert!(own_addresses("").is_empty());
    }

    #[test]
    fn the_route_table_gives_gateways_and_masks_in_network_order() {
        let default = "eth0\t00000000\t011212C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            routes(default),
            [Route {
                destination: 0,
                gateway: Ipv4Addr::new(198, 18, 18, 1),
                mask: 0
            }]
        );
        // The header line is no route.
        assert_eq!(
            routes(ROUTES),
            [Route {
                destination: u32::from(Ipv4Addr::new(198, 18, 16, 0)),
                gateway: Ipv4Addr::UNSPECIFIED,
                mask: u32::from(Ipv4Addr::new(255, 255, 255, 0))
            }]
        );
    }

    #[test]
    fn a_guest_on_a_network_of_this_hosts_reaches_it_at_its_address_there() {
        // The loopback network stands for a fleet's bridge: this host has
        // 127.0.0.1 on it.
        let lo = "lo\t0000007F\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0\n";
        assert_eq!(local_address(&[], &routes(lo)), Ipv4Addr::LOCALHOST);
        // A network this host is not on (198.19.254.0/24: in the range
        // tests may use, and none of vmbench's) gives no address there.
        let elsewhere = "eth0\t00FE13C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(local_address(&[], &routes(elsewhere)), Ipv4Addr::LOCALHOST);
    }

    #[test]
    fn a_guest_with_no_address_of_its_own_reaches_this_host_on_the_loopback() {
        assert_eq!(local_address(&[], &[]), Ipv4Addr::LOCALHOST);
        assert_eq!(
            local_address(&[Ipv4Addr::LOCALHOST], &routes(ROUTES)),
            Ipv4Addr::LOCALHOST
        );
        // Only loopback addresses of its own: none to be reached at.
        assert_eq!(
            local_address(&[Ipv4Addr::new(127, 0, 0, 2)], &[]),
            Ipv4Addr::LOCALHOST
        );
    }
}
