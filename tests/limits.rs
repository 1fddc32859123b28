//! Unattended through the night (SPEC §15): usage caps park stories and
//! the run resumes them, rate limits slow the run, budgets stop what
//! would spend too much, and the ledger says what the board cost. The
//! agents are the stand-ins of tests/agents/bin, printing the real CLIs'
//! cap and rate-limit output (tests/agents/README.md); the account's cap
//! is a file they share, lifting a few seconds ahead.

use crate::presets::{preset_repo, run_with};
use crate::support::*;

/// Each call the stand-ins recorded: (story, phase, ran or capped, time s).
fn calls(repo: &TestRepo) -> Vec<(String, String, String, f64)> {
    repo.rec_file("calls")
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].to_string(),
                w[1].to_string(),
                w[2].to_string(),
                w[3].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_usage_cap_parks_the_story_and_the_run_resumes_it_at_its_phase_when_the_cap_lifts() {
    let repo = preset_repo(
        "claude",
        serde_json::json!({}),
        "stand-in: hits-cap in implement",
    );
    repo.edit_config(|cfg| {
        cfg["workflow"] = serde_json::json!({"phases": [{"name": "plan"}, {"name": "implement"}]});
    });
    repo.story("S-0002", "Second", 20, "ready", "");
    repo.story("S-0003", "Third", 30, "ready", "");
    let out = run_with(&repo, &["run", "--max", "3", "--json"], &[]);
    let err = stderr(&out);
    expect_code(&out, 0);
    for id in ["S-0001", "S-0002", "S-0003"] {
        assert_eq!(repo.status(id), "done", "{id}: {err}");
        assert_eq!(repo.field(id, "not_before"), None, "{id}");
    }
    assert!(
        err.contains("paused: claude usage limit, resumes"),
        "the pause is not announced:\n{err}"
    );
    assert!(err.contains("resumed: the usage limit has lifted"), "{err}");
    let calls = calls(&repo);
    let capped: Vec<_> = calls.iter().filter(|c| c.2 == "capped").collect();
    // One story met the cap; nothing else started until it lifted.
    assert_eq!(capped.len(), 1, "{calls:?}");
    assert_eq!(
        (capped[0].0.as_str(), capped[0].1.as_str()),
        ("S-0001", "implement")
    );
    let cap_at = capped[0].3;
    let lifts: f64 = repo.rec_file("cap_until").unwrap().trim().parse().unwrap();
    for c in &calls {
        assert!(
            c.3 <= cap_at || c.3 >= lifts,
            "{} {} started at {} while the run was paused ({cap_at} to {lifts}): {calls:?}",
            c.0,
            c.1,
            c.3
        );
    }
    // It resumed at the phase that met the cap: its plan ran once.
    let s1: Vec<_> = calls
        .iter()
        .filter(|c| c.0 == "S-0001")
        .map(|c| format!("{} {}", c.1, c.2))
        .collect();
    assert_eq!(s1, ["plan ran", "implement capped", "implement ran"]);
    let log = repo.logs("S-0001").concat();
    assert!(log.contains("parked at the usage cap until"), "{log}");
    // One result per story: the one it ended with.
    let v = json(&out);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{v}");
    assert!(results.iter().all(|r| r["outcome"] == "succeeded"), "{v}");
}

#[test]
fn with_no_wait_a_usage_cap_exits_75_and_the_story_keeps_its_not_before() {
    let repo = preset_repo("codex", serde_json::json!({}), "stand-in: hits-cap");
    repo.story("S-0002", "Second", 20, "ready", "");
    let env = [
        ("STANDIN_CODEX_LOGGED_IN", "1"),
        ("STANDIN_CAP_SECS", "600"),
    ];
    let out = run_with(&repo, &["run", "--max", "2", "--no-wait", "--json"], &env);
    let err = stderr(&out);
    expect_code(&out, 75);
    assert!(err.contains("run again after"), "{err}");
    // Parked, not blocked: ready again, not before the end of the minute
    // Codex named ("try again at 7:49 AM").
    assert_eq!(repo.status("S-0001"), "ready", "{err}");
    let lifts: u64 = repo.rec_file("cap_until").unwrap().trim().parse().unwrap();
    let minute_end = (lifts / 60 + 1) * 60;
    let not_before = repo.field("S-0001", "not_before").expect("no not_before");
    let on_disk = not_before.trim_matches(|c| c == '\'' || c == '"');
    let want = iso(minute_end);
    assert_eq!(on_disk, want, "{}", repo.read_story("S-0001"));
    assert_eq!(repo.field("S-0001", "blocked_reason"), None);
    // Its worktree and branch are kept for the resume.
    assert!(repo.worktree("S-0001-add-notes").exists());
    // The other story never started: the cap is the account's.
    assert_eq!(repo.status("S-0002"), "ready");
    assert_eq!(calls(&repo).len(), 1, "{:?}", calls(&repo));
    let v = json(&out);
    let r = &v["results"];
    assert_eq!(r[0]["outcome"], "parked", "{v}");
    assert_eq!(r[0]["not_before"], want.as_str(), "{v}");
    assert_eq!(r[1]["outcome"], "skipped", "{v}");
    assert_eq!(r[1]["reason"], "usage_cap", "{v}");
    assert_eq!(v["parked"], 1);

    // `status` says so; a later run leaves it parked (and exits 75);
    // --force runs it now.
    let st = stdout(&repo.run(&["status"]));
    assert!(st.contains("parked until"), "{st}");
    let out = run_with(&repo, &["run", "--story", "S-0001", "--no-wait"], &env);
    expect_code(&out, 75);
    assert_eq!(
        calls(&repo).len(),
        1,
        "a parked story ran: {:?}",
        calls(&repo)
    );
    let out = run_with(
        &repo,
        &["run", "--story", "S-0001", "--no-wait", "--force"],
        &env,
    );
    expect_code(&out, 75);
    assert_eq!(calls(&repo).len(), 2, "--force did not run it");
}

#[test]
fn rate_limits_halve_the_concurrency_and_it_climbs_back_when_quiet() {
    let repo = preset_repo(
        "claude",
        serde_json::json!({"retries": 2, "retryDelay": 100}),
        "stand-in: rate-limit-once\nstand-in: slow",
    );
    repo.edit_config(|cfg| {
        cfg["governor"] = serde_json::json!({"rateQuiet": 1500});
    });
    for i in 2..=4 {
        let id = format!("S-000{i}");
        repo.story(&id, "Limited", 10 + i, "ready", "");
        let p = repo.story_path(&id);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(
            &p,
            format!("{text}\nstand-in: rate-limit-once\nstand-in: slow\n"),
        )
        .unwrap();
    }
    for i in 5..=8 {
        let id = format!("S-000{i}");
        repo.story(&id, "Slow", 10 + i, "ready", "");
        let p = repo.story_path(&id);
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, format!("{text}\nstand-in: slow\n")).unwrap();
    }
    let out = run_with(&repo, &["run", "--concurrent", "4"], &[]);
    let err = stderr(&out);
    expect_code(&out, 0);
    for i in 1..=8 {
        assert_eq!(repo.status(&format!("S-000{i}")), "done", "{err}");
    }
    assert!(
        err.contains("concurrency 4 → 2 (rate limited"),
        "no halving:\n{err}"
    );
    assert!(
        err.contains("concurrency 2 → 3 (no rate limit for a while)"),
        "no recovery:\n{err}"
    );
}

/// `2026-12-06T03:00:00Z` of seconds since the epoch.
fn iso(secs: u64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_story_over_its_budget_is_stopped_mid_phase_and_blocked() {
    let repo = preset_repo("opencode", serde_json::json!({}), "stand-in: spend");
    repo.edit_config(|c| c["orchestrator"]["shutdownTimeout"] = 500.into());
    let out = run_with(&repo, &["run", "--budget-story", "0.50"], &[]);
    let err = stderr(&out);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked", "{err}");
    let reason = repo.blocked_reason("S-0001");
    assert!(
        reason.contains("over budget: $0.60 of $0.50"),
        "{reason}\n{err}"
    );
    // Stopped (it ignores SIGTERM: killed after the grace), long before
    // its thirty steps.
    let pid: i32 = repo.rec_file("S-0001.pid").unwrap().trim().parse().unwrap();
    assert!(!alive(pid), "the agent {pid} outlived its budget");
    let steps: u32 = repo
        .rec_file("S-0001.steps")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(steps < 15, "it went on for {steps} steps");
    // What it spent is on the ledger.
    let l = repo.ledger();
    assert_eq!(l.len(), 1, "{l:?}");
    assert_eq!(l[0]["story"], "S-0001");
    assert_eq!(l[0]["outcome"], "failed");
    assert!(l[0]["cost_usd"].as_f64().unwrap() >= 0.6, "{l:?}");
}

#[test]
fn a_run_budget_stops_new_starts_and_the_ledger_sums_to_the_json_total() {
    let repo = preset_repo("opencode", serde_json::json!({}), "");
    for i in 2..=5 {
        repo.story(&format!("S-000{i}"), "More", 10 + i, "ready", "");
    }
    // Each story costs $0.003 (two steps).
    let out = run_with(
        &repo,
        &["run", "--max", "5", "--budget-run", "0.005", "--json"],
        &[],
    );
    let err = stderr(&out);
    expect_code(&out, 1);
    assert!(
        err.contains("no new story starts: the run's budget is spent"),
        "{err}"
    );
    let v = json(&out);
    let results = v["results"].as_array().unwrap();
    let done: Vec<_> = results
        .iter()
        .filter(|r| r["outcome"] == "succeeded")
        .collect();
    let held: Vec<_> = results
        .iter()
        .filter(|r| r["reason"] == "run_budget")
        .collect();
    assert_eq!((done.len(), held.len()), (2, 3), "{v}");
    assert!(held.iter().all(|r| r["outcome"] == "skipped"));
    for r in &held {
        assert_eq!(repo.status(r["id"].as_str().unwrap()), "ready");
    }
    // The ledger, `cost` and the run's --json agree.
    let total = v["cost_usd"].as_f64().unwrap();
    let l = repo.ledger();
    let sum: f64 = l.iter().map(|e| e["cost_usd"].as_f64().unwrap()).sum();
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(
        (sum - total).abs() < 1e-9 && (total - 0.006).abs() < 1e-9,
        "{sum} {total}"
    );
    assert!(
        l.iter()
            .all(|e| e["agent"] == "opencode" && e["cost_from"] == "cli")
    );
    let cost = repo.run(&["cost", "--json"]);
    expect_code(&cost, 0);
    let c = json(&cost);
    assert!(
        (c["total"]["cost_usd"].as_f64().unwrap() - total).abs() < 1e-9,
        "{c}"
    );
    assert_eq!(c["by_story"].as_object().unwrap().len(), 2, "{c}");
    let text = stdout(&repo.run(&["cost"]));
    assert!(
        text.contains("By story:") && text.contains("S-0001"),
        "{text}"
    );
}

#[test]
fn claude_gets_the_story_budget_and_token_only_clis_are_priced_never_guessed() {
    let repo = preset_repo("claude", serde_json::json!({}), "");
    let out = run_with(&repo, &["run", "--budget-story", "0.5"], &[]);
    expect_code(&out, 0);
    let argv = repo.rec_file("S-0001.argv").unwrap();
    assert!(argv.contains("--max-budget-usd\n0.5000"), "{argv}");

    // Codex reports tokens, no cost: no cost without agent.pricing...
    let env = [("STANDIN_CODEX_LOGGED_IN", "1")];
    let repo = preset_repo("codex", serde_json::json!({}), "");
    let out = run_with(&repo, &["run", "--json"], &env);
    expect_code(&out, 0);
    assert!(json(&out)["cost_usd"].is_null(), "{}", stdout(&out));
    assert!(repo.ledger()[0]["cost_usd"].is_null());
    // ...and its tokens at the price set.
    let repo = preset_repo(
        "codex",
        serde_json::json!({"pricing": {"input": 1.25, "output": 10}}),
        "",
    );
    let out = run_with(&repo, &["run", "--json"], &env);
    expect_code(&out, 0);
    // 2468 in, 126 out.
    let want = (2468.0 * 1.25 + 126.0 * 10.0) / 1e6;
    let got = json(&out)["cost_usd"].as_f64().unwrap();
    assert!((got - want).abs() < 1e-9, "{got} {want}");
    let l = repo.ledger();
    assert_eq!(l[0]["cost_from"], "pricing");
}
