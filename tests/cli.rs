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

fn demo() -> String {
    format!("{}/recordings/demo.vmb", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn an_existing_recording_is_never_overwritten_and_no_fleet_is_made_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        "name = \"kept\"\n\n[[fleet]]\nname = \"nf\"\ntechnology = \"netns\"\ncount = 1\n\
         addresses = \"198.18.60.0/24\"\n\n[[benchmark]]\nname = \"cpu\"\nworkload = { type = \"cpu\" }\n\
         duration = \"1s\"\nconcurrency = [1]\n",
    )
    .expect("plan");
    let precious = dir.path().join("night.vmb");
    std::fs::write(&precious, "a night's work").expect("file");
    let out = vmbench()
        .args(["record", plan.to_str().expect("utf-8"), "-o"])
        .arg(&precious)
        .output()
        .expect("vmbench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("exists already; a recording is never overwritten"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&precious).expect("still there"),
        "a night's work"
    );
    // Refused before the fleet was made (that costs minutes for VMs).
    assert!(!stderr.contains("fleet nf"), "{stderr}");
}

#[test]
fn a_replay_speed_outside_its_limits_is_refused_with_both_limits() {
    for speed in ["0.2", "65"] {
        let (code, stderr) = stderr_of(&["replay", &demo(), "--speed", speed]);
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.contains(&format!("{speed} is outside 0.25..64")),
            "{stderr}"
        );
    }
}

#[test]
fn export_salvage_keeps_the_readable_samples_of_a_damaged_recording() {
    let dir = tempfile::tempdir().expect("tempdir");
    let damaged = dir.path().join("damaged.vmb");
    let mut bytes = std::fs::read(demo()).expect("demo");
    // 40 bytes overwritten three quarters in: a page of samples.
    let at = bytes.len() * 3 / 4;
    bytes[at..at + 40].fill(0xff);
    std::fs::write(&damaged, bytes).expect("written");
    let export = |folder: &str, salvage: bool| {
        let mut command = vmbench();
        command
            .args(["export", damaged.to_str().expect("utf-8"), "--csv"])
            .arg(dir.path().join(folder));
        if salvage {
            command.arg("--salvage");
        }
        let out = command.output().expect("vmbench runs");
        assert!(out.status.success());
        let rows = std::fs::read_to_string(dir.path().join(folder).join("samples_wide.csv"))
            .expect("samples_wide.csv")
            .lines()
            .count();
        (rows, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (plain, said) = export("plain", false);
    assert!(said.contains("damaged at"), "{said}");
    assert!(said.contains("--salvage"), "{said}");
    let (salvaged, said) = export("salvaged", true);
    assert!(said.contains("skipped sample records after"), "{said}");
    assert!(
        salvaged > plain + 100,
        "salvage kept {salvaged} rows, the plain export {plain}"
    );
}

#[test]
fn report_o_writes_what_it_would_print() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("report.md");
    let args = ["report", &demo(), "--format", "markdown"];
    let printed = vmbench().args(args).output().expect("vmbench runs");
    assert!(printed.status.success());
    let written = vmbench()
        .args(args)
        .arg("-o")
        .arg(&file)
        .output()
        .expect("vmbench runs");
    assert!(written.status.success());
    let text = std::fs::read_to_string(&file).expect("the report file");
    assert!(text.contains("% loss"), "{text}");
    assert_eq!(text.as_bytes(), printed.stdout.as_slice());
}
