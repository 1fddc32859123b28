//! Trust: everything that can reach an argv is trusted, whatever turns it
//! on; story text never becomes shell code; the trust record is input too.

use crate::support::*;

/// A stand-in program on a PATH of its own that records it ran.
fn stand_in(repo: &TestRepo, name: &str) -> (String, std::path::PathBuf) {
    let bin = repo.rec.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let marker = repo.rec.join(format!("{name}-ran"));
    let path = bin.join(name);
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"$@\" > '{}'\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path_var = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    (path_var, marker)
}

#[test]
fn launcher_args_are_trusted_even_without_a_launcher_in_the_config() {
    let repo = TestRepo::new();
    let agent = repo.agent("a.sh", "echo ok");
    repo.config(serde_json::json!({"agent": {"command": [agent]}}));
    // A pull request adds srun options that run programs, and no launcher:
    // `run --launcher slurm` would hand them to srun.
    repo.config_untrusted(serde_json::json!({
        "agent": {"command": [agent]},
        "orchestrator": {"launcherArgs": ["--prolog=/tmp/evil"]}
    }));
    let show = repo.run(&["trust", "--show"]);
    assert!(
        stdout(&show).contains("--prolog=/tmp/evil"),
        "trust --show does not show the launcher's arguments:\n{}",
        stdout(&show)
    );
    repo.ready_stories(1);
    let (path, srun_ran) = stand_in(&repo, "srun");
    let out = repo.run_env(&["run", "--launcher", "slurm"], &[("PATH", &path)]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("not been trusted"),
        "{}",
        stderr(&out)
    );
    assert!(!srun_ran.exists(), "srun ran with untrusted arguments");
}

#[test]
fn a_story_title_in_a_shell_script_is_never_shell_code() {
    let repo = TestRepo::new();
    let marker = repo.rec.join("title-ran");
    let out_file = repo.rec.join("said");
    repo.config(serde_json::json!({"agent": {"command": [
        "sh", "-c", format!("echo '{{title}}' > '{}'; echo \"{{id}}\" >> '{}'; echo {{slug}} >> '{}'", out_file.display(), out_file.display(), out_file.display())
    ]}}));
    let title = format!("x'; touch {}; echo '", marker.display());
    repo.story(
        "S-0001",
        &format!("\"{}\"", title.replace('"', "\\\"")),
        1,
        "ready",
        "",
    );
    let out = repo.run(&["run"]);
    assert!(
        !marker.exists(),
        "the story title ran as shell code:\n{}",
        stderr(&out)
    );
    expect_code(&out, 0);
    let said = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(said.lines().next(), Some(title.as_str()), "{said}");
}

/// The trust record's path for this test.
fn record(repo: &TestRepo) -> std::path::PathBuf {
    repo.xdg().join("ai-sdlc").join("trust.json")
}

fn trusted_repo() -> TestRepo {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "echo ok");
    repo.ready_stories(1);
    repo
}

#[test]
fn a_trust_record_of_the_wrong_shape_is_refused_with_a_message_not_a_panic() {
    for text in [
        "[]",
        "\"x\"",
        "{\"repos\": []}",
        "{\"repos\": {\"/r\": 3}}",
        "7",
    ] {
        let repo = trusted_repo();
        std::fs::write(record(&repo), text).unwrap();
        for args in [&["trust", "--show"][..], &["run"][..], &["trust"][..]] {
            let out = repo.run(args);
            assert_ne!(
                code(&out),
                101,
                "{args:?} on {text}: a panic\n{}",
                stderr(&out)
            );
            if code(&out) != 0 {
                assert!(
                    stderr(&out).contains("trust.json"),
                    "{args:?} on {text}: {}",
                    stderr(&out)
                );
            }
        }
        // `run` never runs an untrusted command on a broken record.
        let out = repo.run(&["run"]);
        expect_code(&out, 2);
    }
}

#[test]
fn a_fifo_at_the_trust_records_path_never_hangs_a_command() {
    let repo = trusted_repo();
    let path = record(&repo);
    std::fs::remove_file(&path).unwrap();
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let child = repo
        .cmd(&["run"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, _, err) = finish(child, 15);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("trust.json") && err.contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn a_trust_record_others_can_write_is_refused() {
    let repo = trusted_repo();
    let path = record(&repo);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("writable by others") && stderr(&out).contains("chmod"),
        "{}",
        stderr(&out)
    );
    // Its folder too.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let dir = path.parent().unwrap();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("writable by others"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_trust_record_owned_by_another_user_is_refused() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only root can give the record to another user");
        return;
    }
    let repo = trusted_repo();
    let path = record(&repo);
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // nobody
    assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("owned by"), "{}", stderr(&out));
}
