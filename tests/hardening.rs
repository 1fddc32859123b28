//! A hostile repo, story or agent (issue "Hardening"): nothing escapes the
//! board and the worktree base, nothing an agent made is lost, no story runs
//! twice, no story file is corrupted, nothing grows without bound or hangs.

use crate::support::*;

/// An agent that leaves a process in its own session (`setsid`) and one in
/// its group, records both pids, and waits.
const ESCAPER: &str = "setsid sh -c 'echo $$ > \"$0\"; exec sleep 300' \"$REC/$id.escaped\" &\nsleep 300 & rec bg $!\nwhile [ ! -s \"$REC/$id.escaped\" ]; do sleep 0.05; done\ntouch \"$REC/$id.ready\"\nsleep 300";

fn escaper_pids(repo: &TestRepo, id: &str) -> Vec<i32> {
    repo.wait_rec(&format!("{id}.ready"));
    vec![
        repo.pid(id, "pid"),
        repo.pid(id, "bg"),
        repo.pid(id, "escaped"),
    ]
}

#[test]
fn single_story_mode_leaves_nothing_after_sigkill_of_the_runner() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", ESCAPER);
    repo.ready_stories(1);
    let child = repo.spawn(&["run"]);
    let pids = escaper_pids(&repo, "S-0001");
    signal(child.id(), libc::SIGKILL);
    let _ = finish(child, 10);
    for p in pids {
        assert_dies(p, 10, "a process of the SIGKILLed single-story runner");
    }
}

#[test]
fn every_stop_signal_stops_a_run_with_its_own_exit_code() {
    for (sig, want) in [
        (libc::SIGINT, 130),
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 129),
        (libc::SIGQUIT, 131),
    ] {
        let repo = TestRepo::new();
        repo.with_agent("a.sh", ESCAPER);
        repo.ready_stories(1);
        let child = repo.spawn(&["run"]);
        let pids = escaper_pids(&repo, "S-0001");
        signal(child.id(), sig);
        let (code, _, err) = finish(child, 30);
        assert_eq!(code, want, "signal {sig}: {err}");
        assert_eq!(repo.status("S-0001"), "ready", "{err}");
        for p in pids {
            assert_dies(p, 2, "a process of the stopped run");
        }
    }
}

#[test]
fn a_story_that_ends_takes_its_setsid_children_along() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "setsid sh -c 'echo $$ > \"$0\"; exec sleep 300' \"$REC/$id.escaped\" &\nwhile [ ! -s \"$REC/$id.escaped\" ]; do sleep 0.05; done",
    );
    repo.ready_stories(2);
    for args in [&["run"][..], &["run", "--concurrent", "2"][..]] {
        let out = repo.run(args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    for id in ["S-0001", "S-0002"] {
        assert_dies(
            repo.pid(id, "escaped"),
            2,
            "a setsid child of a finished story",
        );
    }
}

/// A folder outside the repo with files in it: nothing the tool does may
/// change it (checked by content and by count).
struct Victim {
    dir: TempDir,
}

impl Victim {
    fn new() -> Victim {
        let dir = TempDir::new("victim");
        for name in ["a.log", "b.log", "precious.txt"] {
            std::fs::write(dir.0.join(name), format!("{name} must survive\n")).unwrap();
        }
        Victim { dir }
    }

    fn path(&self) -> &std::path::Path {
        &self.dir.0
    }

    /// Every file below the folder, with its bytes, sorted.
    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.0.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    stack.push(p.clone());
                    out.push((p.display().to_string(), Vec::new()));
                } else {
                    out.push((
                        p.display().to_string(),
                        std::fs::read(&p).unwrap_or_default(),
                    ));
                }
            }
        }
        out.sort();
        out
    }
}

fn symlink(target: &std::path::Path, link: &std::path::Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn symlinks_and_dotdot_in_the_board_never_lead_outside_the_repo() {
    let repo = TestRepo::new();
    let victim = Victim::new();
    let before = victim.snapshot();
    repo.with_agent(
        "a.sh",
        "echo work > work.txt && git add -A && git commit -qm work",
    );
    repo.ready_stories(1);
    // A committed `logs` symlink: rotation must never delete the victim's *.log.
    repo.story("S-0002", "Logs link", 2, "ready", "");
    symlink(
        victim.path(),
        &repo.root.join(".ai-sdlc/stories/S-0002/logs"),
    );
    // A story file that is a symlink out of the repo.
    let s3 = repo.root.join(".ai-sdlc/stories/S-0003/story.md");
    symlink(&victim.path().join("precious.txt"), &s3);
    // A slug that climbs out of the worktree base.
    let climb = format!("x/{}{}/y", "../".repeat(12), victim.path().display());
    repo.story(
        "S-0004",
        "Climber",
        4,
        "ready",
        &format!("slug: '{climb}'\n"),
    );

    let out = repo.run(&["run", "--concurrent", "3"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert_eq!(repo.status("S-0001"), "done", "{err}");
    assert_eq!(repo.status("S-0002"), "ready", "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert!(err.contains("S-0003/story.md"), "{err}");
    assert_eq!(repo.status("S-0004"), "ready", "{err}");
    assert!(err.contains("cannot be a worktree folder"), "{err}");
    assert!(!repo.started("S-0002") && !repo.started("S-0004"));
    assert_eq!(
        victim.snapshot(),
        before,
        "something outside the repo changed"
    );
}

#[test]
fn a_symlinked_board_worktree_base_or_gitignore_is_refused() {
    let repo = TestRepo::new();
    let victim = Victim::new();
    repo.with_agent("a.sh", "exit 0");
    repo.ready_stories(1);
    symlink(victim.path(), &repo.root.join(".ai-sdlc/worktrees"));
    let before = victim.snapshot();
    let out = repo.run(&["run"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(repo.status("S-0001"), "ready", "{err}");
    assert!(!repo.started("S-0001"));
    assert_eq!(victim.snapshot(), before);

    // The stories folder itself a link to a folder holding a ready story.
    let other = TestRepo::new();
    other.with_agent("a.sh", "exit 0");
    let elsewhere = victim.path().join("board");
    std::fs::create_dir_all(elsewhere.join("S-0009")).unwrap();
    std::fs::copy(repo.story_path("S-0001"), elsewhere.join("S-0009/story.md")).unwrap();
    std::fs::remove_dir_all(other.root.join(".ai-sdlc/stories")).unwrap();
    symlink(&elsewhere, &other.root.join(".ai-sdlc/stories"));
    let before = victim.snapshot();
    for args in [&["status"][..], &["run"][..], &["add", "x"][..]] {
        let out = other.run(args);
        assert_ne!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    }
    assert_eq!(victim.snapshot(), before);

    // `init` never writes through a symlinked .gitignore.
    let fresh = TempDir::new("init");
    symlink(
        &victim.path().join("precious.txt"),
        &fresh.0.join(".gitignore"),
    );
    let out = fresh
        .bin()
        .arg("-C")
        .arg(&fresh.0)
        .arg("init")
        .output()
        .unwrap();
    assert_ne!(code(&out), 0, "{}", stdout(&out));
    assert!(stderr(&out).contains(".gitignore"), "{}", stderr(&out));
    assert_eq!(victim.snapshot(), before);
}

#[test]
fn git_clean_under_a_running_story_does_not_let_a_second_runner_take_it() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "echo run >> \"$REC/$id.runs\"\ntouch \"$REC/$id.ready\"\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done",
    );
    repo.ready_stories(1);
    let first = repo.spawn(&["run"]);
    repo.wait_rec("S-0001.ready");
    git(&repo.root, &["clean", "-fdX", "-q"]);
    let status = repo.run(&["status"]);
    assert!(stdout(&status).contains("running"), "{}", stdout(&status));
    let second = repo.run(&["run", "--story", "S-0001"]);
    assert_eq!(code(&second), 0, "{}", stderr(&second));
    assert!(
        stderr(&second).contains("another runner"),
        "{}",
        stderr(&second)
    );
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (code, _, err) = finish(first, 30);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        repo.rec_file("S-0001.runs").unwrap(),
        "run\n",
        "the story ran twice"
    );
}

#[test]
fn stories_whose_worktree_names_collide_are_both_skipped() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story("S-1", "One", 1, "ready", "slug: 2-fix\n");
    repo.story("S-1-2", "Two", 2, "ready", "slug: fix\n");
    let out = repo.run(&["run", "--concurrent", "2"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains("also that of S-1-2") && err.contains("also that of S-1"),
        "{err}"
    );
    assert!(!repo.started("S-1") && !repo.started("S-1-2"));
    assert!(!repo.worktree("S-1-2-fix").exists());
}

#[test]
fn a_story_whose_worktree_still_has_a_live_process_is_not_stale() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "echo run >> \"$REC/$id.runs\"\n[ -f \"$REC/$id.ready\" ] && exit 0\ntouch \"$REC/$id.ready\"\nsleep 300",
    );
    repo.ready_stories(1);
    let runner = repo.spawn(&["run"]);
    repo.wait_rec("S-0001.ready");
    // The runner and its executor die at once; a process in the worktree lives on.
    let wt = repo.worktree("S-0001-s1");
    let mut survivor = std::process::Command::new("sleep")
        .arg("300")
        .current_dir(&wt)
        .spawn()
        .unwrap();
    signal(runner.id(), libc::SIGKILL);
    signal((-repo.pid("S-0001", "ppid")) as u32, libc::SIGKILL);
    let _ = finish(runner, 10);
    assert_dies(repo.pid("S-0001", "pid"), 10, "the agent");
    let status = stdout(&repo.run(&["status"]));
    assert!(
        status.contains(&format!("process {}", survivor.id())),
        "{status}"
    );
    let out = repo.run(&["run"]);
    assert!(
        stderr(&out).contains("leaving it alone"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.status("S-0001"), "in-progress");
    assert_eq!(repo.rec_file("S-0001.runs").unwrap(), "run\n");
    survivor.kill().unwrap();
    survivor.wait().unwrap();
    let out = repo.run(&["run"]);
    assert!(
        stderr(&out).contains("returned it to ready"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.status("S-0001"), "done", "{}", stderr(&out));
    assert_eq!(repo.rec_file("S-0001.runs").unwrap(), "run\nrun\n");
}

#[test]
fn unusual_frontmatter_is_patched_faithfully_or_refused_untouched() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    let write = |id: &str, fm: &str| {
        let p = repo.story_path(id);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("---\n{fm}---\nBody of {id}.\n")).unwrap();
    };
    write(
        "S-0001",
        "id: S-0001\ntitle: Spaced\npriority: 1\nstatus   : ready  # keep me\n",
    );
    write(
        "S-0002",
        "{id: S-0002, title: Flow, priority: 2, status: ready}\n",
    );
    write(
        "S-0003",
        "id: S-0003\ntitle: Anchored\npriority: 3\nstatus: &st ready\nwas: *st\n",
    );
    let flow = repo.read_story("S-0002");
    let anchored = repo.read_story("S-0003");
    let out = repo.run(&["run", "--concurrent", "3"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    let s1 = repo.read_story("S-0001");
    assert!(s1.contains("status: done  # keep me\n"), "{s1}");
    assert_eq!(s1.matches("status").count(), 1, "{s1}");
    assert_eq!(repo.read_story("S-0002"), flow);
    assert_eq!(repo.read_story("S-0003"), anchored);
    assert!(
        err.contains("cannot update") && err.contains("safely"),
        "{err}"
    );
    assert!(!repo.started("S-0002") && !repo.started("S-0003"));
}

/// Run the binary with its address space capped (KiB): a story that makes
/// it allocate gigabytes fails instead of taking the machine.
fn capped(repo: &TestRepo, kib: u64, args: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new("sh");
    cmd.env("XDG_CONFIG_HOME", repo.xdg())
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .arg("-C")
        .arg(&repo.root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().unwrap()
}

#[test]
fn hostile_story_files_are_reported_and_skipped_never_fatal() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.ready_stories(1);
    let dir = |id: &str| {
        let d = repo.root.join(".ai-sdlc/stories").join(id);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let fifo = std::ffi::CString::new(dir("S-0002").join("story.md").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    symlink(
        std::path::Path::new("/dev/zero"),
        &dir("S-0003").join("story.md"),
    );
    let nested = |n: usize| {
        format!(
            "---\nid: X\ntitle: t\nstatus: ready\nx:\n  {}x\n---\n",
            "- ".repeat(n)
        )
    };
    std::fs::write(
        dir("S-0004").join("story.md"),
        nested(1_000).replace("X", "S-0004"),
    )
    .unwrap();
    std::fs::write(
        dir("S-0005").join("story.md"),
        nested(50_000).replace("X", "S-0005"),
    )
    .unwrap();
    let mut bomb = String::from(
        "---\nid: S-0006\ntitle: t\nstatus: ready\na0: &a0 [x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..9 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 9].join(",")
        ));
    }
    bomb.push_str("---\n");
    assert!(bomb.len() < 1024);
    std::fs::write(dir("S-0006").join("story.md"), bomb).unwrap();

    let (c, out, err) = finish(capped(&repo, 1 << 20, &["status"]), 20);
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("S-0001"), "{out}");
    for id in ["S-0002", "S-0003", "S-0004", "S-0005", "S-0006"] {
        assert!(
            err.contains(&format!("{id}/story.md")),
            "{id} not reported:\n{err}"
        );
    }
    assert!(err.contains("not a regular file"), "{err}");
    let (c, _, err) = finish(capped(&repo, 1 << 20, &["add", "Another"]), 20);
    assert_eq!(c, 0, "{err}");
    let (c, _, err) = finish(capped(&repo, 1 << 21, &["run", "--concurrent", "2"]), 60);
    assert_eq!(c, 0, "{err}");
    assert_eq!(repo.status("S-0001"), "done", "{err}");
}

/// A process's memory counter from /proc (`VmRSS`, `VmHWM`), in KiB.
fn mem_kb(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
}

#[test]
fn memory_stays_bounded_while_an_agent_prints_as_fast_as_it_can() {
    let flood = |args: &'static [&'static str]| {
        std::thread::spawn(move || {
            let repo = TestRepo::new();
            repo.with_agent(
                "yes.sh",
                "touch \"$REC/$id.ready\"\nexec timeout 10 yes 'a line of agent output'",
            );
            repo.ready_stories(1);
            // stderr to a file: a pipe nobody reads until the end would fill up.
            let err_file = std::fs::File::create(repo.rec.join("stderr")).unwrap();
            let runner = repo
                .cmd(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(err_file)
                .spawn()
                .unwrap();
            repo.wait_rec("S-0001.ready");
            let executor = repo.pid("S-0001", "ppid");
            let base = mem_kb(executor, "VmRSS").unwrap_or(0);
            let (mut runner_peak, mut executor_peak) = (0, 0);
            let pid = runner.id() as i32;
            // Sample until it ends (a hung runner is killed by `finish`).
            let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while alive(pid) && std::time::Instant::now() < until {
                runner_peak = runner_peak.max(mem_kb(pid, "VmHWM").unwrap_or(0));
                executor_peak = executor_peak.max(mem_kb(executor, "VmHWM").unwrap_or(0));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let (code, _, _) = finish(runner, 30);
            let err = repo.rec_file("stderr").unwrap_or_default();
            let tail: String = err.lines().rev().take(10).collect::<Vec<_>>().join("\n");
            assert_eq!(code, 1, "{tail}");
            assert!(
                repo.blocked_reason("S-0001").contains("code 124"),
                "the agent did not run its full time"
            );
            (args, runner_peak, base, executor_peak)
        })
    };
    let runs = [flood(&["run"]), flood(&["run", "--concurrent", "2"])];
    for run in runs {
        let (args, runner_peak, base, executor_peak) = run.join().unwrap();
        // SPEC §8: the runner under 10 MiB. The executor's target (4 MiB) is
        // for the release binary (scripts/bench); this debug one starts
        // bigger, so it may not grow by more than 2 MiB.
        eprintln!("{args:?}: runner peak {runner_peak} kB, executor {base} -> {executor_peak} kB");
        assert!(
            runner_peak < 10 * 1024,
            "{args:?}: runner peaked at {runner_peak} kB"
        );
        assert!(
            executor_peak < base + 2 * 1024,
            "{args:?}: executor grew from {base} kB to {executor_peak} kB"
        );
    }
}

#[test]
fn a_success_message_from_an_executor_that_then_dies_is_not_a_success() {
    let repo = TestRepo::new();
    // The agent writes a forged `complete` into its executor's stdout (the
    // IPC pipe), then kills the executor.
    repo.with_agent(
        "forge.sh",
        "printf '%s\\n' '{\"v\":1,\"type\":\"complete\",\"story_id\":\"S-0001\",\"ts\":1,\"success\":true,\"exit_code\":0,\"duration_ms\":1,\"failed_phase\":null}' > /proc/$PPID/fd/1\nkill -9 $PPID",
    );
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert_eq!(repo.status("S-0001"), "blocked", "{err}");
    assert!(repo.blocked_reason("S-0001").contains("SIGKILL"), "{err}");
}

#[test]
fn a_story_id_that_looks_like_a_flag_is_never_one() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story("-S-1", "Dash", 1, "ready", "");
    let out = repo.run(&["run", "--no-worktree"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(repo.status("-S-1"), "done");
    assert!(repo.started("-S-1"));
}

#[test]
fn placeholders_are_filled_once_and_never_run_as_shell() {
    let repo = TestRepo::new();
    let marker = repo.rec.join("pwned");
    let title = format!("Use {{prompt}} and $(touch {})", marker.display());
    let agent = repo.agent("args.sh", "printf '%s\\n' \"$@\" > \"$REC/$id.args\"");
    repo.config(serde_json::json!({
        "agent": {"command": ["sh", "-c", "\"$0\" {title:sh} \"$1\"", agent, "{title}"]}
    }));
    repo.story(
        "S-0001",
        &format!("'{}'", title.replace('\'', "''")),
        1,
        "ready",
        "",
    );
    let out = repo.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Both the quoted and the raw form arrive as the literal title, once.
    assert_eq!(
        repo.rec_file("S-0001.args").unwrap(),
        format!("{title}\n{title}\n")
    );
    assert!(!marker.exists(), "a title ran as a shell command");

    // A raw placeholder inside an sh -c script draws a warning.
    repo.config(serde_json::json!({"agent": {"command": ["sh", "-c", "echo {title}"]}}));
    let out = repo.run(&["run", "--dry-run", "--story", "S-0001", "--force"]);
    assert!(stderr(&out).contains("{title:sh}"), "{}", stderr(&out));
}

#[test]
fn control_characters_from_story_files_never_reach_the_terminal() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "printf 'agent says \\033]0;pwned\\007 hi\\n'; exit 3",
    );
    repo.story(
        "S-0001",
        "\"Evil \\e[2J\\e]0;title\\a \\u202e title\"",
        1,
        "ready",
        "",
    );
    let bad = |s: &str| s.contains('\u{1b}') || s.contains('\u{7}') || s.contains('\u{202e}');
    for args in [&["status"][..], &["run", "--dry-run"][..], &["run"][..]] {
        let out = repo.run(args);
        assert!(
            !bad(&stdout(&out)) && !bad(&stderr(&out)),
            "{args:?}:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("Evil") || stderr(&out).contains("Evil"),
            "{args:?}"
        );
    }
}

#[test]
fn exit_codes_never_come_from_a_panic() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done",
    );
    repo.ready_stories(2);
    // The reader of stdout and stderr goes away after one line.
    let out = std::process::Command::new("bash")
        .env("XDG_CONFIG_HOME", repo.xdg())
        .arg("-c")
        .arg(format!(
            "{BIN} -C '{}' run --concurrent 2 2>&1 | head -1 >/dev/null; exit ${{PIPESTATUS[0]}}",
            repo.root.display()
        ))
        .output()
        .unwrap();
    assert_ne!(code(&out), 101, "{}", stderr(&out));
    for id in ["S-0001", "S-0002"] {
        assert_eq!(repo.status(id), "done", "{}", stderr(&out));
    }
    let out = repo.run(&["run", "--timeout", "1e20"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
    repo.config(serde_json::json!({"timeouts": {"agentTimeout": 1e20}}));
    let out = repo.run(&["status"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("timeouts.agentTimeout"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dependency_running_in_another_runner_is_left_to_it() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "touch \"$REC/$id.ready\"\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done",
    );
    repo.story("S-0001", "First", 1, "ready", "");
    repo.story("S-0002", "Second", 2, "ready", "dependencies: [S-0001]\n");
    let a = repo.spawn(&["run", "--concurrent", "2"]);
    repo.wait_rec("S-0001.ready");
    let b = repo.run(&["run", "--concurrent", "2"]);
    assert_eq!(code(&b), 0, "{}", stderr(&b));
    assert!(
        stderr(&b).contains("left to another runner")
            || stderr(&b).contains("running in another runner"),
        "{}",
        stderr(&b)
    );
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (code, _, err) = finish(a, 30);
    assert_eq!(code, 0, "{err}");
    assert_eq!(repo.status("S-0002"), "done");
}

#[test]
fn inside_a_story_worktree_the_main_board_is_used() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "touch \"$REC/$id.ready\"\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done",
    );
    repo.ready_stories(1);
    // The board is committed, so the worktree has a stale copy of it.
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-qm", "board"]);
    let runner = repo.spawn(&["run"]);
    repo.wait_rec("S-0001.ready");
    let wt = repo.worktree("S-0001-s1");
    let out = repo.bin().arg("status").current_dir(&wt).output().unwrap();
    let board = stdout(&out);
    assert!(
        board.contains(&format!("Board {}", repo.root.display())),
        "{board}"
    );
    assert!(
        board.contains("IN-PROGRESS") && board.contains("running"),
        "{board}"
    );
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (code, _, err) = finish(runner, 30);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn commits_made_on_a_detached_head_are_never_lost() {
    let detach = "git checkout -q --detach\necho work > detached.txt\ngit add detached.txt\ngit commit -qm 'work on a detached HEAD'\ngit rev-parse HEAD > \"$REC/$id.sha\"";
    // With the runner's commit: it refuses to commit off the story branch.
    let repo = TestRepo::new();
    repo.with_agent("d.sh", detach);
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        repo.blocked_reason("S-0001")
            .contains("left the worktree off"),
        "{}",
        stderr(&out)
    );
    let wt = repo.worktree("S-0001-s1");
    let sha = repo.rec_file("S-0001.sha").unwrap();
    assert_eq!(
        git(&wt, &["rev-parse", "HEAD"]),
        sha,
        "the detached commit is gone"
    );
    // Without it: the story is done, and the worktree kept because of its HEAD.
    let repo = TestRepo::new();
    let agent = repo.agent("d.sh", detach);
    repo.config(serde_json::json!({"agent": {"command": [agent]}, "worktree": {"commit": false}}));
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(repo.status("S-0001"), "done");
    assert!(stderr(&out).contains("detached"), "{}", stderr(&out));
    let wt = repo.worktree("S-0001-s1");
    assert_eq!(
        git(&wt, &["rev-parse", "HEAD"]),
        repo.rec_file("S-0001.sha").unwrap()
    );
}

#[test]
fn an_outcome_that_cannot_be_written_exits_1_and_says_what_is_on_disk() {
    let repo = TestRepo::new();
    repo.with_agent("rm.sh", "rm \"$AI_SDLC_STORY_FILE\"");
    repo.ready_stories(1);
    let out = repo.run(&["run", "--no-worktree"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("was not recorded"), "{err}");
    assert!(err.contains("cannot be read now"), "{err}");
}

#[test]
fn a_stopped_executor_cannot_stall_its_worker_past_the_time_limit() {
    let repo = TestRepo::new();
    let agent = repo.agent("a.sh", "touch \"$REC/$id.ready\"\nsleep 300");
    // A health check every millisecond fills the executor's stdin pipe
    // within a second once it stops reading.
    repo.config(serde_json::json!({
        "agent": {"command": [agent]},
        "orchestrator": {"healthCheckInterval": 1}
    }));
    repo.ready_stories(1);
    let runner = repo.spawn(&["run", "--timeout", "4", "--shutdown-timeout", "1"]);
    repo.wait_rec("S-0001.ready");
    let executor = repo.pid("S-0001", "ppid");
    signal(executor as u32, libc::SIGSTOP);
    let (code, _, err) = finish(runner, 30);
    assert_eq!(code, 1, "{err}");
    assert!(repo.blocked_reason("S-0001").contains("timed out"), "{err}");
    assert_dies(executor, 5, "the stopped executor");
}

#[test]
fn a_git_filter_that_hangs_cannot_hang_the_run() {
    // The user's own (global) config is trusted: its filter runs, and here
    // it hangs in the runner's `git add`.
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "echo work > work.txt");
    repo.ready_stories(1);
    let global = repo.rec.join("gitconfig");
    std::fs::write(
        &global,
        format!(
            "[filter \"slow\"]\n\tclean = \"echo $$ > {}/hook.pid; exec sleep 300\"\n",
            repo.rec.display()
        ),
    )
    .unwrap();
    std::fs::write(repo.root.join(".gitattributes"), "work.txt filter=slow\n").unwrap();
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-qm", "attributes"]);
    let err_file = repo.rec.join("stderr");
    let runner = repo
        .cmd(&["run"])
        .env("GIT_CONFIG_GLOBAL", &global)
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    repo.wait_rec("hook.pid");
    // A first Ctrl-C lets the commit finish; a second one stops it.
    signal(runner.id(), libc::SIGINT);
    let said = || std::fs::read_to_string(&err_file).unwrap_or_default();
    assert!(
        wait_for(10, || said().contains("SIGINT: stopping")),
        "{}",
        said()
    );
    signal(runner.id(), libc::SIGINT);
    let (code, _, _) = finish(runner, 20);
    assert_eq!(code, 130, "{}", said());
    assert_dies(repo.pid("hook", "pid"), 5, "the filter");
    // The agent's work is still there, uncommitted.
    assert!(repo.worktree("S-0001-s1").join("work.txt").exists());
}

#[test]
fn a_story_cannot_claim_every_process_as_its_agent() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story(
        "S-0001",
        "Stale",
        1,
        "in-progress",
        "worktree_path: /\nlast_run: {outcome: running}\n",
    );
    let out = repo.run(&["run"]);
    assert!(
        stderr(&out).contains("returned it to ready"),
        "{}",
        stderr(&out)
    );
    // Recovered, but never run in `/`: its worktree_path is refused.
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("worktree_path"), "{}", stderr(&out));
    assert_eq!(repo.status("S-0001"), "ready");
    assert!(repo.rec_file("S-0001.cwd").is_none());
}

#[test]
fn an_fsmonitor_an_agent_plants_never_runs_in_the_runners_git_calls() {
    let repo = TestRepo::new();
    let marker = repo.rec.join("fsmonitor-ran");
    let hook = repo.agents.join("fsmonitor.sh");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // S-0001's agent sets core.fsmonitor in the shared config as its last act;
    // S-0002 then gets a worktree, a status check, a commit and a removal.
    repo.with_agent(
        "a.sh",
        &format!(
            "echo work > \"work-$id.txt\"\n[ \"$id\" = S-0001 ] && git config core.fsmonitor {}\nexit 0",
            hook.display()
        ),
    );
    repo.ready_stories(2);
    let out = repo.run(&["run", "--story", "S-0001", "--story", "S-0002"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(!marker.exists(), "the runner ran the planted fsmonitor");
    assert_eq!(repo.status("S-0002"), "done");
    // The agent that planted it is blocked for it, and it is undone.
    assert!(repo.blocked_reason("S-0001").contains("set core.fsmonitor"));
    assert!(
        !std::fs::read_to_string(repo.root.join(".git/config"))
            .unwrap()
            .contains("fsmonitor")
    );
}

#[test]
fn a_worktree_an_agent_ties_to_another_repo_gets_no_git_call_and_keeps_its_work() {
    let repo = TestRepo::new();
    // The agent makes a repo of its own on the story's branch and points its
    // worktree's .git at it: the runner's commit would land there, and the
    // worktree (the work) would be removed as clean.
    repo.with_agent(
        "repoint.sh",
        r#"git init -q "$REC/fake" && git -C "$REC/fake" checkout -q -b "$AI_SDLC_BRANCH"
printf 'gitdir: %s\n' "$REC/fake/.git" > .git
echo work > work.txt"#,
    );
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(repo.status("S-0001"), "blocked");
    let reason = repo.blocked_reason("S-0001");
    assert!(
        reason.contains(".git") && reason.contains("points at"),
        "{reason}"
    );
    // Nothing was committed into the agent's repo; the work is still there.
    let fake = repo.rec.join("fake");
    let log = std::process::Command::new("git")
        .args(["-C", fake.to_str().unwrap(), "log", "--oneline"])
        .output()
        .unwrap();
    assert!(
        !log.status.success(),
        "the runner committed into the agent's repo"
    );
    assert!(repo.worktree("S-0001-s1").join("work.txt").exists());
}
