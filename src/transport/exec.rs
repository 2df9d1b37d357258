//! Reaching a guest through a command that runs a command inside it:
//! `ip netns exec g1`, `nsenter -t PID -a`, `runsc exec ID`, `lxc-attach -n
//! NAME --`, `kubectl exec -i POD --`. Containers and pods mostly have no
//! sshd; this gives them everything the SSH link gives: the upload, a
//! staged start released at the barrier, kill, liveness, the clock offset
//! and the agent.
//!
//! Every command is `PREFIX sh -c SCRIPT`, a child of this host in its own
//! process group. A kill ends that group here (which reaches a command in
//! a namespace of this host, whatever its PID namespace) and, for prefixes
//! whose command lives elsewhere (a pod, a sandbox), the command in the
//! guest, which tells its pid on its first line as over SSH.
//!
//! There is no connection to watch, so liveness is asked: at each
//! keepalive a fresh `PREFIX sh -c :` must come back within the silence
//! limit. A namespace deleted, a container stopped or a pod gone refuse it
//! at once; a guest that hangs says nothing.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::sync::mpsc::UnboundedSender;

use super::endpoint::{Endpoint, LinkPolicy};
use super::guest_link::{GuestLink, LinkCommand, PGID_TAG};
use super::shell::{Reached, clock_rounds, janitor_script};
use super::{ExecEnd, ExecId, ExecOutput, shell_command, shell_quote};

/// How long a short command through the prefix may take: starting a
/// process in a namespace takes milliseconds, `kubectl exec` a second.
const RUN_PATIENCE: Duration = Duration::from_secs(15);
/// A kill, or the janitor's last word when the link ends: a guest that
/// hangs must not hold up a stop.
const SHORT: Duration = Duration::from_secs(2);
/// How long a clock measurement between phases may take.
const CLOCK_PATIENCE: Duration = Duration::from_secs(3);

/// The command line that runs a command inside a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shell {
    prefix: Vec<String>,
}

impl Shell {
    pub fn new(prefix: Vec<String>) -> Self {
        Shell { prefix }
    }

    /// `PREFIX sh -c SCRIPT` in its own process group, so that a kill
    /// reaches what it starts here.
    fn command(&self, script: &str) -> Command {
        let mut command = Command::new(&self.prefix[0]);
        command
            .args(&self.prefix[1..])
            .args(["sh", "-c", script])
            .process_group(0);
        command
    }

    /// A command that ends with the thread that started it (as the
    /// baseline's do): a kill -9 of vmbench leaves nothing running here.
    fn owned(&self, script: &str) -> Command {
        let mut command = self.command(script);
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        command
    }

    /// Starts `script` with its output piped, tied to this thread.
    pub fn start_owned(&self, script: &str, stdin: Stdio) -> Result<Child> {
        self.owned(script)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start `{}`", self.prefix[0]))
    }

    /// Runs `script`, feeding it `input`, to its end or until `patience`
    /// has passed (then its group is killed): (exit code, stdout, stderr).
    fn run_fed(
        &self,
        script: &str,
        input: Option<&[u8]>,
        patience: Duration,
    ) -> Result<(i32, String, String)> {
        let deadline = Instant::now() + patience;
        let stdin = if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = self.start_owned(script, stdin)?;
        let out = read_all(child.stdout.take());
        let err = read_all(child.stderr.take());
        let feeder = match (input, child.stdin.take()) {
            (Some(bytes), Some(mut stdin)) => {
                let bytes = bytes.to_vec();
                // A guest that stops reading fails the write once its
                // group is killed at the deadline.
                Some(std::thread::spawn(move || stdin.write_all(&bytes)))
            }
            _ => None,
        };
        let status = wait_within(&mut child, deadline);
        let fed = feeder.map(|f| f.join().unwrap_or(Ok(())));
        let (out, err) = (joined(out), joined(err));
        let status = status.map_err(|e| anyhow!("{e}{}", stderr_note(&err)))?;
        if let Some(Err(e)) = fed {
            bail!("writing to it: {e}{}", stderr_note(&err));
        }
        Ok((status.code().unwrap_or(-1), out, err))
    }
}

fn read_all(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

fn joined(reader: std::thread::JoinHandle<String>) -> String {
    reader.join().unwrap_or_default()
}

fn stderr_note(err: &str) -> String {
    match err.trim().lines().last() {
        Some(line) => format!(" ({})", line.trim()),
        None => String::new(),
    }
}

/// Waits for `child` until `deadline`; past it, kills its group and says so.
fn wait_within(child: &mut Child, deadline: Instant) -> Result<ExitStatus, String> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.wait();
                return Err("no answer in time; killed".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    }
}

fn kill_group(pgid: u32) {
    // SAFETY: signals a process group this link started and has not yet
    // reaped (every caller waits for the child after this).
    unsafe { libc::killpg(pgid as libc::pid_t, libc::SIGKILL) };
}

/// Kills `child`'s group unless it has ended by `deadline`: for talks with
/// a command whose reads would otherwise block for ever.
struct Watchdog {
    disarm: Option<Sender<()>>,
}

impl Watchdog {
    fn new(child: &Child, deadline: Instant) -> Self {
        let (disarm, disarmed) = channel::<()>();
        let pgid = child.id();
        std::thread::spawn(move || {
            let wait = deadline.saturating_duration_since(Instant::now());
            if disarmed.recv_timeout(wait) == Err(RecvTimeoutError::Timeout) {
                kill_group(pgid);
            }
        });
        Watchdog {
            disarm: Some(disarm),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Sent, not dropped: a dropped sender reads as disconnected, which
        // disarms too, but saying so is clearer.
        if let Some(disarm) = self.disarm.take() {
            let _ = disarm.send(());
        }
    }
}

impl super::Shell for Shell {
    type Janitor = Janitor;

    fn run(&self, script: &str) -> Result<(i32, String, String)> {
        self.run_fed(script, None, RUN_PATIENCE)
    }

    fn run_within(&self, script: &str, patience: Duration) -> Result<(i32, String, String)> {
        self.run_fed(script, None, patience)
    }

    fn upload(&self, path: &str, bytes: &[u8]) -> Result<()> {
        // A pipe into a namespace moves hundreds of MB/s; through a pod's
        // API server a few: the wait grows with the file.
        let patience = RUN_PATIENCE + Duration::from_secs(bytes.len() as u64 >> 20);
        let script = format!("cat > {}", shell_quote(path));
        let (code, _, err) = self.run_fed(&script, Some(bytes), patience)?;
        if code != 0 {
            bail!("`cat` there exited with status {code}{}", stderr_note(&err));
        }
        Ok(())
    }

    fn measure_clock(&self, vmbench: &str, deadline: Instant) -> Result<(i64, u64)> {
        let script = format!("exec {} workload clock", shell_quote(vmbench));
        let mut child = self.start_owned(&script, Stdio::piped())?;
        let watchdog = Watchdog::new(&child, deadline + SHORT);
        let best = {
            let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                bail!("no pipes to the clock probe");
            };
            clock_rounds(&mut BufReader::new(stdout), &mut stdin, deadline)
        };
        drop(watchdog);
        let _ = wait_within(&mut child, Instant::now() + SHORT);
        best
    }

    fn start_janitor(&self, dir: &str, patience: Duration) -> Result<Janitor> {
        Janitor::start(self, dir, patience)
    }

    fn finish_janitor(janitor: Janitor) {
        janitor.finish();
    }
}

/// The janitor of vmbench's folder on the guest (`shell::janitor_script`).
/// It is not tied to the thread that started it: when vmbench dies its
/// input ends and it cleans up, which is the point of it.
pub struct Janitor {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Janitor {
    fn start(shell: &Shell, dir: &str, patience: Duration) -> Result<Self> {
        let mut child = shell
            .command(&janitor_script(dir, patience))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start `{}`", shell.prefix[0]))?;
        let stdin = child.stdin.take();
        Ok(Janitor { child, stdin })
    }

    /// Tells it the host is still there; Err when it has ended (its guest
    /// gone, or killed there).
    fn heartbeat(&mut self) -> Result<(), String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(format!(
                "the command that keeps vmbench's folder there ended ({})",
                ExecEnd::of_status(status).describe()
            ));
        }
        if let Some(stdin) = self.stdin.as_mut() {
            stdin
                .write_all(b"\n")
                .map_err(|e| format!("the folder's janitor stopped listening: {e}"))?;
        }
        Ok(())
    }

    /// Ends its input and waits (briefly) until it has cleaned up.
    pub fn finish(mut self) {
        self.stdin = None;
        let _ = wait_within(&mut self.child, Instant::now() + SHORT);
    }
}

/// Runs a trivial command in the guest: the guest is reachable this way,
/// and how long that took. The address a guest reaches this host at (for
/// a network sink) is one of this host's on a network the guest routes to
/// directly (a fleet's bridge), else the gateway of its default route when
/// this host has that address, else the loopback (a guest in this host's
/// own network, or in none).
pub fn connect(machine: &Endpoint) -> Result<(Shell, Reached), String> {
    let Some(prefix) = machine.exec.clone().filter(|p| !p.is_empty()) else {
        return Err("no command to reach it by (`exec`)".into());
    };
    let shell = Shell::new(prefix);
    let began = Instant::now();
    let command_text = shell_command(&shell.prefix);
    let (code, out, err) = shell
        .run_fed("cat /proc/net/route", None, RUN_PATIENCE)
        .map_err(|e| format!("`{command_text}` cannot run a command there: {e:#}"))?;
    if code != 0 {
        return Err(format!(
            "`{command_text}` cannot run a command there: status {code}{}",
            stderr_note(&err)
        ));
    }
    let routes = routes(&out);
    let local_ip = host_ipv4s()
        .into_iter()
        .find(|ip| {
            !ip.is_loopback()
                && routes
                    .iter()
                    .any(|r| r.gateway.is_unspecified() && r.contains(*ip))
        })
        .or_else(|| {
            routes
                .iter()
                .find(|r| r.mask == 0 && !r.gateway.is_unspecified())
                .map(|r| r.gateway)
                .filter(|gateway| std::net::UdpSocket::bind((*gateway, 0)).is_ok())
        })
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4);
    Ok((
        shell,
        Reached {
            local_ip,
            connect_time: began.elapsed(),
            silence_limit: machine.policy.silence_limit(),
        },
    ))
}

/// A route of the guest's main table.
#[derive(Debug, PartialEq, Eq)]
struct Route {
    destination: u32,
    mask: u32,
    gateway: Ipv4Addr,
}

impl Route {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask == self.destination
    }
}

/// The routes in /proc/net/route (addresses in hex, in memory order).
fn routes(table: &str) -> Vec<Route> {
    let address = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::swap_bytes);
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some(Route {
                destination: address(fields.get(1)?)?,
                gateway: Ipv4Addr::from(address(fields.get(2)?)?),
                mask: address(fields.get(7)?)?,
            })
        })
        .collect()
}

/// This host's IPv4 addresses.
fn host_ipv4s() -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list freed below with freeifaddrs; each
    // entry's address is read only when it is an AF_INET sockaddr_in.
    unsafe {
        if libc::getifaddrs(&raw mut list) != 0 {
            return found;
        }
        let mut entry = list;
        while !entry.is_null() {
            let addr = (*entry).ifa_addr;
            if !addr.is_null() && i32::from((*addr).sa_family) == libc::AF_INET {
                let inet = &*(addr.cast::<libc::sockaddr_in>());
                found.push(Ipv4Addr::from(u32::from_be(inet.sin_addr.s_addr)));
            }
            entry = (*entry).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

/// A command running in the guest.
struct Running {
    /// Its group here.
    pgid: u32,
    stdin: Option<ChildStdin>,
    /// Its pid in the guest, once it has told it.
    guest_pid: Arc<Mutex<Option<u32>>>,
    /// Taken by whoever reports its end: its reader, or the link when the
    /// guest is lost.
    output: Arc<Mutex<Option<UnboundedSender<ExecOutput>>>>,
    /// A kill was asked and has not yet reached the guest's group.
    kill_pending: bool,
}

impl Running {
    fn end(&self, end: ExecEnd) {
        if let Some(output) = self.output.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = output.send(ExecOutput::Exited(end));
        }
    }
}

/// The script a command runs as: telling its process, the group leader
/// where the prefix runs it as one (`kubectl exec`, `runsc exec`), first.
/// No `setsid`: a prefix that enters namespaces of this host keeps the
/// command in the process group it started here, which a kill reaches
/// from here, in whatever PID namespace it runs.
fn wrap(command: &str) -> String {
    format!("echo {PGID_TAG}$$; exec {command}")
}

/// Hands the guest's link to its own thread and returns the handle;
/// `janitor` is finished when the link closes. When the guest stops
/// answering, `on_lost` is called once with the reason.
pub fn spawn_link(
    shell: Shell,
    name: &str,
    janitor: Option<Janitor>,
    policy: LinkPolicy,
    on_lost: Box<dyn FnOnce(String) + Send>,
) -> std::io::Result<GuestLink> {
    GuestLink::spawn(
        format!("exec-{name}"),
        None,
        move |rx| link_loop(&shell, rx, janitor, policy),
        on_lost,
    )
}

/// A liveness probe in flight: when it started, and its answer.
struct Probe {
    started: Instant,
    answer: Receiver<Result<(), String>>,
}

fn link_loop(
    shell: &Shell,
    commands: Receiver<LinkCommand>,
    mut janitor: Option<Janitor>,
    policy: LinkPolicy,
) -> Option<String> {
    let silence_limit = policy.silence_limit();
    let keepalive = policy.keepalive.max(Duration::from_secs(1));
    let mut running: HashMap<ExecId, Running> = HashMap::new();
    let (ended_tx, ended) = channel::<Ended>();
    // Ends held back until a probe says whether the guest is still there.
    let mut unconfirmed: Vec<(Instant, ExecId, ExecEnd)> = Vec::new();
    let mut probe: Option<Probe> = None;
    let mut probe_due = Instant::now() + keepalive;
    let mut closing = false;
    let mut lost: Option<String> = None;
    loop {
        let wait = probe_due
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        let mut next = match commands.recv_timeout(wait) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                closing = true;
                None
            }
        };
        while let Some(command) = next.take() {
            match command {
                LinkCommand::Exec { output, .. } if lost.is_some() => {
                    let why = lost.clone().unwrap_or_default();
                    let _ = output.send(ExecOutput::Exited(ExecEnd::Lost(why)));
                }
                LinkCommand::Exec {
                    id,
                    command,
                    output,
                } => match start_command(shell, id, &command, output, &ended_tx) {
                    Ok(r) => {
                        running.insert(id, r);
                    }
                    Err((output, why)) => {
                        let _ = output.send(ExecOutput::Exited(ExecEnd::Refused(why)));
                    }
                },
                LinkCommand::Write { id, bytes } => {
                    let failed = running.get_mut(&id).and_then(|r| {
                        let stdin = r.stdin.as_mut()?;
                        stdin.write_all(&bytes).err()
                    });
                    if let Some(e) = failed
                        && let Some(r) = running.remove(&id)
                    {
                        kill_running(shell, &r);
                        r.end(ExecEnd::Refused(format!("writing to it: {e}")));
                    }
                }
                LinkCommand::Kill { id } => {
                    if let Some(r) = running.get_mut(&id) {
                        r.stdin = None;
                        kill_group(r.pgid);
                        r.kill_pending = true;
                    }
                }
                LinkCommand::Clock { vmbench, reply } => {
                    // A command whose end was reported is over, whether or
                    // not its reader has told this loop yet.
                    running.retain(|_, r| {
                        r.output.lock().unwrap_or_else(|e| e.into_inner()).is_some()
                    });
                    let measured = if !running.is_empty() {
                        Err("commands are running".to_string())
                    } else if lost.is_some() {
                        Err("the guest is lost".to_string())
                    } else {
                        super::Shell::measure_clock(
                            shell,
                            &vmbench,
                            Instant::now() + CLOCK_PATIENCE,
                        )
                        .map_err(|e| format!("{e:#}"))
                    };
                    let _ = reply.send(measured);
                }
                LinkCommand::Close => closing = true,
            }
            next = match commands.try_recv() {
                Ok(command) => Some(command),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => {
                    closing = true;
                    None
                }
            };
        }
        // Commands that ended: reported by their reader, or held back
        // because the prefix failed before the guest ran anything, which
        // is what a guest that has gone looks like; a probe asked now tells.
        while let Ok((id, held)) = ended.try_recv() {
            match held {
                None => {
                    running.remove(&id);
                }
                Some(end) => {
                    unconfirmed.push((Instant::now(), id, end));
                    probe_due = Instant::now();
                }
            }
        }
        if closing {
            for r in running.values_mut() {
                if !r.kill_pending {
                    r.stdin = None;
                    kill_group(r.pgid);
                    r.kill_pending = true;
                }
            }
        }
        // A kill reaches the guest's group once the command has told it.
        for r in running.values_mut() {
            if r.kill_pending && r.guest_pid.lock().is_ok_and(|g| g.is_some()) {
                kill_running(shell, r);
                r.kill_pending = false;
            }
        }
        if lost.is_none() {
            match check_probe(&mut probe, silence_limit) {
                Err(why) => lost = Some(why),
                // The guest answered a probe started after these ended:
                // their ends stand as they came.
                Ok(Some(answered)) => unconfirmed.retain(|(at, id, end)| {
                    if *at > answered {
                        return true;
                    }
                    if let Some(r) = running.remove(id) {
                        r.end(end.clone());
                    }
                    false
                }),
                Ok(None) => {}
            }
        }
        if lost.is_none()
            && Instant::now() >= probe_due
            && let Some(j) = janitor.as_mut()
            && let Err(why) = j.heartbeat()
        {
            lost = Some(why);
        }
        if let Some(why) = lost {
            for (_, r) in running.drain() {
                kill_group(r.pgid);
                r.end(ExecEnd::Lost(why.clone()));
            }
            return Some(why);
        }
        if closing && running.is_empty() {
            if let Some(j) = janitor.take() {
                j.finish();
            }
            return None;
        }
        if Instant::now() >= probe_due {
            probe_due = Instant::now() + keepalive;
            if probe.is_none() {
                probe = Some(start_probe(shell));
            }
        }
    }
}

/// Starts `PREFIX sh -c :` (from the link's thread, which it dies with);
/// a thread of its own waits for it.
fn start_probe(shell: &Shell) -> Probe {
    let (tx, answer) = channel();
    let started = Instant::now();
    let prefix = shell_command(&shell.prefix);
    match shell
        .owned(":")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            let err = read_all(child.stderr.take());
            std::thread::spawn(move || {
                let answer = match child.wait() {
                    Ok(status) if status.success() => Ok(()),
                    Ok(status) => Err(format!(
                        "`{prefix}` no longer runs a command there: {}{}",
                        ExecEnd::of_status(status).describe(),
                        stderr_note(&joined(err))
                    )),
                    Err(e) => Err(format!("waiting for a liveness probe: {e}")),
                };
                let _ = tx.send(answer);
            });
        }
        Err(e) => {
            let _ = tx.send(Err(format!("cannot start a liveness probe: {e}")));
        }
    }
    Probe { started, answer }
}

/// What the probe in flight says: when it started, if it has come back
/// answered; Err when the guest is lost (the probe failed, or it has not
/// answered within the silence limit).
fn check_probe(
    probe: &mut Option<Probe>,
    silence_limit: Duration,
) -> Result<Option<Instant>, String> {
    let Some(p) = probe.as_ref() else {
        return Ok(None);
    };
    match p.answer.try_recv() {
        Ok(Ok(())) => {
            let started = p.started;
            *probe = None;
            Ok(Some(started))
        }
        Ok(Err(why)) => Err(why),
        Err(TryRecvError::Empty) if p.started.elapsed() > silence_limit => Err(format!(
            "the guest did not run a command within {} s",
            silence_limit.as_secs()
        )),
        Err(TryRecvError::Empty) => Ok(None),
        Err(TryRecvError::Disconnected) => Err("a liveness probe was lost".into()),
    }
}

/// Kills the command's group in the guest (through the prefix), for
/// commands this side's kill does not reach; not waited for beyond SHORT.
fn kill_running(shell: &Shell, r: &Running) {
    kill_group(r.pgid);
    let Some(pgid) = *r.guest_pid.lock().unwrap_or_else(|e| e.into_inner()) else {
        return;
    };
    // Its group where it leads one, else the command itself.
    let script =
        format!("kill -KILL -- -{pgid} 2>/dev/null || kill -KILL {pgid} 2>/dev/null; true");
    if let Ok(mut child) = shell
        .owned(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        std::thread::spawn(move || wait_within(&mut child, Instant::now() + SHORT));
    }
}

type Refused = (UnboundedSender<ExecOutput>, String);

/// A command that ended, and its end when its reader held it back.
type Ended = (ExecId, Option<ExecEnd>);

/// Starts a command and the reader that streams its output back and
/// reports its end, then tells the link on `ended`.
fn start_command(
    shell: &Shell,
    id: ExecId,
    command: &str,
    output: UnboundedSender<ExecOutput>,
    ended: &Sender<Ended>,
) -> Result<Running, Refused> {
    let mut child = match shell.start_owned(&wrap(command), Stdio::piped()) {
        Ok(child) => child,
        Err(e) => return Err((output, format!("{e:#}"))),
    };
    let stdin = child.stdin.take();
    let guest_pid = Arc::new(Mutex::new(None));
    let output = Arc::new(Mutex::new(Some(output)));
    let running = Running {
        pgid: child.id(),
        stdin,
        guest_pid: guest_pid.clone(),
        output: output.clone(),
        kill_pending: false,
    };
    let ended = ended.clone();
    std::thread::spawn(move || {
        let held = relay(child, &guest_pid, &output);
        let _ = ended.send((id, held));
    });
    Ok(running)
}

/// Streams a command's output line by line (its first line, its pid in
/// the guest, kept), then reports how it ended, unless the link did
/// already. A command that failed before the guest ran it is not
/// reported: its end is returned, for the link to confirm.
fn relay(
    mut child: Child,
    guest_pid: &Mutex<Option<u32>>,
    output: &Mutex<Option<UnboundedSender<ExecOutput>>>,
) -> Option<ExecEnd> {
    let send = |item: ExecOutput| {
        if let Some(output) = output.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            let _ = output.send(item);
        }
    };
    let stderr = child.stderr.take();
    std::thread::scope(|scope| {
        let errors = scope.spawn(|| {
            if let Some(stderr) = stderr {
                for line in std::io::BufRead::lines(BufReader::new(stderr)) {
                    let Ok(line) = line else { break };
                    send(ExecOutput::Stderr(line));
                }
            }
        });
        if let Some(stdout) = child.stdout.take() {
            for line in std::io::BufRead::lines(BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                let mut known = guest_pid.lock().unwrap_or_else(|e| e.into_inner());
                if known.is_none()
                    && let Some(pgid) = line.strip_prefix(PGID_TAG).and_then(|p| p.parse().ok())
                {
                    *known = Some(pgid);
                    continue;
                }
                drop(known);
                send(ExecOutput::Stdout(line));
            }
        }
        let _ = errors.join();
    });
    let end = match child.wait() {
        Ok(status) => ExecEnd::of_status(status),
        Err(e) => ExecEnd::Lost(format!("could not be waited for: {e}")),
    };
    let never_ran = guest_pid
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_none();
    if never_ran && !end.success() {
        return Some(end);
    }
    if let Some(output) = output.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = output.send(ExecOutput::Exited(end));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_table_gives_networks_and_gateways() {
        // /proc/net/route in a guest: default via 198.18.18.1, and
        // 198.18.18.0/24 on eth0.
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t011212C6\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t001212C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let found = routes(table);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].gateway, Ipv4Addr::new(198, 18, 18, 1));
        assert_eq!(found[0].mask, 0);
        assert!(found[1].gateway.is_unspecified());
        assert!(found[1].contains(Ipv4Addr::new(198, 18, 18, 1)));
        assert!(!found[1].contains(Ipv4Addr::new(198, 18, 19, 1)));
        assert!(routes("Iface\tDestination\tGateway\n").is_empty());
    }

    #[test]
    fn this_hosts_addresses_include_the_loopback() {
        assert!(host_ipv4s().contains(&Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn a_command_tells_its_process_first_and_stays_in_this_hosts_group() {
        assert_eq!(wrap("sleep 5"), "echo vmbench-pgid $$; exec sleep 5");
    }
}
