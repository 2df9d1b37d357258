//! The binary run on fixture files: what a user sees when input is wrong.

use assert_cmd::Command;

/// vmbench, killed (and the test failed) past a minute: none of these
/// commands starts a session.
fn vmbench() -> Command {
    let mut command = Command::cargo_bin("vmbench").expect("the binary is built");
    command.timeout(std::time::Duration::from_secs(60));
    command
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/plans/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn stderr_of(args: &[&str]) -> (i32, String) {
    let out = vmbench().args(args).output().expect("vmbench runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_duration_names_file_line_and_field_and_exits_2() {
    let plan = fixture("bad-duration.toml");
    let (code, stderr) = stderr_of(&["record", &plan]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{plan}:11:12: field `benchmark[0].duration`: invalid duration \"ten seconds\""
        )),
        "{stderr}"
    );
}

#[test]
fn an_unknown_workload_parameter_is_named() {
    let (code, stderr) = stderr_of(&["record", &fixture("unknown-field.toml")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(":10:"), "{stderr}");
    assert!(
        stderr.contains("benchmark[0].workload") && stderr.contains("unknown field `sise`"),
        "{stderr}"
    );
}

#[test]
fn a_missing_plan_is_named() {
    let (code, stderr) = stderr_of(&["record", "/nonexistent/plan.toml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("/nonexistent/plan.toml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_theme_lists_the_built_in_ones() {
    let (code, stderr) = stderr_of(&["--theme", "solarized", "replay", "x.vmb"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("dark, light, mono"), "{stderr}");
}

#[test]
fn replaying_what_is_not_there_says_so() {
    let (code, stderr) = stderr_of(&["export", "/nonexistent.vmb", "--csv", "/tmp/none"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/nonexistent.vmb: no such recording"),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_user_commands_but_not_the_workload_runner() {
    let out = vmbench().arg("--help").output().expect("vmbench runs");
    let help = String::from_utf8_lossy(&out.stdout);
    for command in ["run", "record", "replay", "export", "check", "report"] {
        assert!(help.contains(command), "{help}");
    }
    assert!(!help.contains("workload"), "{help}");
}

#[test]
fn a_report_of_nothing_says_what_is_missing() {
    let (code, stderr) = stderr_of(&["report", "/nonexistent.vmb"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/nonexistent.vmb: no such recording"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_a_recording_is_bad_input() {
    let plan = fixture("bad-duration.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("csv");
    let (code, stderr) = stderr_of(&["export", &plan, "--csv", out.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{plan}: not a vmbench recording")),
        "{stderr}"
    );
}

#[test]
fn a_report_whose_reader_goes_away_ends_quietly() {
    let demo = format!("{}/recordings/demo.vmb", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vmbench"))
        .args(["report", &demo, "--format", "markdown"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vmbench runs");
    // The reader reads nothing and goes, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("vmbench exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
    // It did write into the closed pipe (so the test is not vacuous), and
    // ended as a Unix filter does there: by SIGPIPE, silently.
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
}

#[test]
fn replay_without_a_file_finds_the_built_in_demo_from_any_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    let out = vmbench()
        .arg("replay")
        .current_dir(dir.path())
        .env("XDG_CACHE_HOME", &cache)
        .output()
        .expect("vmbench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // No terminal here: it gets as far as the screen, with the demo found.
    assert!(stderr.contains("the TUI needs a terminal"), "{stderr}");
    let written: Vec<_> = std::fs::read_dir(cache.join("vmbench"))
        .expect("the demo was written to the cache folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let reader = vmbench::store::Reader::open(&written[0]).expect("a readable recording");
    assert_eq!(reader.header.plan_name, "demo");
}

#[test]
fn the_built_in_plans_are_listed_and_printed_from_any_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = vmbench()
        .arg("plans")
        .current_dir(dir.path())
        .output()
        .expect("vmbench runs");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("default") && text.contains("study-2009"),
        "{text}"
    );
    let study = vmbench()
        .args(["plans", "study-2009"])
        .current_dir(dir.path())
        .output()
        .expect("vmbench runs");
    let printed = String::from_utf8_lossy(&study.stdout).into_owned();
    let path = dir.path().join("study.toml");
    std::fs::write(&path, &printed).expect("written");
    // What it prints is a plan vmbench takes as it is.
    let plan = vmbench::plan::LoadedPlan::from_file(&path).expect("a valid plan");
    assert_eq!(plan.plan.name, "study-2009");
    let (code, stderr) = stderr_of(&["plans", "nope"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("there are: default, study-2009"),
        "{stderr}"
    );
}

#[test]
fn completions_are_valid_bash_and_know_every_command_and_option() {
    let out = vmbench()
        .args(["completions", "bash"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).expect("utf-8");
    for word in ["replay", "report", "check", "--follow", "--time-scale"] {
        assert!(script.contains(word), "{word} is not completed");
    }
    assert!(!script.contains("workload"), "the hidden runner is offered");
    assert!(
        script.contains("--list-theme-slots"),
        "top-level options are lost"
    );
    // bash itself parses it.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vmbench.bash");
    std::fs::write(&path, &script).expect("write");
    let status = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .status()
        .expect("bash runs");
    assert!(status.success(), "bash -n refuses the completion script");
    for shell in ["zsh", "fish"] {
        let out = vmbench()
            .args(["completions", shell])
            .output()
            .expect("runs");
        assert!(out.status.success() && !out.stdout.is_empty(), "{shell}");
    }
}

#[test]
fn the_man_page_covers_every_command_with_its_examples() {
    let out = vmbench().arg("man").output().expect("runs");
    assert!(out.status.success());
    let page = String::from_utf8(out.stdout).expect("utf-8");
    assert!(page.contains(".TH vmbench 1"), "not a roff manual page");
    for section in ["run", "record", "replay", "export", "report", "check"] {
        assert!(
            page.contains(&format!("\nvmbench {section} \\- ")),
            "no section for {section}"
        );
    }
    assert!(page.contains(r"\-\-follow"));
    assert!(page.contains("Examples:"));
}

#[test]
fn a_config_file_with_a_bad_line_is_named_with_exit_2_and_the_default_one_reads() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path().join("vmbench");
    std::fs::create_dir_all(&dir).expect("folder");
    let file = dir.join("config.toml");
    let config = |args: &[&str]| {
        let out = vmbench()
            .env("XDG_CONFIG_HOME", home.path())
            .args(args)
            .output()
            .expect("vmbench runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, default, _) = config(&["config", "--default"]);
    assert_eq!(code, 0);
    std::fs::write(&file, &default).expect("written");
    let (code, said, _) = config(&["config"]);
    assert_eq!(
        (code, said.trim_end()),
        (0, format!("{}: reads", file.display()).as_str())
    );
    std::fs::write(&file, "layout = 2\n\n[keys]\nfilter = \"F13\"\n").expect("written");
    let (code, _, stderr) = config(&["config"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:4:10: field `keys.filter`", file.display())),
        "{stderr}"
    );
    // The screen refuses it the same way, before taking the terminal.
    let (code, _, stderr) = config(&["replay"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("keys.filter"), "{stderr}");
}
