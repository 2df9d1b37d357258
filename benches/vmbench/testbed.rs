//! The testbed's namespace guests, for the figures that need SSH guests.

use std::process::Command;

pub const STATE: &str = "/run/vmbench-testbed";

/// Brings the testbed up with `guests` namespace guests (and no VM); false
/// when it cannot (it needs root and openssh-server).
pub fn up(guests: usize) -> bool {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testbed/testbed");
    Command::new(script)
        .args(["up", &guests.to_string()])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Guest i's address on the testbed's bridge.
pub fn address(i: usize) -> String {
    format!("198.18.0.{}", 10 + i)
}

/// `[[guest]]` entries for g1..gN, reached with the testbed's key and known
/// hosts (a session refuses unknown host keys, as it would anywhere).
pub fn guests(n: usize) -> String {
    (1..=n)
        .map(|i| {
            format!(
                "[[guest]]\nname = \"g{i}\"\ntransport = \"ssh\"\ntechnology = \"netns\"\naddress = \"{}\"\n\
                 user = \"root\"\nidentity = \"{STATE}/id_ed25519\"\nknown_hosts = \"{STATE}/known_hosts\"\ninterface = \"vmbt-g{i}h\"\n",
                address(i)
            )
        })
        .collect()
}

/// The ssh options that reach a testbed guest as a session does.
pub fn ssh_options() -> Vec<String> {
    [
        format!("-i{STATE}/id_ed25519"),
        format!("-oUserKnownHostsFile={STATE}/known_hosts"),
        "-oStrictHostKeyChecking=yes".into(),
        "-oBatchMode=yes".into(),
    ]
    .into()
}
