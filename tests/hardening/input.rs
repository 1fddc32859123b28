//! Input that tries to become code or terminal control: ids, placeholders, titles.

use crate::support::*;

#[test]
fn a_story_id_that_looks_like_a_flag_is_never_one() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story("-S-1", "Dash", 1, "ready", "");
    let out = repo.run(&["run", "--no-worktree"]);
    expect_code(&out, 0);
    assert_eq!(repo.status("-S-1"), "done");
    assert!(repo.started("-S-1"));
}

#[test]
fn placeholders_are_filled_once_and_never_run_as_shell() {
    let repo = TestRepo::new();
    let marker = repo.rec.join("pwned");
    let title = format!("Use {{prompt}} and $(touch {})", marker.display());
    let agent = repo.agent("args.sh", "printf '%s\\n' \"$@\" > \"$REC/$id.args\"");
    repo.config(serde_json::json!({
        "agent": {"command": ["sh", "-c", "\"$0\" {title:sh} \"$1\"", agent, "{title}"]}
    }));
    repo.story(
        "S-0001",
        &format!("'{}'", title.replace('\'', "''")),
        1,
        "ready",
        "",
    );
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    // Both the quoted and the raw form arrive as the literal title, once.
    assert_eq!(
        repo.rec_file("S-0001.args").unwrap(),
        format!("{title}\n{title}\n")
    );
    assert!(!marker.exists(), "a title ran as a shell command");

    // A script that would eval a placeholder's value is refused.
    repo.config(serde_json::json!({"agent": {"command": ["sh", "-c", "eval echo {title}"]}}));
    let out = repo.run(&["run", "--story", "S-0001", "--force"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("eval"), "{}", stderr(&out));
    assert!(!marker.exists(), "a title ran as a shell command");
}

#[test]
fn control_characters_from_story_files_never_reach_the_terminal() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "printf 'agent says \\033]0;pwned\\007 hi\\n'; exit 3",
    );
    repo.story(
        "S-0001",
        "\"Evil \\e[2J\\e]0;title\\a \\u202e title\"",
        1,
        "ready",
        "",
    );
    let bad = |s: &str| s.contains('\u{1b}') || s.contains('\u{7}') || s.contains('\u{202e}');
    for args in [&["status"][..], &["run", "--dry-run"][..], &["run"][..]] {
        let out = repo.run(args);
        assert!(
            !bad(&stdout(&out)) && !bad(&stderr(&out)),
            "{args:?}:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("Evil") || stderr(&out).contains("Evil"),
            "{args:?}"
        );
    }
}

#[test]
fn a_base_ref_that_is_not_a_commit_id_never_reaches_git() {
    let repo = TestRepo::new();
    let agent = repo.agent("quiet", "true");
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "workflow": {"allowEmpty": false}
    }));
    // base_ref is handed to git (merge-base, land's restack): an option
    // in its place is refused when the story is read.
    repo.story(
        "S-0001",
        "Hostile",
        1,
        "ready",
        "base_ref: --upload-pack=touch PWNED\n",
    );
    let out = repo.run(&["run"]);
    let err = stderr(&out);
    assert!(
        err.contains("field `base_ref` must be a commit id") && err.contains("remove the line"),
        "{err}"
    );
    assert!(!repo.started("S-0001"), "{err}");
    assert!(!repo.root.join("PWNED").exists());
    let board = stdout(&repo.run(&["status"]));
    assert!(!board.contains("READY"), "{board}");
}
