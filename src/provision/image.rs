//! The guest image every technology boots (`vmbench image build`): the
//! script in `image-build.sh`, run by bash, cached by the hash of its
//! inputs; its progress lines are passed on as they come.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SCRIPT: &str = include_str!("image-build.sh");

/// What building the image needs that this host lacks.
pub fn missing() -> Vec<String> {
    super::missing_programs(&["debootstrap", "mkfs.ext4", "busybox", "python3", "dpkg-deb"])
        .into_iter()
        .map(|m| format!("{m}, to build the guest image (busybox-static for busybox)"))
        .collect()
}

/// The image's folder, built first if it is not cached (for `suite`, the
/// script's default when None); each line of its progress goes to `say`.
pub fn ensure(suite: Option<&str>, say: &mut dyn FnMut(String)) -> Result<PathBuf, String> {
    // The script as an argument, not a file: a build killed midway
    // leaves no copy of it behind.
    let mut command = Command::new("bash");
    command
        .args(["-c", SCRIPT, "vmbench-image-build"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(suite) = suite {
        command.env("VMBENCH_IMAGE_SUITE", suite);
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("running the image builder: {e}"))?;
    let mut last = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("image: ") {
                say(line.clone());
            }
            last.push(line);
            if last.len() > 20 {
                last.remove(0);
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("image builder: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the guest image did not build:\n{}",
            last.join("\n")
        ));
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(dir))
}

/// The image as the header names it: its folder and its inputs.
pub fn describe(dir: &Path) -> String {
    let inputs = std::fs::read_to_string(dir.join("inputs")).unwrap_or_default();
    format!(
        "{} ({})",
        dir.display(),
        inputs.lines().collect::<Vec<_>>().join("; ")
    )
}
