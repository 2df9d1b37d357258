//! The guest image's build goes on after an interruption: the steps done
//! before are not done again and the build ends with a usable image. It
//! builds into a cache folder of its own, sharing only the downloaded
//! Debian packages with the testbed's cache (the packages are inputs the
//! build keeps on purpose; the steps' marks are what is tested).

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const VMBENCH: &str = env!("CARGO_BIN_EXE_vmbench");
const SHARED_PACKAGES: &str = "/var/cache/vmbench/images/debs";

/// `vmbench image build` into `cache`, in a process group of its own (as a
/// terminal's Ctrl-C reaches the whole group); its stderr lines are sent
/// on as they come.
fn build(cache: &std::path::Path) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut command = Command::new(VMBENCH);
    // SIGINT as a terminal's Ctrl-C finds it: a test run in the background
    // of a non-interactive shell inherits it ignored, and so would the
    // build (it then ran to its end, 42 s, and the test failed).
    // SAFETY: signal() is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command
        .args(["image", "build"])
        .env("VMBENCH_IMAGE_CACHE", cache)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmbench starts");
    let rx = common::stderr_lines(&mut child);
    (child, rx)
}

/// Lines until one contains `until`, within `limit`.
fn read_until(rx: &std::sync::mpsc::Receiver<String>, until: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            panic!("no {until:?} within {limit:?}: {lines:#?}");
        };
        let done = line.contains(until);
        lines.push(line);
        if done {
            return lines;
        }
    }
}

fn wait(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            // SAFETY: its own process group, made by this test.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            panic!("the build did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_interrupted_image_build_goes_on_from_the_step_it_was_in() {
    let cache = tempfile::tempdir_in("/var/tmp").expect("cache folder");
    std::fs::create_dir_all(SHARED_PACKAGES).expect("packages folder");
    std::os::unix::fs::symlink(SHARED_PACKAGES, cache.path().join("debs")).expect("link");

    let (mut first, rx) = build(cache.path());
    read_until(&rx, "step 3/4: root tree", Duration::from_secs(300));
    // Into debootstrap's work, then a Ctrl-C to the whole group.
    std::thread::sleep(Duration::from_secs(5));
    // SAFETY: its own process group, made by this test.
    unsafe { libc::kill(-(first.id() as i32), libc::SIGINT) };
    let interrupted = Instant::now();
    let status = wait(&mut first, Duration::from_secs(30));
    eprintln!(
        "interrupted build ended {:?} after its SIGINT",
        interrupted.elapsed()
    );
    assert!(!status.success(), "the first build was interrupted");
    let image = std::fs::read_dir(cache.path())
        .expect("cache")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("image-") && e.path().is_dir())
        .expect("the interrupted build's folder is kept")
        .path();
    assert!(!image.join("done").exists());
    assert!(image.join("vmlinux").exists() && image.join("initrd.cpio").exists());

    let (mut second, rx) = build(cache.path());
    let lines = read_until(&rx, "built in", Duration::from_secs(600));
    let status = wait(&mut second, Duration::from_secs(60));
    assert!(status.success(), "{lines:#?}");
    let said = lines.join("\n");
    assert!(
        said.contains("step 1/4: kernel: done before")
            && said.contains("step 2/4: initramfs: done before")
            && said.contains("step 3/4: root tree: debootstrap"),
        "{said}"
    );
    let mut out = String::new();
    std::io::Read::read_to_string(&mut second.stdout.take().expect("piped"), &mut out)
        .expect("stdout");
    assert!(out.starts_with(&image.display().to_string()), "{out}");
    for made in [
        "done",
        "root.img",
        "root/sbin/vmbench-init",
        "root/usr/sbin/sshd",
    ] {
        assert!(image.join(made).exists(), "{made} is missing");
    }
    // Nothing of the interrupted debootstrap is still mounted.
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    assert!(
        !mounts.contains(&cache.path().display().to_string()),
        "{mounts}"
    );
}
