//! Reaching a guest over SSH (ssh2, which is blocking): connect with the host
//! key checked against known_hosts, authenticate, and then hand the session
//! to one thread that owns it for the rest of the session.
//!
//! That thread runs the session in non-blocking mode and polls its socket and
//! a wake-up eventfd, so that staged commands can be released at once by
//! writing one byte to each, while their output streams back line by line.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use ssh2::{
    BlockDirections, Channel, CheckResult, HashType, KnownHostFileKind, KnownHostKeyFormat,
    MethodType, Session,
};
use tokio::sync::mpsc::UnboundedSender;

use super::endpoint::{Endpoint, LinkPolicy};
use super::guest_link::{GuestLink, LinkCommand, PGID_TAG, wrap};
use super::shell::{Reached, Shell};
use super::{ExecEnd, ExecId, ExecOutput};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Each blocking libssh2 call (handshake, auth, a channel request) gives up
/// after this long.
const SESSION_TIMEOUT_MS: u32 = 15_000;
/// A blocking call made while the session is ending, or to kill a
/// command, gives up after this long: a guest that went silent must not
/// hold up a stop.
const SHORT_TIMEOUT_MS: u32 = 2_000;
/// How long a clock measurement between phases may take on the link's
/// thread (each of its blocking steps also gives up after SHORT_TIMEOUT_MS).
const CLOCK_PATIENCE: Duration = Duration::from_secs(3);
/// sshd drops unauthenticated connections beyond MaxStartups (10 by
/// default); vmbench never has more handshakes than this in flight.
const MAX_HANDSHAKES: usize = 8;
const HANDSHAKE_ATTEMPTS: u32 = 3;
const PREFERRED_CIPHERS: &str = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,aes128-ctr,aes256-ctr,chacha20-poly1305@openssh.com";

/// Why a guest could not be reached. Host-key problems are never retried.
#[derive(Debug)]
pub enum ConnectError {
    UnknownHostKey {
        fingerprint: String,
        known_hosts: PathBuf,
    },
    ChangedHostKey {
        fingerprint: String,
        known_hosts: PathBuf,
    },
    Other(anyhow::Error),
}

impl ConnectError {
    /// The error as the operator reads it, with the commands that fix it
    /// written out for this plan file and host.
    pub fn describe(&self, plan: &str, host: &str) -> String {
        match self {
            ConnectError::UnknownHostKey {
                fingerprint,
                known_hosts,
            } => format!(
                "unknown host key {fingerprint} (not in {}); refused. If it is the guest's, \
                 accept it with: vmbench check {plan} --accept-new",
                known_hosts.display()
            ),
            ConnectError::ChangedHostKey {
                fingerprint,
                known_hosts,
            } => format!(
                "HOST KEY CHANGED: the guest offers {fingerprint}, which differs from the key \
                 in {0}; refused. If the change is expected, remove the old key with: \
                 ssh-keygen -R {host} -f {0}",
                known_hosts.display()
            ),
            ConnectError::Other(e) => format!("{e:#}"),
        }
    }
}

impl From<anyhow::Error> for ConnectError {
    fn from(e: anyhow::Error) -> Self {
        ConnectError::Other(e)
    }
}

/// What to do with a host key known_hosts does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownKey {
    Refuse,
    /// Like OpenSSH's StrictHostKeyChecking=accept-new: write it down.
    AcceptNew,
}

/// An authenticated session and what was learned while opening it.
pub struct Connection {
    pub session: Session,
    pub stream: TcpStream,
    /// This host's address as the guest sees it, e.g. for a network sink.
    pub local_ip: IpAddr,
    pub host_key_added: bool,
    pub connect_time: Duration,
    /// How long the guest may stay silent before it counts as lost.
    pub silence_limit: Duration,
}

/// A bounded number of guests at one stage of their bring-up. Waiting for a
/// slot happens outside any libssh2 call, so it counts against no timeout:
/// 64 guests handshaking and uploading at once on 2 cores starved each
/// other's crypto past their 15 s until a third of them failed.
pub struct Slots {
    in_flight: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

/// SSH handshakes and authentications in flight (sshd also drops
/// unauthenticated connections beyond MaxStartups, 10 by default).
static HANDSHAKES: Slots = Slots::new(MAX_HANDSHAKES);

/// Guests being set up at once: their probe and vmbench's upload (hashing
/// and encrypting megabytes each). Each step starts shells on the guests,
/// and a guest's shell may be slow to start (a `.bashrc` that starts
/// pyenv, whose lock all namespace guests share): 128 probes at once on 2
/// cores outran a 30 s patience for half of them.
pub static UPLOADS: Slots = Slots::new(4);

/// Clock probes at bring-up in flight: each starts vmbench on its guest.
pub static CLOCK_PROBES: Slots = Slots::new(8);

impl Slots {
    pub const fn new(max: usize) -> Self {
        Slots {
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
            max,
        }
    }

    pub fn take(&'static self) -> Slot {
        let mut n = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= self.max {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot(self)
    }
}

pub struct Slot(&'static Slots);

impl Drop for Slot {
    fn drop(&mut self) {
        let mut n = self.0.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        self.0.freed.notify_one();
    }
}

pub fn connect(machine: &Endpoint, unknown: UnknownKey) -> Result<Connection, ConnectError> {
    let began = Instant::now();
    let endpoint = machine.socket_text();
    let addr = endpoint
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {endpoint}"))?
        .next()
        .ok_or_else(|| anyhow!("{endpoint} resolves to no address"))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let slot = HANDSHAKES.take();
        match open_session(addr) {
            Ok((session, stream)) => {
                let host_key_added = check_host_key(&session, machine, unknown)?;
                authenticate(&session, machine)?;
                drop(slot);
                let local_ip = stream
                    .local_addr()
                    .map(|a| a.ip())
                    .context("local address")?;
                return Ok(Connection {
                    session,
                    stream,
                    local_ip,
                    host_key_added,
                    connect_time: began.elapsed(),
                    silence_limit: machine.policy.silence_limit(),
                });
            }
            // A refused or unreachable address does not get better by trying
            // again; a handshake cut short (sshd shedding load) may.
            Err(e) if attempt < HANDSHAKE_ATTEMPTS && !is_unreachable(&e) => {
                drop(slot);
                std::thread::sleep(Duration::from_millis(200 << attempt));
            }
            Err(e) => return Err(e.context(format!("cannot reach {endpoint}")).into()),
        }
    }
}

fn is_unreachable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|io| {
        matches!(
            io.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::TimedOut | ErrorKind::HostUnreachable
        ) || io.raw_os_error() == Some(libc::ENETUNREACH)
    })
}

fn open_session(addr: SocketAddr) -> Result<(Session, TcpStream)> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_nodelay(true)?;
    let mut session = Session::new().context("libssh2 session")?;
    session.set_timeout(SESSION_TIMEOUT_MS);
    // AES through OpenSSL uses the CPU's AES instructions; libssh2's default
    // preference (chacha20-poly1305 in its own C) costs several times the
    // CPU for the same bytes, which shows when the binary is uploaded.
    for method in [MethodType::CryptCs, MethodType::CryptSc] {
        session
            .method_pref(method, PREFERRED_CIPHERS)
            .context("cipher preference")?;
    }
    session.set_tcp_stream(stream.try_clone()?);
    session.handshake().context("SSH handshake")?;
    Ok((session, stream))
}

/// Ok(true) when an unknown key was accepted and written down.
fn check_host_key(
    session: &Session,
    machine: &Endpoint,
    unknown: UnknownKey,
) -> Result<bool, ConnectError> {
    let path = machine.known_hosts.clone();
    let (key, key_type) = session
        .host_key()
        .ok_or_else(|| anyhow!("the guest sent no host key"))?;
    let fingerprint = session
        .host_key_hash(HashType::Sha256)
        .map(|h| {
            format!(
                "SHA256:{}",
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(h)
            )
        })
        .unwrap_or_else(|| "(no fingerprint)".into());
    let mut known = session.known_hosts().context("known_hosts")?;
    if path.exists() {
        known
            .read_file(&path, KnownHostFileKind::OpenSSH)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    match known.check_port(&machine.address, machine.port, key) {
        CheckResult::Match => Ok(false),
        CheckResult::Mismatch => Err(ConnectError::ChangedHostKey {
            fingerprint,
            known_hosts: path,
        }),
        CheckResult::NotFound if unknown == UnknownKey::AcceptNew => {
            let name = machine.known_hosts_name();
            let format = KnownHostKeyFormat::from(key_type);
            known
                .add(&name, key, "", format)
                .context("adding the host key")?;
            let added = known
                .iter()
                .context("known hosts")?
                .into_iter()
                .rfind(|h| h.name() == Some(name.as_str()))
                .ok_or_else(|| anyhow!("the added key is not listed"))?;
            let line = known
                .write_string(&added, KnownHostFileKind::OpenSSH)
                .context("formatting the host key")?;
            append_line(&path, &line)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(true)
        }
        CheckResult::NotFound => Err(ConnectError::UnknownHostKey {
            fingerprint,
            known_hosts: path,
        }),
        CheckResult::Failure => Err(anyhow!("checking the host key failed").into()),
    }
}

/// Appends rather than rewrites, so that nothing libssh2 cannot parse
/// (comments, markers) is lost from the user's file.
fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mut text = line.trim_end().to_string();
    text.push('\n');
    file.write_all(text.as_bytes())
}

fn authenticate(session: &Session, machine: &Endpoint) -> Result<()> {
    let user = machine.user.as_str();
    let mut tried = Vec::new();
    if let Some(key) = &machine.identity {
        if !key.exists() {
            bail!("identity file {} does not exist", key.display());
        }
        match session.userauth_pubkey_file(user, None, key, None) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(format!("key {}: not accepted", key.display())),
            Err(e) => tried.push(format!("key {}: {}", key.display(), e.message())),
        }
        bail!("authentication as {user} failed ({})", tried.join("; "));
    }
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match session.userauth_agent(user) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push("agent: not accepted".into()),
            Err(e) => tried.push(format!("agent: {}", e.message())),
        }
    }
    for name in ["id_ed25519", "id_ecdsa", "id_rsa"] {
        let key = crate::input::expand_home(&format!("~/.ssh/{name}"));
        if !key.exists() {
            continue;
        }
        match session.userauth_pubkey_file(user, None, &key, None) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(format!("{}: not accepted", key.display())),
            Err(e) => tried.push(format!("{}: {}", key.display(), e.message())),
        }
    }
    if tried.is_empty() {
        bail!("no way to authenticate as {user}: give `identity` in the plan, or run an SSH agent");
    }
    bail!("authentication as {user} failed ({})", tried.join("; "))
}

/// Runs a command that may take longer than a blocking call usually may,
/// giving it `patience` for each step.
pub fn run_within(
    session: &Session,
    command: &str,
    patience: Duration,
) -> Result<(i32, String, String)> {
    session.set_timeout(patience.as_millis().min(u128::from(u32::MAX)) as u32);
    let result = run(session, command);
    session.set_timeout(SESSION_TIMEOUT_MS);
    result
}

/// Runs a short command to completion in blocking mode: (exit code, stdout, stderr).
pub fn run(session: &Session, command: &str) -> Result<(i32, String, String)> {
    let mut channel = session.channel_session()?;
    channel.exec(command)?;
    let mut out = String::new();
    channel.read_to_string(&mut out)?;
    let mut err = String::new();
    channel.stderr().read_to_string(&mut err)?;
    channel.wait_close()?;
    Ok((channel.exit_status()?, out, err))
}

impl Connection {
    pub fn reached(&self) -> Reached {
        Reached {
            local_ip: self.local_ip,
            connect_time: self.connect_time,
            silence_limit: self.silence_limit,
        }
    }
}

/// How much of an upload must go through within the session's timeout.
const UPLOAD_CHUNK: usize = 64 << 10;

impl Shell for Session {
    type Janitor = Janitor;

    fn run(&self, script: &str) -> Result<(i32, String, String)> {
        run(self, script)
    }

    fn run_within(&self, script: &str, patience: Duration) -> Result<(i32, String, String)> {
        run_within(self, script, patience)
    }

    fn upload(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let sftp = self.sftp().context("SFTP")?;
        let mut file = sftp
            .create(Path::new(path))
            .with_context(|| format!("creating {path}"))?;
        // Each chunk is one blocking call under the session's timeout: an
        // upload fails when a chunk makes no way for that long (a dead
        // guest), never because a slow but moving transfer takes long in all.
        for (index, chunk) in bytes.chunks(UPLOAD_CHUNK).enumerate() {
            file.write_all(chunk).with_context(|| {
                format!(
                    "{} of {} KiB sent, then no progress",
                    (index * UPLOAD_CHUNK) >> 10,
                    bytes.len() >> 10
                )
            })?;
        }
        Ok(())
    }

    fn measure_clock(&self, vmbench: &str, deadline: Instant) -> Result<(i64, u64)> {
        let mut channel = self.channel_session()?;
        channel.exec(&format!("{} workload clock", super::shell_quote(vmbench)))?;
        let best = {
            let mut reader = std::io::BufReader::new(channel.stream(0));
            let mut writer = channel.stream(0);
            super::shell::clock_rounds(&mut reader, &mut writer, deadline)
        };
        channel.send_eof()?;
        channel.wait_eof()?;
        channel.wait_close()?;
        best
    }

    fn start_janitor(&self, dir: &str, patience: Duration) -> Result<Janitor> {
        Janitor::start(self, dir, patience)
    }

    fn finish_janitor(janitor: Janitor) {
        janitor.finish();
    }
}

/// The janitor of vmbench's folder on a guest (`shell::janitor_script`),
/// on a channel of its own.
pub struct Janitor {
    channel: Channel,
}

impl Janitor {
    /// Starts the janitor of `dir`.
    pub fn start(session: &Session, dir: &str, patience: Duration) -> Result<Self> {
        let mut channel = session.channel_session()?;
        channel.exec(&super::shell::janitor_script(dir, patience))?;
        Ok(Janitor { channel })
    }

    fn heartbeat(&mut self) {
        let _ = self.channel.write(b"\n");
    }

    /// A channel with nothing to clean up, for a guest vmbench was not put on.
    fn keeper(session: &Session) -> Result<Self> {
        let mut channel = session.channel_session()?;
        channel.exec("cat >/dev/null")?;
        Ok(Janitor { channel })
    }

    /// Reads whatever the session has received, so that a packet no channel
    /// asked for (a keepalive reply) cannot leave the socket readable for
    /// ever and spin the loop that polls it. Err when the connection broke.
    fn drain(&mut self, buf: &mut [u8]) -> Result<(), String> {
        loop {
            match self.channel.read(buf) {
                Ok(n) if n > 0 => {}
                Ok(_) => return Ok(()),
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) => return Err(format!("reading: {e}")),
            }
        }
    }

    /// Ends the janitor's input and waits until it has cleaned up. Needs the
    /// session in blocking mode.
    pub fn finish(mut self) {
        let _ = self.channel.send_eof();
        let _ = self.channel.wait_eof();
        let _ = self.channel.wait_close();
    }
}

struct Running {
    channel: Channel,
    output: UnboundedSender<ExecOutput>,
    pgid: Option<u32>,
    stdout: LineBuffer,
    stderr: LineBuffer,
    pending: Vec<u8>,
    kill_requested: bool,
    closing: bool,
}

#[derive(Default)]
struct LineBuffer {
    partial: Vec<u8>,
}

impl LineBuffer {
    fn push(&mut self, bytes: &[u8], mut each: impl FnMut(String)) {
        self.partial.extend_from_slice(bytes);
        while let Some(nl) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]);
            each(text.trim_end_matches('\r').to_string());
        }
    }

    fn finish(&mut self, each: impl FnOnce(String)) {
        if !self.partial.is_empty() {
            each(String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned());
        }
    }
}

/// Hands an authenticated session to its own thread and returns the handle.
/// `janitor` is finished when the link closes (without one, a keeper
/// channel stands in: some channel must be read for keepalive replies to be
/// consumed). When the connection breaks, `on_lost` is called once with
/// the reason, on the session thread, after every running command was told.
pub fn spawn_link(
    connection: Connection,
    name: &str,
    janitor: Option<Janitor>,
    policy: LinkPolicy,
    on_lost: Box<dyn FnOnce(String) + Send>,
) -> std::io::Result<GuestLink> {
    let janitor = match janitor {
        Some(j) => j,
        None => Janitor::keeper(&connection.session).map_err(std::io::Error::other)?,
    };
    // SAFETY: eventfd returns a new descriptor or -1, checked below.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
    let thread_wake = wake.clone();
    GuestLink::spawn(
        format!("ssh-{name}"),
        Some(wake),
        move |rx| link_loop(connection, rx, &thread_wake, janitor, policy),
        on_lost,
    )
}

/// `TCP_ESTABLISHED` of the kernel's tcp_states.h (libc does not export it).
const TCP_ESTABLISHED: u8 = 1;

/// How long the guest's side of the connection has sent nothing, and
/// whether TCP still counts it as established (a FIN or reset ends that).
/// Keepalives ask for a reply every few seconds, so a live guest is never
/// silent for long; the kernel keeps the time of the last data received.
fn silence(stream: &TcpStream) -> Option<(Duration, bool)> {
    // SAFETY: tcp_info is plain data; zeroes are a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    (rc == 0).then(|| {
        (
            Duration::from_millis(u64::from(info.tcpi_last_data_recv)),
            info.tcpi_state == TCP_ESTABLISHED,
        )
    })
}

/// True when a blocking libssh2 call gave up waiting (LIBSSH2_ERROR_TIMEOUT).
fn is_timeout(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|cause| cause.downcast_ref::<ssh2::Error>())
        .any(|e| matches!(e.code(), ssh2::ErrorCode::Session(-9)))
}

fn would_block(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::WouldBlock
}

fn ssh_would_block(e: &ssh2::Error) -> bool {
    matches!(e.code(), ssh2::ErrorCode::Session(-37))
}

/// Runs the session until it is closed (None) or lost (the reason).
fn link_loop(
    connection: Connection,
    commands: Receiver<LinkCommand>,
    wake: &OwnedFd,
    mut janitor: Janitor,
    policy: LinkPolicy,
) -> Option<String> {
    let Connection {
        session, stream, ..
    } = connection;
    let silence_limit = policy.silence_limit();
    // Replies wanted: they are what tells a live guest from a silent one
    // (see `silence`). The janitor's channel is read every turn, which
    // consumes them. Sent by this loop when due (`keepalive_send`); libssh2
    // needs the interval configured for that.
    let keepalive = policy.keepalive.as_secs().max(1) as u32;
    session.set_keepalive(true, keepalive);
    let blocking = Blocking {
        session: &session,
        keepalive,
    };
    let mut running: HashMap<ExecId, Running> = HashMap::new();
    let mut buf = vec![0u8; 32 << 10];
    let mut keepalive_due = Instant::now();
    let mut closing = false;
    let mut lost: Option<String> = None;
    session.set_blocking(false);
    loop {
        loop {
            match commands.try_recv() {
                Ok(LinkCommand::Exec { output, .. }) if lost.is_some() => {
                    let why = lost.clone().unwrap_or_default();
                    let _ = output.send(ExecOutput::Exited(ExecEnd::Lost(why)));
                }
                Ok(LinkCommand::Exec {
                    id,
                    command,
                    output,
                }) => match start(&blocking, &command, silence_limit) {
                    Ok(channel) => {
                        running.insert(
                            id,
                            Running {
                                channel,
                                output,
                                pgid: None,
                                stdout: LineBuffer::default(),
                                stderr: LineBuffer::default(),
                                pending: Vec::new(),
                                kill_requested: false,
                                closing: false,
                            },
                        );
                    }
                    // No answer within the silence limit: the guest is as
                    // good as lost. An answer that refuses (sshd's
                    // MaxSessions, say) fails this command only.
                    Err(e) if is_timeout(&e) => {
                        let why = format!(
                            "the guest did not answer a request to start a command within {} s",
                            silence_limit.as_secs()
                        );
                        lost.get_or_insert(why.clone());
                        let _ = output.send(ExecOutput::Exited(ExecEnd::Lost(why)));
                    }
                    Err(e) => {
                        let _ = output.send(ExecOutput::Exited(ExecEnd::Refused(format!(
                            "the guest refused to start it: {e:#}"
                        ))));
                    }
                },
                Ok(LinkCommand::Write { id, bytes }) => {
                    if let Some(r) = running.get_mut(&id) {
                        r.pending.extend_from_slice(&bytes);
                    }
                }
                Ok(LinkCommand::Kill { id }) => {
                    if let Some(r) = running.get_mut(&id) {
                        r.kill_requested = true;
                    }
                }
                Ok(LinkCommand::Clock { vmbench, reply }) => {
                    let measured = if !running.is_empty() {
                        Err("commands are running".to_string())
                    } else if lost.is_some() {
                        Err("the guest is lost".to_string())
                    } else {
                        // A few round trips, blocking: nothing else runs now.
                        blocking.run(SHORT_TIMEOUT_MS, || {
                            Shell::measure_clock(
                                &session,
                                &vmbench,
                                Instant::now() + CLOCK_PATIENCE,
                            )
                            .map_err(|e| format!("{e:#}"))
                        })
                    };
                    let _ = reply.send(measured);
                }
                Ok(LinkCommand::Close) | Err(TryRecvError::Disconnected) => closing = true,
                Err(TryRecvError::Empty) => break,
            }
        }
        if closing {
            for r in running.values_mut() {
                r.kill_requested = true;
            }
        }
        // Writes first: a release byte must not wait behind reading output.
        // A write that fails fails its command only (its channel may be
        // closing); a broken connection shows in the reads and the silence.
        let mut unwritable = Vec::new();
        for (id, r) in running.iter_mut() {
            while !r.pending.is_empty() {
                match r.channel.write(&r.pending) {
                    Ok(n) => {
                        r.pending.drain(..n);
                    }
                    Err(e) if would_block(&e) => break,
                    Err(e) => {
                        unwritable.push((*id, format!("writing to it: {e}")));
                        break;
                    }
                }
            }
        }
        for (id, why) in unwritable {
            if let Some(r) = running.remove(&id) {
                if let Some(pgid) = r.pgid {
                    kill_group(&blocking, pgid);
                }
                let _ = r.output.send(ExecOutput::Exited(ExecEnd::Refused(why)));
            }
        }
        let mut kills = Vec::new();
        for r in running.values_mut() {
            if let Err(e) = pump_output(r, &mut buf) {
                lost.get_or_insert(e);
            }
            // A kill asked before the command told its process group waits
            // for it, rather than being dropped.
            if r.kill_requested
                && !r.closing
                && let Some(pgid) = r.pgid
            {
                kills.push(pgid);
                r.kill_requested = false;
            }
        }
        for pgid in kills {
            kill_group(&blocking, pgid);
        }
        if let Err(e) = janitor.drain(&mut buf) {
            lost.get_or_insert(e);
        }
        running.retain(|_, r| !finished(r, &stream));
        match silence(&stream) {
            Some((_, false)) => {
                lost.get_or_insert("the guest closed the connection".into());
            }
            Some((quiet, true)) if quiet > silence_limit => {
                lost.get_or_insert(format!(
                    "nothing heard from the guest for {} s (keepalives unanswered)",
                    quiet.as_secs()
                ));
            }
            _ => {}
        }
        if let Some(why) = lost {
            for (_, r) in running.drain() {
                let _ = r
                    .output
                    .send(ExecOutput::Exited(ExecEnd::Lost(why.clone())));
            }
            // No goodbye on a broken connection: it would only block.
            return Some(why);
        }
        if closing && running.is_empty() {
            // A guest that went silent must not hold up a stop for long.
            blocking.run(SHORT_TIMEOUT_MS, || {
                janitor.finish();
                let _ = session.disconnect(None, "vmbench session over", None);
            });
            return None;
        }
        if Instant::now() >= keepalive_due {
            janitor.heartbeat();
            match session.keepalive_send() {
                Ok(next) => {
                    keepalive_due = Instant::now() + Duration::from_secs(u64::from(next.max(1)))
                }
                Err(e) if ssh_would_block(&e) => {
                    keepalive_due = Instant::now() + Duration::from_secs(1)
                }
                Err(e) => lost = Some(format!("keepalive: {}", e.message())),
            }
        }
        let wait = keepalive_due
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(500));
        wait_ready(&session, &stream, wake, wait);
    }
}

/// Opens a channel and starts the command. Blocking for these two requests
/// (a round trip each) keeps the non-blocking state machine small; commands
/// are staged before a barrier, never while a phase is timed. A guest that
/// does not answer them within its silence limit is as good as lost.
fn start(blocking: &Blocking, command: &str, patience: Duration) -> Result<Channel> {
    let timeout = patience
        .as_millis()
        .clamp(1_000, SESSION_TIMEOUT_MS as u128) as u32;
    blocking.run(timeout, || {
        let mut channel = blocking.session.channel_session()?;
        channel.exec(&wrap(command))?;
        Ok(channel)
    })
}

fn kill_group(blocking: &Blocking, pgid: u32) {
    // The kill runs on a channel of its own; its end is not waited for here
    // because a closed channel whose command still runs blocks ssh2.
    blocking.run(SHORT_TIMEOUT_MS, || {
        let _ = run(
            blocking.session,
            &format!("kill -KILL -- -{pgid} 2>/dev/null; true"),
        );
    });
}

/// Blocking calls on a link's session, each given its whole timeout.
///
/// libssh2 waits in a blocking call only until its next keepalive falls due
/// and then fails the call as "Timed out waiting on socket" (`wait_socket`
/// polls for the shorter of the two and takes an empty poll for a timeout),
/// so with keepalives on, a call's timeout is really the keepalive interval
/// or less: a guest slow to answer under load (16 guests bringing up at once
/// on 2 cores) failed in a second or two. Keepalives are off for the call;
/// the link loop sends the one that fell due when it is back.
struct Blocking<'a> {
    session: &'a Session,
    keepalive: u32,
}

impl Blocking<'_> {
    fn run<T>(&self, timeout_ms: u32, call: impl FnOnce() -> T) -> T {
        self.session.set_keepalive(true, 0);
        self.session.set_timeout(timeout_ms);
        self.session.set_blocking(true);
        let result = call();
        self.session.set_blocking(false);
        self.session.set_timeout(SESSION_TIMEOUT_MS);
        self.session.set_keepalive(true, self.keepalive);
        result
    }
}

/// Reads what is available; Err when the connection broke.
fn pump_output(r: &mut Running, buf: &mut [u8]) -> Result<(), String> {
    let mut lines = Vec::new();
    loop {
        match r.channel.read(buf) {
            Ok(0) => break,
            Ok(n) => r.stdout.push(&buf[..n], |l| lines.push((false, l))),
            Err(e) if would_block(&e) => break,
            Err(e) => return Err(format!("reading: {e}")),
        }
    }
    loop {
        match r.channel.stderr().read(buf) {
            Ok(0) => break,
            Ok(n) => r.stderr.push(&buf[..n], |l| lines.push((true, l))),
            Err(e) if would_block(&e) => break,
            Err(e) => return Err(format!("reading: {e}")),
        }
    }
    for (is_err, line) in lines {
        if !is_err && r.pgid.is_none() {
            if let Some(pgid) = line.strip_prefix(PGID_TAG).and_then(|p| p.parse().ok()) {
                r.pgid = Some(pgid);
                continue;
            }
        }
        let _ = r.output.send(if is_err {
            ExecOutput::Stderr(line)
        } else {
            ExecOutput::Stdout(line)
        });
    }
    Ok(())
}

/// True once the channel is closed and its end was reported. A channel
/// that ends as its connection does (sshd killed with the guest) carries no
/// exit status, which libssh2 reports as 0: that end is a lost guest, not a
/// command that succeeded.
fn finished(r: &mut Running, stream: &TcpStream) -> bool {
    if !r.channel.eof() {
        return false;
    }
    if !r.closing {
        r.stdout
            .finish(|l| drop(r.output.send(ExecOutput::Stdout(l))));
        r.stderr
            .finish(|l| drop(r.output.send(ExecOutput::Stderr(l))));
        r.closing = true;
    }
    match r.channel.close().and_then(|()| r.channel.wait_close()) {
        Err(e) if ssh_would_block(&e) => false,
        _ => {
            let exit = match r.channel.exit_signal() {
                Ok(s) if s.exit_signal.is_some() => {
                    ExecEnd::Signal(s.exit_signal.unwrap_or_default())
                }
                _ if silence(stream).is_some_and(|(_, established)| !established) => {
                    ExecEnd::Lost("the guest closed the connection".into())
                }
                _ => ExecEnd::Code(r.channel.exit_status().unwrap_or(-1)),
            };
            let _ = r.output.send(ExecOutput::Exited(exit));
            true
        }
    }
}

fn wait_ready(session: &Session, stream: &TcpStream, wake: &OwnedFd, wait: Duration) {
    let mut socket_events = libc::POLLIN;
    if matches!(
        session.block_directions(),
        BlockDirections::Outbound | BlockDirections::Both
    ) {
        socket_events |= libc::POLLOUT;
    }
    let mut fds = [
        libc::pollfd {
            fd: stream.as_raw_fd(),
            events: socket_events,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: polls two descriptors this thread keeps open.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, wait.as_millis() as libc::c_int) };
    if fds[1].revents & libc::POLLIN != 0 {
        let mut count = 0u64;
        // SAFETY: reads the eventfd's 8-byte counter into a live u64.
        unsafe {
            libc::read(
                wake.as_raw_fd(),
                (&raw mut count).cast(),
                std::mem::size_of::<u64>(),
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_split_into_lines_across_reads() {
        let mut buffer = LineBuffer::default();
        let mut lines = Vec::new();
        buffer.push(b"vmbench-pgid 42\n{\"kind\":", |l| lines.push(l));
        buffer.push(b"\"ready\"}\r\npartial", |l| lines.push(l));
        assert_eq!(lines, ["vmbench-pgid 42", "{\"kind\":\"ready\"}"]);
        buffer.finish(|l| lines.push(l));
        assert_eq!(lines.last().map(String::as_str), Some("partial"));
    }

    #[test]
    fn every_command_reports_its_process_group_first() {
        assert_eq!(
            wrap("/tmp/x/vmbench workload cpu"),
            "echo vmbench-pgid $$; exec /tmp/x/vmbench workload cpu"
        );
    }

    #[test]
    fn exits_say_how_the_command_ended() {
        assert!(ExecEnd::Code(0).success());
        assert!(!ExecEnd::Signal("KILL".into()).success());
        assert_eq!(
            ExecEnd::Signal("KILL".into()).describe(),
            "killed by SIGKILL"
        );
        assert_eq!(ExecEnd::Code(3).describe(), "exited with status 3");
    }
}
