//! `ai-sdlc agent-executor` spoken to directly over its pipes (SPEC §6).

use crate::support::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Exec {
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
}

impl Exec {
    fn start(repo: &TestRepo, id: &str) -> Exec {
        let mut child = repo
            .bin()
            .arg("-C")
            .arg(&repo.root)
            .args(["agent-executor", id, "--worktree"])
            .arg(&repo.root)
            .args(["--branch", "main", "--grace-ms", "500"])
            .current_dir(&repo.root)
            .env("AI_SDLC_STORY_ID", id)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its own log lines, for the tests to read (not the console).
            .stderr(std::fs::File::create(repo.rec.join(format!("{id}.executor-stderr"))).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let line = line.unwrap();
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Exec {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, v: Value) {
        let w = self.stdin.as_mut().unwrap();
        writeln!(w, "{v}").unwrap();
        w.flush().unwrap();
    }

    /// Messages until one of `kind` arrives (panics after 20 s).
    fn until(&self, kind: &str) -> (Value, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            let v = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no {kind} message; got {seen:?}"));
            for k in ["v", "type", "story_id", "ts"] {
                assert!(v.get(k).is_some(), "message without {k}: {v}");
            }
            if v["type"] == kind {
                return (v, seen);
            }
            seen.push(v);
        }
    }

    fn exit_code(mut self) -> i32 {
        assert!(
            wait_for(20, || self.child.try_wait().unwrap().is_some()),
            "the executor did not exit"
        );
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

use std::os::unix::process::CommandExt;

#[test]
fn runs_the_story_reports_and_answers_health_checks() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "echo hello; echo oops >&2\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done",
    );
    repo.story("S-0001", "Direct", 1, "in-progress", "");
    let before = repo.read_story("S-0001");
    let mut ex = Exec::start(&repo, "S-0001");
    let (status, _) = ex.until("status");
    assert_eq!(status["story_id"], "S-0001");
    assert_eq!(status["phase"], "implement");
    assert_eq!(status["phase_count"], 1);
    ex.send(json!({"v": 1, "type": "health_check", "story_id": "S-0001", "ts": 1}));
    let (health, seen) = ex.until("health_response");
    assert_eq!(health["pid"], ex.child.id());
    assert!(health["rss_kb"].as_u64().unwrap() > 0);
    ex.send(json!({"v": 1, "type": "teleport", "story_id": "S-0001", "ts": 1}));
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (complete, rest) = ex.until("complete");
    let logs: Vec<&Value> = seen
        .iter()
        .chain(rest.iter())
        .filter(|v| v["type"] == "log")
        .collect();
    assert!(
        logs.iter()
            .any(|v| v["stream"] == "stdout" && v["line"] == "hello"),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|v| v["stream"] == "stderr" && v["line"] == "oops"),
        "{logs:?}"
    );
    assert_eq!(complete["success"], true);
    assert_eq!(complete["exit_code"], 0);
    drop(ex.stdin.take());
    assert_eq!(ex.exit_code(), 0);
    // A message it does not know is skipped, and said so.
    let said = repo.rec_file("S-0001.executor-stderr").unwrap();
    assert!(
        said.contains("unknown message type") && said.contains("teleport"),
        "{said}"
    );
    assert_eq!(
        repo.read_story("S-0001"),
        before,
        "the executor never writes story files"
    );
}

#[test]
fn a_failing_agent_is_reported_in_complete() {
    let repo = TestRepo::new();
    repo.with_agent("f.sh", "echo 'bad thing' >&2; exit 7");
    repo.story("S-0001", "Failing", 1, "in-progress", "");
    let ex = Exec::start(&repo, "S-0001");
    let (complete, _) = ex.until("complete");
    assert_eq!(complete["success"], false);
    assert_eq!(complete["exit_code"], 7);
    assert_eq!(complete["failed_phase"], "implement");
    assert!(complete["error"].as_str().unwrap().contains("bad thing"));
    assert_eq!(ex.exit_code(), 1);
}

fn stops_on(how: &str) {
    let repo = TestRepo::new();
    repo.with_agent("h.sh", "sleep 300 &\nrec bg $!\nsleep 300");
    repo.story("S-0001", "Hanging", 1, "in-progress", "");
    let mut ex = Exec::start(&repo, "S-0001");
    repo.wait_rec("S-0001.bg");
    match how {
        "eof" => drop(ex.stdin.take()),
        "shutdown" => ex.send(
            json!({"v": 1, "type": "shutdown", "story_id": "S-0001", "ts": 1, "grace_ms": 500}),
        ),
        "sigterm" => signal(ex.child.id(), libc::SIGTERM),
        "sighup" => signal(ex.child.id(), libc::SIGHUP),
        _ => unreachable!(),
    }
    let (complete, _) = ex.until("complete");
    assert_eq!(complete["success"], false, "{how}");
    ex.exit_code();
    for which in ["pid", "bg"] {
        let p = repo.pid("S-0001", which);
        assert_dies(p, 5, &format!("{how}: agent process {which}"));
    }
}

#[test]
fn stdin_eof_stops_the_agent_and_its_children() {
    stops_on("eof");
}

#[test]
fn a_shutdown_message_stops_the_agent() {
    stops_on("shutdown");
}

#[test]
fn sigterm_and_sighup_stop_the_agent() {
    stops_on("sigterm");
    stops_on("sighup");
}

#[test]
fn an_unknown_story_is_a_complete_with_the_reason() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    let ex = Exec::start(&repo, "S-0404");
    let (complete, _) = ex.until("complete");
    assert_eq!(complete["success"], false);
    assert!(
        complete["error"].as_str().unwrap().contains("S-0404"),
        "{complete}"
    );
    assert_eq!(ex.exit_code(), 1);
}

/// CPU ticks (user + system) a process has used, from /proc; a zombie
/// keeps its count until it is reaped.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 (utime, stime), counted from field 3.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn an_executor_told_to_stop_waits_out_the_grace_without_spinning() {
    let repo = TestRepo::new();
    repo.with_agent(
        "t.sh",
        "trap '' TERM\ntouch \"$REC/$id.ready\"\nwhile :; do sleep 0.1; done",
    );
    repo.story("S-0001", "Stubborn", 1, "in-progress", "");
    let mut ex = Exec::start(&repo, "S-0001");
    repo.wait_rec("S-0001.ready");
    let before = cpu_ticks(ex.child.id());
    // EOF on stdin: stop, give the agent its grace (500 ms), then SIGKILL.
    drop(ex.stdin.take());
    let (complete, _) = ex.until("complete");
    assert_eq!(complete["success"], false);
    let pid = ex.child.id();
    assert!(
        wait_for(10, || !alive(pid as i32)),
        "the executor did not exit"
    );
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 20,
        "stopping took {used} ticks of CPU over a 500 ms grace"
    );
    ex.exit_code();
}
