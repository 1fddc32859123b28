//! Best of N (SPEC §17): several attempts at a story's implement phase,
//! each in its own worktree and branch; the verify command drops the
//! failing ones; a judge, the smallest change or the first picks; every
//! attempt's work is kept. The agent is a script whose attempts differ
//! by `AI_SDLC_ATTEMPT`.

use crate::support::*;
use std::path::Path;

/// Implement: attempt 1 writes a broken answer (verify fails), attempt 2
/// a one-line one, attempt 3 a five-line one (more by other numbers).
/// With "race" in the title, attempt 2 waits until attempt 3's work is
/// committed (so 3 is the first to pass). With "hang" in it, each attempt writes
/// its answer and waits for `go`. The judge answers what `judge.answer`
/// holds, else chooses attempt 3 (and scribbles in its worktree, which
/// it should not).
const AGENT: &str = r#"
k="${AI_SDLC_ATTEMPT:-none}"
case "$AI_SDLC_PHASE" in
implement)
  rec "attempt$k.start" "$(date +%s%N)"
  rec "attempt$k.pid" $$
  echo "$k $(pwd)" >> "$REC/$id.attempts"
  case "$k" in
  1) printf 'broken\n' > answer.txt ;;
  2) printf 'forty-two\n' > answer.txt ;;
  *) printf 'the answer\nis\nforty\nplus\ntwo\n' > answer.txt ;;
  esac
  case "$AI_SDLC_STORY_TITLE" in
  *race*) if [ "$k" = 2 ]; then i=0; while ! git log -1 --format=%s "${AI_SDLC_BRANCH%2}3" 2>/dev/null | grep -q 'attempt 3' && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; fi ;;
  *hang*) [ "$k" = 3 ] || while [ ! -f "$REC/go" ]; do sleep 0.05; done ;;
  *slow*) sleep 0.3 ;;
  esac
  printf 'Attempt %s wrote answer.txt.\n' "$k"
  rec "attempt$k.end" "$(date +%s%N)" ;;
judge)
  cp "$REC/$id.stdin" "$REC/$id.judge.stdin"
  pwd > "$REC/$id.judge.cwd"
  echo 'a judge that scribbles' >> answer.txt
  env | grep '^AI_SDLC_PHASE=' > "$REC/$id.judge.env"
  if [ -f "$REC/judge.answer" ]; then cat "$REC/judge.answer"
  else printf 'Attempt 3 explains itself best.\nCHOSEN: 3\nIt reads well and passes.\n'; fi ;;
review)
  cp "$REC/$id.stdin" "$REC/$id.review.stdin"
  printf 'Fine.\nAPPROVED\n' ;;
esac
"#;

/// A repo whose agent is the script above, checked by a verify command
/// that fails on a broken answer; `pick` and more of `attempts`.
fn repo_with(attempts: serde_json::Value, extra: serde_json::Value) -> TestRepo {
    let repo = TestRepo::new();
    let agent = repo.agent("attempts.sh", AGENT);
    let mut config = serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "attempts": attempts,
        "orchestrator": {"healthCheckInterval": 200}
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    if config["attempts"]["verify"].is_null() {
        config["attempts"]["verify"] =
            serde_json::json!(["sh", "-c", "! grep -q broken answer.txt"]);
    }
    repo.config(config);
    repo
}

fn on_branch(repo: &TestRepo, branch: &str, file: &str) -> String {
    git(&repo.root, &["show", &format!("{branch}:{file}")])
}

fn record(repo: &TestRepo, id: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(repo.story_path(id).with_file_name("attempts.json"))
        .unwrap_or_else(|e| panic!("{id} has no attempts.json: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn attempt_worktree(repo: &TestRepo, k: u32) -> std::path::PathBuf {
    repo.worktree(&format!("S-0001-answer-it-attempt-{k}"))
}

#[test]
fn the_judge_chooses_among_the_attempts_that_pass_and_every_attempt_is_kept() {
    let repo = repo_with(serde_json::json!({"pick": "judge"}), serde_json::json!({}));
    repo.story("S-0001", "Answer it", 1, "ready", "attempts: 3\n");
    let plan = stdout(&repo.run(&["run", "--dry-run"]));
    assert!(
        plan.contains("3 attempts at implement, each in a worktree of its own; pick: judge"),
        "{plan}"
    );
    let out = repo.run(&["run", "--concurrent", "3"]);
    expect_code(&out, 0);
    assert_eq!(repo.status("S-0001"), "done");
    let branch = "ai-sdlc/S-0001-answer-it";
    // The judged attempt (3), not the smallest (2), is the story's work.
    assert_eq!(
        on_branch(&repo, branch, "answer.txt"),
        "the answer\nis\nforty\nplus\ntwo\n"
    );
    // Every attempt's work is reachable.
    for (k, want) in [(1, "broken\n"), (2, "forty-two\n"), (3, "the answer\n")] {
        let r = format!("refs/ai-sdlc/attempts/S-0001/{k}");
        assert!(
            on_branch(&repo, &r, "answer.txt").starts_with(want),
            "attempt {k}"
        );
    }
    // The judge ran as its own phase, saw the two that passed by number,
    // their diffs, and not the one that failed verify.
    // The judge ran in a throwaway worktree: its scribble is gone with it.
    let judged_in = repo.rec_file("S-0001.judge.cwd").unwrap();
    assert!(!Path::new(judged_in.trim()).exists(), "{judged_in}");
    let env = repo.rec_file("S-0001.judge.env").expect("no judge ran");
    assert_eq!(env.trim(), "AI_SDLC_PHASE=judge");
    let prompt = repo.rec_file("S-0001.judge.stdin").unwrap();
    assert!(prompt.contains("### Attempt 2") && prompt.contains("### Attempt 3"));
    assert!(!prompt.contains("### Attempt 1"), "{prompt}");
    assert!(prompt.contains("+forty-two") && prompt.contains("CHOSEN: <number>"));
    // The worktrees of the attempts that passed are gone (their work is
    // under their refs); the failed one's is kept, with its work.
    assert!(!attempt_worktree(&repo, 2).exists());
    assert!(!attempt_worktree(&repo, 3).exists());
    assert_eq!(
        std::fs::read_to_string(attempt_worktree(&repo, 1).join("answer.txt")).unwrap(),
        "broken\n"
    );
    let rec = record(&repo, "S-0001");
    assert_eq!(rec["chosen"], 3);
    assert_eq!(rec["attempts"][0]["verify"], "failed");
    assert_eq!(rec["attempts"][1]["verify"], "passed");
    assert_eq!(rec["attempts"][1]["lines"], 1);
    assert_eq!(rec["attempts"][2]["lines"], 5);
    // `review` lists the three: agent, verify, lines, time, the judge's reason.
    let out = repo.run(&["review", "S-0001", "--stat"]);
    expect_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("Its attempts (3, pick: judge; its branch holds attempt 3)"),
        "{text}"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("attempts.sh") || l.contains(" succeeded "))
        .collect();
    assert_eq!(rows.len(), 3, "{text}");
    assert!(text.contains("verify failed"), "{text}");
    assert!(text.contains("chosen: It reads well and passes."), "{text}");
    let v = json(&repo.run(&["review", "S-0001", "--json"]));
    assert_eq!(v["stories"][0]["attempts"]["chosen"], 3, "{v}");
    assert_eq!(
        v["stories"][0]["attempts"]["attempts"][0]["verify"], "failed",
        "{v}"
    );
    // The ledger has a line per attempt.
    let ledger = repo.ledger();
    for k in 1..=3 {
        assert!(ledger.iter().any(|l| l["attempt"] == k), "{ledger:?}");
    }
}

#[test]
fn smallest_picks_the_fewest_changed_lines_and_first_the_first_to_pass() {
    for (pick, want) in [
        ("smallest", "forty-two\n"),
        ("first", "the answer\nis\nforty\nplus\ntwo\n"),
    ] {
        let repo = repo_with(serde_json::json!({"pick": pick}), serde_json::json!({}));
        repo.story("S-0001", "Answer it race", 1, "ready", "slug: answer-it\n");
        let out = repo.run(&["run", "--attempts", "3", "--concurrent", "3"]);
        expect_code(&out, 0);
        assert_eq!(repo.status("S-0001"), "done", "{pick}");
        assert_eq!(
            on_branch(&repo, "ai-sdlc/S-0001-answer-it", "answer.txt"),
            want,
            "{pick}"
        );
        assert!(
            repo.rec_file("S-0001.judge.stdin").is_none(),
            "no judge with {pick}"
        );
    }
}

#[test]
fn phases_before_implement_run_once_and_review_runs_on_the_chosen_attempt() {
    let repo = repo_with(
        serde_json::json!({"pick": "smallest"}),
        serde_json::json!({
            "workflow": {"phases": [{"name": "plan"}, {"name": "implement"}, {"name": "review"}]},
            "worktree": {"setup": ["sh", "-c", "pwd >> \"$SETUP_RUNS\""]}
        }),
    );
    repo.story("S-0001", "Answer it", 1, "ready", "attempts: 3\n");
    let runs = repo.rec.join("setup.runs");
    let out = repo.run_env(
        &["run", "--concurrent", "2"],
        &[("SETUP_RUNS", runs.to_str().unwrap())],
    );
    expect_code(&out, 0);
    // worktree.setup ran once in each new worktree: the story's, and each attempt's.
    let mut setups: Vec<String> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(|l| l.rsplit('/').next().unwrap().to_string())
        .collect();
    setups.sort();
    assert_eq!(
        setups,
        [
            "S-0001-answer-it",
            "S-0001-answer-it-attempt-1",
            "S-0001-answer-it-attempt-2",
            "S-0001-answer-it-attempt-3"
        ]
    );
    let phases = repo.rec_file("S-0001.phases").unwrap();
    let count = |p: &str| phases.lines().filter(|l| *l == p).count();
    assert_eq!(
        (count("plan"), count("implement"), count("review")),
        (1, 3, 1),
        "{phases}"
    );
    // The review saw the chosen attempt's diff.
    let review = repo.rec_file("S-0001.review.stdin").unwrap();
    assert!(review.contains("+forty-two"), "{review}");
    assert_eq!(repo.status("S-0001"), "done");
}

#[test]
fn never_more_agents_at_once_than_the_concurrency_limit() {
    let repo = repo_with(
        serde_json::json!({"pick": "smallest"}),
        serde_json::json!({}),
    );
    repo.story("S-0001", "Answer it slow", 1, "ready", "slug: answer-it\n");
    repo.story(
        "S-0002",
        "Answer that slow",
        2,
        "ready",
        "slug: answer-that\n",
    );
    let out = repo.run(&["run", "--attempts", "3", "--concurrent", "2"]);
    expect_code(&out, 0);
    // Each attempt's agent said when it started and ended.
    let mut spans = Vec::new();
    for id in ["S-0001", "S-0002"] {
        for k in 1..=3 {
            let read = |s: &str| -> u128 {
                repo.rec_file(&format!("{id}.attempt{k}.{s}"))
                    .unwrap_or_else(|| panic!("{id} attempt {k} did not run"))
                    .trim()
                    .parse()
                    .unwrap()
            };
            spans.push((read("start"), read("end")));
        }
    }
    let most = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .unwrap();
    assert!(most <= 2, "{most} agents ran at once: {spans:?}");
    assert_eq!(repo.status("S-0001"), "done");
    assert_eq!(repo.status("S-0002"), "done");
}

#[test]
fn ctrl_c_mid_way_keeps_every_attempts_work() {
    let repo = repo_with(
        serde_json::json!({"pick": "smallest"}),
        serde_json::json!({}),
    );
    repo.story(
        "S-0001",
        "Answer it hang",
        1,
        "ready",
        "slug: answer-it\nattempts: 3\n",
    );
    let child = repo.spawn(&["run", "--concurrent", "3"]);
    let third = "ai-sdlc/S-0001-answer-it-attempt-3";
    let all_wrote = wait_for(30, || {
        (1..=3).all(|k| attempt_worktree(&repo, k).join("answer.txt").exists())
            && repo
                .rec_file("S-0001.attempts")
                .is_some_and(|a| a.lines().count() == 3)
            && git(&repo.root, &["log", "-1", "--format=%s", third]).contains("(attempt 3)")
    });
    assert!(
        all_wrote,
        "the attempts did not all start, or 3 did not finish"
    );
    let pids: Vec<i32> = (1..=3)
        .map(|k| repo.pid("S-0001", &format!("attempt{k}.pid")))
        .collect();
    signal(child.id(), libc::SIGINT);
    let (code, _, err) = finish(child, 30);
    assert_eq!(code, 130, "{err}");
    for pid in pids {
        assert_dies(pid, 5, "an attempt's agent");
    }
    for k in 1..=3 {
        let wt = attempt_worktree(&repo, k);
        assert!(
            wt.join("answer.txt").exists(),
            "attempt {k}'s work is gone: {err}"
        );
    }
    assert_eq!(repo.status("S-0001"), "ready");
    let rec = record(&repo, "S-0001");
    assert_eq!(rec["attempts"].as_array().unwrap().len(), 3);
    assert!(rec["chosen"].is_null());
    // The next run resumes in the same worktrees and finishes; attempt 3,
    // which had finished, is not run again.
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let out = repo.run(&["run", "--concurrent", "3"]);
    expect_code(&out, 0);
    assert_eq!(repo.status("S-0001"), "done", "{}", stderr(&out));
    let ran = repo.rec_file("S-0001.attempts").unwrap();
    let runs_of = |k: &str| ran.lines().filter(|l| l.starts_with(k)).count();
    assert_eq!(
        (runs_of("1 "), runs_of("2 "), runs_of("3 ")),
        (2, 2, 1),
        "{ran}"
    );
    assert!(
        stderr(&out).contains("attempt 3: done in an earlier run"),
        "{}",
        stderr(&out)
    );
    assert_eq!(record(&repo, "S-0001")["chosen"], 2);
    assert_eq!(
        on_branch(&repo, "ai-sdlc/S-0001-answer-it", "answer.txt"),
        "forty-two\n"
    );
}

#[test]
fn when_every_attempt_fails_the_story_is_blocked_with_each_reason_and_keeps_every_worktree() {
    let repo = repo_with(
        serde_json::json!({"pick": "smallest", "verify": ["false"]}),
        serde_json::json!({}),
    );
    repo.story("S-0001", "Answer it", 1, "ready", "attempts: 2\n");
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    let why = repo.blocked_reason("S-0001");
    assert!(
        why.contains("attempt 1") && why.contains("attempt 2"),
        "{why}"
    );
    assert!(why.contains("verify failed"), "{why}");
    for k in 1..=2 {
        assert!(attempt_worktree(&repo, k).join("answer.txt").exists());
    }
}

#[test]
fn pick_switches_the_story_branch_by_hand_and_keeps_what_it_replaces() {
    let repo = repo_with(
        serde_json::json!({"pick": "smallest"}),
        serde_json::json!({}),
    );
    repo.story("S-0001", "Answer it", 1, "ready", "attempts: 3\n");
    expect_code(&repo.run(&["run", "--concurrent", "3"]), 0);
    let branch = "ai-sdlc/S-0001-answer-it";
    let before = git(&repo.root, &["rev-parse", branch]);
    assert_eq!(on_branch(&repo, branch, "answer.txt"), "forty-two\n");
    let out = repo.run(&["pick", "S-0001", "3"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("is now attempt 3"),
        "{}",
        stdout(&out)
    );
    assert!(on_branch(&repo, branch, "answer.txt").starts_with("the answer"));
    let kept = git(
        &repo.root,
        &[
            "for-each-ref",
            "--format=%(objectname)",
            "refs/ai-sdlc/previous/S-0001/",
        ],
    );
    assert_eq!(kept.trim(), before.trim());
    assert_eq!(record(&repo, "S-0001")["chosen"], 3);
    // A story file that names a branch ai-sdlc would not use moves nothing.
    let text = repo.read_story("S-0001");
    let hostile = text.replace(&format!("branch: {branch}"), "branch: ../../HEAD");
    assert_ne!(hostile, text);
    std::fs::write(repo.story_path("S-0001"), &hostile).unwrap();
    let out = repo.run(&["pick", "S-0001", "2"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("not a branch name ai-sdlc uses"),
        "{}",
        stderr(&out)
    );
    assert!(on_branch(&repo, branch, "answer.txt").starts_with("the answer"));
    std::fs::write(repo.story_path("S-0001"), &text).unwrap();
    // An attempt that does not exist, or a story without attempts: a clear error.
    let out = repo.run(&["pick", "S-0001", "9"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("its attempts are 1, 2, 3"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_story_may_only_send_its_attempts_to_agents_the_config_allows() {
    let repo = repo_with(
        serde_json::json!({"pick": "smallest"}),
        serde_json::json!({}),
    );
    repo.story(
        "S-0001",
        "Answer it",
        1,
        "ready",
        "attempts: 2\nattempt_agents: [codex]\n",
    );
    let out = repo.run(&["run"]);
    expect_code(&out, 1);
    let why = repo.blocked_reason("S-0001");
    assert!(why.contains("agent.attemptAgents"), "{why}");
    assert!(repo.rec_file("S-0001.attempts").is_none(), "an attempt ran");
}

#[test]
fn attempt_agents_spread_the_attempts_over_presets_round_robin() {
    let repo = crate::presets::preset_repo(
        "claude",
        serde_json::json!({"attemptAgents": ["claude", "codex"], "attempts": 3}),
        "",
    );
    let out = crate::presets::run_with(
        &repo,
        &["run", "--concurrent", "2", "--json"],
        &[("STANDIN_CODEX_LOGGED_IN", "1")],
    );
    expect_code(&out, 0);
    let result = json(&out);
    assert_eq!(repo.status("S-0001"), "done");
    let work = |k: u32, file: &str| {
        git_cmd(&repo.root)
            .args([
                "cat-file",
                "-e",
                &format!("refs/ai-sdlc/attempts/S-0001/{k}:{file}"),
            ])
            .status()
            .unwrap()
            .success()
    };
    assert!(work(1, "notes-claude.txt") && !work(1, "notes-codex.txt"));
    assert!(
        work(2, "notes-codex.txt") && !work(2, "notes-claude.txt"),
        "{}",
        record(&repo, "S-0001")
    );
    assert!(work(3, "notes-claude.txt"));
    // The ledger says which agent each attempt was, and what it cost.
    let lines = repo.ledger();
    let agent_of = |k: u32| {
        lines
            .iter()
            .find(|l| l["attempt"] == k)
            .map(|l| l["agent"].as_str().unwrap().to_string())
    };
    assert_eq!(agent_of(1).as_deref(), Some("claude"));
    assert_eq!(agent_of(2).as_deref(), Some("codex"));
    assert_eq!(agent_of(3).as_deref(), Some("claude"));
    let rec = record(&repo, "S-0001");
    assert_eq!(rec["attempts"][1]["agent"], "codex");
    // Every attempt's cost counts in the story's.
    let each: f64 = (0..3)
        .map(|i| rec["attempts"][i]["cost_usd"].as_f64().unwrap_or(0.0))
        .sum();
    let story = result["results"][0]["cost_usd"].as_f64().unwrap();
    assert!(
        each > 0.0 && (story - each).abs() < 1e-9,
        "{story} vs {each}"
    );
}

#[test]
fn a_bad_number_of_attempts_is_refused_naming_the_flag_field_or_key() {
    let repo = repo_with(serde_json::json!({}), serde_json::json!({}));
    repo.story("S-0001", "Answer it", 1, "ready", "");
    let out = repo.run(&["run", "--attempts", "0"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("--attempts \"0\": expected a whole number from 1 to 16"));
    // Without worktrees there is nowhere to put an attempt: once, and said.
    let out = repo.run(&["run", "--no-worktree", "--attempts", "2"]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("attempts need worktrees"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        repo.rec_file("S-0001.attempts").unwrap().trim(),
        format!("none {}", repo.root.display())
    );
    repo.story("S-0002", "Answer that", 2, "ready", "attempts: many\n");
    let out = repo.run(&["run", "--story", "S-0002"]);
    assert!(
        stderr(&out).contains("field `attempts` must be a whole number from 1 to 16"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        repo.root.join(".ai-sdlc.json"),
        r#"{"agent": {"attempts": 99}}"#,
    )
    .unwrap();
    let out = repo.run(&["status"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("key `agent.attempts` must be a whole number from 1 to 16"),
        "{}",
        stderr(&out)
    );
    assert!(!attempt_worktree(&repo, 1).exists());
}

#[test]
fn an_attempt_at_the_usage_cap_parks_the_story_and_no_other_attempt_starts() {
    let repo = crate::presets::preset_repo(
        "codex",
        serde_json::json!({"attempts": 3}),
        "stand-in: hits-cap",
    );
    let env = [
        ("STANDIN_CODEX_LOGGED_IN", "1"),
        ("STANDIN_CAP_SECS", "600"),
    ];
    let out = crate::presets::run_with(&repo, &["run", "--no-wait"], &env);
    let err = stderr(&out);
    expect_code(&out, 75);
    // Parked, not blocked: ready again once the cap lifts.
    assert_eq!(repo.status("S-0001"), "ready", "{err}");
    assert!(repo.field("S-0001", "not_before").is_some(), "{err}");
    assert_eq!(repo.field("S-0001", "blocked_reason"), None);
    let rec = record(&repo, "S-0001");
    assert_eq!(rec["attempts"][0]["outcome"], "parked", "{rec}");
    for k in 1..3 {
        assert_eq!(rec["attempts"][k]["outcome"], "not_started", "{rec}");
        let why = rec["attempts"][k]["error"].as_str().unwrap();
        assert!(why.starts_with("paused: codex usage limit"), "{why}");
    }
    // The first attempt's worktree is kept for the resume.
    assert!(repo.worktree("S-0001-add-notes-attempt-1").exists());
    assert!(!repo.worktree("S-0001-add-notes-attempt-2").exists());
}

#[test]
fn a_storys_budget_is_shared_among_its_attempts() {
    // Each claude stand-in phase costs $0.0123.
    let repo = crate::presets::preset_repo("claude", serde_json::json!({"attempts": 3}), "");
    let out = crate::presets::run_with(&repo, &["run", "--budget-story", "0.06"], &[]);
    expect_code(&out, 0);
    // Each attempt gets a third of it, and Claude Code is told so.
    let argv = repo.rec_file("S-0001.argv").unwrap();
    assert!(argv.contains("--max-budget-usd\n0.0200"), "{argv}");
    // An agent that spends $0.20 a step until stopped: with $1.50 for the
    // story, each attempt is stopped over its $0.50, and the story, every
    // attempt over its share, is blocked.
    let repo = crate::presets::preset_repo(
        "opencode",
        serde_json::json!({"attempts": 3}),
        "stand-in: spend",
    );
    repo.edit_config(|c| c["orchestrator"]["shutdownTimeout"] = 500.into());
    let out = crate::presets::run_with(
        &repo,
        &["run", "--budget-story", "1.50", "--concurrent", "3"],
        &[],
    );
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked", "{}", stderr(&out));
    let why = repo.blocked_reason("S-0001");
    assert!(why.contains("no attempt passed"), "{why}");
    assert_eq!(
        why.matches("over budget: $0.60 of $0.50").count(),
        3,
        "{why}"
    );
}

#[test]
fn attempt_branches_stay_in_the_tools_namespace_whatever_the_story_names() {
    // A story file is input: its `branch:` must not lead an attempt onto,
    // or a cleanup into, a branch of the user's.
    let repo = repo_with(
        serde_json::json!({"pick": "smallest"}),
        serde_json::json!({}),
    );
    git(&repo.root, &["branch", "user-work-attempt-2"]);
    let users = git(&repo.root, &["rev-parse", "user-work-attempt-2"]);
    repo.story(
        "S-0001",
        "Answer it",
        1,
        "ready",
        "attempts: 3\nbranch: user-work\n",
    );
    let out = repo.run(&["run", "--concurrent", "3"]);
    expect_code(&out, 0);
    assert_eq!(on_branch(&repo, "user-work", "answer.txt"), "forty-two\n");
    // The user's branch is where it was, and still there.
    assert_eq!(
        git(&repo.root, &["rev-parse", "user-work-attempt-2"]),
        users
    );
    let kept = git(&repo.root, &["rev-parse", "refs/ai-sdlc/attempts/S-0001/2"]);
    assert_ne!(kept, users);
}

#[test]
fn an_attempt_that_re_points_its_worktree_gets_no_git_call_and_keeps_its_work() {
    let repo = TestRepo::new();
    // Attempt 2 makes a repo of its own on its branch and points its
    // worktree's .git at it: the runner's commit would land there, and the
    // worktree would be removed as clean.
    let agent = repo.agent(
        "repoint.sh",
        r#"case "$AI_SDLC_ATTEMPT" in
2) git init -q "$REC/fake" && git -C "$REC/fake" checkout -q -b "$AI_SDLC_BRANCH"
   printf 'gitdir: %s\n' "$REC/fake/.git" > .git
   echo 'forty-two' > answer.txt ;;
*) printf 'the answer\nis forty-two\n' > answer.txt ;;
esac"#,
    );
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()], "sandbox": false, "attempts": 2},
        "orchestrator": {"healthCheckInterval": 200}
    }));
    repo.story("S-0001", "Answer it", 1, "ready", "");
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 0);
    // The other attempt is the story's work; attempt 2 dropped out for its .git.
    assert_eq!(
        on_branch(&repo, "ai-sdlc/S-0001-answer-it", "answer.txt"),
        "the answer\nis forty-two\n"
    );
    let rec = record(&repo, "S-0001");
    let why = rec["attempts"][1]["error"].as_str().unwrap();
    assert!(why.contains(".git") && why.contains("points at"), "{why}");
    // Nothing was committed into the agent's repo; its work is still there.
    let fake = repo.rec.join("fake");
    let log = git_cmd(&fake).args(["log", "--oneline"]).output().unwrap();
    assert!(
        !log.status.success(),
        "the runner committed into the agent's repo"
    );
    assert!(attempt_worktree(&repo, 2).join("answer.txt").exists());
    assert!(rec["attempts"][1]["commit"].is_null(), "{rec}");
}
