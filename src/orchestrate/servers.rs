//! Servers on this host that a phase's copies talk to: a tool's own
//! server (iperf3 -s) started for one phase, and the receiver of the
//! built-in `net` workload, started once per address.

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Child;

use crate::transport::local::owned_command;
use crate::workload::builtin;

/// How long a server may take to say it listens.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A server a tool's copies need on this host, up once it says it listens.
pub struct ToolServer {
    child: Child,
}

impl ToolServer {
    pub async fn start(argv: &[String]) -> Result<Self> {
        let mut child = owned_command(argv, Stdio::null(), Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", argv[0]))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::time::timeout(LISTEN_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.to_ascii_lowercase().contains("listening") {
                    return true;
                }
            }
            false
        })
        .await;
        if listening != Ok(true) {
            let _ = child.kill().await;
            let mut err = String::new();
            if let Some(stderr) = child.stderr.take() {
                let _ = BufReader::new(stderr).read_to_string(&mut err).await;
            }
            return Err(anyhow!("it did not start listening: {}", last_words(&err)));
        }
        // Its reports are not needed (the client's are), but a full pipe
        // would stall it mid-test.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ToolServer { child })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn last_words(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(nothing on stderr)")
        .trim()
}

/// The receiving end of `net` copies, started once per session.
pub struct NetReceiver {
    child: Child,
    pub addr: SocketAddr,
}

impl NetReceiver {
    pub async fn start(exe: &std::path::Path, ip: IpAddr) -> Result<Self> {
        let argv = [
            exe.display().to_string(),
            "workload".into(),
            "net-sink".into(),
            "--listen".into(),
            SocketAddr::new(ip, 0).to_string(),
        ];
        let mut child = owned_command(&argv, Stdio::null(), Stdio::null())
            .spawn()
            .context("starting the receiver")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("receiver has no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(LISTEN_TIMEOUT, lines.next_line())
            .await
            .context("the receiver did not say where it listens")??
            .ok_or_else(|| anyhow!("the receiver exited before listening"))?;
        let addr = builtin::parse_listening(&first)
            .ok_or_else(|| anyhow!("unexpected receiver output {first:?}"))?;
        Ok(NetReceiver { child, addr })
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The kind of path traffic to this host's address `ip` takes: `loopback`,
/// `bridge <if>`, `nic <if>` (a physical device) or `virtual <if>` (veth,
/// tap), from the interface that holds the address; None when no interface
/// holds it.
pub fn path_to(ip: IpAddr) -> Option<String> {
    if ip.is_loopback() {
        return Some("loopback".into());
    }
    let interface = interface_with(ip)?;
    let sys = std::path::Path::new("/sys/class/net").join(&interface);
    let kind = if sys.join("bridge").exists() {
        "bridge"
    } else if sys.join("device").exists() {
        "nic"
    } else {
        "virtual"
    };
    Some(format!("{kind} {interface}"))
}

/// The interface that holds `ip`, from getifaddrs.
fn interface_with(ip: IpAddr) -> Option<String> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut node = list;
    while !node.is_null() {
        // SAFETY: `node` is an element of the list getifaddrs returned.
        let entry = unsafe { &*node };
        node = entry.ifa_next;
        if entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr of the family it states.
        let address = unsafe {
            match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let a = &*entry.ifa_addr.cast::<libc::sockaddr_in>();
                    Some(IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()))
                }
                libc::AF_INET6 => {
                    let a = &*entry.ifa_addr.cast::<libc::sockaddr_in6>();
                    Some(IpAddr::from(a.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        if address == Some(ip) {
            // SAFETY: ifa_name is a NUL-terminated string in the list.
            let name = unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) };
            found = Some(name.to_string_lossy().into_owned());
            break;
        }
    }
    // SAFETY: frees the list getifaddrs allocated, once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_unheld_addresses_are_told_apart() {
        assert_eq!(
            path_to("127.0.0.1".parse().expect("ip")),
            Some("loopback".into())
        );
        // TEST-NET-3: no interface here holds it.
        assert_eq!(path_to("203.0.113.7".parse().expect("ip")), None);
    }
}
