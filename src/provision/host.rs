//! What every technology's guests need from this host: a bridge of the
//! fleet's own, a veth or tap on it, a data disk, a cgroup with the
//! guest's shape, SSH keys made here. Each is noted in the state file
//! before it is made. Network changes go through `ip` (iproute2), whose
//! errors name the device; a failing command's stderr is the error.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::state::{Resource, State};

/// Runs a command to its end; its stdout, or its stderr as the error.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    outcome(program, args, &out)
}

fn outcome(program: &str, args: &[&str], out: &std::process::Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs a command to its end within `limit` (a daemon's client that may
/// never answer: virsh with a stuck libvirtd); past it, the command is
/// killed and that is the error.
pub fn run_within(program: &str, args: &[&str], limit: Duration) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let deadline = std::time::Instant::now() + limit;
    while child
        .try_wait()
        .map_err(|e| format!("{program}: {e}"))?
        .is_none()
    {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{program} {}` did not end within {} s",
                args.join(" "),
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    outcome(program, args, &out)
}

/// The cgroup hierarchies a guest's cgroup is made in: the one of cgroup
/// v2, or v1's cpu, cpuacct, cpuset and memory (and the empty v2 beside
/// them, which names the guest's processes for `below`-like readers).
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(path)];
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for hierarchy in ["cpu", "cpuacct", "cpuset", "memory", "unified", "systemd"] {
        let Ok(real) = root.join(hierarchy).canonicalize() else {
            continue;
        };
        let dir = real.join(path);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// A guest's shape as cgroup limits.
pub struct Shape<'a> {
    pub vcpus: u32,
    /// The memory limit; None for a VM, whose RAM is its own shape (a
    /// limit at its RAM would OOM-kill QEMU, which needs more than that).
    pub memory_mib: Option<u32>,
    pub cores: Option<&'a [usize]>,
}

/// Makes the guest's cgroup with its limits: CPU time of `vcpus` cores,
/// its memory, and its cores when placed.
pub fn make_cgroup(state: &mut State, path: &str, shape: &Shape) -> Result<(), String> {
    state.note(Resource::Cgroup { path: path.into() })?;
    let cpus = shape.cores.map(|c| {
        c.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    });
    let quota = u64::from(shape.vcpus) * 100_000;
    let memory = shape.memory_mib.map(|m| (u64::from(m) << 20).to_string());
    let write = |dir: &Path, file: &str, value: &str| {
        std::fs::write(dir.join(file), value)
            .map_err(|e| format!("{}/{file} = {value}: {e}", dir.display()))
    };
    for dir in cgroup_dirs(path) {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if dir.starts_with(V2_ROOT) && Path::new(V2_ROOT).join("cgroup.controllers").exists() {
            enable_v2_controllers(&dir, shape)?;
        }
        if dir.join("cgroup.controllers").exists() && dir.join("cpu.max").exists() {
            write(&dir, "cpu.max", &format!("{quota} 100000"))?;
        }
        if let (true, Some(memory)) = (dir.join("memory.max").exists(), &memory) {
            write(&dir, "memory.max", memory)?;
        }
        if dir.join("cpu.cfs_quota_us").exists() {
            write(&dir, "cpu.cfs_period_us", "100000")?;
            write(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
        }
        if let (true, Some(memory)) = (dir.join("memory.limit_in_bytes").exists(), &memory) {
            write(&dir, "memory.limit_in_bytes", memory)?;
        }
        if dir.join("cpuset.cpus").exists() {
            // v1 cpusets start empty (no task may join), the parent too.
            let parent = dir.parent().unwrap_or(&dir);
            let all =
                std::fs::read_to_string(parent.parent().unwrap_or(parent).join("cpuset.cpus"))
                    .unwrap_or_default();
            let mems =
                std::fs::read_to_string(parent.parent().unwrap_or(parent).join("cpuset.mems"))
                    .unwrap_or_default();
            for d in [parent, dir.as_path()] {
                if d.join("cpuset.mems").exists()
                    && std::fs::read_to_string(d.join("cpuset.mems"))
                        .unwrap_or_default()
                        .trim()
                        .is_empty()
                {
                    write(d, "cpuset.mems", mems.trim())?;
                }
                if std::fs::read_to_string(d.join("cpuset.cpus"))
                    .unwrap_or_default()
                    .trim()
                    .is_empty()
                {
                    write(d, "cpuset.cpus", all.trim())?;
                }
            }
            if let Some(cpus) = &cpus {
                write(&dir, "cpuset.cpus", cpus)?;
            }
        }
    }
    Ok(())
}

const V2_ROOT: &str = "/sys/fs/cgroup";

/// On cgroup v2 a cgroup has the limit files of a controller only when its
/// parent hands the controller down (`cgroup.subtree_control`), from the
/// root on; a shape whose controller this host does not offer is refused,
/// not left unapplied.
fn enable_v2_controllers(dir: &Path, shape: &Shape) -> Result<(), String> {
    let mut wanted = vec!["cpu"];
    if shape.memory_mib.is_some() {
        wanted.push("memory");
    }
    if shape.cores.is_some() {
        wanted.push("cpuset");
    }
    let ancestors: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .take_while(|a| a.starts_with(V2_ROOT))
        .collect();
    for ancestor in ancestors.into_iter().rev() {
        let offered = std::fs::read_to_string(ancestor.join("cgroup.controllers"))
            .map_err(|e| format!("{}/cgroup.controllers: {e}", ancestor.display()))?;
        for controller in &wanted {
            if !offered.split_whitespace().any(|c| c == *controller) {
                return Err(format!(
                    "the guest's shape needs the cgroup v2 {controller} controller, which {} \
                     does not offer (cgroup.controllers: {})",
                    ancestor.display(),
                    offered.trim()
                ));
            }
            let control = ancestor.join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&control).unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == *controller) {
                std::fs::write(&control, format!("+{controller}"))
                    .map_err(|e| format!("{} = +{controller}: {e}", control.display()))?;
            }
        }
    }
    Ok(())
}

/// The shell words that move the shell itself into the guest's cgroup
/// (in every hierarchy) before it execs the guest's first process, which
/// and whose children then stay there.
pub fn join_cgroup_script(path: &str) -> String {
    cgroup_dirs(path)
        .iter()
        .map(|dir| format!("echo $$ > {}/cgroup.procs", dir.display()))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The first process of the PID namespace of a process in network
/// namespace `netns` (a container's init: PID 1 in its own namespace).
pub fn namespace_leader(netns: &str) -> Option<u32> {
    let pids = run("ip", &["netns", "pids", netns]).ok()?;
    pids.split_whitespace().find_map(|pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let ns_pid = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
        let mut ids = ns_pid.split_whitespace();
        (ids.clone().count() > 1 && ids.next_back() == Some("1")).then(|| pid.parse().ok())?
    })
}

/// The fleet's bridge with the host's address on it: no IPv6, no
/// forwarding beyond it (the guests reach this host and each other).
pub fn make_bridge(state: &mut State, name: &str, host_address: &str) -> Result<(), String> {
    state.note(Resource::Bridge { name: name.into() })?;
    run("ip", &["link", "add", name, "type", "bridge"])?;
    no_ipv6(name);
    run(
        "ip",
        &["addr", "add", &format!("{host_address}/24"), "dev", name],
    )?;
    run("ip", &["link", "set", name, "up"]).map(drop)
}

pub fn no_ipv6(link: &str) {
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{link}/disable_ipv6"), "1");
}

/// A network namespace with a veth whose host end is on the bridge and
/// whose guest end, `eth0`, has the guest's address.
pub fn make_netns(
    state: &mut State,
    netns: &str,
    veth: &str,
    bridge: &str,
    address: &str,
) -> Result<(), String> {
    state.note(Resource::Netns { name: netns.into() })?;
    run("ip", &["netns", "add", netns])?;
    state.note(Resource::Link { name: veth.into() })?;
    run(
        "ip",
        &[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ],
    )?;
    no_ipv6(veth);
    run("ip", &["link", "set", veth, "master", bridge, "up"])?;
    run(
        "ip",
        &[
            "netns",
            "exec",
            netns,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv4.ip_forward=0",
        ],
    )?;
    run("ip", &["-n", netns, "link", "set", "lo", "up"])?;
    run(
        "ip",
        &[
            "-n",
            netns,
            "addr",
            "add",
            &format!("{address}/24"),
            "dev",
            "eth0",
        ],
    )?;
    run("ip", &["-n", netns, "link", "set", "eth0", "up"]).map(drop)
}

/// A tap on the bridge, for a VM.
pub fn make_tap(state: &mut State, tap: &str, bridge: &str) -> Result<(), String> {
    state.note(Resource::Link { name: tap.into() })?;
    run("ip", &["tuntap", "add", tap, "mode", "tap"])?;
    no_ipv6(tap);
    run("ip", &["link", "set", tap, "master", bridge, "up"]).map(drop)
}

/// A data disk: an ext4 file system of `mib` MiB on a file, initialised
/// eagerly (ext4's lazy init would write during benchmarks), attached to
/// a loop device with direct I/O; the device is returned.
pub fn make_disk(
    state: &mut State,
    image: &Path,
    mib: u32,
    label: &str,
    seed: Option<&Path>,
) -> Result<String, String> {
    let text = image.to_string_lossy().into_owned();
    // Root's alone: a guest's disk holds its data, and a seeded one its
    // private host key until the guest's init takes it.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(image)
        .map_err(|e| format!("{text}: {e}"))?;
    file.set_len(u64::from(mib) << 20)
        .map_err(|e| format!("{text}: {e}"))?;
    let seed = seed.map(|dir| dir.to_string_lossy().into_owned());
    let mut args = vec![
        "-q",
        "-F",
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0",
        "-L",
        label,
    ];
    if let Some(dir) = &seed {
        args.extend(["-d", dir.as_str()]);
    }
    args.push(&text);
    run("mkfs.ext4", &args)?;
    state.note(Resource::Loop {
        image: image.to_path_buf(),
    })?;
    Ok(
        run("losetup", &["--find", "--show", "--direct-io=on", &text])?
            .trim()
            .to_string(),
    )
}

/// An ed25519 key pair made here (`path` and `path.pub`); the public half.
pub fn make_key(path: &Path, comment: &str) -> Result<String, String> {
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            &path.to_string_lossy(),
        ],
    )?;
    let public = std::fs::read_to_string(path.with_extension("pub"))
        .map_err(|e| format!("{}.pub: {e}", path.display()))?;
    Ok(public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" "))
}

/// Whether an SSH server speaks at `address:22` now.
pub fn answers(address: &str) -> bool {
    address
        .parse()
        .is_ok_and(|ip| speaks_ssh(SocketAddr::new(ip, 22)))
}

/// Whether `addr` sends an SSH version line: a stopped sshd's socket still
/// completes the TCP handshake from its backlog, so that is not enough.
fn speaks_ssh(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut banner = [0u8; 4];
    stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-"
}

/// The last `lines` lines of a log file, for an error.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    if tail.trim().is_empty() {
        format!("({} is empty)", path.display())
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn a_listener_that_does_not_speak_ssh_is_not_an_answer() {
        let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
        // Accepted from the backlog, never served: a stopped sshd.
        assert!(!speaks_ssh(silent.local_addr().expect("addr")));
        let speaking = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = speaking.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut peer, _) = speaking.accept().expect("accept");
            peer.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").expect("write");
        });
        assert!(speaks_ssh(addr));
        server.join().expect("server");
    }
}
