//! Stories run as Slurm steps (SPEC §12), on the one-node cluster of
//! `../shared/slurm/up.sh` (`.ci/run` starts it when it can). Without a
//! cluster these tests say so on stderr and in `target/slurm-tests.txt`,
//! and pass: they cannot run here, which is not the same as passing.

use crate::support::*;
use std::time::{Duration, Instant};

/// Is a Slurm cluster reachable (a step runs within 20 s)? Else why not.
/// Asked once per test run.
fn cluster() -> Result<(), String> {
    static ANSWER: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    ANSWER.get_or_init(ask_cluster).clone()
}

fn ask_cluster() -> Result<(), String> {
    let out = std::process::Command::new("timeout")
        .args(["20", "srun", "--quiet", "true"])
        .output()
        .map_err(|e| format!("cannot run srun: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "srun true failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One cluster for all: these tests count its jobs and fill its node, so
/// they take turns.
static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

macro_rules! need_cluster {
    ($name:expr) => {
        let _turn = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(why) = cluster() {
            let line = format!("SKIPPED slurm test {}: no Slurm cluster here ({why}); sudo sh .ci/slurm-up.sh starts one\n", $name);
            eprint!("{line}");
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(concat!(env!("CARGO_MANIFEST_DIR"), "/target/slurm-tests.txt"))
                .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
            return;
        }
    };
}

fn slurm_repo(body: &str, stories: usize) -> TestRepo {
    let repo = TestRepo::new();
    let agent = repo.agent("a.sh", body);
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "orchestrator": {"launcher": "slurm", "healthCheckInterval": 500}
    }));
    for i in 1..=stories {
        repo.story(
            &format!("S-{i:04}"),
            &format!("S{i}"),
            i as i64,
            "ready",
            "",
        );
    }
    repo
}

/// The job names Slurm has now.
fn squeue() -> String {
    std::process::Command::new("squeue")
        .args(["-h", "-o", "%j"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn our_jobs() -> usize {
    squeue()
        .lines()
        .filter(|l| l.starts_with("ai-sdlc-S-"))
        .count()
}

#[test]
fn sixteen_stories_run_as_slurm_steps() {
    need_cluster!("sixteen_stories_run_as_slurm_steps");
    let repo = slurm_repo(
        r#"echo "$SLURM_JOB_ID $SLURM_STEP_ID" > "$REC/$id.slurm"; squeue -h -o %j >> "$REC/$id.slurm"; sleep 0.5; echo w > "w-$id.txt""#,
        16,
    );
    let out = repo.run(&["run", "--concurrent", "8"]);
    expect_code(&out, 0);
    let mut seen_names = String::new();
    for i in 1..=16 {
        let id = format!("S-{i:04}");
        assert_eq!(repo.status(&id), "done", "{}", stderr(&out));
        let rec = repo.rec_file(&format!("{id}.slurm")).unwrap();
        let first = rec.lines().next().unwrap();
        let mut parts = first.split_whitespace();
        assert!(
            parts.next().is_some_and(|j| j.parse::<u64>().is_ok()) && parts.next().is_some(),
            "{id} did not run in a Slurm step: {rec}"
        );
        seen_names.push_str(&rec);
    }
    assert!(seen_names.contains("ai-sdlc-S-00"), "{seen_names}");
    assert!(
        repo.logs("S-0001").join("").contains("Slurm step"),
        "{}",
        repo.logs("S-0001").join("")
    );
}

const STUBBORN: &str = r#"trap '' TERM; echo $$ > "$REC/$id.pid"; while :; do sleep 1; done"#;

fn wait_pids(repo: &TestRepo, n: usize) -> Vec<i32> {
    assert!(
        wait_for(60, || (1..=n)
            .all(|i| repo.rec_file(&format!("S-{i:04}.pid")).is_some())),
        "not every agent started"
    );
    (1..=n)
        .map(|i| repo.pid(&format!("S-{i:04}"), "pid"))
        .collect()
}

#[test]
fn ctrl_c_stops_every_step_even_when_agents_ignore_sigterm() {
    need_cluster!("ctrl_c_stops_every_step_even_when_agents_ignore_sigterm");
    let repo = slurm_repo(STUBBORN, 8);
    let runner = repo.spawn(&["run", "--concurrent", "8", "--shutdown-timeout", "2"]);
    let pids = wait_pids(&repo, 8);
    let t0 = Instant::now();
    signal(runner.id(), libc::SIGINT);
    let (c, _, err) = finish(runner, 30);
    let took = t0.elapsed();
    assert_eq!(c, 130, "{err}");
    assert!(
        took < Duration::from_secs(2 + 2 + 3),
        "took {took:?}: {err}"
    );
    for i in 1..=8 {
        assert_eq!(repo.status(&format!("S-{i:04}")), "ready");
    }
    // KillWait is 5 s on the test cluster.
    assert!(wait_for(10, || our_jobs() == 0), "{}", squeue());
    for p in pids {
        assert_dies(p, 10, "an agent");
    }
}

#[test]
fn a_runner_killed_outright_leaves_nothing_running_on_the_cluster() {
    need_cluster!("a_runner_killed_outright_leaves_nothing_running_on_the_cluster");
    let repo = slurm_repo(STUBBORN, 4);
    let runner = repo.spawn(&["run", "--concurrent", "4", "--shutdown-timeout", "2"]);
    let pids = wait_pids(&repo, 4);
    signal(runner.id(), libc::SIGKILL);
    let _ = finish(runner, 10);
    // shutdownTimeout + KillWait + a few seconds.
    assert!(wait_for(2 + 5 + 8, || our_jobs() == 0), "{}", squeue());
    for p in pids {
        assert_dies(p, 10, "an agent");
    }
}

#[test]
fn a_step_slurm_cancels_fails_only_its_story() {
    need_cluster!("a_step_slurm_cancels_fails_only_its_story");
    let repo = slurm_repo(
        r#"echo $$ > "$REC/$id.pid"; while [ ! -f "$REC/go" ]; do sleep 0.1; done; echo w > "w-$id.txt""#,
        3,
    );
    let runner = repo.spawn(&["run", "--concurrent", "3"]);
    wait_pids(&repo, 3);
    let st = std::process::Command::new("scancel")
        .args(["--name", "ai-sdlc-S-0002"])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(wait_for(20, || repo.status("S-0002") == "blocked"));
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (c, _, err) = finish(runner, 30);
    assert_eq!(c, 1, "{err}");
    assert_eq!(repo.status("S-0001"), "done");
    assert_eq!(repo.status("S-0003"), "done");
    let reason = repo.blocked_reason("S-0002");
    assert!(
        reason.contains("Slurm") && reason.contains("CANCELLED"),
        "{reason}"
    );
}

#[test]
fn a_story_past_its_time_limit_on_the_cluster_is_timed_out() {
    need_cluster!("a_story_past_its_time_limit_on_the_cluster_is_timed_out");
    let repo = slurm_repo(STUBBORN, 1);
    let out = repo.run(&["run", "--timeout", "2", "--shutdown-timeout", "1"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    assert!(repo.blocked_reason("S-0001").contains("timed out"));
    assert!(wait_for(10, || our_jobs() == 0), "{}", squeue());
}

#[test]
fn a_launcher_that_is_not_there_is_refused_before_anything_starts() {
    let repo = TestRepo::new();
    let agent = repo.agent("a.sh", "true");
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "orchestrator": {"launcher": ["no-such-launcher", "--flag"]}
    }));
    repo.ready_stories(1);
    let before = repo.read_story("S-0001");
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("no-such-launcher"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.read_story("S-0001"), before);
    let out = repo.run(&["run", "--launcher", "slurm", "--dry-run"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains(
            "through: srun --quiet --nodes=1 --ntasks=1 --cpus-per-task=1 --job-name=ai-sdlc-{id}"
        ),
        "{}",
        stdout(&out)
    );
    let out = repo.run(&["run", "--launcher", "kubernetes"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("slurm"), "{}", stderr(&out));
}

#[test]
fn a_story_waiting_for_the_cluster_is_queued_and_its_time_starts_when_it_runs() {
    need_cluster!("a_story_waiting_for_the_cluster_is_queued_and_its_time_starts_when_it_runs");
    let repo = TestRepo::new();
    let agent = repo.agent("a.sh", "sleep 2; echo w > \"w-$id.txt\"");
    // Each story takes the whole node: the second waits for the first.
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "orchestrator": {"launcher": "slurm", "cpusPerStory": 16}
    }));
    repo.ready_stories(2);
    let out = repo.run(&["run", "--concurrent", "2", "--timeout", "3"]);
    expect_code(&out, 0);
    let err = stderr(&out);
    assert!(err.contains("queued on cluster"), "{err}");
    assert_eq!(repo.status("S-0001"), "done");
    assert_eq!(repo.status("S-0002"), "done");
    let (a, b) = (repo.span("S-0001"), repo.span("S-0002"));
    assert!(a.1 <= b.0 || b.1 <= a.0, "the two ran at once: {a:?} {b:?}");
}
