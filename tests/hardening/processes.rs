//! Processes: signals, children that outlive their agent, memory, time limits and panics.

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
        expect_code(&out, 0);
    }
    for id in ["S-0001", "S-0002"] {
        assert_dies(
            repo.pid(id, "escaped"),
            2,
            "a setsid child of a finished story",
        );
    }
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
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked", "{err}");
    assert!(repo.blocked_reason("S-0001").contains("SIGKILL"), "{err}");
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
    expect_code(&out, 2);
    assert!(stderr(&out).contains("--timeout"), "{}", stderr(&out));
    repo.config(serde_json::json!({"timeouts": {"agentTimeout": 1e20}}));
    let out = repo.run(&["status"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("timeouts.agentTimeout"),
        "{}",
        stderr(&out)
    );
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
fn a_huge_file_an_agent_leaves_is_never_read_whole_for_the_review() {
    let repo = TestRepo::new();
    // implement leaves a 120 MB text file; the review agent records how
    // much memory its executor (its parent) ever used making its prompt.
    repo.with_agent(
        "a.sh",
        r#"case "$AI_SDLC_PHASE" in
  implement) yes 'a line of a huge generated file' | head -c 120000000 > big.txt ;;
  review) grep VmHWM /proc/$PPID/status | tr -dc 0-9 > "$REC/hwm"; echo APPROVED ;;
esac"#,
    );
    let agent = repo.agents.join("a.sh");
    repo.config(serde_json::json!({
        "agent": {"command": [agent]},
        "workflow": {"phases": [{"name": "implement"}, {"name": "review"}]},
        "worktree": {"keep": true}
    }));
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    let kb: u64 = repo.rec_file("hwm").unwrap().trim().parse().unwrap();
    assert!(
        kb < 40 * 1024,
        "the executor used {kb} kB to diff a 120 MB file for the review"
    );
    let prompt = repo.rec_file("S-0001.stdin").unwrap();
    assert!(
        prompt.contains("big.txt"),
        "the review does not name the file"
    );
}
