//! What a fleet made, written down before it is made: one JSON line per
//! resource in `/run/vmbench/fleets/<session>/state`, synced as it is
//! written, so that teardown (at the end, on a signal, after a panic) and
//! `vmbench fleet down` (after a kill -9) find everything by the session's
//! id. Teardown goes in reverse order and is idempotent: a resource that
//! is already gone is fine.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::host::{cgroup_dirs, run, run_within};

/// Where every session's fleet state lives.
pub const FLEETS_DIR: &str = "/run/vmbench/fleets";

/// One thing a fleet made on this host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Resource {
    /// The session's owner: which vmbench made it (for `fleet down`).
    Owner {
        pid: u32,
        started: String,
    },
    Dir {
        path: PathBuf,
    },
    Bridge {
        name: String,
    },
    /// A veth's host end or a tap.
    Link {
        name: String,
    },
    Netns {
        name: String,
    },
    /// A cgroup (relative path, the same in every hierarchy); its
    /// processes are killed before it is removed.
    Cgroup {
        path: String,
    },
    /// A file attached to loop devices.
    Loop {
        image: PathBuf,
    },
    Mount {
        path: PathBuf,
    },
    /// A file made beside what is not the session's (libvirt's overlay of
    /// a transient disk, in the image's folder).
    File {
        path: PathBuf,
    },
    /// A libvirt domain (transient: destroyed, it is gone).
    Domain {
        uri: String,
        name: String,
    },
    /// Written when a session ends with `keep = true`: its fleet is meant
    /// to stay, so only `fleet down ID` removes it.
    Kept,
}

impl Resource {
    pub fn describe(&self) -> String {
        match self {
            Resource::Owner { pid, .. } => format!("owner pid {pid}"),
            Resource::Dir { path } => format!("folder {}", path.display()),
            Resource::Bridge { name } => format!("bridge {name}"),
            Resource::Link { name } => format!("link {name}"),
            Resource::Netns { name } => format!("namespace {name}"),
            Resource::Cgroup { path } => format!("cgroup {path}"),
            Resource::Loop { image } => format!("loop device of {}", image.display()),
            Resource::Mount { path } => format!("mount {}", path.display()),
            Resource::Domain { name, .. } => format!("libvirt domain {name}"),
            Resource::File { path } => format!("file {}", path.display()),
            Resource::Kept => "kept mark".into(),
        }
    }

    /// Removes it; Err says what is left and why.
    fn remove(&self) -> Result<(), String> {
        match self {
            Resource::Owner { .. } | Resource::Kept => Ok(()),
            Resource::Dir { path } => match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("{}: {e}", path.display()))
                }
                _ => Ok(()),
            },
            Resource::File { path } => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("{}: {e}", path.display()))
                }
                _ => Ok(()),
            },
            Resource::Bridge { name } | Resource::Link { name } => {
                if !Path::new("/sys/class/net").join(name).exists() {
                    return Ok(());
                }
                run("ip", &["link", "del", name]).map(drop)
            }
            Resource::Netns { name } => {
                if !Path::new("/run/netns").join(name).exists() {
                    return Ok(());
                }
                if let Ok(pids) = run("ip", &["netns", "pids", name]) {
                    for pid in pids
                        .split_whitespace()
                        .filter_map(|p| p.parse::<i32>().ok())
                    {
                        // SAFETY: a plain kill of a pid the namespace lists.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                run("ip", &["netns", "del", name]).map(drop)
            }
            Resource::Cgroup { path } => remove_cgroup(path),
            Resource::Domain { uri, name } => {
                let asks = super::libvirt::VIRSH_ASKS;
                let listed = run_within("virsh", &["-c", uri, "list", "--name"], asks)?;
                if !listed.lines().any(|l| l.trim() == name) {
                    return Ok(());
                }
                run_within("virsh", &["-c", uri, "destroy", name], asks).map(drop)
            }
            Resource::Loop { image } => {
                if !image.exists() {
                    return Ok(());
                }
                let image = image.to_string_lossy();
                let listed = run("losetup", &["-j", &image, "-O", "NAME", "-n"])?;
                for device in listed.split_whitespace() {
                    // The mount in a guest's namespace may take a moment to go.
                    let deadline = Instant::now() + Duration::from_secs(3);
                    while let Err(e) = run("losetup", &["-d", device]) {
                        if Instant::now() > deadline {
                            return Err(e);
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                Ok(())
            }
            Resource::Mount { path } => {
                if !is_mounted(path) {
                    return Ok(());
                }
                run("umount", &["-l", &path.to_string_lossy()]).map(drop)
            }
        }
    }
}

fn is_mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mounts").is_ok_and(|mounts| {
        mounts
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(&*path.to_string_lossy()))
    })
}

/// Kills every process in the cgroup and the cgroups below it (a
/// container's runtime may make some), in each hierarchy, then removes
/// them deepest first, and the session's parent when it is empty.
fn remove_cgroup(path: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    for dir in cgroup_dirs(path) {
        if !dir.exists() {
            continue;
        }
        let mut tree = Vec::new();
        collect_tree(&dir, &mut tree);
        // Deepest first: a cgroup is removed only once its children are.
        for cgroup in tree.iter().rev() {
            empty_and_remove(cgroup, deadline)?;
        }
        if let Some(parent) = dir.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
    Ok(())
}

fn collect_tree(dir: &Path, tree: &mut Vec<PathBuf>) {
    tree.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_tree(&entry.path(), tree);
            }
        }
    }
}

fn empty_and_remove(dir: &Path, deadline: Instant) -> Result<(), String> {
    loop {
        let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = pids.lines().filter_map(|p| p.parse().ok()).collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: a plain kill of a pid the cgroup lists.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if Instant::now() > deadline {
            return Err(format!("{}: processes do not end", dir.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    while let Err(e) = std::fs::remove_dir(dir) {
        if e.kind() == std::io::ErrorKind::NotFound {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{}: {e}", dir.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A session's state file, open for appending.
pub struct State {
    pub session: String,
    pub dir: PathBuf,
    file: std::fs::File,
    pub resources: Vec<Resource>,
}

impl State {
    /// A new session's state folder and file, the owner written first.
    pub fn create(session: &str) -> Result<State, String> {
        let dir = Path::new(FLEETS_DIR).join(session);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("state");
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut state = State {
            session: session.to_string(),
            dir: dir.clone(),
            file,
            resources: Vec::new(),
        };
        state.note(Resource::Owner {
            pid: std::process::id(),
            started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        })?;
        state.note(Resource::Dir { path: dir })?;
        Ok(state)
    }

    /// Writes a resource down (and syncs) before it is made.
    pub fn note(&mut self, resource: Resource) -> Result<(), String> {
        let mut line = serde_json::to_string(&resource).map_err(|e| e.to_string())?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("writing the fleet's state file: {e}"))?;
        self.resources.push(resource);
        Ok(())
    }

    /// Removes everything, last made first; what could not be removed is
    /// returned, one line each.
    pub fn teardown(&self) -> Vec<String> {
        teardown(&self.resources)
    }
}

/// Removes `resources`, last made first. The state folder itself goes
/// last and only when everything else went, so that `vmbench fleet down`
/// can try again what could not be removed.
pub fn teardown(resources: &[Resource]) -> Vec<String> {
    let is_state =
        |r: &Resource| matches!(r, Resource::Dir { path } if path.starts_with(FLEETS_DIR));
    let mut left: Vec<String> = resources
        .iter()
        .rev()
        .filter(|r| !is_state(r))
        .filter_map(|r| r.remove().err().map(|e| format!("{}: {e}", r.describe())))
        .collect();
    if left.is_empty() {
        left.extend(
            resources
                .iter()
                .filter(|r| is_state(r))
                .filter_map(|r| r.remove().err().map(|e| format!("{}: {e}", r.describe()))),
        );
    }
    left
}

/// Marks the session whose state folder is `dir` as kept on purpose (its
/// own `State` may be out of reach: a second stop exits from a signal).
pub fn mark_kept(dir: &Path) -> Result<(), String> {
    let path = dir.join("state");
    let mut line = serde_json::to_string(&Resource::Kept).map_err(|e| e.to_string())?;
    line.push('\n');
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|()| f.sync_data()))
        .map_err(|e| format!("marking {} kept: {e}", path.display()))
}

/// A session's state as read back from its file.
pub struct Leftover {
    pub session: String,
    pub owner: Option<u32>,
    pub resources: Vec<Resource>,
}

impl Leftover {
    /// Whether its session ended with `keep = true`.
    pub fn kept(&self) -> bool {
        self.resources.contains(&Resource::Kept)
    }

    /// Whether the vmbench that made it still runs (then it is no leftover).
    pub fn owner_alive(&self) -> bool {
        self.owner.is_some_and(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("vmbench"))
        })
    }
}

/// Every session's state under `FLEETS_DIR`; lines that do not parse
/// (a torn last line) are skipped.
pub fn sessions() -> Vec<Leftover> {
    let Ok(entries) = std::fs::read_dir(FLEETS_DIR) else {
        return Vec::new();
    };
    let mut found: Vec<Leftover> = entries
        .flatten()
        .filter_map(|entry| {
            let text = std::fs::read_to_string(entry.path().join("state")).ok()?;
            let resources: Vec<Resource> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            let owner = resources.iter().find_map(|r| match r {
                Resource::Owner { pid, .. } => Some(*pid),
                _ => None,
            });
            Some(Leftover {
                session: entry.file_name().to_string_lossy().into_owned(),
                owner,
                resources,
            })
        })
        .collect();
    found.sort_by(|a, b| a.session.cmp(&b.session));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_line_reads_back_as_written() {
        let resources = [
            Resource::Bridge {
                name: "vbabc123f0".into(),
            },
            Resource::Cgroup {
                path: "vmbench-fleet-abc123/f-1".into(),
            },
            Resource::Loop {
                image: "/var/tmp/x.img".into(),
            },
        ];
        for r in resources {
            let line = serde_json::to_string(&r).expect("serializes");
            assert_eq!(serde_json::from_str::<Resource>(&line).expect("parses"), r);
        }
        let line = serde_json::to_string(&Resource::Netns { name: "n".into() }).expect("ok");
        assert_eq!(line, r#"{"kind":"netns","name":"n"}"#);
    }
}
