//! Agent presets against stand-ins of the real CLIs (tests/agents/bin:
//! scripts that accept exactly the real flags, print the real output
//! formats, edit files, and fail the way the real ones fail); and, where
//! a real CLI is installed, against the real thing.

use crate::support::*;
use serde_json::Value;

/// The stand-in CLIs.
const STANDINS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents/bin");

/// A repo whose agent is `preset`, with one ready story whose body says
/// `body` (a `stand-in: <mode>` line picks the stand-in's behaviour).
pub(crate) fn preset_repo(preset: &str, agent: Value, body: &str) -> TestRepo {
    let repo = TestRepo::new();
    let mut agent = agent;
    agent["preset"] = Value::from(preset);
    repo.config(serde_json::json!({
        "agent": agent,
        "orchestrator": {"healthCheckInterval": 200}
    }));
    let p = repo.story_path("S-0001");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(
        &p,
        format!("---\nid: S-0001\ntitle: Add notes\npriority: 1\nstatus: ready\n---\n# Add notes\n\nWrite the notes file.\n\n## Acceptance criteria\n- notes exist\n\n{body}\n"),
    )
    .unwrap();
    repo
}

/// PATH with the stand-ins first, and what they need.
fn standin_env(repo: &TestRepo) -> Vec<(String, String)> {
    vec![
        (
            "PATH".into(),
            format!("{STANDINS}:{}", std::env::var("PATH").unwrap()),
        ),
        ("STANDIN_REC".into(), repo.rec.display().to_string()),
        ("XDG_CONFIG_HOME".into(), repo.xdg().display().to_string()),
        // For the one test that runs through script(1), not `hermetic`:
        // the stand-ins keep their state in the test's HOME, never yours.
        ("HOME".into(), repo.home().display().to_string()),
        ("IS_SANDBOX".into(), "1".into()),
    ]
}

pub(crate) fn run_with(
    repo: &TestRepo,
    args: &[&str],
    extra: &[(&str, &str)],
) -> std::process::Output {
    let mut env = standin_env(repo);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    repo.run_env(args, &pairs)
}

#[test]
fn each_preset_runs_its_cli_and_the_work_is_committed_on_the_story_branch() {
    // Preset, agent settings, the command line it must run, cost, input tokens, final message.
    type Case<'a> = (
        &'a str,
        Value,
        &'a [&'a str],
        Option<f64>,
        Option<u64>,
        &'a str,
    );
    let cases: [Case; 5] = [
        (
            "claude",
            serde_json::json!({}),
            &[
                "-p",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "bypassPermissions",
            ],
            Some(0.0123),
            Some(1500),
            "Added notes-claude.txt.\nAll tests pass.",
        ),
        (
            "codex",
            serde_json::json!({"model": "gpt-6"}),
            &[
                "exec",
                "--json",
                "--sandbox",
                "workspace-write",
                "--skip-git-repo-check",
                "-m",
                "gpt-6",
            ],
            None,
            Some(2468),
            "Created notes-codex.txt.",
        ),
        (
            "gemini",
            serde_json::json!({"args": ["--approval-mode", "yolo"]}),
            &[
                "--output-format",
                "stream-json",
                "--yolo",
                "--skip-trust",
                "--approval-mode",
                "yolo",
            ],
            None,
            Some(4936),
            "Created notes-gemini.txt.",
        ),
        (
            "aider",
            serde_json::json!({"model": "sonnet"}),
            &[
                "--message-file",
                "/dev/stdin",
                "--yes-always",
                "--no-pretty",
                "--no-stream",
                "--no-fancy-input",
                "--no-check-update",
                "--no-show-release-notes",
                "--no-analytics",
                "--no-auto-commits",
                "--chat-history-file",
                "/dev/null",
                "--input-history-file",
                "/dev/null",
                "--model",
                "sonnet",
            ],
            Some(0.02),
            Some(2300),
            "I created notes-aider.txt with the work.",
        ),
        (
            "opencode",
            serde_json::json!({}),
            &[
                "run",
                "--format",
                "json",
                "--auto",
                "--print-logs",
                "--log-level",
                "ERROR",
            ],
            Some(0.003),
            Some(1244),
            "Created notes-opencode.txt.",
        ),
    ];
    for (preset, agent, argv, cost, input, message) in cases {
        let repo = preset_repo(preset, agent, "Do it well.");
        let out = run_with(
            &repo,
            &["run", "--json"],
            &[("STANDIN_CODEX_LOGGED_IN", "1")],
        );
        expect_code(&out, 0);
        assert_eq!(repo.status("S-0001"), "done", "{preset}");
        // The exact command line.
        let got = repo.rec_file("S-0001.argv").unwrap();
        let mut want: Vec<&str> = argv.to_vec();
        if preset == "codex" && landlock_here() {
            // Inside our sandbox, Codex's own cannot start: it is left out.
            want.splice(2..4, ["--dangerously-bypass-approvals-and-sandbox"]);
        }
        assert_eq!(got.lines().collect::<Vec<_>>(), want, "{preset}");
        // The prompt: the body and the worktree, never the frontmatter.
        let stdin = repo.rec_file("S-0001.stdin").unwrap();
        let wt = repo.worktree("S-0001-add-notes");
        assert!(
            stdin.contains("Write the notes file.") && stdin.contains("- notes exist"),
            "{stdin}"
        );
        assert!(stdin.contains(wt.to_str().unwrap()), "{stdin}");
        assert!(
            !stdin.contains("status: ready") && !stdin.contains("priority: 1"),
            "{stdin}"
        );
        // The work is committed on the story branch; the clean worktree is gone.
        let branch = "ai-sdlc/S-0001-add-notes";
        let msg = git(&repo.root, &["log", "-1", "--format=%B", branch]);
        assert!(
            msg.starts_with("S-0001: Add notes\n") && msg.contains("Story: S-0001"),
            "{msg}"
        );
        let files = git(&repo.root, &["show", "--name-only", "--format=", branch]);
        let want_files = match preset {
            // Its habit: `.aider*` in .gitignore (its cache stays out).
            "aider" => ".gitignore\nnotes-aider.txt".to_string(),
            _ => format!("notes-{preset}.txt"),
        };
        assert_eq!(files.trim(), want_files, "{preset}");
        // A CLI's own cache (aider's tags cache) keeps no worktree.
        assert!(
            !wt.exists(),
            "{preset}: the worktree was kept:\n{}",
            stderr(&out)
        );
        // Cost, tokens and the final message, in --json and last_run.
        let j = json(&out);
        let r = &j["results"][0];
        assert_eq!(r["final_message"].as_str(), Some(message), "{preset}");
        assert_eq!(r["cost_usd"].as_f64(), cost, "{preset}");
        assert_eq!(r["input_tokens"].as_u64(), input, "{preset}");
        assert_eq!(j["cost_usd"].as_f64(), cost, "{preset}");
        let last_run = repo.field("S-0001", "last_run").unwrap();
        match cost {
            Some(c) => assert!(last_run.contains(&format!("cost_usd: {c}")), "{last_run}"),
            None => assert!(!last_run.contains("cost_usd"), "{last_run}"),
        }
        assert!(
            last_run.contains(&format!("input_tokens: {}", input.unwrap())),
            "{last_run}"
        );
    }
}

#[test]
fn people_see_the_agents_steps_never_its_raw_json() {
    let repo = preset_repo("claude", serde_json::json!({}), "");
    let out = run_with(&repo, &["run"], &[]);
    let err = stderr(&out);
    expect_code(&out, 0);
    assert!(
        err.contains("Write notes-claude.txt") && err.contains("Bash cargo test"),
        "{err}"
    );
    assert!(!err.contains("{\"type\""), "{err}");
    // The log keeps the raw stream, and the final message.
    let log = repo.logs("S-0001").concat();
    assert!(
        log.contains("{\"type\":\"result\"")
            && log.contains("[runner] final message | All tests pass.")
            && log.contains("[runner] usage: $0.01, 1500 tokens in, 250 out"),
        "{log}"
    );
    assert!(err.contains("\u{2192} Added notes-claude.txt."), "{err}");
}

#[test]
fn a_hung_agent_is_stopped_after_the_idle_timeout() {
    // Silent, and (codex without a network) chatty without progress.
    for preset in ["claude", "codex"] {
        let repo = preset_repo(
            preset,
            serde_json::json!({"idleTimeout": 1000}),
            "stand-in: hang",
        );
        let out = run_with(
            &repo,
            &["run", "--shutdown-timeout", "1"],
            &[("STANDIN_CODEX_LOGGED_IN", "1")],
        );
        expect_code(&out, 1);
        assert_eq!(repo.status("S-0001"), "blocked");
        let reason = repo.blocked_reason("S-0001");
        assert!(
            reason.contains("printed nothing for 1.0s"),
            "{preset}: {reason}"
        );
        // What it last said is kept, as people saw it, never raw JSON.
        let said = match preset {
            "claude" => "(its last words: Thinking about it...)",
            _ => "(its last words: Reconnecting... waiting for network",
        };
        assert!(reason.contains(said), "{preset}: {reason}");
        assert!(!reason.contains("{\""), "{preset}: {reason}");
    }
}

#[test]
fn a_login_that_fails_is_stopped_at_the_clis_first_retry_and_the_retries_are_shown() {
    let repo = preset_repo("claude", serde_json::json!({}), "stand-in: auth-retries");
    let out = run_with(&repo, &["run"], &[]);
    let err = stderr(&out);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    let reason = repo.blocked_reason("S-0001");
    assert!(
        reason.contains("401 authentication_failed") && reason.contains("authentication failed"),
        "{reason}"
    );
    let retries: u32 = repo
        .rec_file("S-0001.retries")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(retries < 4, "it was left to retry {retries} times");
    assert!(
        err.contains("retry 1/10: 401 authentication_failed"),
        "{err}"
    );
    assert!(
        repo.logs("S-0001")
            .concat()
            .contains("retry 1/10: 401 authentication_failed"),
        "the log does not show the retry"
    );
}

#[test]
fn a_rate_limit_is_retried_and_then_the_story_succeeds() {
    let repo = preset_repo(
        "claude",
        serde_json::json!({"retries": 2, "retryDelay": 100}),
        "stand-in: rate-limit-once",
    );
    let out = run_with(&repo, &["run"], &[]);
    let err = stderr(&out);
    expect_code(&out, 0);
    assert_eq!(repo.status("S-0001"), "done");
    assert_eq!(repo.rec_file("S-0001.attempts").unwrap().trim(), "2");
    assert!(
        err.contains("rate limited") && err.contains("retry 1 of 2"),
        "{err}"
    );
    assert!(repo.logs("S-0001").concat().contains("retry 1 of 2"));

    // Without retries, the same failure blocks the story, in the CLI's words.
    let repo = preset_repo("claude", serde_json::json!({}), "stand-in: rate-limit");
    let out = run_with(&repo, &["run"], &[]);
    expect_code(&out, 1);
    let reason = repo.blocked_reason("S-0001");
    assert!(
        reason.contains("exceed the rate limit") && reason.contains("rate limited"),
        "{reason}"
    );
}

#[test]
fn an_auth_failure_blocks_with_the_clis_own_words_and_starts_nothing_more() {
    let cases = [
        (
            "claude",
            serde_json::json!({}),
            "Not logged in · Please run /login",
        ),
        (
            "codex",
            serde_json::json!({}),
            "Not logged in (`codex login status` says so",
        ),
        ("gemini", serde_json::json!({}), "Please set an Auth method"),
        (
            "aider",
            serde_json::json!({"model": "gpt-4o"}),
            // Whole: aider runs unwrapped (COLUMNS), not cut at 80 columns.
            "litellm.AuthenticationError: AuthenticationError: OpenAIException - The api_key client option must be set either by passing api_key to the client or by setting the OPENAI_API_KEY environment variable",
        ),
        (
            "opencode",
            serde_json::json!({}),
            "Missing bearer or basic authentication in header (HTTP 401)",
        ),
    ];
    for (preset, agent, words) in cases {
        let repo = preset_repo(preset, agent, "stand-in: auth");
        for i in 2..=4 {
            repo.story(
                &format!("S-000{i}"),
                &format!("Other {i}"),
                10 + i,
                "ready",
                "",
            );
        }
        let out = run_with(&repo, &["run", "--concurrent", "2"], &[]);
        let err = stderr(&out);
        expect_code(&out, 1);
        assert_eq!(repo.status("S-0001"), "blocked", "{preset}: {err}");
        let reason = repo.blocked_reason("S-0001");
        assert!(reason.contains(words), "{preset}: {reason}");
        assert!(
            reason.contains("authentication failed"),
            "{preset}: {reason}"
        );
        // An agent that cannot log in would fail every story: the queued ones never start.
        assert_eq!(repo.status("S-0004"), "ready", "{preset}");
        assert!(!repo.started("S-0004"));
        assert!(
            err.contains("which would fail every story"),
            "{preset}: {err}"
        );
    }
}

#[test]
fn claude_as_root_needs_is_sandbox_and_aider_needs_a_model() {
    let repo = preset_repo("claude", serde_json::json!({}), "");
    let before = repo.read_story("S-0001");
    if unsafe { libc::geteuid() } == 0 {
        let out = run_with(&repo, &["run"], &[("IS_SANDBOX", "")]);
        expect_code(&out, 2);
        assert!(stderr(&out).contains("IS_SANDBOX=1"), "{}", stderr(&out));
        assert_eq!(repo.read_story("S-0001"), before);
    }
    let repo = preset_repo("aider", serde_json::json!({}), "");
    let out = run_with(&repo, &["run"], &[]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("agent.model"), "{}", stderr(&out));
}

#[test]
fn a_commit_that_fails_blocks_the_story_and_keeps_the_work() {
    let repo = preset_repo("claude", serde_json::json!({}), "");
    git(&repo.root, &["config", "--unset", "user.name"]);
    git(&repo.root, &["config", "--unset", "user.email"]);
    let home = TempDir::new("home");
    let out = run_with(
        &repo,
        &["run"],
        &[
            ("HOME", home.0.to_str().unwrap()),
            ("GIT_CONFIG_GLOBAL", "/dev/null"),
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("EMAIL", ""),
            ("GIT_AUTHOR_EMAIL", ""),
        ],
    );
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    let reason = repo.blocked_reason("S-0001");
    assert!(reason.contains("cannot commit"), "{reason}");
    let kept = repo.worktree("S-0001-add-notes").join("notes-claude.txt");
    assert!(kept.exists(), "the agent's work is gone");
}

#[test]
fn git_ignored_files_the_agent_wrote_keep_the_worktree_and_stay_uncommitted() {
    let repo = preset_repo("claude", serde_json::json!({}), "stand-in: ignored");
    std::fs::write(
        repo.root.join(".gitignore"),
        ".ai-sdlc/worktrees/\n.ai-sdlc/stories/*/logs/\nout/\n",
    )
    .unwrap();
    git(&repo.root, &["commit", "-qam", "ignore out/"]);
    let out = run_with(&repo, &["run"], &[]);
    let err = stderr(&out);
    expect_code(&out, 0);
    let files = git(
        &repo.root,
        &[
            "show",
            "--name-only",
            "--format=",
            "ai-sdlc/S-0001-add-notes",
        ],
    );
    assert_eq!(files.trim(), "notes-claude.txt");
    let cache = repo.worktree("S-0001-add-notes").join("out/cache.txt");
    assert!(
        cache.exists(),
        "an ignored file the agent wrote was deleted"
    );
    assert!(err.contains("git-ignored"), "{err}");
}

#[test]
fn the_agent_has_no_terminal_to_ask_questions_on() {
    let repo = preset_repo("claude", serde_json::json!({}), "stand-in: tty");
    // `script` gives the runner a real controlling terminal.
    let env: Vec<String> = standin_env(&repo)
        .into_iter()
        .map(|(k, v)| format!("{k}={}", shell_quote(&v)))
        .collect();
    let cmd = format!(
        "env {} {BIN} -C {} run",
        env.join(" "),
        shell_quote(repo.root.to_str().unwrap())
    );
    let st = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script(1) from util-linux runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    assert_eq!(
        repo.rec_file("S-0001.tty").unwrap().trim(),
        "S-0001 has no terminal"
    );
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[test]
fn prompt_prints_what_the_agent_gets_and_templates_can_be_overridden() {
    let repo = preset_repo("claude", serde_json::json!({}), "");
    let out = repo.run(&["prompt", "S-0001"]);
    expect_code(&out, 0);
    let p = stdout(&out);
    assert!(
        p.contains("Write the notes file.") && !p.contains("status: ready"),
        "{p}"
    );
    assert!(p.contains("ai-sdlc/S-0001-add-notes"), "{p}");
    let prompts = repo.root.join(".ai-sdlc/prompts");
    std::fs::create_dir_all(&prompts).unwrap();
    std::fs::write(
        prompts.join("implement.md"),
        "Story {id} ({title}) on {branch}:\n{acceptance_criteria}\n{unknown} stays",
    )
    .unwrap();
    let out = repo.run(&["prompt", "S-0001"]);
    assert_eq!(
        stdout(&out),
        "Story S-0001 (Add notes) on ai-sdlc/S-0001-add-notes:\n- notes exist\n{unknown} stays\n"
    );
    // A template that is a symlink out of the repo is refused, never read.
    std::fs::remove_file(prompts.join("implement.md")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", prompts.join("implement.md")).unwrap();
    let out = repo.run(&["prompt", "S-0001"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("implement.md") && !stdout(&out).contains("root:"),
        "{}",
        stderr(&out)
    );
    let out = run_with(&repo, &["run"], &[]);
    expect_code(&out, 1);
    assert!(repo.blocked_reason("S-0001").contains("implement.md"));
    assert!(!repo.started("S-0001"));
}

#[test]
fn init_writes_a_preset_and_doctor_says_what_to_fix() {
    let dir = TempDir::new("init");
    git(&dir.0, &["init", "-q"]);
    let run = |args: &[&str], path: &str| {
        dir.bin()
            .arg("-C")
            .arg(&dir.0)
            .args(args)
            .env("PATH", path)
            .env("HOME", dir.0.to_str().unwrap())
            .env_remove("CODEX_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap()
    };
    let path = format!("{STANDINS}:/usr/bin:/bin");
    let out = run(&["init", "--agent", "codex"], &path);
    expect_code(&out, 0);
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.0.join(".ai-sdlc.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["agent"]["preset"], "codex");
    let out = run(&["doctor"], &path);
    let text = stdout(&out);
    expect_code(&out, 1);
    assert!(text.contains("FAIL  codex: Not logged in"), "{text}");
    assert!(text.contains("codex login"), "{text}");
    assert!(
        text.contains("no commit") || text.contains("not possible"),
        "{text}"
    );
    // Without --agent: the first agent CLI on PATH.
    let other = TempDir::new("init2");
    let out = other
        .bin()
        .arg("-C")
        .arg(&other.0)
        .arg("init")
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("agent.preset: claude (found claude on PATH)"),
        "{}",
        stdout(&out)
    );
    let out = run(&["init", "--agent", "nope"], &path);
    expect_code(&out, 2);
}

/// Real agent CLIs, where installed (they are never part of the repo):
/// AI_SDLC_REAL_AGENTS names extra PATH folders to look in, as does
/// AI_SDLC_REAL_CLIS (the real-CLI tier's, `scripts/real-clis`). Each preset's
/// command line must be accepted (the CLI fails on authentication, never
/// on a flag), within 30 s, and the story blocked with the CLI's words.
#[test]
fn real_clis_accept_the_preset_command_lines_and_fail_only_on_login() {
    let extra = ["AI_SDLC_REAL_AGENTS", "AI_SDLC_REAL_CLIS"]
        .map(|v| std::env::var(v).unwrap_or_default())
        .join(":");
    let path = format!("{extra}:{}", std::env::var("PATH").unwrap());
    let on_path = |p: &str| std::env::split_paths(&path).any(|d| d.join(p).is_file());
    for (preset, agent, words) in [
        ("claude", serde_json::json!({}), "Not logged in"),
        ("codex", serde_json::json!({}), "Not logged in"),
        ("gemini", serde_json::json!({}), "Auth method"),
        ("aider", serde_json::json!({"model": "sonnet"}), "API Key"),
        (
            "opencode",
            serde_json::json!({"model": "anthropic/claude-sonnet-4-5"}),
            "",
        ),
    ] {
        if !on_path(preset) {
            eprintln!("skipped: {preset} is not installed");
            continue;
        }
        let repo = preset_repo(preset, agent, "Say hi.");
        repo.edit_config(|cfg| {
            cfg["agent"]["idleTimeout"] = Value::from(20_000);
        });
        let home = TempDir::new("home");
        let t0 = std::time::Instant::now();
        let out = repo.run_env(
            &["run", "--timeout", "60", "--shutdown-timeout", "2"],
            &[
                ("PATH", &path),
                ("HOME", home.0.to_str().unwrap()),
                ("IS_SANDBOX", "1"),
            ],
        );
        let took = t0.elapsed();
        expect_code(&out, 1);
        let reason = repo.blocked_reason("S-0001");
        eprintln!("{preset}: blocked in {took:?}: {reason}");
        for flag_error in [
            "unknown option",
            "Unknown argument",
            "unrecognized arguments",
            "unexpected argument",
            "invalid value",
        ] {
            assert!(
                !reason.contains(flag_error) && !stderr(&out).contains(flag_error),
                "{preset}: {reason}"
            );
        }
        assert!(reason.contains(words), "{preset}: {reason}");
        assert!(took.as_secs() < 40, "{preset} took {took:?}");
    }
}

#[test]
fn a_later_phase_gets_what_the_earlier_ones_said() {
    let repo = preset_repo("claude", serde_json::json!({}), "");
    repo.edit_config(|cfg| {
        cfg["workflow"] = serde_json::json!({"phases": [{"name": "plan"}, {"name": "implement"}]});
    });
    let out = run_with(&repo, &["run", "--json"], &[]);
    expect_code(&out, 0);
    // The stand-in records the last prompt it got: the implement phase's.
    let stdin = repo.rec_file("S-0001.stdin").unwrap();
    assert!(
        stdin.contains("### Implementation plan\n\nAdded notes-claude.txt.\nAll tests pass."),
        "{stdin}"
    );
    // Both phases' costs add up; each is listed with its phase.
    let result = &json(&out)["results"][0];
    assert_eq!(result["cost_usd"].as_f64(), Some(0.0246));
    assert_eq!(result["phases"][0]["phase"], "plan");
    assert_eq!(result["phases"][0]["cost_usd"].as_f64(), Some(0.0123));
    assert!(
        repo.field("S-0001", "last_run")
            .unwrap()
            .contains("{phase: plan, round: 1, outcome: succeeded"),
        "{}",
        repo.read_story("S-0001")
    );
}

#[test]
fn an_implement_phase_that_changes_nothing_blocks_the_story_unless_that_is_allowed() {
    let repo = TestRepo::new();
    let agent = repo.agent("quiet", "echo 'Looked around; it is fine as it is.'");
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "workflow": {"allowEmpty": false}
    }));
    repo.story("S-0001", "Nothing to do", 1, "ready", "");
    repo.story(
        "S-0002",
        "Nothing, and that is fine",
        2,
        "ready",
        "allow_empty: true\n",
    );
    let out = repo.run(&["run", "--max", "2"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    let reason = repo.blocked_reason("S-0001");
    assert!(
        reason.contains("the agent made no change") && reason.contains("allow_empty: true"),
        "{reason}"
    );
    assert_eq!(repo.status("S-0002"), "done", "{}", stderr(&out));
    // Its implement phase is not counted as done: run again, the agent runs
    // again (it is not skipped into an empty `done`).
    assert_eq!(
        repo.field("S-0001", "implementation_complete").as_deref(),
        Some("false"),
        "{}",
        repo.read_story("S-0001")
    );
    let busy = repo.agent("busy", "echo work > work.txt");
    repo.config(serde_json::json!({
        "agent": {"command": [busy.to_string_lossy()]},
        "workflow": {"allowEmpty": false}
    }));
    expect_code(&repo.run(&["run", "--story", "S-0001"]), 0);
    assert_eq!(repo.status("S-0001"), "done");
    assert!(repo.rec_file("S-0001.stdin").is_some());

    // workflow.allowEmpty allows it for every story.
    let repo = TestRepo::new();
    let agent = repo.agent("quiet", "true");
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "workflow": {"allowEmpty": true}
    }));
    repo.story("S-0001", "Nothing to do", 1, "ready", "");
    expect_code(&repo.run(&["run"]), 0);
    assert_eq!(repo.status("S-0001"), "done");
}

#[test]
fn the_small_ones_a_new_user_meets() {
    // `prompt --workflow sdlc --phase review`, as `run --workflow sdlc` would.
    let repo = preset_repo("claude", serde_json::json!({}), "");
    let out = repo.run(&["prompt", "S-0001", "--phase", "review"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("the workflow's phases are implement"),
        "{}",
        stderr(&out)
    );
    let out = repo.run(&[
        "prompt",
        "S-0001",
        "--workflow",
        "sdlc",
        "--phase",
        "review",
    ]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("S-0001"), "{}", stdout(&out));

    // `init` says what to commit, so story branches have its .gitignore.
    let repo = TestRepo::new();
    let out = repo.run(&["init", "--agent", "claude"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("git add .gitignore .ai-sdlc.json .ai-sdlc && git commit"),
        "{}",
        stdout(&out)
    );
}
