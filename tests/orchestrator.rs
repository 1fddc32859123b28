//! `ai-sdlc run --concurrent N`: real worktrees, real children, real signals.

use crate::support::*;
use std::collections::HashSet;

/// An agent that works `$SLEEP` seconds (default 1.5) and commits.
const WORK: &str = "sleep ${SLEEP:-1.5}\necho \"$AI_SDLC_STORY_ID\" > \"w-$AI_SDLC_STORY_ID.txt\"\ngit add -A && git commit -q -m \"$AI_SDLC_STORY_ID\"";

fn six(repo: &TestRepo) {
    for (i, p) in [60, 10, 50, 20, 40, 30].iter().enumerate() {
        repo.story(
            &format!("S-000{}", i + 1),
            &format!("Story {}", i + 1),
            *p,
            "ready",
            "",
        );
    }
}

#[test]
fn six_stories_three_at_a_time() {
    let repo = TestRepo::new();
    repo.with_agent("work.sh", WORK);
    six(&repo);
    let out = repo.run(&["run", "--concurrent", "3", "--json"]);
    expect_code(&out, 0);
    let ids: Vec<String> = (1..=6).map(|i| format!("S-000{i}")).collect();
    let spans: Vec<(u128, u128)> = ids.iter().map(|id| repo.span(id)).collect();
    // How many ran at once, at each start.
    let overlap = |t: u128| spans.iter().filter(|(s, e)| *s <= t && t < *e).count();
    let max = spans.iter().map(|(s, _)| overlap(*s)).max().unwrap();
    assert_eq!(
        max, 3,
        "never more than 3 at once, and 3 at some point: {spans:?}"
    );
    // The first three to start are the three highest priorities (10, 20, 30).
    let mut by_start: Vec<(u128, &String)> = spans.iter().map(|s| s.0).zip(ids.iter()).collect();
    by_start.sort();
    let first: HashSet<&str> = by_start[..3].iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(first, HashSet::from(["S-0002", "S-0004", "S-0006"]));
    let cwds: HashSet<String> = ids
        .iter()
        .map(|id| repo.rec_file(&format!("{id}.cwd")).unwrap())
        .collect();
    assert_eq!(cwds.len(), 6, "each story ran in its own worktree");
    for id in &ids {
        assert_eq!(repo.status(id), "done", "{id}");
    }
    let j = json(&out);
    assert_eq!(j["succeeded"], 6);
    assert_eq!(j["failed"], 0);
    assert_eq!(j["results"].as_array().unwrap().len(), 6);
    let r0 = &j["results"][0];
    for k in [
        "id",
        "title",
        "outcome",
        "exit_code",
        "signal",
        "duration_ms",
        "branch",
        "worktree",
        "worktree_kept",
        "log",
        "error",
    ] {
        assert!(r0.get(k).is_some(), "result without {k}: {r0}");
    }
}

#[test]
fn a_killed_executor_and_a_failing_agent_fail_only_their_stories() {
    let repo = TestRepo::new();
    repo.with_agent(
        "mixed.sh",
        "case $AI_SDLC_STORY_ID in\n S-0001) while [ ! -f \"$REC/never\" ]; do sleep 0.05; done ;;\n S-0002) echo 'compile error' >&2; exit 2 ;;\n *) sleep 0.5 ;;\nesac",
    );
    repo.ready_stories(4);
    let child = repo.spawn(&["run", "--concurrent", "4"]);
    repo.wait_rec("S-0001.ppid");
    let executor = repo.pid("S-0001", "ppid");
    signal(executor as u32, libc::SIGKILL);
    let (code, _, err) = finish(child, 30);
    assert_eq!(code, 1, "{err}");
    assert_eq!(repo.status("S-0001"), "blocked");
    assert!(repo.blocked_reason("S-0001").contains("SIGKILL"), "{err}");
    assert_eq!(repo.status("S-0002"), "blocked");
    assert!(repo.blocked_reason("S-0002").contains("compile error"));
    assert_eq!(repo.status("S-0003"), "done");
    assert_eq!(repo.status("S-0004"), "done");
    assert_dies(repo.pid("S-0001", "pid"), 2, "the killed executor's agent");
}

/// Interrupt a run of 5 stories at --concurrent 3; how long it took to stop.
fn interrupt(agent_body: &str, extra: &[&str], second: bool) -> std::time::Duration {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", agent_body);
    repo.ready_stories(5);
    let mut args = vec!["run", "--concurrent", "3"];
    args.extend_from_slice(extra);
    let child = repo.spawn(&args);
    let running = ["S-0001", "S-0002", "S-0003"];
    assert!(wait_for(20, || running
        .iter()
        .all(|id| repo.rec_file(&format!("{id}.ready")).is_some())));
    let pids: Vec<i32> = running.iter().map(|id| repo.pid(id, "pid")).collect();
    let t0 = std::time::Instant::now();
    signal(child.id(), libc::SIGINT);
    if second {
        // The second Ctrl-C only once the first one's SIGTERMs are out.
        let stopping = || repo.logs("S-0001").concat().contains("shutting down");
        assert!(
            wait_for(10, stopping),
            "the first SIGINT started no shutdown"
        );
        signal(child.id(), libc::SIGINT);
    }
    let (code, _, err) = finish(child, 30);
    let took = t0.elapsed();
    assert_eq!(code, 130, "{err}");
    for p in &pids {
        assert_dies(*p, 2, "an agent of the interrupted runner");
    }
    for i in 1..=5 {
        assert_eq!(
            repo.status(&format!("S-000{i}")),
            "ready",
            "S-000{i}: {err}"
        );
    }
    assert!(
        !repo.started("S-0004") && !repo.started("S-0005"),
        "queued stories started"
    );
    if second {
        assert!(
            took.as_secs() < 20,
            "a second Ctrl-C did not kill at once: {took:?}"
        );
    }
    took
}

#[test]
fn ctrl_c_stops_running_agents_and_starts_no_queued_one() {
    interrupt("touch \"$REC/$id.ready\"\nsleep 300", &[], false);
}

#[test]
fn agents_that_ignore_sigterm_are_killed_after_the_shutdown_timeout() {
    // Run several times: the runner's shutdown message and its SIGTERM race
    // to the executor, and the grace must hold whichever comes first.
    for _ in 0..3 {
        let took = interrupt(
            "trap '' TERM\ntouch \"$REC/$id.ready\"\nwhile :; do sleep 0.1; done",
            &["--shutdown-timeout", "1"],
            false,
        );
        assert!(
            took.as_millis() >= 900,
            "agents that ignore SIGTERM were killed before their grace: {took:?}"
        );
    }
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    let _ = interrupt(
        "trap '' TERM\ntouch \"$REC/$id.ready\"\nwhile :; do sleep 0.1; done",
        &["--shutdown-timeout", "60"],
        true,
    );
}

#[test]
fn sigkill_of_the_runner_leaves_nothing_and_the_next_run_recovers() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "if [ ! -f \"$REC/fast\" ]; then sleep 300 & rec bg $!; sleep 300; fi",
    );
    repo.ready_stories(3);
    let child = repo.spawn(&["run", "--concurrent", "3"]);
    let ids = ["S-0001", "S-0002", "S-0003"];
    assert!(wait_for(20, || ids
        .iter()
        .all(|id| repo.rec_file(&format!("{id}.bg")).is_some())));
    let mut pids = Vec::new();
    for id in ids {
        pids.extend([
            repo.pid(id, "pid"),
            repo.pid(id, "ppid"),
            repo.pid(id, "bg"),
        ]);
    }
    signal(child.id(), libc::SIGKILL);
    let _ = finish(child, 10);
    for p in &pids {
        assert_dies(*p, 10, "a process of the SIGKILLed runner");
    }
    assert_eq!(repo.status("S-0001"), "in-progress");
    std::fs::write(repo.rec.join("fast"), "").unwrap();
    let out = repo.run(&["run", "--concurrent", "3"]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("returned it to ready"),
        "{}",
        stderr(&out)
    );
    for id in ids {
        assert_eq!(repo.status(id), "done", "{id}");
    }
}

#[test]
fn a_branch_checked_out_elsewhere_skips_only_that_story() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.ready_stories(3);
    let elsewhere = TempDir::new("elsewhere");
    let path = elsewhere.0.join("wt");
    git(
        &repo.root,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            "ai-sdlc/S-0002-s2",
            path.to_str().unwrap(),
        ],
    );
    let out = repo.run(&["run", "--concurrent", "2", "--json"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0002"), "ready");
    assert_eq!(repo.status("S-0001"), "done");
    assert_eq!(repo.status("S-0003"), "done");
    let j = json(&out);
    assert_eq!(j["skipped"], 1);
    let r = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "S-0002")
        .unwrap()
        .clone();
    assert!(r["error"].as_str().unwrap().contains("worktree"), "{r}");
}

#[test]
fn two_runners_on_one_repo_run_each_story_once() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "echo $AI_SDLC_STORY_ID >> \"$REC/ran\"\nsleep 0.3");
    six(&repo);
    let a = repo.spawn(&["run", "--concurrent", "3"]);
    let b = repo.spawn(&["run", "--concurrent", "3"]);
    let (ca, _, ea) = finish(a, 60);
    let (cb, _, eb) = finish(b, 60);
    assert_eq!((ca, cb), (0, 0), "{ea}\n{eb}");
    let mut ran: Vec<String> = repo
        .rec_file("ran")
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    ran.sort();
    let want: Vec<String> = (1..=6).map(|i| format!("S-000{i}")).collect();
    assert_eq!(ran, want, "every story exactly once");
}

#[test]
fn background_processes_die_with_their_story() {
    let repo = TestRepo::new();
    repo.with_agent("bg.sh", "sleep 300 &\nrec bg $!\nexit 0");
    repo.story("S-0001", "Leaves a child", 1, "ready", "");
    repo.story("S-0002", "Also", 2, "ready", "");
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 0);
    for id in ["S-0001", "S-0002"] {
        let p = repo.pid(id, "bg");
        assert_dies(p, 5, &format!("{id}'s sleep 300 &"));
    }
    // Single-story mode too.
    repo.story("S-0003", "Single", 3, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    let p = repo.pid("S-0003", "bg");
    assert_dies(p, 5, "single mode: sleep 300 &");
}

#[test]
fn a_timeout_blocks_only_the_slow_story() {
    let repo = TestRepo::new();
    repo.with_agent(
        "t.sh",
        "[ $AI_SDLC_STORY_ID = S-0001 ] && sleep 300\nexit 0",
    );
    repo.story("S-0001", "Slow", 1, "ready", "");
    repo.story("S-0002", "Quick", 2, "ready", "");
    let out = repo.run(&[
        "run",
        "--concurrent",
        "2",
        "--timeout",
        "2",
        "--shutdown-timeout",
        "1",
    ]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    assert!(repo.blocked_reason("S-0001").contains("timed out"));
    assert_eq!(repo.status("S-0002"), "done");
    assert_dies(repo.pid("S-0001", "pid"), 2, "the timed-out agent");
}

#[test]
fn dependencies_wait_for_success_and_skip_on_failure() {
    let repo = TestRepo::new();
    repo.with_agent(
        "d.sh",
        "[ $AI_SDLC_STORY_ID = S-0004 ] && exit 1\nsleep 0.5",
    );
    repo.story("S-0002", "B", 1, "ready", "dependencies: [S-0001]\n");
    repo.story("S-0001", "A", 2, "ready", "");
    repo.story("S-0003", "C", 3, "ready", "dependencies:\n  - S-0004\n");
    repo.story("S-0004", "D", 4, "ready", "");
    let out = repo.run(&["run", "--concurrent", "3", "--json"]);
    expect_code(&out, 1);
    let (a_start, a_end) = repo.span("S-0001");
    let (b_start, _) = repo.span("S-0002");
    assert!(
        b_start >= a_end && a_start < b_start,
        "B started before A ended"
    );
    assert_eq!(repo.status("S-0002"), "done");
    assert_eq!(repo.status("S-0003"), "ready");
    assert!(!repo.started("S-0003"));
    let j = json(&out);
    let c = j["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "S-0003")
        .unwrap()
        .clone();
    assert_eq!(c["outcome"], "skipped");
    assert!(c["error"].as_str().unwrap().contains("S-0004"), "{c}");
}

#[test]
fn a_dependency_cycle_stops_before_anything_starts() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story("S-0001", "A", 1, "ready", "dependencies: [S-0002]\n");
    repo.story("S-0002", "B", 2, "ready", "dependencies: [S-0001]\n");
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("cycle"), "{}", stderr(&out));
    assert!(!repo.started("S-0001") && !repo.started("S-0002"));
}

#[test]
fn concurrency_flag_validation() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "sleep 0.3");
    repo.story("S-0001", "A", 1, "ready", "");
    repo.story("S-0002", "B", 2, "ready", "");
    let out = repo.run(&["run", "--concurrent", "abc"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("--concurrent"), "{}", stderr(&out));
    assert_eq!(repo.status("S-0001"), "ready");
    let out = repo.run(&["run", "--concurrent", "0", "--max", "2"]);
    expect_code(&out, 0);
    assert!(stderr(&out).contains("warning") && stderr(&out).contains("one story at a time"));
    let (a, b) = (repo.span("S-0001"), repo.span("S-0002"));
    assert!(a.1 <= b.0, "ran at the same time: {a:?} {b:?}");
    let out = repo.run(&["run", "--concurrent", "-2"]);
    expect_code(&out, 0);
}

#[test]
fn every_story_failing_is_an_aggregate_failure() {
    let repo = TestRepo::new();
    repo.with_agent("crash.sh", "kill -SEGV $$");
    repo.ready_stories(3);
    let out = repo.run(&["run", "--concurrent", "3", "--json"]);
    expect_code(&out, 1);
    let j = json(&out);
    assert_eq!(j["failed"], 3);
    assert!(
        stderr(&out).contains("every story failed"),
        "{}",
        stderr(&out)
    );
    assert!(repo.blocked_reason("S-0001").contains("SIGSEGV"));
}

#[test]
fn a_stopped_executor_is_reported_unresponsive_and_then_responsive() {
    let repo = TestRepo::new();
    repo.with_agent("w.sh", "while [ ! -f \"$REC/go\" ]; do sleep 0.05; done"); // healthCheckInterval 200 ms, threshold 2
    repo.story("S-0001", "Frozen", 1, "ready", "");
    repo.story("S-0002", "Other", 2, "ready", "");
    let child = repo.spawn(&["run", "--concurrent", "2"]);
    repo.wait_rec("S-0001.ppid");
    let executor = repo.pid("S-0001", "ppid");
    let log = || repo.logs("S-0001").concat();
    signal(executor as u32, libc::SIGSTOP);
    let reported = wait_for(20, || log().contains("unresponsive: no health response"));
    signal(executor as u32, libc::SIGCONT);
    assert!(reported, "no unresponsive report in the log:\n{}", log());
    assert!(
        wait_for(20, || log().contains("responsive again")),
        "no recovery in the log:\n{}",
        log()
    );
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (code, _, err) = finish(child, 30);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("[S-0001] warning: unresponsive"), "{err}");
    assert!(err.contains("[S-0001] responsive again"), "{err}");
    assert_eq!(repo.status("S-0001"), "done");
}

#[test]
fn a_story_that_cannot_run_is_named_by_status_and_doctor_and_does_not_fail_the_run() {
    let repo = TestRepo::new();
    repo.with_agent("ok.sh", "exit 0");
    repo.story("S-0001", "Runs", 1, "ready", "");
    repo.story(
        "S-0002",
        "Waits on a missing one",
        2,
        "ready",
        "dependencies: [S-0099]\n",
    );
    repo.story(
        "S-0003",
        "Waits on a blocked one",
        3,
        "ready",
        "dependencies: [S-0004]\n",
    );
    repo.story("S-0004", "Blocked", 4, "blocked", "");
    let status = stdout(&repo.run(&["status"]));
    let line = |id: &str| status.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(
        line("S-0002").contains("waiting on S-0099: no such story"),
        "{status}"
    );
    assert!(
        line("S-0003").contains("waiting on S-0004: it is blocked"),
        "{status}"
    );
    let doctor = repo.run(&["doctor"]);
    let said = stdout(&doctor);
    assert!(
        said.contains("S-0002: cannot run: waiting on S-0099"),
        "{said}"
    );
    // Everything that could run succeeded: exit 0, each reported once, with a code.
    let out = repo.run(&["run", "--concurrent", "2", "--json"]);
    expect_code(&out, 0);
    let j = json(&out);
    let reason = |id: &str| {
        j["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()["reason"]
            .clone()
    };
    assert_eq!(reason("S-0002"), "dependency_missing", "{j}");
    assert_eq!(reason("S-0003"), "dependency_not_done", "{j}");
    assert_eq!(repo.status("S-0001"), "done");
    // Once as it is skipped, once in the summary.
    assert_eq!(
        stderr(&out).matches("S-0099").count(),
        2,
        "{}",
        stderr(&out)
    );
}
