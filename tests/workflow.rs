//! The SDLC workflow (SPEC §10): research -> plan -> implement -> review,
//! phase outputs in the story's section files, completion flags, resume,
//! `--from`, review rounds. The agent is a script that answers each phase.

use crate::support::*;

/// Answers by phase. Its review depends on the story's title: "once" asks
/// for changes the first time, "always" every time, else it approves.
const SDLC_AGENT: &str = r#"
cp "$REC/$id.stdin" "$REC/$id.$AI_SDLC_PHASE.stdin"
case "$AI_SDLC_PHASE" in
research) printf 'Found: greetings live in README.md.\n' ;;
plan) printf '1. Add hello.txt\n2. Say hello in it\n' ;;
implement)
  n=$(cat "$REC/$id.rounds" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$REC/$id.rounds"
  [ -f "$REC/$id.hold" ] && while [ ! -f "$REC/go" ]; do sleep 0.05; done
  echo "hello, round $n" > hello.txt
  printf 'Added hello.txt (round %s).\n' "$n" ;;
review)
  case "$AI_SDLC_STORY_TITLE" in
  *once*)
    if [ -f "$REC/$id.reviewed" ]; then printf 'Good now.\nAPPROVED\n'
    else touch "$REC/$id.reviewed"; printf 'Close.\nCHANGES REQUESTED\n- add a newline check\n'; fi ;;
  *always*) printf 'CHANGES REQUESTED\n- still wrong: %s\n' "$(cat hello.txt)" ;;
  *silent*) printf 'I looked at it.\n' ;;
  *) printf 'It does what the story asks.\n\nAPPROVED\n' ;;
  esac ;;
esac
"#;

/// A repo with the agent above and the `sdlc` workflow.
fn sdlc_repo() -> TestRepo {
    let repo = TestRepo::new();
    let agent = repo.agent("sdlc.sh", SDLC_AGENT);
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "workflow": {"preset": "sdlc"},
        "orchestrator": {"healthCheckInterval": 200}
    }));
    repo
}

const TS_FLAGS: &str = "research_complete: false\nplan_complete: false\nimplementation_complete: false\nreviews_complete: false\n";

fn section(repo: &TestRepo, id: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(repo.story_path(id).with_file_name(file)).ok()
}

fn phases_run(repo: &TestRepo, id: &str) -> Vec<String> {
    repo.rec_file(&format!("{id}.phases"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_story_goes_research_plan_implement_review_and_keeps_each_output() {
    let repo = sdlc_repo();
    repo.story("S-0001", "Say hello", 1, "ready", TS_FLAGS);
    let before = repo.read_story("S-0001");
    let out = repo.run(&["run", "--json"]);
    expect_code(&out, 0);
    assert_eq!(
        phases_run(&repo, "S-0001"),
        ["research", "plan", "implement", "review"]
    );
    assert_eq!(
        section(&repo, "S-0001", "research.md").as_deref(),
        Some("Found: greetings live in README.md.\n")
    );
    assert_eq!(
        section(&repo, "S-0001", "plan.md").as_deref(),
        Some("1. Add hello.txt\n2. Say hello in it\n")
    );
    assert_eq!(
        section(&repo, "S-0001", "review.md").as_deref(),
        Some("It does what the story asks.\n\nAPPROVED\n")
    );
    assert_eq!(repo.status("S-0001"), "done");
    for flag in [
        "research_complete",
        "plan_complete",
        "implementation_complete",
        "reviews_complete",
    ] {
        assert_eq!(
            repo.field("S-0001", flag).as_deref(),
            Some("true"),
            "{flag}"
        );
    }
    // Each phase got the earlier ones' outputs; the review got the diff.
    let plan_prompt = repo.rec_file("S-0001.plan.stdin").unwrap();
    assert!(
        plan_prompt.contains("greetings live in README.md"),
        "{plan_prompt}"
    );
    let implement_prompt = repo.rec_file("S-0001.implement.stdin").unwrap();
    assert!(
        implement_prompt.contains("1. Add hello.txt"),
        "{implement_prompt}"
    );
    let review_prompt = repo.rec_file("S-0001.review.stdin").unwrap();
    assert!(review_prompt.contains("+hello, round 1"), "{review_prompt}");
    assert!(review_prompt.contains("hello.txt"), "{review_prompt}");
    assert!(review_prompt.contains("APPROVED"), "{review_prompt}");
    // The body and every field the runner does not own are as they were.
    let owned = [
        "status:",
        "started_at:",
        "updated:",
        "branch:",
        "finished_at:",
        "last_run:",
        "research_complete:",
        "plan_complete:",
        "implementation_complete:",
        "reviews_complete:",
        "base_ref:",
    ];
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !owned.iter().any(|o| l.starts_with(o)))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(strip(&repo.read_story("S-0001")), strip(&before));
    // Time per phase, on disk and in --json.
    let last_run = repo.field("S-0001", "last_run").unwrap();
    for p in ["research", "plan", "implement", "review"] {
        assert!(last_run.contains(&format!("phase: {p}")), "{last_run}");
    }
    let phases = json(&out)["results"][0]["phases"].clone();
    assert_eq!(phases.as_array().map(Vec::len), Some(4), "{phases}");
    assert_eq!(phases[3]["verdict"], "approved");
    assert!(phases[0]["duration_ms"].as_u64().is_some(), "{phases}");
    // The work was committed on the story branch.
    let files = git(
        &repo.root,
        &[
            "show",
            "--name-only",
            "--format=",
            "ai-sdlc/S-0001-say-hello",
        ],
    );
    assert!(files.contains("hello.txt"), "{files}");
}

#[test]
fn a_story_researched_and_planned_elsewhere_runs_only_implement_and_review() {
    let repo = sdlc_repo();
    repo.story(
        "S-0001",
        "Say hello",
        1,
        "ready",
        &TS_FLAGS
            .replace("research_complete: false", "research_complete: true")
            .replace("plan_complete: false", "plan_complete: true"),
    );
    let dir = repo.story_path("S-0001").with_file_name("");
    std::fs::write(dir.join("research.md"), "TS research: use README.md.\n").unwrap();
    std::fs::write(
        dir.join("plan.md"),
        "TS plan: write hello.txt, then test it.\n",
    )
    .unwrap();
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert_eq!(phases_run(&repo, "S-0001"), ["implement", "review"]);
    let prompt = repo.rec_file("S-0001.implement.stdin").unwrap();
    assert!(
        prompt.contains("TS plan: write hello.txt, then test it."),
        "{prompt}"
    );
    assert!(prompt.contains("TS research: use README.md."), "{prompt}");
    // Their files are theirs: unchanged.
    assert_eq!(
        std::fs::read_to_string(dir.join("plan.md")).unwrap(),
        "TS plan: write hello.txt, then test it.\n"
    );
    assert_eq!(repo.status("S-0001"), "done");
}

#[test]
fn an_older_boards_body_sections_are_read_when_there_is_no_file() {
    let repo = sdlc_repo();
    repo.story(
        "S-0001",
        "Say hello",
        1,
        "ready",
        "research_complete: true\nplan_complete: true\n",
    );
    let path = repo.story_path("S-0001");
    let text = repo.read_story("S-0001").replace(
        "Body of S-0001.\n",
        "Body of S-0001.\n\n## Implementation Plan\n\nBody plan: step one.\n\n## Notes\nx\n",
    );
    std::fs::write(&path, &text).unwrap();
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    let prompt = repo.rec_file("S-0001.implement.stdin").unwrap();
    assert!(
        prompt.contains("### Implementation plan\n\nBody plan: step one."),
        "{prompt}"
    );
    // Never written back into the body.
    assert!(
        repo.read_story("S-0001")
            .ends_with("## Notes\nx\n---\nnot frontmatter\n")
    );
}

#[test]
fn changes_requested_once_then_approved_takes_two_implement_rounds() {
    let repo = sdlc_repo();
    repo.story("S-0001", "Fix once", 1, "ready", "");
    let out = repo.run(&["run", "--json"]);
    expect_code(&out, 0);
    assert_eq!(
        phases_run(&repo, "S-0001"),
        [
            "research",
            "plan",
            "implement",
            "review",
            "implement",
            "review"
        ]
    );
    // The second round was told why.
    let prompt = repo.rec_file("S-0001.implement.stdin").unwrap();
    assert!(prompt.contains("- add a newline check"), "{prompt}");
    assert_eq!(repo.status("S-0001"), "done");
    assert_eq!(
        repo.field("S-0001", "reviews_complete").as_deref(),
        Some("true")
    );
    let log = repo.logs("S-0001").join("\n");
    assert!(log.contains("implement 2/2"), "{log}");
    let phases = json(&out)["results"][0]["phases"].clone();
    let rounds: Vec<(String, u64)> = phases
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["phase"].as_str().unwrap().to_string(),
                p["round"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rounds[4], ("implement".to_string(), 2), "{phases}");
    assert_eq!(phases[3]["verdict"], "changes_requested");
}

#[test]
fn a_review_that_always_requests_changes_blocks_with_its_reasons() {
    let repo = sdlc_repo();
    repo.story("S-0001", "Fix always", 1, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 1);
    assert_eq!(
        phases_run(&repo, "S-0001")
            .iter()
            .filter(|p| *p == "review")
            .count(),
        2,
        "workflow.maxReviewRounds defaults to 2"
    );
    assert_eq!(repo.status("S-0001"), "blocked");
    let reason = repo.blocked_reason("S-0001");
    assert!(reason.contains("still wrong: hello, round 2"), "{reason}");
    assert!(reason.contains("2 rounds"), "{reason}");
    assert!(
        section(&repo, "S-0001", "review.md")
            .unwrap()
            .contains("CHANGES REQUESTED")
    );
    assert_eq!(
        repo.field("S-0001", "implementation_complete").as_deref(),
        Some("false")
    );
    // A review with no verdict line counts as changes requested, and says so.
    let repo2 = sdlc_repo();
    repo2.story("S-0001", "Review silent", 1, "ready", "");
    assert_eq!(code(&repo2.run(&["run"])), 1);
    let reason = repo2.blocked_reason("S-0001");
    assert!(
        reason.contains("neither a line APPROVED nor a line CHANGES REQUESTED"),
        "{reason}"
    );
    assert!(reason.contains("I looked at it."), "{reason}");
    // One round only, when the config says so.
    let repo = sdlc_repo();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.root.join(".ai-sdlc.json")).unwrap())
            .unwrap();
    cfg["workflow"]["maxReviewRounds"] = 1.into();
    repo.config(cfg);
    repo.story("S-0001", "Fix always", 1, "ready", "");
    expect_code(&repo.run(&["run"]), 1);
    assert_eq!(phases_run(&repo, "S-0001").len(), 4);
}

#[test]
fn an_interrupted_run_resumes_at_the_phase_it_was_in() {
    let repo = sdlc_repo();
    repo.story("S-0001", "Say hello", 1, "ready", "");
    std::fs::write(repo.rec.join("S-0001.hold"), "").unwrap();
    let runner = repo.spawn(&["run"]);
    assert!(wait_for(20, || repo.rec_file("S-0001.rounds").is_some()));
    signal(runner.id(), libc::SIGINT);
    let (code_, _, err) = finish(runner, 20);
    assert_eq!(code_, 130, "{err}");
    assert_eq!(repo.status("S-0001"), "ready");
    assert_eq!(
        repo.field("S-0001", "plan_complete").as_deref(),
        Some("true")
    );
    assert_ne!(
        repo.field("S-0001", "implementation_complete").as_deref(),
        Some("true")
    );
    std::fs::remove_file(repo.rec.join("S-0001.hold")).unwrap();
    std::fs::remove_file(repo.rec.join("S-0001.phases")).unwrap();
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert_eq!(phases_run(&repo, "S-0001"), ["implement", "review"]);
    assert_eq!(repo.status("S-0001"), "done");
    // --from starts over there: the plan and what follows run again.
    repo.story(
        "S-0002",
        "Again",
        2,
        "ready",
        "research_complete: true\nplan_complete: true\nimplementation_complete: true\n",
    );
    let out = repo.run(&["run", "--story", "S-0002", "--from", "plan"]);
    expect_code(&out, 0);
    assert_eq!(phases_run(&repo, "S-0002"), ["plan", "implement", "review"]);
    let out = repo.run(&["run", "--from", "deploy"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("research, plan, implement, review"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_default_workflow_marks_implementation_but_not_review() {
    let repo = TestRepo::new();
    repo.with_agent("ok.sh", "echo done");
    repo.story("S-0001", "One", 1, "ready", TS_FLAGS);
    expect_code(&repo.run(&["run"]), 0);
    assert_eq!(
        repo.field("S-0001", "implementation_complete").as_deref(),
        Some("true")
    );
    assert_eq!(
        repo.field("S-0001", "reviews_complete").as_deref(),
        Some("false")
    );
    // `run --workflow sdlc` overrides the config for one run.
    repo.story("S-0002", "Two", 2, "ready", "");
    let out = repo.run(&["run", "--workflow", "sdlc", "--dry-run"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("research (command)"),
        "{}",
        stdout(&out)
    );
    let out = repo.run(&["run", "--workflow", "waterfall"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("sdlc"), "{}", stderr(&out));
}
