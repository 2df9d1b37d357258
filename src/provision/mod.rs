//! Making guests: a plan's `[[fleet]]`s become running guests on bridges
//! of vmbench's own, each technology behind one trait (create, ready,
//! describe, destroy), everything noted in a state file before it is made
//! and removed at the end of the session — normal end, a signal, a panic,
//! a failed bring-up — or by `vmbench fleet down` after a kill -9.

mod gvisor;
mod host;
pub mod image;
pub mod libvirt;
mod netns;
mod nspawn;
mod qemu;
pub mod state;
mod uml;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use crate::event::{FleetGuestRecord, FleetRecord};
use crate::plan::{Fleet, FleetTechnology, LoadedPlan, Transport};
use state::{Resource, State};

/// What a technology does to make and reach its guests.
pub trait Technology: Sync {
    /// Its tool and the tool's version, for the recording's header.
    fn describe(&self) -> String;
    /// Programs it needs that this host lacks, with the package to install
    /// (besides those of the way its guests are reached, below).
    fn missing(&self) -> Vec<String>;
    /// What its guests need here to be reached over SSH: their keys.
    fn ssh_programs(&self) -> &'static [&'static str] {
        &["ssh-keygen"]
    }
    /// What its guests need here to be entered without sshd.
    fn exec_programs(&self) -> &'static [&'static str] {
        &[]
    }
    /// Makes one guest and starts it; every resource is noted in `state`
    /// before it is made.
    fn create(&self, member: &Member, state: &mut State) -> Result<(), String>;
    /// Whether the guest answers: its sshd sends its version line (the SSH
    /// handshake with its known key is the session's), or, without sshd,
    /// the command that enters it runs a command there.
    fn ready(&self, member: &Member) -> bool {
        if member.sshd {
            return host::answers(&member.address);
        }
        // A command that hangs (a sandbox still starting) is asked again
        // at the next turn, within the fleet's deadline.
        self.enter(member).is_ok_and(|prefix| {
            let shell = crate::transport::exec::Shell::new(prefix);
            crate::transport::Shell::run_within(&shell, ":", Duration::from_secs(5))
                .is_ok_and(|(code, _, _)| code == 0)
        })
    }
    /// The command line that runs a command inside a guest without sshd
    /// (`transport = "exec"`), in the guest's cgroup; Err for technologies
    /// with no such way in, or a guest not yet started.
    fn enter(&self, _member: &Member) -> Result<Vec<String>, String> {
        Err("no command of this host enters its guests".into())
    }
    /// Where its boot or start-up log is, whose tail an error shows.
    fn boot_log(&self, member: &Member) -> PathBuf;
    /// How long a guest may take to answer.
    fn deadline(&self) -> Duration;
    /// The cgroup the session reads the guest's host-side cost from: the
    /// one vmbench made, unless the technology's own tool makes one.
    fn cgroup(&self, member: &Member) -> Option<String> {
        Some(member.cgroup.clone())
    }
    /// A pattern of the guest's process's command line, for technologies
    /// whose host-side cost is a process of a tool's making, not a cgroup
    /// of vmbench's.
    fn process(&self, _member: &Member) -> Option<String> {
        None
    }
    /// Removes one guest early (it did not come up); the state file's
    /// teardown removes the rest at the end.
    fn destroy(&self, member: &Member) {
        let resources: Vec<Resource> = vec![Resource::Cgroup {
            path: member.cgroup.clone(),
        }];
        let _ = state::teardown(&resources);
    }
}

fn technology(kind: FleetTechnology) -> Box<dyn Technology + Send> {
    match kind {
        FleetTechnology::Netns => Box::new(netns::Netns),
        FleetTechnology::Nspawn => Box::new(nspawn::Nspawn),
        FleetTechnology::Qemu => Box::new(qemu::Qemu::new()),
        FleetTechnology::Gvisor => Box::new(gvisor::Gvisor),
        FleetTechnology::Uml => Box::new(uml::Uml),
        FleetTechnology::Libvirt => Box::new(libvirt::Libvirt::new()),
    }
}

/// Programs missing from this host, each with the package that has it.
fn missing_programs(programs: &[&str]) -> Vec<String> {
    programs
        .iter()
        .filter(|p| which(p).is_none())
        .map(|p| {
            let package = match p.rsplit('/').next().unwrap_or(p) {
                "ip" => "iproute2",
                "sshd" => "openssh-server",
                "ssh-keygen" => "openssh-client",
                "mkfs.ext4" => "e2fsprogs",
                "losetup" => "util-linux",
                "qemu-system-x86_64" => "qemu-system-x86",
                "systemd-nspawn" => "systemd-container",
                other => other,
            };
            format!("{p} (apt-get install {package})")
        })
        .collect()
}

fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).exists().then(|| program.into());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain(["/usr/sbin".into(), "/sbin".into()])
            .map(|dir| dir.join(program))
            .find(|p| p.exists())
    })
}

/// One guest to make: its names on this host (all carrying the session's
/// id, so that cleanup finds them), address and shape.
pub struct Member {
    pub name: String,
    pub address: String,
    pub bridge: String,
    /// Its veth's host end or its tap.
    pub link: String,
    pub netns: String,
    /// Its cgroup, relative to each hierarchy's root.
    pub cgroup: String,
    /// Its own folder (keys, configuration, logs).
    pub dir: PathBuf,
    /// The fleet's folder (the client key, known_hosts).
    pub fleet_dir: PathBuf,
    pub disk_image: PathBuf,
    pub disk_mib: u32,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub cores: Option<Vec<usize>>,
    /// The guest image's folder, for technologies that boot it.
    pub image: Option<PathBuf>,
    /// Its index among all the session's guests (MACs, link names).
    pub index: usize,
    /// Whether an sshd is started in it; without one it is reached through
    /// the technology's `enter` command.
    pub sshd: bool,
}

impl Member {
    /// Its cgroup limits; `vm`: its memory is the VM's RAM, not a limit.
    pub fn shape(&self, vm: bool) -> host::Shape<'_> {
        host::Shape {
            vcpus: self.vcpus,
            memory_mib: (!vm).then_some(self.memory_mib),
            cores: self.cores.as_deref(),
        }
    }

    /// What a guest that shares this host's kernel has: a network
    /// namespace on the bridge, a data disk (its loop device returned) and
    /// a cgroup with its shape.
    pub fn make_namespace_guest(&self, state: &mut State) -> Result<String, String> {
        host::make_netns(state, &self.netns, &self.link, &self.bridge, &self.address)?;
        let disk = host::make_disk(state, &self.disk_image, self.disk_mib, &self.name, None)?;
        host::make_cgroup(state, &self.cgroup, &self.shape(false))?;
        Ok(disk)
    }

    /// The guest image's folder, for a technology that boots it (`make`
    /// gives every such fleet one).
    pub fn image_folder(&self) -> Result<&Path, String> {
        self.image.as_deref().ok_or_else(|| {
            format!(
                "{}: its technology boots the guest image, and none was given",
                self.name
            )
        })
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("boot.log")
    }

    /// Where `mount_data_disk` mounts the data disk on this host.
    pub fn data_disk_mount(&self) -> PathBuf {
        self.dir.join("disk")
    }

    /// Mounts the data disk on this host for a container to bind at
    /// /srv/vmbench; the folder it is mounted on.
    pub fn mount_data_disk(&self, state: &mut State, disk: &str) -> Result<PathBuf, String> {
        let mount = self.data_disk_mount();
        std::fs::create_dir_all(&mount).map_err(|e| format!("{}: {e}", mount.display()))?;
        state.note(Resource::Mount {
            path: mount.clone(),
        })?;
        host::run("mount", &[disk, &mount.to_string_lossy()])?;
        host::run("chmod", &["1777", &mount.to_string_lossy()])?;
        Ok(mount)
    }

    /// A folder with what a container's sshd reads (its host key and the
    /// fleet's client key), for it to bind read-only at /etc/vmbench;
    /// empty for a guest without sshd.
    pub fn sshd_keys(&self) -> Result<PathBuf, String> {
        let keys = self.dir.join("etc");
        std::fs::create_dir_all(&keys).map_err(|e| format!("{}: {e}", keys.display()))?;
        if !self.sshd {
            return Ok(keys);
        }
        for (from, to) in [
            (
                self.dir.join("ssh_host_ed25519_key"),
                "ssh_host_ed25519_key",
            ),
            (self.fleet_dir.join("authorized_keys"), "authorized_keys"),
        ] {
            std::fs::copy(&from, keys.join(to)).map_err(|e| format!("{}: {e}", from.display()))?;
        }
        Ok(keys)
    }

    /// The data disk of a guest with a kernel of its own (a VM, UML), with
    /// its private host key on it for its init to take: a file only root
    /// reads here (mode 0600 in a 0700 folder), not a command line every
    /// user of this host can read in /proc. Its loop device.
    pub fn make_seeded_disk(&self, state: &mut State) -> Result<String, String> {
        let seed = self.dir.join("seed");
        std::fs::create_dir_all(seed.join(".vmbench"))
            .map_err(|e| format!("{}: {e}", seed.display()))?;
        std::fs::copy(
            self.dir.join("ssh_host_ed25519_key"),
            seed.join(".vmbench/ssh_host_ed25519_key"),
        )
        .map_err(|e| format!("the guest's host key: {e}"))?;
        let disk = host::make_disk(
            state,
            &self.disk_image,
            self.disk_mib,
            &self.name,
            Some(&seed),
        );
        let _ = std::fs::remove_dir_all(&seed);
        disk
    }

    /// The shell words that run `words` from a shell already in the
    /// guest's cgroup (it and all it starts stay there), with the session's
    /// disks folder as its TMPDIR: a temporary file it leaves when killed
    /// (QEMU's `vl.*` snapshot files) goes with the session.
    pub fn exec_in_cgroup(&self, words: &[String]) -> String {
        let tmp = self.disk_image.parent().unwrap_or(Path::new("/var/tmp"));
        let tmpdir = format!(
            "TMPDIR={} ",
            crate::transport::shell_quote(&tmp.to_string_lossy())
        );
        self.cgroup_exec_line(&tmpdir, words, "")
    }

    /// `JOIN && [ENV ]exec WORDS[TAIL]`: a shell line that joins the
    /// guest's cgroup and becomes `words`.
    fn cgroup_exec_line(&self, env: &str, words: &[String], tail: &str) -> String {
        format!(
            "{} && {env}exec {}{tail}",
            host::join_cgroup_script(&self.cgroup),
            crate::transport::shell_command(words)
        )
    }

    /// A command line that runs its arguments (as `"$@"`) from a shell
    /// already in the guest's cgroup, through `entry`: the way into a
    /// guest without sshd.
    pub fn enter_through(&self, entry: &[String]) -> Vec<String> {
        vec![
            "sh".into(),
            "-c".into(),
            self.cgroup_exec_line("", entry, " \"$@\""),
            self.name.clone(),
        ]
    }

    /// Starts `words` in the background in a session of its own, from a
    /// shell already in the guest's cgroup (so that it and all it starts
    /// stay there until teardown empties it), its output to the boot log.
    pub fn start_detached(&self, words: &[String]) -> Result<(), String> {
        let script = format!(
            "{} >{} 2>&1 </dev/null",
            self.exec_in_cgroup(words),
            self.log().display()
        );
        std::process::Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map(drop)
            .map_err(|e| format!("starting {}: {e}", words[0]))
    }

    /// A container guest's first process: its sshd, or (reached without
    /// one) a process that only waits.
    pub fn container_init(&self) -> &'static str {
        if self.sshd {
            CONTAINER_SSHD
        } else {
            "exec sleep infinity"
        }
    }

    /// A locally administered MAC, unique within the session.
    pub fn mac(&self) -> String {
        format!(
            "52:54:00:ab:{:02x}:{:02x}",
            self.index >> 8,
            self.index & 0xff
        )
    }
}

/// A container guest's first process: the image's sshd with the keys
/// bound at /etc/vmbench (`Member::sshd_keys`).
const CONTAINER_SSHD: &str = "mkdir -p /run/sshd && exec /usr/sbin/sshd -D -e \
                              -o HostKey=/etc/vmbench/ssh_host_ed25519_key \
                              -o AuthorizedKeysFile=/etc/vmbench/authorized_keys";

/// Where data disks live: a disk, not /run's memory.
const DISKS_DIR: &str = "/var/tmp/vmbench-fleets";

/// The fleets of a session, made; removed when dropped unless kept.
pub struct Made {
    pub session: String,
    state: State,
    keep: bool,
    pub records: Vec<FleetRecord>,
    /// How to reach each guest, printed when the fleet is kept.
    reach: Vec<String>,
}

/// The session's fleets, for teardown at an exit that skips destructors
/// (a second stop request, a panic).
static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);

struct Active {
    resources: Vec<Resource>,
    keep: bool,
    /// The state folder, where a kept fleet is marked as such.
    dir: PathBuf,
}

/// Set by SIGINT, SIGTERM or SIGHUP while fleets are being made.
static INTERRUPTED: LazyLock<Arc<AtomicBool>> = LazyLock::new(Arc::default);

/// Whether SIGINT, SIGTERM or SIGHUP came while fleets were being made.
pub fn stop_requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Removes the active fleets now (unless kept): for exits that skip `Drop`.
pub fn teardown_active() {
    let taken = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
    match taken {
        Some(active) if active.keep => {
            if let Err(e) = state::mark_kept(&active.dir) {
                eprintln!("vmbench: {e}");
            }
        }
        Some(active) => {
            for left in state::teardown(&active.resources) {
                eprintln!("vmbench: fleet teardown left {left}");
            }
        }
        None => {}
    }
}

impl Made {
    fn forget_active(&self) {
        ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        self.forget_active();
        if self.keep {
            if let Err(e) = state::mark_kept(&self.state.dir) {
                eprintln!("vmbench: {e}");
            }
            eprintln!(
                "vmbench: fleet kept (session {}); reach its guests with:",
                self.session
            );
            for line in &self.reach {
                eprintln!("  {line}");
            }
            eprintln!("  remove it with: vmbench fleet down {}", self.session);
            return;
        }
        let began = Instant::now();
        let left = self.state.teardown();
        if left.is_empty() {
            eprintln!(
                "vmbench: fleet of session {} removed in {:.1} s",
                self.session,
                began.elapsed().as_secs_f64()
            );
        } else {
            for line in left {
                eprintln!("vmbench: fleet teardown left {line}");
            }
            eprintln!(
                "vmbench: run `vmbench fleet down {}` to try again",
                self.session
            );
        }
    }
}

/// Fleets of earlier sessions whose vmbench is gone, one line each, with
/// the command that removes them: a session names them at its start, as
/// they take this host's cores and memory from what it measures.
pub fn leftovers() -> Vec<String> {
    state::sessions()
        .into_iter()
        .filter(|s| !s.owner_alive())
        .map(|s| {
            let what = if s.kept() {
                "was kept (keep = true) and still runs".to_string()
            } else {
                format!(
                    "was left behind (its vmbench, pid {}, is gone)",
                    s.owner.map_or("?".into(), |p| p.to_string())
                )
            };
            format!(
                "the fleet of session {} {what}, {} resources: remove it with `vmbench fleet down {}`",
                s.session,
                s.resources.len(),
                s.session
            )
        })
        .collect()
}

/// `vmbench fleet down [SESSION]`: removes what sessions whose vmbench is
/// gone left behind, not kept fleets (or the named one, kept or not); lines say what was
/// removed and what could not be.
pub fn down(only: Option<&str>) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut clean = true;
    for session in state::sessions() {
        if only.is_some_and(|s| s != session.session) {
            continue;
        }
        if session.owner_alive() {
            // Named or not: its vmbench removes it at its end, and
            // removing it under a running session breaks that session.
            lines.push(format!(
                "session {}: its vmbench (pid {}) still runs; left alone (stop that \
                 session, which removes its fleet, or kill it and run this again)",
                session.session,
                session.owner.unwrap_or(0)
            ));
            clean &= only.is_none();
            continue;
        }
        if only.is_none() && session.kept() {
            lines.push(format!(
                "session {}: kept on purpose; left alone (`vmbench fleet down {}` removes it)",
                session.session, session.session
            ));
            continue;
        }
        let left = state::teardown(&session.resources);
        if left.is_empty() {
            lines.push(format!(
                "session {}: removed {} resources",
                session.session,
                session.resources.len()
            ));
        } else {
            clean = false;
            for l in left {
                lines.push(format!("session {}: left {l}", session.session));
            }
        }
    }
    if lines.is_empty() {
        match only {
            Some(id) => {
                lines.push(format!(
                    "no fleet of session {id} on this host (`vmbench fleet list` names them)"
                ));
                clean = false;
            }
            None => lines.push("no fleet left behind".into()),
        }
    }
    (lines, clean)
}

/// What is missing on this host to make the plan's fleets: programs, the
/// guest image's tools, memory, disk room, cgroups. Empty when all is there.
pub fn preflight(fleets: &[Fleet]) -> Vec<String> {
    let mut missing = Vec::new();
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root: making guests (namespaces, bridges, loop devices) needs it".into());
    }
    for fleet in fleets {
        let kind = technology(fleet.technology);
        let reached_by = match fleet.transport {
            Transport::Exec => kind.exec_programs(),
            _ => kind.ssh_programs(),
        };
        for program in kind
            .missing()
            .into_iter()
            .chain(missing_programs(reached_by))
        {
            let line = format!("{program}, for fleet {:?}", fleet.name());
            if !missing.contains(&line) {
                missing.push(line);
            }
        }
    }
    if fleets
        .iter()
        .any(|f| f.technology.uses_image() && f.image.is_none())
    {
        missing.extend(image::missing());
    }
    let memory: u64 = fleets
        .iter()
        .filter(|f| f.technology == FleetTechnology::Qemu)
        .map(|f| u64::from(f.memory_mib) * u64::from(f.count.0))
        .sum();
    let available = procfs_available_mib();
    if memory > available {
        missing.push(format!(
            "memory: the QEMU guests need {memory} MiB and {available} MiB is available"
        ));
    }
    let disk: u64 = fleets
        .iter()
        .map(|f| u64::from(f.disk_mib) * u64::from(f.count.0))
        .sum();
    let _ = std::fs::create_dir_all(DISKS_DIR);
    if let Some(free) = free_mib(Path::new(DISKS_DIR))
        && disk > free
    {
        missing.push(format!(
            "disk: the data disks need {disk} MiB in {DISKS_DIR} and {free} MiB is free"
        ));
    }
    if host::cgroup_dirs("x").is_empty() {
        missing.push("cgroups: none mounted under /sys/fs/cgroup".into());
    }
    missing
}

fn procfs_available_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib >> 10)
}

fn free_mib(path: &Path) -> Option<u64> {
    let text = std::ffi::CString::new(path.to_string_lossy().as_bytes()).ok()?;
    // SAFETY: statvfs fills a plain struct for a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(text.as_ptr(), &mut stat) } == 0)
        .then(|| (stat.f_bavail * stat.f_frsize) >> 20)
}

/// Makes the plan's fleets, fills in how the session reaches each of their
/// guests, and records how they were made; None when the plan has none.
/// `say` gets a line per step. Guests that did not come up by their
/// technology's deadline are named with their boot log's tail and left
/// out, or the whole is removed and refused when fewer than a fleet's
/// `min_ready` came up.
pub fn make(plan: &mut LoadedPlan, say: &mut dyn FnMut(String)) -> Result<Option<Made>, String> {
    if plan.plan.fleets.is_empty() {
        return Ok(None);
    }
    let missing = preflight(&plan.plan.fleets);
    if !missing.is_empty() {
        return Err(format!(
            "cannot make the plan's fleets; missing:\n  {}",
            missing.join("\n  ")
        ));
    }
    listen_for_stops();
    let session = format!("{:06x}", fastrand::u32(..) & 0xff_ffff);
    let mut state = State::create(&session)?;
    let disks = Path::new(DISKS_DIR).join(&session);
    state.note(Resource::Dir {
        path: disks.clone(),
    })?;
    let mut made = Made {
        session: session.clone(),
        state,
        keep: plan.plan.fleets.iter().any(|f| f.keep),
        records: Vec::new(),
        reach: Vec::new(),
    };
    publish(&made);
    std::fs::create_dir_all(&disks).map_err(|e| format!("{}: {e}", disks.display()))?;
    // The session's disks and its keys' folder are root's alone.
    for private in [&disks, &made.state.dir] {
        std::fs::set_permissions(private, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", private.display()))?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut index = 0usize;
    let fleets = plan.plan.fleets.clone();
    let mut failed: Vec<String> = Vec::new();
    for (f, fleet) in fleets.iter().enumerate() {
        let first_pinned: usize = fleets[..f].iter().map(Fleet::pinned_cores).sum();
        let kind = technology(fleet.technology);
        let image = match (fleet.technology.uses_image(), &fleet.image) {
            (false, _) => None,
            (true, Some(dir)) => Some(PathBuf::from(dir)),
            (true, None) => Some(image::ensure(None, say)?),
        };
        let fleet_dir = made.state.dir.join(fleet.name());
        std::fs::create_dir_all(&fleet_dir).map_err(|e| format!("{}: {e}", fleet_dir.display()))?;
        let sshd = fleet.transport != Transport::Exec;
        if sshd {
            host::make_key(&fleet_dir.join("id_ed25519"), &format!("vmbench-{session}"))?;
            std::fs::copy(
                fleet_dir.join("id_ed25519.pub"),
                fleet_dir.join("authorized_keys"),
            )
            .map_err(|e| format!("authorized_keys: {e}"))?;
        }
        let bridge = format!("vb{session}f{f}");
        host::make_bridge(&mut made.state, &bridge, &fleet.host_address(f))?;
        say(format!(
            "fleet {}: making {} {} guest(s) ({} vCPU, {} MiB, disk {} MiB, {:?}) on bridge {bridge}",
            fleet.name(),
            fleet.count.0,
            fleet.technology.name(),
            fleet.vcpus.0,
            fleet.memory_mib,
            fleet.disk_mib,
            fleet.placement
        ));
        let began = Instant::now();
        let mut members = Vec::new();
        let mut made_as = Vec::new();
        let mut known_hosts = String::new();
        for i in 0..fleet.count.0 as usize {
            if INTERRUPTED.load(Ordering::SeqCst) {
                return Err("stopped by a signal while the fleet was being made".into());
            }
            let name = fleet.guest_name(i);
            let dir = fleet_dir.join(&name);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            if sshd {
                let public = host::make_key(&dir.join("ssh_host_ed25519_key"), &name)?;
                // No trust on first use: the key the guest will offer is known now.
                known_hosts.push_str(&format!("{} {public}\n", fleet.guest_address(f, i)));
            }
            let member = Member {
                address: fleet.guest_address(f, i),
                bridge: bridge.clone(),
                link: format!("vb{session}g{index}"),
                netns: format!("vmbench-{session}-{name}"),
                cgroup: format!("vmbench-fleet-{session}/{name}"),
                fleet_dir: fleet_dir.clone(),
                disk_image: disks.join(format!("{name}.img")),
                disk_mib: fleet.disk_mib,
                vcpus: fleet.vcpus.0,
                memory_mib: fleet.memory_mib,
                cores: fleet.cores_of(i, first_pinned, cores)?,
                image: image.clone(),
                index,
                sshd,
                dir,
                name,
            };
            index += 1;
            // A guest that cannot be made counts as one that did not come
            // up: min_ready decides whether the session goes on.
            let created = kind.create(&member, &mut made.state);
            publish(&made);
            made_as.push(
                created
                    .err()
                    .map(|e| Err(format!("could not be made: {e}"))),
            );
            members.push(member);
        }
        let known = fleet_dir.join("known_hosts");
        std::fs::write(&known, &known_hosts).map_err(|e| format!("{}: {e}", known.display()))?;
        let within = fleet.ready_within.map_or_else(|| kind.deadline(), |d| d.0);
        let ready = wait_ready(kind.as_ref(), &members, made_as, within, say)?;
        let up = ready.iter().filter(|r| r.is_ok()).count();
        say(format!(
            "fleet {}: {up} of {} guest(s) ready in {:.1} s",
            fleet.name(),
            members.len(),
            began.elapsed().as_secs_f64()
        ));
        let min_ready = fleet.min_ready.map_or(fleet.count.0, |c| c.0) as usize;
        let mut guests = Vec::new();
        for (member, outcome) in members.iter().zip(&ready) {
            if let Err(why) = outcome {
                say(format!("{}: {why}", member.name));
                kind.destroy(member);
                failed.push(member.name.clone());
            } else if member.sshd {
                made.reach.push(format!(
                    "ssh -i {} -o UserKnownHostsFile={} root@{}",
                    fleet_dir.join("id_ed25519").display(),
                    known.display(),
                    member.address
                ));
            } else if let Ok(prefix) = kind.enter(member) {
                made.reach
                    .push(format!("{} sh", crate::transport::shell_command(&prefix)));
            }
            guests.push(FleetGuestRecord {
                name: member.name.clone(),
                address: member.address.clone(),
                cores: member.cores.as_ref().map(|c| {
                    c.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                }),
                outcome: outcome.clone().err().unwrap_or_else(|| "ready".into()),
            });
        }
        if up < min_ready {
            let why = ready
                .iter()
                .zip(&members)
                .filter_map(|(r, m)| r.as_ref().err().map(|e| format!("{}: {e}", m.name)))
                .collect::<Vec<_>>()
                .join("\n");
            return Err(format!(
                "fleet {}: {up} of {} guest(s) came up, fewer than min_ready {min_ready}; \
                 everything made is removed\n{why}",
                fleet.name(),
                members.len()
            ));
        }
        for guest in plan.plan.guests.iter_mut() {
            if guest.fleet.as_deref() != Some(fleet.name()) {
                continue;
            }
            let Some(member) = members.iter().find(|m| m.name == guest.name()) else {
                continue;
            };
            if member.sshd {
                guest.identity = Some(fleet_dir.join("id_ed25519").display().to_string());
                guest.known_hosts = Some(known.display().to_string());
            } else {
                guest.exec = Some(kind.enter(member)?);
            }
            guest.interface = Some(member.link.clone());
            guest.cgroup = kind.cgroup(member);
            guest.process = kind.process(member);
        }
        made.records.push(FleetRecord {
            name: fleet.name().to_string(),
            technology: fleet.technology.name().to_string(),
            label: fleet.label(),
            tool: kind.describe(),
            session: session.clone(),
            count: fleet.count.0,
            vcpus: fleet.vcpus.0,
            memory_mib: fleet.memory_mib,
            disk_mib: fleet.disk_mib,
            placement: format!("{:?}", fleet.placement).to_lowercase(),
            image: image.as_deref().map(image::describe),
            guests,
        });
    }
    plan.plan
        .guests
        .retain(|g| !failed.iter().any(|f| f == g.name()));
    plan.made = made.records.clone();
    Ok(Some(made))
}

/// Waits for every member not already failed (`outcome`) to answer, each
/// `within` the fleet's deadline; a member that does not is Err with its
/// boot log's tail.
fn wait_ready(
    kind: &dyn Technology,
    members: &[Member],
    mut outcome: Vec<Option<Result<(), String>>>,
    within: Duration,
    say: &mut dyn FnMut(String),
) -> Result<Vec<Result<(), String>>, String> {
    let deadline = Instant::now() + within;
    let mut last_said = Instant::now();
    while outcome.iter().any(Option::is_none) {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err("stopped by a signal while the fleet was coming up".into());
        }
        for (member, slot) in members.iter().zip(outcome.iter_mut()) {
            if slot.is_none() && kind.ready(member) {
                *slot = Some(Ok(()));
            }
        }
        if Instant::now() > deadline {
            for (member, slot) in members.iter().zip(outcome.iter_mut()) {
                if slot.is_none() {
                    *slot = Some(Err(format!(
                        "did not answer within {}; the end of its log ({}):\n{}",
                        humantime::format_duration(within),
                        kind.boot_log(member).display(),
                        host::tail(&kind.boot_log(member), 8)
                    )));
                }
            }
        }
        if last_said.elapsed() > Duration::from_secs(10) {
            let up = outcome.iter().filter(|o| matches!(o, Some(Ok(())))).count();
            say(format!("{up} of {} guest(s) answer so far", members.len()));
            last_said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(outcome.into_iter().flatten().collect())
}

fn publish(made: &Made) {
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Active {
        resources: made.state.resources.clone(),
        keep: made.keep,
        dir: made.state.dir.clone(),
    });
}

/// A stop during bring-up is noticed between steps (the session's own
/// handling of signals starts with the session).
fn listen_for_stops() {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let _ = signal_hook::flag::register(signal, INTERRUPTED.clone());
    }
}
