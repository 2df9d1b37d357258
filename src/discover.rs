//! Finding the guests that run on this host and how the host sees each:
//! QEMU processes from their command lines, libvirt domains from the status
//! files libvirtd keeps, Xen domains from `xentop`. What is found is matched
//! to a plan's guests by name or by address (the ARP table names the MAC a
//! guest's address answers from; QEMU's command line names its NICs' MACs).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::plan::{Guest, Plan};

pub const LIBVIRT_RUN: &str = "/run/libvirt/qemu";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hypervisor {
    Qemu,
    Libvirt,
    Xen,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drive {
    pub path: String,
    /// The guest's writes reach it (not a snapshot, not read-only).
    pub writable: bool,
}

/// A guest found on this host.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Found {
    pub name: String,
    pub hypervisor: Option<Hypervisor>,
    /// `kvm`, `tcg`, `xen`, ...: what runs its vCPUs.
    pub accelerator: Option<String>,
    pub pid: Option<u32>,
    pub pidfile: Option<String>,
    pub interfaces: Vec<String>,
    pub macs: Vec<String>,
    pub drives: Vec<Drive>,
    pub cpus: Option<u32>,
    pub memory_mib: Option<u64>,
    /// vCPU index and thread id, where the threads are named or listed.
    pub vcpu_threads: Vec<(u32, u32)>,
}

impl Found {
    /// The technology label a plan gets for it: `qemu-kvm`, `qemu-tcg`, `xen`.
    pub fn technology(&self) -> String {
        match (self.hypervisor, self.accelerator.as_deref()) {
            (Some(Hypervisor::Xen), _) => "xen".into(),
            (_, Some(accel)) => format!("qemu-{accel}"),
            _ => "qemu".into(),
        }
    }

    /// The disk the host should watch: the first the guest writes to.
    pub fn data_drive(&self) -> Option<&Drive> {
        self.drives.iter().find(|d| d.writable)
    }
}

/// `key=value,key=value` options, as QEMU writes them; `,,` is a comma.
fn options(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut fields = Vec::new();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                field.push(',');
            } else {
                fields.push(std::mem::take(&mut field));
            }
        } else {
            field.push(c);
        }
    }
    fields.push(field);
    for f in fields {
        match f.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None => out.push((String::new(), f)),
        }
    }
    out
}

/// QEMU's newer JSON form of an option (`-netdev {"type":"tap",...}`), as
/// key-value pairs of its top level.
fn json_options(text: &str) -> Option<Vec<(String, String)>> {
    let serde_json::Value::Object(map) = serde_json::from_str(text).ok()? else {
        return None;
    };
    Some(
        map.into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
    )
}

fn option_list(text: &str) -> Vec<(String, String)> {
    json_options(text).unwrap_or_else(|| options(text))
}

fn get<'a>(opts: &'a [(String, String)], key: &str) -> Option<&'a str> {
    opts.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Memory as QEMU reads `-m`: MiB unless suffixed.
fn memory_mib(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    Some(match unit.to_ascii_uppercase().trim_end_matches('B') {
        "" | "M" => n,
        "G" => n * 1024,
        "T" => n * 1024 * 1024,
        "K" => n / 1024,
        _ => return None,
    })
}

/// What a QEMU command line says about its guest; None if it is not QEMU.
pub fn parse_qemu(args: &[String]) -> Option<Found> {
    let program = Path::new(args.first()?)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    if !(program.starts_with("qemu-system") || program == "qemu-kvm") {
        return None;
    }
    let mut found = Found {
        hypervisor: Some(Hypervisor::Qemu),
        ..Found::default()
    };
    if program == "qemu-kvm" {
        found.accelerator = Some("kvm".into());
    }
    let mut i = 1;
    while i < args.len() {
        let Some(flag) = args[i].strip_prefix('-').map(|f| f.trim_start_matches('-')) else {
            i += 1;
            continue;
        };
        let value = args.get(i + 1).map(String::as_str).unwrap_or("");
        // Options vmbench reads take a value; others are skipped one word
        // at a time (their values do not start with a dash).
        let mut reads_value = true;
        match flag {
            "name" => {
                let opts = options(value);
                found.name = get(&opts, "guest")
                    .or_else(|| {
                        opts.first()
                            .filter(|(k, _)| k.is_empty())
                            .map(|(_, v)| v.as_str())
                    })
                    .unwrap_or("")
                    .to_string();
            }
            "pidfile" => found.pidfile = Some(value.to_string()),
            "enable-kvm" => {
                found.accelerator = Some("kvm".into());
                reads_value = false;
            }
            "accel" => {
                let opts = options(value);
                let accel = get(&opts, "accel").or_else(|| {
                    opts.first()
                        .filter(|(k, _)| k.is_empty())
                        .map(|(_, v)| v.as_str())
                });
                found.accelerator = accel.map(String::from);
            }
            "machine" | "M" => {
                if let Some(accel) = get(&options(value), "accel") {
                    // `kvm:tcg` falls back in order; the threads tell which ran.
                    found.accelerator = accel.split(':').next().map(String::from);
                }
            }
            "netdev" | "nic" | "net" => {
                let opts = option_list(value);
                if let Some(ifname) = get(&opts, "ifname") {
                    found.interfaces.push(ifname.to_string());
                }
                if let Some(mac) = get(&opts, "mac") {
                    found.macs.push(mac.to_ascii_lowercase());
                }
            }
            "device" => {
                if let Some(mac) = get(&option_list(value), "mac") {
                    found.macs.push(mac.to_ascii_lowercase());
                }
            }
            "drive" => {
                let opts = options(value);
                if let Some(file) = get(&opts, "file") {
                    let on = |key| get(&opts, key).is_some_and(|v| v == "on" || v == "true");
                    found.drives.push(Drive {
                        path: file.to_string(),
                        writable: !on("snapshot")
                            && !on("readonly")
                            && get(&opts, "media") != Some("cdrom"),
                    });
                }
            }
            "blockdev" => {
                let opts = option_list(value);
                if let Some(file) = get(&opts, "filename") {
                    found.drives.push(Drive {
                        path: file.to_string(),
                        writable: get(&opts, "read-only").is_none_or(|v| v != "true" && v != "on"),
                    });
                }
            }
            "smp" => {
                let opts = options(value);
                found.cpus = get(&opts, "cpus")
                    .or_else(|| {
                        opts.first()
                            .filter(|(k, _)| k.is_empty())
                            .map(|(_, v)| v.as_str())
                    })
                    .and_then(|n| n.parse().ok());
            }
            "m" => {
                let opts = options(value);
                found.memory_mib = get(&opts, "size")
                    .or_else(|| {
                        opts.first()
                            .filter(|(k, _)| k.is_empty())
                            .map(|(_, v)| v.as_str())
                    })
                    .and_then(memory_mib);
            }
            _ => reads_value = false,
        }
        i += if reads_value { 2 } else { 1 };
    }
    if found.accelerator.is_none() {
        // QEMU's own default when no accelerator is named.
        found.accelerator = Some("tcg".into());
    }
    Some(found)
}

/// The loop device whose backing file is `image`.
pub fn loop_device_of(image: &std::path::Path) -> Result<String, String> {
    let wanted =
        std::fs::canonicalize(image).map_err(|e| format!("image {}: {e}", image.display()))?;
    let entries = std::fs::read_dir("/sys/block").map_err(|e| format!("/sys/block: {e}"))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let backing = entry.path().join("loop/backing_file");
        if let Ok(text) = std::fs::read_to_string(&backing) {
            if std::path::Path::new(text.trim()) == wanted {
                return Ok(name);
            }
        }
    }
    Err(format!(
        "image {} is not attached to any loop device",
        image.display()
    ))
}

/// vCPU threads of a QEMU process: with `debug-threads=on` (libvirt sets it)
/// they are named `CPU <n>/KVM`, `CPU <n>/TCG`.
pub fn vcpu_threads(pid: u32) -> Vec<(u32, u32, String)> {
    let mut threads = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return threads;
    };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        if let Some((index, accel)) = comm
            .trim()
            .strip_prefix("CPU ")
            .and_then(|rest| rest.split_once('/'))
            && let Ok(index) = index.parse()
        {
            threads.push((index, tid, accel.to_ascii_lowercase()));
        }
    }
    threads.sort();
    threads
}

/// Every QEMU process on this host.
pub fn qemu_processes() -> Vec<Found> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let Some(mut guest) = parse_qemu(&args) else {
            continue;
        };
        guest.pid = Some(pid);
        let threads = vcpu_threads(pid);
        // The threads say which accelerator really runs (a `kvm:tcg` list
        // falls back silently).
        if let Some((_, _, accel)) = threads.first() {
            guest.accelerator = Some(accel.clone());
        }
        guest.vcpu_threads = threads.into_iter().map(|(i, tid, _)| (i, tid)).collect();
        if guest.name.is_empty() {
            guest.name = format!("qemu-{pid}");
        }
        found.push(guest);
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    tag: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children().find(|n| n.has_tag_name(tag))
}

/// A libvirt status file (`/run/libvirt/qemu/<name>.xml`): the domain
/// definition inside a `<domstatus>` with the QEMU pid and vCPU threads.
pub fn parse_libvirt_status(xml: &str) -> Result<Found, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    let (status, domain) = match root.tag_name().name() {
        "domstatus" => (
            Some(root),
            root.children()
                .find(|n| n.has_tag_name("domain"))
                .ok_or("no <domain> in the status file")?,
        ),
        "domain" => (None, root),
        other => return Err(format!("<{other}> is not a libvirt domain")),
    };
    let mut found = Found {
        hypervisor: Some(Hypervisor::Libvirt),
        name: child(domain, "name")
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_string(),
        // libvirt's `qemu` domain type is emulation.
        accelerator: domain.attribute("type").map(|t| match t {
            "qemu" => "tcg".to_string(),
            other => other.to_string(),
        }),
        pid: status
            .and_then(|s| s.attribute("pid"))
            .and_then(|p| p.parse().ok()),
        cpus: child(domain, "vcpu").and_then(|v| {
            v.attribute("current")
                .or(v.text())
                .and_then(|n| n.trim().parse().ok())
        }),
        memory_mib: child(domain, "memory").and_then(|m| {
            let n: u64 = m.text()?.trim().parse().ok()?;
            Some(match m.attribute("unit").unwrap_or("KiB") {
                "b" | "bytes" => n >> 20,
                "KiB" | "k" => n >> 10,
                "MiB" | "M" => n,
                "GiB" | "G" => n << 10,
                _ => return None,
            })
        }),
        ..Found::default()
    };
    if let Some(vcpus) = status.and_then(|s| child(s, "vcpus")) {
        for (i, v) in vcpus
            .children()
            .filter(|n| n.has_tag_name("vcpu"))
            .enumerate()
        {
            let index = v
                .attribute("id")
                .and_then(|n| n.parse().ok())
                .unwrap_or(i as u32);
            if let Some(tid) = v.attribute("pid").and_then(|p| p.parse().ok()) {
                found.vcpu_threads.push((index, tid));
            }
        }
    }
    if let Some(devices) = child(domain, "devices") {
        for device in devices.children().filter(|n| n.is_element()) {
            match device.tag_name().name() {
                "interface" => {
                    if let Some(dev) = child(device, "target").and_then(|t| t.attribute("dev")) {
                        found.interfaces.push(dev.to_string());
                    }
                    if let Some(mac) = child(device, "mac").and_then(|m| m.attribute("address")) {
                        found.macs.push(mac.to_ascii_lowercase());
                    }
                }
                "disk" => {
                    let source = child(device, "source");
                    let path = source.and_then(|s| s.attribute("file").or(s.attribute("dev")));
                    if let Some(path) = path {
                        found.drives.push(Drive {
                            path: path.to_string(),
                            writable: child(device, "readonly").is_none()
                                && device.attribute("device") != Some("cdrom"),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    Ok(found)
}

/// Every running libvirt QEMU domain, from libvirtd's status files.
pub fn libvirt_domains(dir: &Path) -> Vec<Found> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "xml") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Ok(mut domain) = parse_libvirt_status(&text) {
            let pidfile = path.with_extension("pid");
            if pidfile.exists() {
                domain.pidfile = Some(pidfile.display().to_string());
            }
            found.push(domain);
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// One domain's line of `xentop -b`: cumulative counters.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct XenDomain {
    pub name: String,
    pub cpu_seconds: u64,
    pub vcpus: u32,
    pub memory_kib: u64,
    pub net_tx_kib: u64,
    pub net_rx_kib: u64,
    pub block_reads: u64,
    pub block_writes: u64,
    /// Sectors read and written; older xentop prints no such columns.
    pub block_read_sectors: Option<u64>,
    pub block_write_sectors: Option<u64>,
}

/// The last frame of `xentop -b` output (each frame starts with its header
/// line). `MAXMEM(k)` may read `no limit`, two words, which are joined.
pub fn parse_xentop(text: &str) -> Result<Vec<XenDomain>, String> {
    let mut header: Option<Vec<&str>> = None;
    let mut frame = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"NAME") {
            header = Some(words);
            frame.clear();
            continue;
        }
        let Some(columns) = &header else {
            continue;
        };
        if words.is_empty() {
            continue;
        }
        let mut fields: Vec<String> = Vec::with_capacity(words.len());
        let mut i = 0;
        while i < words.len() {
            if words[i] == "no" && words.get(i + 1) == Some(&"limit") {
                fields.push("no limit".into());
                i += 2;
            } else {
                fields.push(words[i].to_string());
                i += 1;
            }
        }
        if fields.len() != columns.len() {
            return Err(format!(
                "xentop line has {} fields for {} columns: {line:?}",
                fields.len(),
                columns.len()
            ));
        }
        let field = |name: &str| {
            columns
                .iter()
                .position(|c| *c == name)
                .map(|i| fields[i].as_str())
        };
        let number = |name: &str| -> Result<u64, String> {
            let text = field(name).ok_or_else(|| format!("xentop prints no {name} column"))?;
            text.parse()
                .map_err(|_| format!("xentop {name} {text:?} is not a number in {line:?}"))
        };
        frame.push(XenDomain {
            name: field("NAME").unwrap_or_default().to_string(),
            cpu_seconds: number("CPU(sec)")?,
            vcpus: number("VCPUS")? as u32,
            memory_kib: number("MEM(k)")?,
            net_tx_kib: number("NETTX(k)")?,
            net_rx_kib: number("NETRX(k)")?,
            block_reads: number("VBD_RD")?,
            block_writes: number("VBD_WR")?,
            block_read_sectors: number("VBD_RSECT").ok(),
            block_write_sectors: number("VBD_WSECT").ok(),
        });
    }
    if header.is_none() {
        return Err("no xentop header line (NAME STATE CPU(sec) ...)".into());
    }
    Ok(frame)
}

/// Cuts a stream of `xentop -b` lines into frames: a frame is complete when
/// the next one's header arrives.
#[derive(Default)]
pub struct XentopFrames {
    lines: String,
}

impl XentopFrames {
    /// The frame that `line` ends, if it is a header after one.
    pub fn push(&mut self, line: &str) -> Option<Result<Vec<XenDomain>, String>> {
        let is_header = line.split_whitespace().next() == Some("NAME");
        let done = (is_header && !self.lines.is_empty())
            .then(|| parse_xentop(&std::mem::take(&mut self.lines)));
        self.lines.push_str(line);
        self.lines.push('\n');
        done
    }
}

/// Xen domains other than dom0, from one `xentop -b -i 1` frame, if xentop
/// runs here.
pub fn xen_domains() -> Vec<Found> {
    let Ok(out) = std::process::Command::new("xentop")
        .args(["-b", "-i", "1"])
        .stderr(std::process::Stdio::null())
        .output()
    else {
        return Vec::new();
    };
    let Ok(domains) = parse_xentop(&String::from_utf8_lossy(&out.stdout)) else {
        return Vec::new();
    };
    domains
        .into_iter()
        .filter(|d| d.name != "Domain-0")
        .map(|d| Found {
            name: d.name,
            hypervisor: Some(Hypervisor::Xen),
            accelerator: Some("xen".into()),
            cpus: Some(d.vcpus),
            memory_mib: Some(d.memory_kib >> 10),
            ..Found::default()
        })
        .collect()
}

/// Everything on this host: libvirt's domains (merged with their QEMU
/// process, which knows the accelerator that really runs), other QEMU
/// processes, Xen domains.
pub fn discover() -> Vec<Found> {
    let mut processes = qemu_processes();
    let mut found = Vec::new();
    for mut domain in libvirt_domains(Path::new(LIBVIRT_RUN)) {
        if let Some(at) = processes
            .iter()
            .position(|p| p.pid.is_some() && p.pid == domain.pid)
        {
            let process = processes.remove(at);
            domain.accelerator = process.accelerator.or(domain.accelerator);
            if domain.vcpu_threads.is_empty() {
                domain.vcpu_threads = process.vcpu_threads;
            }
            domain.macs.extend(process.macs);
        }
        found.push(domain);
    }
    found.extend(processes);
    found.extend(xen_domains());
    found
}

/// This host's ARP table; empty where it cannot be read.
pub fn arp() -> HashMap<String, String> {
    std::fs::read_to_string("/proc/net/arp")
        .map(|t| arp_table(&t))
        .unwrap_or_default()
}

/// IPv4 address to MAC, from the kernel's ARP table.
pub fn arp_table(text: &str) -> HashMap<String, String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [ip, _, _, mac, ..] if *mac != "00:00:00:00:00:00" => {
                    Some((ip.to_string(), mac.to_ascii_lowercase()))
                }
                _ => None,
            }
        })
        .collect()
}

/// The address a found guest answers from, per the ARP table.
pub fn address_of<'a>(f: &Found, arp: &'a HashMap<String, String>) -> Option<&'a str> {
    arp.iter()
        .find(|(_, mac)| f.macs.contains(mac))
        .map(|(ip, _)| ip.as_str())
}

/// The found guest a plan guest is: the same name, or a MAC its address
/// answers from.
pub fn matching<'a>(
    guest: &Guest,
    found: &'a [Found],
    arp: &HashMap<String, String>,
) -> Option<&'a Found> {
    found.iter().find(|f| f.name == guest.name()).or_else(|| {
        let mac = arp.get(guest.address.as_deref()?)?;
        found.iter().find(|f| f.macs.contains(mac))
    })
}

/// Fills in, for every plan guest with `discover = true`, what the host
/// knows of it that the plan does not say: its process, tap, disk, and its
/// technology where the plan says `auto`. Returns one line per guest.
pub fn apply<'a>(
    guests: impl IntoIterator<Item = &'a mut Guest>,
    found: &[Found],
    arp: &HashMap<String, String>,
) -> Vec<String> {
    let mut notes = Vec::new();
    for guest in guests.into_iter().filter(|g| g.discover) {
        let Some(f) = matching(guest, found, arp) else {
            notes.push(format!(
                "{}: not found among this host's guests ({}); its host-side figures stay empty",
                guest.name(),
                if found.is_empty() {
                    "none running".to_string()
                } else {
                    found
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
            if guest.technology == "auto" {
                guest.technology = "unknown".into();
            }
            continue;
        };
        if guest.technology == "auto" {
            guest.technology = f.technology();
        }
        let no_process = guest.pid.is_none() && guest.pidfile.is_none() && guest.process.is_none();
        if no_process {
            guest.pid = f.pid;
        }
        if guest.interface.is_none() {
            guest.interface = f.interfaces.first().cloned();
        }
        if f.hypervisor == Some(Hypervisor::Xen) && guest.xen_domain.is_none() {
            guest.xen_domain = Some(f.name.clone());
        }
        if guest.block_device.is_none()
            && guest.image.is_none()
            && let Some(drive) = f.data_drive()
        {
            match drive.path.strip_prefix("/dev/") {
                Some(device) => guest.block_device = Some(device.to_string()),
                // A plain file: the image, when a loop device backs it, else
                // the process's own I/O counters tell its disk traffic.
                None if loop_device_of(Path::new(&drive.path)).is_ok() => {
                    guest.image = Some(drive.path.clone());
                }
                None => {}
            }
        }
        notes.push(format!("{}: {}", guest.name(), describe(f)));
    }
    notes
}

/// Discovery for the guests of this machine that ask for it (a guest on
/// another `[[host]]` is looked for by the agent there); nothing is looked
/// at otherwise. Returns one line per such guest.
pub fn fill_in(plan: &mut Plan) -> Vec<String> {
    fill_in_guests(plan.guests.iter_mut().filter(|g| g.host.is_none()))
}

/// Discovery on this machine for the guests given that ask for it.
pub fn fill_in_guests<'a>(guests: impl IntoIterator<Item = &'a mut Guest>) -> Vec<String> {
    let mut asking: Vec<&mut Guest> = guests.into_iter().filter(|g| g.discover).collect();
    if asking.is_empty() {
        return Vec::new();
    }
    apply(asking.iter_mut().map(|g| &mut **g), &discover(), &arp())
}

/// One line: what it is and how the host sees it.
pub fn describe(f: &Found) -> String {
    let mut text = format!("{} ", f.technology());
    if let Some(pid) = f.pid {
        let _ = write!(text, "pid {pid} ");
    }
    if !f.vcpu_threads.is_empty() {
        let _ = write!(text, "({} vCPU thread(s)) ", f.vcpu_threads.len());
    }
    if !f.interfaces.is_empty() {
        let _ = write!(text, "tap {} ", f.interfaces.join(","));
    }
    if let Some(d) = f.data_drive() {
        let _ = write!(text, "disk {} ", d.path);
    }
    if let (Some(cpus), Some(mem)) = (f.cpus, f.memory_mib) {
        let _ = write!(text, "{cpus} vCPU {mem} MiB");
    }
    text.trim_end().to_string()
}

/// A `[[guest]]` entry to paste into a plan (address, user and key are the
/// operator's to fill in).
pub fn plan_fragment(f: &Found, address: Option<&str>) -> String {
    let mut toml = format!(
        "[[guest]]\nname = {:?}\ntransport = \"ssh\"\ntechnology = \"auto\"   # {} now\n",
        f.name,
        f.technology()
    );
    match address {
        Some(address) => {
            let _ = writeln!(toml, "address = {address:?}");
        }
        None => toml.push_str("address = \"\"   # the guest's address\n"),
    }
    toml.push_str("user = \"root\"\n");
    if let Some(interface) = f.interfaces.first() {
        let _ = writeln!(toml, "interface = {interface:?}");
    }
    if let Some(drive) = f.data_drive() {
        match drive.path.strip_prefix("/dev/") {
            Some(dev) => {
                let _ = writeln!(toml, "block_device = {dev:?}");
            }
            None => {
                let _ = writeln!(toml, "image = {:?}", drive.path);
            }
        }
    }
    match (&f.pidfile, f.pid) {
        (Some(file), _) => {
            let _ = writeln!(toml, "pidfile = {file:?}");
        }
        // A QEMU started without -name is named qemu-<pid> here, which its
        // command line does not hold: only its pid finds it then.
        (None, Some(pid))
            if f.hypervisor == Some(Hypervisor::Qemu) && f.name == format!("qemu-{pid}") =>
        {
            let _ = writeln!(
                toml,
                "pid = {pid}   # it has no -name or -pidfile; give it one to survive a restart"
            );
        }
        (None, Some(_)) if f.hypervisor == Some(Hypervisor::Qemu) => {
            let _ = writeln!(
                toml,
                "process = {:?}",
                format!("qemu.*-name (guest=)?{}[ ,]", regex::escape(&f.name))
            );
        }
        _ => {}
    }
    if f.hypervisor == Some(Hypervisor::Xen) {
        let _ = writeln!(toml, "xen_domain = {:?}", f.name);
    }
    toml.push_str("discover = true\n");
    toml
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/discover/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_testbed_vms_command_line() {
        let raw = fixture("qemu-testbed.cmdline");
        let args: Vec<String> = raw
            .split('\0')
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        let f = parse_qemu(&args).expect("a QEMU command line");
        assert_eq!(f.name, "q1");
        assert_eq!(f.accelerator.as_deref(), Some("tcg"));
        assert_eq!(f.interfaces, ["vmbt-q1"]);
        assert_eq!(f.macs, ["52:54:00:12:34:21"]);
        assert_eq!(f.cpus, Some(1));
        assert_eq!(f.memory_mib, Some(512));
        // The root disk is a snapshot; the data disk on its loop device is
        // what the guest writes.
        assert_eq!(f.drives.len(), 2);
        assert!(!f.drives[0].writable);
        assert_eq!(f.data_drive().map(|d| d.path.as_str()), Some("/dev/loop4"));
        assert_eq!(f.technology(), "qemu-tcg");
    }

    #[test]
    fn a_qemu_without_a_name_gets_a_rule_that_finds_it() {
        let args: Vec<String> = [
            "/usr/bin/qemu-system-x86_64",
            "-m",
            "512",
            "-nic",
            "tap,ifname=tap7",
        ]
        .map(String::from)
        .to_vec();
        let mut found = parse_qemu(&args).expect("a QEMU command line");
        found.pid = Some(4698);
        found.name = "qemu-4698".into();
        let fragment = plan_fragment(&found, None);
        assert!(fragment.contains("pid = 4698"), "{fragment}");
        assert!(!fragment.contains("process ="), "{fragment}");

        let with_pidfile: Vec<String> = ["qemu-system-x86_64", "-pidfile", "/run/q.pid"]
            .map(String::from)
            .to_vec();
        let mut found = parse_qemu(&with_pidfile).expect("a QEMU command line");
        found.pid = Some(4698);
        found.name = "qemu-4698".into();
        let fragment = plan_fragment(&found, None);
        assert!(fragment.contains("pidfile = \"/run/q.pid\""), "{fragment}");
    }

    #[test]
    fn other_spellings_of_qemu_options() {
        let args: Vec<String> = [
            "/usr/bin/qemu-system-x86_64",
            "-name",
            "guest=web1,debug-threads=on",
            "-machine",
            "q35,accel=kvm:tcg",
            "-m",
            "size=2G",
            "-smp",
            "4,sockets=1",
            "-netdev",
            r#"{"type":"tap","ifname":"vnet3","id":"hostnet0"}"#,
            "-device",
            r#"{"driver":"virtio-net-pci","netdev":"hostnet0","mac":"52:54:00:AA:BB:CC"}"#,
            "-blockdev",
            r#"{"driver":"file","filename":"/var/lib/libvirt/images/web1.qcow2","node-name":"f"}"#,
        ]
        .map(String::from)
        .to_vec();
        let f = parse_qemu(&args).expect("QEMU");
        assert_eq!(f.name, "web1");
        assert_eq!(f.accelerator.as_deref(), Some("kvm"));
        assert_eq!((f.cpus, f.memory_mib), (Some(4), Some(2048)));
        assert_eq!(f.interfaces, ["vnet3"]);
        assert_eq!(f.macs, ["52:54:00:aa:bb:cc"]);
        assert_eq!(f.drives[0].path, "/var/lib/libvirt/images/web1.qcow2");
        assert!(parse_qemu(&["/bin/bash".to_string()]).is_none());
    }

    #[test]
    fn a_libvirt_status_file() {
        let f = parse_libvirt_status(&fixture("libvirt-status-upstream.xml")).expect("parses");
        assert_eq!(f.name, "upstream");
        assert_eq!(f.pid, Some(195139));
        assert_eq!(f.accelerator.as_deref(), Some("kvm"));
        assert_eq!(f.vcpu_threads, [(0, 195156), (1, 195157)]);
        assert_eq!((f.cpus, f.memory_mib), (Some(2), Some(1000)));
        assert_eq!(f.interfaces, ["vnet0"]);
        assert_eq!(f.macs, ["52:54:00:36:bd:3b"]);
        // The CD-ROM is read-only: the qcow2 is the disk to watch.
        assert_eq!(f.drives.len(), 2);
        assert_eq!(
            f.data_drive().map(|d| d.path.as_str()),
            Some("/var/lib/libvirt/images/a.qcow2")
        );
        assert!(parse_libvirt_status("<html/>").is_err());
    }

    #[test]
    fn xentop_with_sector_columns() {
        let domains = parse_xentop(&fixture("xentop-batch-rsect.txt")).expect("parses");
        assert_eq!(domains.len(), 2);
        let d = &domains[0];
        assert_eq!(d.name, "c2214-vkge");
        assert_eq!((d.cpu_seconds, d.vcpus), (2084, 92));
        assert_eq!((d.net_tx_kib, d.net_rx_kib), (4249, 52707));
        assert_eq!((d.block_reads, d.block_writes), (84460, 75132));
        assert_eq!(
            (d.block_read_sectors, d.block_write_sectors),
            (Some(4754377), Some(8759386))
        );
    }

    #[test]
    fn xentop_without_sector_columns_and_no_memory_limit() {
        let domains = parse_xentop(&fixture("xentop-batch-nolimit.txt")).expect("parses");
        let names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["Domain-0", "jvm", "utm"]);
        assert_eq!(domains[0].memory_kib, 1000448);
        assert_eq!(
            (domains[2].net_tx_kib, domains[2].block_writes),
            (17630, 17994)
        );
        assert_eq!(domains[2].block_read_sectors, None);
        assert!(parse_xentop("nothing here").is_err());
        let short = "NAME STATE CPU(sec)\nx --b--- \n";
        assert!(parse_xentop(short).is_err());
    }

    #[test]
    fn a_xentop_stream_is_cut_into_frames() {
        let frame = fixture("xentop-batch-nolimit.txt");
        let stream = format!("{frame}{frame}");
        let mut frames = XentopFrames::default();
        let done: Vec<_> = stream.lines().filter_map(|l| frames.push(l)).collect();
        // The second header completes the first frame; the second waits.
        assert_eq!(done.len(), 1);
        let first = done[0].as_ref().expect("parses");
        assert_eq!(first.len(), 3);
    }

    #[test]
    fn arp_entries_map_addresses_to_macs() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
                    198.18.0.201      0x1         0x2         52:54:00:12:34:21     *        vmbt0\n\
                    198.18.0.99      0x1         0x0         00:00:00:00:00:00     *        vmbt0\n";
        let arp = arp_table(text);
        assert_eq!(
            arp.get("198.18.0.201").map(String::as_str),
            Some("52:54:00:12:34:21")
        );
        assert!(!arp.contains_key("198.18.0.99"));
    }
}
