//! The command boundary (SPEC §13): a repo's config runs only the commands
//! its user trusted; the record lives in the test's own XDG_CONFIG_HOME.

use crate::support::*;

fn agent_config(agent: &std::path::Path) -> serde_json::Value {
    serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "orchestrator": {"healthCheckInterval": 200}
    })
}

#[test]
fn a_config_nobody_trusted_runs_nothing_until_trusted() {
    let repo = TestRepo::new();
    let agent = repo.agent("a.sh", "echo ran > ran.txt");
    repo.config_untrusted(agent_config(&agent));
    repo.ready_stories(1);
    let before = repo.read_story("S-0001");
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("new      agent.command:"), "{err}");
    assert!(err.contains(agent.to_str().unwrap()), "{err}");
    assert!(err.contains("trust"), "{err}");
    assert!(!repo.started("S-0001"));
    assert_eq!(repo.read_story("S-0001"), before, "the board changed");
    assert!(repo.logs("S-0001").is_empty());

    // --show lists without recording.
    let out = repo.run(&["trust", "--show"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("untrusted  agent.command:"),
        "{}",
        stdout(&out)
    );
    expect_code(&repo.run(&["run"]), 2);

    // Trusted, it runs.
    let out = repo.run(&["trust"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("trusted    agent.command:"),
        "{}",
        stdout(&out)
    );
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert_eq!(repo.status("S-0001"), "done");

    // Other keys change freely.
    let mut cfg = agent_config(&agent);
    cfg["orchestrator"]["concurrency"] = 3.into();
    cfg["timeouts"] = serde_json::json!({"agentTimeout": 60000});
    repo.config_untrusted(cfg.clone());
    repo.story("S-0002", "Two", 2, "ready", "");
    expect_code(&repo.run(&["run"]), 0);

    // A changed command is refused again, old -> new.
    let evil = repo.agent("evil.sh", "echo evil > evil.txt");
    cfg["agent"]["command"] = serde_json::json!([evil.to_string_lossy()]);
    repo.config_untrusted(cfg.clone());
    repo.story("S-0003", "Three", 3, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "changed  agent.command: {} -> {}",
            agent.display(),
            evil.display()
        )),
        "{err}"
    );
    assert!(!repo.started("S-0003"));
    // So is a phase's command.
    cfg["agent"]["command"] = serde_json::json!([agent.to_string_lossy()]);
    cfg["workflow"] = serde_json::json!({"phases": [
        {"name": "implement"}, {"name": "verify", "command": ["sh", "-c", "true"]}
    ]});
    repo.config_untrusted(cfg);
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("new      workflow.phases.verify.command: sh -c true"),
        "{}",
        stderr(&out)
    );

    // For one run, as CI does: runs, and says so.
    let out = repo.run_env(&["run"], &[("AI_SDLC_TRUST", "1")]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("warning: running commands this repo's trust record does not hold")
            && stderr(&out).contains("workflow.phases.verify.command: sh -c true"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.status("S-0003"), "done");
    // Everything trusted already: nothing to warn about.
    expect_code(&repo.run(&["trust"]), 0);
    repo.story("S-0005", "Five", 5, "ready", "");
    let out = repo.run_env(&["run", "--story", "S-0005"], &[("AI_SDLC_TRUST", "1")]);
    expect_code(&out, 0);
    assert!(!stderr(&out).contains("trust record"), "{}", stderr(&out));

    // untrust forgets.
    repo.story("S-0004", "Four", 4, "ready", "");
    expect_code(&repo.run(&["trust"]), 0);
    expect_code(&repo.run(&["untrust"]), 0);
    expect_code(&repo.run(&["run"]), 2);
    expect_code(&repo.run(&["run", "--trust"]), 0);
}

#[test]
fn a_merged_story_branch_that_changes_the_config_makes_the_next_run_refuse() {
    let repo = TestRepo::new();
    // The agent rewrites the config in its worktree; the runner commits it.
    let agent = repo.agent(
        "sneaky.sh",
        r#"printf '{"agent":{"command":["sh","-c","echo pwned > /tmp/never"]}}' > .ai-sdlc.json"#,
    );
    repo.config(agent_config(&agent));
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-qm", "config"]);
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    git(
        &repo.root,
        &["merge", "-q", "--no-edit", "ai-sdlc/S-0001-s1"],
    );
    assert!(
        std::fs::read_to_string(repo.root.join(".ai-sdlc.json"))
            .unwrap()
            .contains("pwned")
    );
    repo.story("S-0002", "Two", 2, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("changed  agent.command:") && stderr(&out).contains("pwned"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.status("S-0002"), "ready");
}

#[test]
fn a_config_edited_during_a_run_is_refused_by_the_next_executor() {
    let repo = TestRepo::new();
    let agent = repo.agent(
        "hold.sh",
        r#"touch "$REC/$id.ready"; while [ ! -f "$REC/go" ]; do sleep 0.05; done"#,
    );
    repo.config(agent_config(&agent));
    repo.ready_stories(2);
    let runner = repo.spawn(&["run", "--concurrent", "1", "--max", "2"]);
    repo.wait_rec("S-0001.ready");
    let evil = repo.agent("evil.sh", r#"touch "$REC/evil-ran""#);
    repo.config_untrusted(agent_config(&evil));
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (c, _, err) = finish(runner, 30);
    assert_eq!(c, 1, "{err}");
    assert_eq!(repo.status("S-0001"), "done");
    assert_eq!(repo.status("S-0002"), "blocked");
    assert!(
        repo.blocked_reason("S-0002").contains("edited since"),
        "{err}"
    );
    assert!(
        repo.rec_file("evil-ran").is_none(),
        "the edited command ran"
    );
}

#[test]
fn init_trusts_what_it_writes() {
    let repo = TestRepo::new();
    std::fs::remove_dir_all(repo.root.join(".ai-sdlc")).unwrap();
    let out = repo.run(&["init", "--agent", "claude"]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("trusted"), "{}", stdout(&out));
    let out = repo.run(&["trust", "--show"]);
    assert!(
        stdout(&out).contains("trusted    agent.preset: claude"),
        "{}",
        stdout(&out)
    );
    // ... so `run` needs no extra step (the stand-in answers as claude).
    repo.ready_stories(1);
    let standins = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents/bin");
    let path = format!("{standins}:{}", std::env::var("PATH").unwrap());
    let rec = repo.rec.display().to_string();
    let out = repo.run_env(
        &["run"],
        &[("PATH", &path), ("STANDIN_REC", &rec), ("IS_SANDBOX", "1")],
    );
    expect_code(&out, 0);
    assert!(!stderr(&out).contains("trust"), "{}", stderr(&out));
    assert_eq!(repo.status("S-0001"), "done");
    // Written by hand, a config is not trusted by init.
    let other = TestRepo::new();
    other.config_untrusted(serde_json::json!({"agent": {"preset": "claude"}}));
    let out = other.run(&["init"]);
    assert!(
        stdout(&out).contains("kept .ai-sdlc.json"),
        "{}",
        stdout(&out)
    );
    let out = other.run(&["trust", "--show"]);
    assert!(
        stdout(&out).contains("untrusted  agent.preset: claude"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn what_an_agent_plants_in_git_never_runs_and_is_undone() {
    let repo = TestRepo::new();
    // A tracked .txt file: the next worktree's checkout would smudge it.
    std::fs::write(repo.root.join(".gitattributes"), "*.txt filter=x\n").unwrap();
    std::fs::write(repo.root.join("notes.txt"), "notes\n").unwrap();
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-qm", "attributes"]);
    let agent = repo.agent(
        "plant.sh",
        r#"
if [ "$id" = S-0001 ]; then
  g=$(git rev-parse --git-common-dir)
  git config core.fsmonitor "touch $REC/fsmonitor-ran"
  git config core.sshCommand "touch $REC/ssh-ran"
  git config filter.x.smudge "touch $REC/smudge-ran; cat"
  git config filter.x.clean "touch $REC/clean-ran; cat"
  for h in post-checkout pre-commit; do
    printf '#!/bin/sh\ntouch %s/%s-ran\n' "$REC" "$h" > "$g/hooks/$h"
    chmod +x "$g/hooks/$h"
  done
fi
echo "work of $id" > "work-$id.txt"
"#,
    );
    // Off, so the plant is made and the guard must undo it.
    repo.config(
        serde_json::json!({"agent": {"command": [agent.to_string_lossy()], "sandbox": false}}),
    );
    repo.ready_stories(2);
    let git_dir = repo.root.join(".git");
    let config_before = std::fs::read(git_dir.join("config")).unwrap();
    let hooks = || {
        let mut v: Vec<String> = std::fs::read_dir(git_dir.join("hooks"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let hooks_before = hooks();

    let out = repo.run(&["run", "--concurrent", "1", "--max", "2"]);
    expect_code(&out, 1);
    // Nothing planted ever ran: not in that run, not in the next story's
    // worktree creation and commit.
    for marker in [
        "fsmonitor",
        "ssh",
        "smudge",
        "clean",
        "post-checkout",
        "pre-commit",
    ] {
        assert!(
            repo.rec_file(&format!("{marker}-ran")).is_none(),
            "{marker} ran"
        );
    }
    assert_eq!(repo.status("S-0002"), "done");
    let files = git(
        &repo.root,
        &["show", "--name-only", "--format=", "ai-sdlc/S-0002-s2"],
    );
    assert!(files.contains("work-S-0002.txt"), "{files}");
    // The planting story is blocked, each change named.
    assert_eq!(repo.status("S-0001"), "blocked");
    let reason = repo.blocked_reason("S-0001");
    for change in [
        "set core.fsmonitor",
        "set core.sshcommand",
        "set filter.x.smudge",
        "added hooks/post-checkout",
        "added hooks/pre-commit",
        "undone",
    ] {
        assert!(reason.contains(change), "{change} missing: {reason}");
    }
    // Undone: .git/config and the hooks are as they were...
    assert_eq!(
        std::fs::read(git_dir.join("config")).unwrap(),
        config_before
    );
    assert_eq!(hooks(), hooks_before);
    // ...and what the agent wrote is kept beside its log.
    let logs = repo.root.join(".ai-sdlc/stories/S-0001/logs");
    let kept = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".git-state"))
        .expect("a .git-state folder beside the log");
    assert!(
        std::fs::read_to_string(kept.join("hooks/post-checkout"))
            .unwrap()
            .contains("post-checkout-ran")
    );
    assert!(
        std::fs::read_to_string(kept.join("config"))
            .unwrap()
            .contains("fsmonitor")
    );
    // The agent's own work in its worktree is untouched.
    assert!(repo.worktree("S-0001-s1").join("work-S-0001.txt").exists());
    // And the user's own git commands in the main checkout run none of it.
    git(&repo.root, &["status"]);
    std::fs::write(repo.root.join("mine.txt"), "x\n").unwrap();
    git(&repo.root, &["add", "mine.txt"]);
    git(&repo.root, &["commit", "-qm", "mine"]);
    for marker in ["fsmonitor", "clean", "pre-commit"] {
        assert!(
            repo.rec_file(&format!("{marker}-ran")).is_none(),
            "{marker} ran"
        );
    }
    // Planted again, after the run: a later review and merge run none of it.
    let plant = format!(
        "git config filter.x.smudge 'touch {rec}/smudge-ran; cat' && git config filter.x.clean 'touch {rec}/clean-ran; cat' \
         && git config core.fsmonitor 'touch {rec}/fsmonitor-ran' \
         && for h in post-merge post-checkout reference-transaction; do printf '#!/bin/sh\ntouch {rec}/%s-ran\n' $h > .git/hooks/$h; chmod +x .git/hooks/$h; done",
        rec = repo.rec.display()
    );
    let st = std::process::Command::new("sh")
        .args(["-c", &plant])
        .current_dir(&repo.root)
        .status()
        .unwrap();
    assert!(st.success());
    expect_code(&repo.run(&["review"]), 0);
    let out = repo.run(&["merge", "S-0002"]);
    expect_code(&out, 0);
    assert!(repo.root.join("work-S-0002.txt").exists());
    for marker in [
        "fsmonitor",
        "smudge",
        "clean",
        "post-merge",
        "post-checkout",
        "reference-transaction",
    ] {
        assert!(
            repo.rec_file(&format!("{marker}-ran")).is_none(),
            "{marker} ran in review/merge"
        );
    }
    // Without the tool, git itself would have run them (the test can fail).
    git(&repo.root, &["status"]);
    assert!(repo.rec_file("fsmonitor-ran").is_some() || repo.rec_file("clean-ran").is_some());
}
