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
