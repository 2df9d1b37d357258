//! The shipped demo recording (bare metal, a namespace guest and a QEMU VM
//! side by side), built into the binary so that `vmbench replay` shows it
//! from anywhere, `cargo install`ed or not.

use std::path::PathBuf;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Where a source checkout keeps it; preferred when present, so that a
/// re-recorded demo shows without a rebuild.
pub const IN_CHECKOUT: &str = "recordings/demo.vmb";

const EMBEDDED: &[u8] = include_bytes!("../recordings/demo.vmb");

/// The demo recording as a file: the checkout's copy, or the embedded one
/// written once to the user's cache folder (SQLite reads files, not bytes).
pub fn path() -> Result<PathBuf> {
    let here = PathBuf::from(IN_CHECKOUT);
    if here.is_file() {
        return Ok(here);
    }
    let digest = Sha256::digest(EMBEDDED);
    let name = format!(
        "demo-{}.vmb",
        digest[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let dir = cache_dir();
    let file = dir.join(name);
    if std::fs::metadata(&file).is_ok_and(|m| m.len() == EMBEDDED.len() as u64) {
        return Ok(file);
    }
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "no {IN_CHECKOUT} here, and the built-in demo cannot be written to {}",
            dir.display()
        )
    })?;
    // Written beside and renamed, so that a reader never sees half of it.
    let partial = file.with_extension("partial");
    std::fs::write(&partial, EMBEDDED)
        .and_then(|()| std::fs::rename(&partial, &file))
        .with_context(|| {
            format!(
                "no {IN_CHECKOUT} here, and the built-in demo cannot be written to {}",
                file.display()
            )
        })?;
    Ok(file)
}

/// `$XDG_CACHE_HOME/vmbench`, `~/.cache/vmbench`, or the temporary folder.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("vmbench");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".cache").join("vmbench");
    }
    std::env::temp_dir().join("vmbench")
}
