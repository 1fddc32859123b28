//! The first hour (issue "The first hour"): the conventions users bring
//! from cargo, gh and git, and the input the tool must not take silently.

use crate::support::*;

fn bin_out(args: &[&str]) -> std::process::Output {
    let tmp = TempDir::new("fh");
    tmp.bin().args(args).output().unwrap()
}

#[test]
fn help_and_version_come_the_usual_ways() {
    for args in [&[][..], &["-h"], &["--help"], &["help"]] {
        let out = bin_out(args);
        expect_code(&out, 0);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(text.contains("Usage: ai-sdlc"), "{args:?}: {text}");
    }
    for args in [&["-V"][..], &["--version"]] {
        let out = bin_out(args);
        expect_code(&out, 0);
        assert!(stdout(&out).starts_with("ai-sdlc "), "{args:?}");
    }
    let out = bin_out(&["run", "-h"]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("--concurrent"), "{}", stdout(&out));
}

#[test]
fn a_misspelt_command_or_flag_gets_a_did_you_mean_and_the_commands_own_help() {
    let out = bin_out(&["stauts"]);
    expect_code(&out, 2);
    let err = format!("{}{}", stdout(&out), stderr(&out));
    assert!(err.contains("Did you mean `status`?"), "{err}");

    let out = bin_out(&["run", "--concurent", "3"]);
    expect_code(&out, 2);
    let err = format!("{}{}", stdout(&out), stderr(&out));
    assert!(err.contains("Did you mean `--concurrent`?"), "{err}");
    assert!(err.contains("Run ai-sdlc run --help"), "{err}");
}

#[test]
fn a_short_option_takes_its_value_attached() {
    let repo = TestRepo::new();
    repo.with_agent("ok", "echo one; echo two; echo three");
    repo.ready_stories(1);
    expect_code(&repo.run(&["run"]), 0);
    let out = repo.run(&["logs", "S-0001", "-n2"]);
    expect_code(&out, 0);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
}

#[test]
fn a_misspelt_config_key_is_named_with_the_key_it_meant_and_doctor_fails_on_it() {
    let repo = TestRepo::new();
    let agent = repo.agent("ok", "true");
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "concurency": 3,
        "orchestrator": {"healthCheckIntervall": 100},
        // The TS tool's own keys are not typos.
        "theme": "auto",
        "testCommand": "npm test",
        "merge": {"deleteBranchAfterMerge": true}
    }));
    let out = repo.run(&["status"]);
    expect_code(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("`concurency` is not a setting ai-sdlc knows")
            && err.contains("did you mean `orchestrator.concurrency`?"),
        "{err}"
    );
    assert!(
        err.contains("did you mean `orchestrator.healthCheckInterval`?"),
        "{err}"
    );
    assert!(
        !err.contains("theme") && !err.contains("deleteBranchAfterMerge"),
        "{err}"
    );
    let out = repo.run(&["doctor"]);
    expect_code(&out, 1);
    assert!(stdout(&out).contains("FAIL  config: "), "{}", stdout(&out));
}

#[test]
fn a_misspelt_status_or_a_wordy_priority_is_named_with_what_is_allowed() {
    let repo = TestRepo::new();
    repo.with_agent("ok", "true");
    repo.story("S-0001", "Typo", 1, "redy", "");
    let out = repo.run(&["status"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("REDY (1)  (not a status ai-sdlc runs: did you mean `ready`?"),
        "{}",
        stdout(&out)
    );
    let out = repo.run(&["doctor"]);
    assert!(
        stdout(&out).contains("status `redy` is not one ai-sdlc runs; did you mean `ready`?"),
        "{}",
        stdout(&out)
    );
    // The TS tool's own statuses are not typos.
    repo.story("S-0002", "TS stage", 2, "in-review", "");
    assert!(!stdout(&repo.run(&["status"])).contains("IN-REVIEW (1)  (not"));

    let p = repo.story_path("S-0001");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("status: redy", "status: ready")
        .replace("priority: 1", "priority: high");
    std::fs::write(&p, text).unwrap();
    let out = repo.run(&["status"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        all.contains("S-0001/story.md")
            && all.contains("field `priority` must be a whole number (lower runs first), like `priority: 2`, got \"high\""),
        "{all}"
    );
}

#[test]
fn a_story_that_is_not_there_is_named_as_such() {
    let repo = TestRepo::new();
    repo.with_agent("ok", "true");
    let out = repo.run(&["prompt", "S-0099"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("no story S-0099 on the board; `ai-sdlc status` lists them"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn init_with_another_agent_switches_the_boards_agent_and_trusts_only_what_was_trusted() {
    let repo = TestRepo::new();
    std::fs::remove_dir_all(repo.root.join(".ai-sdlc")).unwrap();
    expect_code(&repo.run(&["init", "--agent", "claude"]), 0);
    // The user's other settings stay; the old CLI's model goes, said so.
    let path = repo.root.join(".ai-sdlc.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["agent"]["model"] = "sonnet".into();
    v["orchestrator"]["concurrency"] = 3.into();
    std::fs::write(&path, v.to_string()).unwrap();
    expect_code(&repo.run(&["trust"]), 0);
    let out = repo.run(&["init", "--agent", "codex"]);
    expect_code(&out, 0);
    let said = stdout(&out);
    assert!(said.contains("agent.preset claude -> codex"), "{said}");
    assert!(said.contains("dropped agent.model \"sonnet\""), "{said}");
    assert!(said.contains("trusted the new agent"), "{said}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["agent"]["preset"], "codex");
    assert!(v["agent"].get("model").is_none());
    assert_eq!(v["orchestrator"]["concurrency"], 3);
    let shown = stdout(&repo.run(&["trust", "--show"]));
    assert!(shown.contains("trusted    agent.preset: codex"), "{shown}");
    // Again: nothing to do.
    let out = repo.run(&["init", "--agent", "codex"]);
    assert!(
        stdout(&out).contains("agent.preset is codex already"),
        "{}",
        stdout(&out)
    );

    // A config with a command nobody trusted: switched, not trusted.
    let other = TestRepo::new();
    other.config_untrusted(serde_json::json!({
        "agent": {"preset": "claude"},
        "workflow": {"phases": [{"name": "implement"}, {"name": "check", "command": ["make", "check"]}]}
    }));
    let out = other.run(&["init", "--agent", "gemini"]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("not trusted"), "{}", stdout(&out));
    let shown = stdout(&other.run(&["trust", "--show"]));
    assert!(shown.contains("untrusted  agent.preset: gemini"), "{shown}");
    // Your own agent command is yours: init will not replace it.
    let own = TestRepo::new();
    own.config_untrusted(serde_json::json!({"agent": {"command": ["my-agent"]}}));
    let out = own.run(&["init", "--agent", "codex"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("agent.command"), "{}", stderr(&out));
}

#[test]
fn add_takes_the_description_and_run_warns_of_a_story_that_has_none() {
    let repo = TestRepo::new();
    let agent = repo.agent("ok", "echo w > w.txt");
    repo.use_agent(&agent);
    let out = repo.run(&[
        "add",
        "Greet",
        "--ready",
        "--body",
        "Print hello.\n\nCheck: `make test`.",
    ]);
    expect_code(&out, 0);
    let id = stdout(&out).trim().to_string();
    // A new file: `git commit -am` would not take it, so add says how.
    assert!(
        stderr(&out).contains(&format!("git add .ai-sdlc/stories/{id} && git commit")),
        "{}",
        stderr(&out)
    );
    let prompt = stdout(&repo.run(&["prompt", &id]));
    assert!(
        prompt.contains("Print hello.") && prompt.contains("make test"),
        "{prompt}"
    );
    // From standard input.
    let mut child = repo
        .cmd(&["add", "Piped", "--body-file", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"From a pipe.\n").unwrap();
    let out = child.wait_with_output().unwrap();
    expect_code(&out, 0);
    let piped = stdout(&out).trim().to_string();
    assert!(repo.read_story(&piped).contains("From a pipe."));
    // In the user's editor, run as git runs it (through the shell).
    // (Its $1 is the `--wait` it was given, as `code --wait` takes one.)
    let editor = repo.agent("ed", "printf 'Written in the editor.\\n' >> \"$2\"");
    let ed = format!("{} --wait", editor.display());
    let out = repo.run_env(&["add", "Edited", "--edit"], &[("EDITOR", &ed)]);
    expect_code(&out, 0);
    let edited = stdout(&out).trim().to_string();
    assert!(repo.read_story(&edited).contains("Written in the editor."));
    assert!(!stderr(&out).contains("says nothing"), "{}", stderr(&out));
    let out = repo.run_env(&["add", "Untouched", "--edit"], &[("EDITOR", "true")]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("still says nothing but its title"),
        "{}",
        stderr(&out)
    );
    let out = repo.run(&["add", "Both", "--body", "x", "--body-file", "-"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("not both"), "{}", stderr(&out));
    // A story that is still the template is named before its agent runs.
    let bare = stdout(&repo.run(&["add", "Bare", "--ready"]))
        .trim()
        .to_string();
    let agent = repo.agent("ok", "echo w > w.txt");
    repo.use_agent(&agent);
    let out = repo.run(&["run", "--max", "2"]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("[{bare}] says nothing but its title")),
        "{err}"
    );
    assert!(!err.contains(&format!("[{id}] says nothing")), "{err}");
}

#[test]
fn what_a_script_reads_comes_as_json() {
    let repo = TestRepo::new();
    let agent = repo.agent("ok", "echo w > w.txt");
    repo.use_agent(&agent);
    repo.ready_stories(1);
    expect_code(&repo.run(&["run", "--keep-worktrees"]), 0);
    let parse = |args: &[&str]| -> serde_json::Value {
        let out = repo.run(args);
        serde_json::from_str(stdout(&out).trim())
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}{}", stdout(&out), stderr(&out)))
    };
    for args in [
        &["worktrees", "--json"][..],
        &["worktrees", "list", "--json"],
    ] {
        let w = parse(args);
        assert_eq!(w[0]["story"], "S-0001", "{w}");
        assert_eq!(w[0]["status"], "done");
        assert_eq!(w[0]["clean"], true);
        assert_eq!(w[0]["path"], ".ai-sdlc/worktrees/S-0001-s1");
        assert!(w[0]["size_bytes"].as_u64().unwrap() > 0);
    }
    let d = parse(&["doctor", "--json"]);
    let checks = d["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .any(|c| c["level"] == "ok" && c["what"].as_str().unwrap().contains("git")),
        "{d}"
    );
    assert_eq!(d["problems"], 0, "{d}");
    let t = parse(&["trust", "--show", "--json"]);
    assert_eq!(t[0]["key"], "agent.command", "{t}");
    assert_eq!(t[0]["trusted"], true);
    let out = repo.run(&["trust", "--json"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("--show --json"), "{}", stderr(&out));
}

#[test]
fn shell_completions_offer_commands_flags_and_story_ids() {
    let repo = TestRepo::new();
    repo.ready_stories(2);
    let out = repo.run(&["completions", "bash"]);
    expect_code(&out, 0);
    let script = stdout(&out);
    // What bash offers for the words typed so far.
    let complete = |words: &[&str]| -> String {
        let cword = words.len() - 1;
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let test = format!(
            "{script}\nCOMP_WORDS=({}); COMP_CWORD={cword}; _ai_sdlc; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" ")
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &test])
            .current_dir(&repo.root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(complete(&["ai-sdlc", "ru"]), "run\n");
    assert_eq!(
        complete(&["ai-sdlc", "-C", ".", "run", "--conc"]),
        "--concurrent\n"
    );
    assert_eq!(complete(&["ai-sdlc", "logs", "S-"]), "S-0001\nS-0002\n");
    // A folder name is the repo's, not code: a Tab never runs it.
    std::fs::create_dir(repo.root.join(".ai-sdlc/stories/$(touch PWNED)")).unwrap();
    let offered = complete(&["ai-sdlc", "logs", ""]);
    assert!(offered.contains("$(touch PWNED)\n"), "{offered}");
    assert!(
        !repo.root.join("PWNED").exists(),
        "a Tab ran a folder's name"
    );
    assert_eq!(complete(&["ai-sdlc", "worktrees", "pr"]), "prune\n");
    for (shell, flag) in [("zsh", "--concurrent"), ("fish", "-l concurrent")] {
        let out = repo.run(&["completions", shell]);
        expect_code(&out, 0);
        assert!(stdout(&out).contains(flag), "{shell}: {}", stdout(&out));
    }
    let out = repo.run(&["completions", "tcsh"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("bash, zsh or fish"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dry_run_is_the_real_plan_with_nothing_started() {
    let repo = TestRepo::new();
    let agent = repo.agent("ok", "echo w > \"w-$id.txt\"");
    repo.use_agent(&agent);
    repo.story("S-0001", "Blocked one", 1, "blocked", "");
    repo.story(
        "S-0002",
        "After the blocked one",
        2,
        "ready",
        "dependencies: [S-0001]\n",
    );
    repo.story("S-0003", "Free", 3, "ready", "");
    repo.story("S-0004", "Also free", 4, "ready", "");
    let out = repo.run(&["run", "--dry-run", "--concurrent", "2", "--max", "1"]);
    expect_code(&out, 0);
    let plan = stdout(&out);
    assert!(
        plan.contains("Plan: 1 of 3 selected stories would start"),
        "{plan}"
    );
    assert!(
        plan.contains("S-0002")
            && plan.contains("[not started: waiting on S-0001: it is blocked, not done]"),
        "{plan}"
    );
    assert!(
        plan.contains("S-0004") && plan.contains("[not started: beyond --max]"),
        "{plan}"
    );
    // As JSON, for a script.
    let out = repo.run(&[
        "run",
        "--dry-run",
        "--json",
        "--concurrent",
        "2",
        "--max",
        "1",
    ]);
    expect_code(&out, 0);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let starts: Vec<&str> = v["stories"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["starts"] == true)
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(starts, ["S-0003"], "{v}");
    // The real run does what the plan said.
    expect_code(&repo.run(&["run", "--concurrent", "2", "--max", "1"]), 0);
    assert_eq!(repo.status("S-0003"), "done");
    assert_eq!(repo.status("S-0002"), "ready");
    assert_eq!(repo.status("S-0004"), "ready");
    // A done story run again with --force: its phases run again.
    let plan = stdout(&repo.run(&["run", "--dry-run", "--story", "S-0003", "--force"]));
    assert!(!plan.contains("skipped"), "{plan}");
    // A config nobody trusted: the plan says the real run would be refused.
    let other = TestRepo::new();
    let agent = other.agent("ok", "true");
    other.config_untrusted(serde_json::json!({"agent": {"command": [agent.to_string_lossy()]}}));
    other.ready_stories(1);
    let out = other.run(&["run", "--dry-run"]);
    expect_code(&out, 2);
    assert!(stdout(&out).contains("S-0001"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the real run would be refused"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_command_shows_an_example_in_its_help() {
    // The commands as the top-level help lists them: a new one is checked too.
    let top = stdout(&bin_out(&["--help"]));
    let commands: Vec<&str> = top
        .split("\nCommands:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{top}"))
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(commands.len() >= 16, "{commands:?}");
    for c in commands {
        let out = bin_out(&[c, "--help"]);
        expect_code(&out, 0);
        assert!(
            stdout(&out).contains("Examples:\n  ai-sdlc "),
            "{c}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn verbose_says_what_is_decided_and_why() {
    let repo = TestRepo::new();
    let agent = repo.agent("ok", "echo w > w.txt");
    repo.use_agent(&agent);
    repo.ready_stories(2);
    repo.story("S-0003", "Later", 3, "backlog", "");
    let err = stderr(&repo.run(&["run", "--dry-run", "-v"]));
    for said in [
        "ai-sdlc: info: config: ",
        "selected (the ready stories, in priority order): S-0001 S-0002",
        "not selected: 1 backlog",
        "phase implement (command): ",
    ] {
        assert!(err.contains(said), "{said}: {err}");
    }
    assert!(!err.contains("debug"), "{err}");
    // -vv: every git call, with its time.
    let err = stderr(&repo.run(&["-vv", "run", "--dry-run"]));
    let git_line = err
        .lines()
        .find(|l| l.starts_with("ai-sdlc: debug: git ") && l.contains(" ms, "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(git_line.contains("exit status: 0"), "{git_line}");
}
