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
fn sigquit_stops_a_run_like_sigterm() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", ESCAPER);
    repo.ready_stories(1);
    let child = repo.spawn(&["run"]);
    let pids = escaper_pids(&repo, "S-0001");
    signal(child.id(), libc::SIGQUIT);
    let (code, _, err) = finish(child, 30);
    assert_eq!(code, 131, "{err}");
    assert_eq!(repo.status("S-0001"), "ready", "{err}");
    for p in pids {
        assert_dies(p, 2, "a process of the stopped run");
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
