//! Landing the work (SPEC §11): review, merge, pr, against real git repos
//! and a bare repo as the remote.

use crate::support::*;
use std::path::Path;

/// An agent that edits by story title: "line <x>" rewrites README.md's one
/// line to <x>; anything else adds a file of its own (two commits).
const EDITOR: &str = r#"
case "$AI_SDLC_STORY_TITLE" in
  line*) echo "${AI_SDLC_STORY_TITLE#line }" > README.md ;;
  *) echo "one" > "$id.txt"; git add -A; git commit -qm "first part of $id"; echo "two" >> "$id.txt" ;;
esac
"#;

fn repo_with_branches(titles: &[&str]) -> TestRepo {
    let repo = TestRepo::new();
    repo.with_agent("edit.sh", EDITOR);
    for (i, t) in titles.iter().enumerate() {
        repo.story(&format!("S-000{}", i + 1), t, i as i64 + 1, "ready", "");
    }
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 0);
    repo
}

/// A bare repo as `origin`, and a stand-in `gh` running `script`: the
/// remote's path, and a PATH with the stand-in first.
fn remote_and_gh(repo: &TestRepo, script: &str) -> (std::path::PathBuf, String) {
    let remote = repo.rec.join("remote.git");
    git(
        &repo.rec,
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    git(
        &repo.root,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    let bin = repo.rec.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let gh = bin.join("gh");
    std::fs::write(&gh, format!("#!/bin/sh\n{script}")).unwrap();
    std::fs::set_permissions(&gh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    (remote, path)
}

fn head(dir: &Path) -> String {
    git(dir, &["rev-parse", "HEAD"]).trim().to_string()
}

/// `git status --porcelain` of the main checkout: tracked files, the board aside.
fn dirt(repo: &TestRepo) -> String {
    git(
        &repo.root,
        &["status", "--porcelain", "--untracked-files=no"],
    )
    .lines()
    .filter(|l| !l[3..].starts_with(".ai-sdlc/"))
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
fn review_figures_are_gits_own_and_a_conflict_is_predicted_before_any_merge() {
    let repo = repo_with_branches(&["Add a file", "line from one", "line from two"]);
    // main moves on too: the branches are one commit behind.
    std::fs::write(repo.root.join("other.txt"), "x\n").unwrap();
    git(&repo.root, &["add", "other.txt"]);
    git(&repo.root, &["commit", "-qm", "main moves"]);
    let out = repo.run(&["review", "--json"]);
    expect_code(&out, 0);
    let j = json(&out);
    let stories = j["stories"].as_array().unwrap();
    assert_eq!(stories.len(), 3, "{j}");
    for s in stories {
        let b = s["branch"].as_str().unwrap();
        let lr = git(
            &repo.root,
            &[
                "rev-list",
                "--left-right",
                "--count",
                &format!("main...{b}"),
            ],
        );
        let mut n = lr.split_whitespace().map(|x| x.parse::<u64>().unwrap());
        assert_eq!(s["behind"].as_u64(), n.next(), "{s}");
        assert_eq!(s["ahead"].as_u64(), n.next(), "{s}");
        let stat = git(&repo.root, &["diff", "--shortstat", &format!("main...{b}")]);
        assert!(
            stat.contains(&format!("{} file", s["files"])),
            "{stat} vs {s}"
        );
        assert!(
            stat.contains(&format!("{} insertion", s["insertions"])),
            "{stat} vs {s}"
        );
    }
    assert_eq!(
        stories[0]["ahead"], 2,
        "two commits: the agent's and the runner's"
    );
    // Each merges cleanly now; the third not after the second.
    assert!(stories.iter().all(|s| s["merges_cleanly"] == true), "{j}");
    assert_eq!(stories[2]["merges_cleanly_in_order"], false, "{j}");
    assert_eq!(stories[2]["conflicts_in_order"][0], "README.md");
    let text = stdout(&repo.run(&["review"]));
    let line = text.lines().find(|l| l.contains("S-0003")).unwrap();
    assert!(
        line.contains("after S-0001, S-0002: conflict: README.md"),
        "{text}"
    );
    // One story: its figures and its diff.
    let out = repo.run(&["review", "S-0002", "--no-pager"]);
    assert!(stdout(&out).contains("+from one"), "{}", stdout(&out));
}

#[test]
fn merge_all_stops_at_the_conflict_with_the_checkout_clean_on_the_merges_before_it() {
    let repo = repo_with_branches(&["Add a file", "line from one", "line from two"]);
    let out = repo.run(&["merge", "--all"]);
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("S-0003") && err.contains("README.md"), "{err}");
    assert!(err.contains("2 merged before it stay merged"), "{err}");
    // The checkout is clean and on the second's merge; its file is there.
    assert_eq!(dirt(&repo), "");
    assert_eq!(
        std::fs::read_to_string(repo.root.join("README.md")).unwrap(),
        "from one\n"
    );
    assert!(repo.root.join("S-0001.txt").exists());
    let log = git(&repo.root, &["log", "--format=%s", "-3"]);
    assert!(log.starts_with("Merge ai-sdlc/S-0002"), "{log}");
    assert!(repo.field("S-0002", "merged_at").is_some());
    assert_eq!(repo.field("S-0003", "merged_at"), None);
    let status = stdout(&repo.run(&["status"]));
    assert!(
        status
            .lines()
            .any(|l| l.contains("S-0001") && l.contains("merged")),
        "{status}"
    );
    // Nothing left to merge but the conflicting one; a second pass says so.
    let out = repo.run(&["merge", "S-0001"]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("already in main"), "{}", stdout(&out));
}

#[test]
fn a_dirty_base_checkout_is_refused_with_nothing_changed() {
    let repo = repo_with_branches(&["Add a file"]);
    std::fs::write(repo.root.join("README.md"), "my own edit\n").unwrap();
    let (status, before) = (
        git(&repo.root, &["status", "--porcelain"]),
        head(&repo.root),
    );
    let out = repo.run(&["merge", "--all"]);
    expect_code(&out, 1);
    assert!(stderr(&out).contains("README.md"), "{}", stderr(&out));
    assert_eq!(git(&repo.root, &["status", "--porcelain"]), status);
    assert_eq!(head(&repo.root), before);
    assert_eq!(
        std::fs::read_to_string(repo.root.join("README.md")).unwrap(),
        "my own edit\n"
    );
}

#[test]
fn squash_and_rebase_give_their_history_and_a_failing_verify_moves_nothing() {
    for strategy in ["squash", "rebase"] {
        let repo = repo_with_branches(&["Add a file"]);
        // main moves on, so a rebase has something to do.
        std::fs::write(repo.root.join("other.txt"), "x\n").unwrap();
        git(&repo.root, &["add", "other.txt"]);
        git(&repo.root, &["commit", "-qm", "main moves"]);
        let mut cfg: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(repo.root.join(".ai-sdlc.json")).unwrap(),
        )
        .unwrap();
        cfg["merge"] = serde_json::json!({"strategy": strategy});
        repo.config(cfg);
        let before = head(&repo.root);
        let out = repo.run(&["merge", "S-0001", "--delete-branch"]);
        expect_code(&out, 0);
        let parents = git(&repo.root, &["log", "--format=%p", "-1"]);
        assert_eq!(
            parents.split_whitespace().count(),
            1,
            "{strategy}: no merge commit"
        );
        let subjects = git(
            &repo.root,
            &["log", "--format=%s", &format!("{before}..HEAD")],
        );
        match strategy {
            // One commit, named after the story.
            "squash" => assert_eq!(subjects.trim(), "S-0001: Add a file", "{subjects}"),
            // The branch's two commits, on top of main.
            _ => assert_eq!(
                subjects.lines().collect::<Vec<_>>(),
                ["S-0001: Add a file", "first part of S-0001"]
            ),
        }
        assert_eq!(
            std::fs::read_to_string(repo.root.join("S-0001.txt")).unwrap(),
            "one\ntwo\n"
        );
        assert!(repo.root.join("other.txt").exists());
        assert!(stdout(&out).contains("deleted branch"), "{}", stdout(&out));
    }
    // merge.verify that fails: the base does not move.
    let repo = repo_with_branches(&["Add a file"]);
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.root.join(".ai-sdlc.json")).unwrap())
            .unwrap();
    let check = format!(
        "test -f S-0001.txt && touch {}/verified; exit 3",
        repo.rec.display()
    );
    cfg["merge"] = serde_json::json!({"verify": ["sh", "-c", check]});
    // An untrusted verify command does not run at all.
    repo.config_untrusted(cfg.clone());
    let out = repo.run(&["merge", "S-0001"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("merge.verify"), "{}", stderr(&out));
    assert!(repo.rec_file("verified").is_none());
    repo.config(cfg);
    let before = head(&repo.root);
    let out = repo.run(&["merge", "S-0001"]);
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("merge.verify failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(head(&repo.root), before);
    assert_eq!(dirt(&repo), "");
    assert!(!repo.root.join("S-0001.txt").exists());
    // It ran, on the merged result (S-0001.txt was there), somewhere else.
    assert!(repo.rec_file("verified").is_some());
    let left: Vec<_> = std::fs::read_dir(repo.root.join(".ai-sdlc/worktrees"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter()
            .all(|n| !n.to_string_lossy().starts_with(".land")),
        "{left:?}"
    );
}

#[test]
fn pr_pushes_calls_gh_once_and_writes_pr_url() {
    let repo = repo_with_branches(&["Add a file"]);
    let (remote, path) = remote_and_gh(
        &repo,
        &format!(
            "for a in \"$@\"; do printf '%s\\n' \"$a\"; done > {rec}/gh.args\necho x >> {rec}/gh.calls\necho 'Creating pull request'\necho https://github.com/o/r/pull/7\n",
            rec = repo.rec.display()
        ),
    );
    let out = repo.run_env(&["pr", "S-0001"], &[("PATH", &path)]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("https://github.com/o/r/pull/7"),
        "{}",
        stdout(&out)
    );
    // Pushed: the bare remote has the branch at the same commit.
    let here = git(&repo.root, &["rev-parse", "ai-sdlc/S-0001-add-a-file"]);
    let there = git(&remote, &["rev-parse", "ai-sdlc/S-0001-add-a-file"]);
    assert_eq!(here, there);
    let args = repo.rec_file("gh.args").unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        &args[..7],
        [
            "pr",
            "create",
            "--head",
            "ai-sdlc/S-0001-add-a-file",
            "--base",
            "main",
            "--title"
        ]
    );
    assert_eq!(args[7], "S-0001: Add a file");
    assert!(args.contains(&"--body"));
    assert_eq!(
        repo.field("S-0001", "pr_url").as_deref(),
        Some("https://github.com/o/r/pull/7")
    );
    // Never twice.
    let out = repo.run_env(&["pr", "--all"], &[("PATH", &path)]);
    expect_code(&out, 0);
    let out = repo.run_env(&["pr", "S-0001"], &[("PATH", &path)]);
    assert!(stdout(&out).contains("already open"), "{}", stdout(&out));
    assert_eq!(repo.rec_file("gh.calls").unwrap().lines().count(), 1);
    // Without gh, or without a remote: what is missing, by name.
    repo.story("S-0002", "Add a file", 2, "ready", "");
    git(&repo.root, &["remote", "remove", "origin"]);
    let out = repo.run_env(&["pr", "--all"], &[("PATH", &path)]);
    expect_code(&out, 0);
    expect_code(&repo.run(&["run", "--story", "S-0002"]), 0);
    let out = repo.run_env(&["pr", "S-0002"], &[("PATH", &path)]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("no remote \"origin\""),
        "{}",
        stderr(&out)
    );
    let out = repo.run_env(&["pr", "S-0002"], &[("PATH", "/usr/bin:/bin")]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("gh (the GitHub CLI)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_with_pr_opens_a_pull_request_as_each_story_finishes() {
    let repo = TestRepo::new();
    repo.with_agent("edit.sh", EDITOR);
    repo.story("S-0001", "Add a file", 1, "ready", "");
    repo.story("S-0002", "line broken", 2, "ready", "");
    let (_, path) = remote_and_gh(
        &repo,
        &format!(
            "echo \"$4\" >> {}/gh.heads\necho https://github.com/o/r/pull/1\n",
            repo.rec.display()
        ),
    );
    // Without gh, `run --pr` is refused before anything starts.
    let out = repo.run_env(&["run", "--pr"], &[("PATH", "/usr/bin:/bin")]);
    expect_code(&out, 2);
    assert_eq!(repo.status("S-0001"), "ready");
    let out = repo.run_env(&["run", "--pr", "--concurrent", "2"], &[("PATH", &path)]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("opened pull request"),
        "{}",
        stderr(&out)
    );
    let heads = repo.rec_file("gh.heads").unwrap();
    assert!(heads.contains("ai-sdlc/S-0001-add-a-file"), "{heads}");
    assert!(heads.contains("ai-sdlc/S-0002-line-broken"), "{heads}");
    assert_eq!(
        repo.field("S-0001", "pr_url").as_deref(),
        Some("https://github.com/o/r/pull/1")
    );
}
