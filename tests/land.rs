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
        line.contains("conflicts with S-0002 in README.md"),
        "{text}"
    );
    assert_eq!(
        stories[2]["conflicts_with"],
        serde_json::json!(["S-0002"]),
        "{j}"
    );
    // One story: its figures and its diff.
    let out = repo.run(&["review", "S-0002", "--no-pager"]);
    assert!(stdout(&out).contains("+from one"), "{}", stdout(&out));
}

#[test]
fn merge_all_stops_at_the_conflict_with_the_checkout_clean_on_the_merges_before_it() {
    let repo = repo_with_branches(&["Add a file", "line from one", "line from two"]);
    let out = repo.run(&["merge", "--all", "--json"]);
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("S-0003") && err.contains("README.md"), "{err}");
    assert!(err.contains("2 merged before it stay merged"), "{err}");
    // As JSON, for a script: what merged, and where it stopped.
    let j = json(&out);
    let results: Vec<(&str, &str)> = j["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        results,
        [
            ("S-0001", "merged"),
            ("S-0002", "merged"),
            ("S-0003", "stopped")
        ],
        "{j}"
    );
    assert_eq!(j["base"], "main");
    assert_eq!(j["stories"][1]["commit"].as_str().unwrap().len(), 40, "{j}");
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
        repo.edit_config(|cfg| cfg["merge"] = serde_json::json!({"strategy": strategy}));
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

/// An agent for the land queue: by title, "line X" writes X as the one line
/// of shared.txt, "file Y" adds Y.txt, "needs Z" checks Z.txt is there at
/// its start; its resolve phase keeps both sides of every conflict (and
/// fails when the title says "stubborn").
const LANDER: &str = r#"
case "$AI_SDLC_PHASE" in
  resolve)
    echo "$id" >> "$REC/resolved"
    case "$AI_SDLC_STORY_TITLE" in *stubborn*) exit 3 ;; esac
    for f in $(grep -rl '^<<<<<<< ' --exclude-dir=.git --exclude-dir=.ai-sdlc . ); do
      sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' "$f"
    done
    exit 0 ;;
esac
case "$AI_SDLC_STORY_TITLE" in
  line*) echo "${AI_SDLC_STORY_TITLE#line }" > shared.txt ;;
  file*) echo "${AI_SDLC_STORY_TITLE#file }" > "${AI_SDLC_STORY_TITLE#file }.txt" ;;
esac
case "$AI_SDLC_STORY_TITLE" in
  *needs*) n=${AI_SDLC_STORY_TITLE#*needs }; [ -f "$n.txt" ] && echo "$id saw $n.txt" >> "$REC/saw" ;;
esac
exit 0
"#;

/// A repo with a shared.txt on main, the LANDER agent, and `stories`
/// (id, title, extra frontmatter), all ready.
fn land_repo(stories: &[(&str, &str, &str)], config: serde_json::Value) -> TestRepo {
    let repo = TestRepo::new();
    std::fs::write(repo.root.join("shared.txt"), "base\n").unwrap();
    git(&repo.root, &["add", "shared.txt"]);
    git(&repo.root, &["commit", "-qm", "shared"]);
    let agent = repo.agent("lander.sh", LANDER);
    let mut cfg = serde_json::json!({"agent": {"command": [agent]}});
    if let (Some(c), Some(extra)) = (cfg.as_object_mut(), config.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    repo.config(cfg);
    for (i, (id, title, extra)) in stories.iter().enumerate() {
        repo.story(id, title, i as i64 + 1, "ready", extra);
    }
    repo
}

/// Every ref of the repo, with what it points at.
fn refs(repo: &TestRepo) -> String {
    git(
        &repo.root,
        &["for-each-ref", "--format=%(refname) %(objectname)"],
    )
}

#[test]
fn a_dependent_story_starts_from_its_dependencys_work() {
    let repo = land_repo(
        &[
            ("S-0001", "file lib", ""),
            ("S-0002", "file use needs lib", "dependencies: [S-0001]\n"),
        ],
        serde_json::json!({}),
    );
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 0);
    assert_eq!(
        repo.rec_file("saw").as_deref(),
        Some("S-0002 saw lib.txt\n"),
        "the dependent's worktree did not hold its dependency's file\n{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("stacked on S-0001"),
        "{}",
        stderr(&out)
    );
    // base_ref: the dependency's tip it started from.
    let dep_tip = git(&repo.root, &["rev-parse", "ai-sdlc/S-0001-file-lib"]);
    assert_eq!(repo.field("S-0002", "base_ref").unwrap(), dep_tip.trim());
}

#[test]
fn a_story_with_two_unmerged_dependencies_starts_from_their_merge() {
    let repo = land_repo(
        &[
            ("S-0001", "file a", ""),
            ("S-0002", "file b", ""),
            (
                "S-0003",
                "file c needs a",
                "dependencies: [S-0001, S-0002]\n",
            ),
        ],
        serde_json::json!({}),
    );
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 0);
    let wt_files = git(
        &repo.root,
        &[
            "ls-tree",
            "-r",
            "--name-only",
            "ai-sdlc/S-0003-file-c-needs-a",
        ],
    );
    assert!(
        wt_files.contains("a.txt") && wt_files.contains("b.txt"),
        "{wt_files}"
    );
    assert!(
        stderr(&out).contains("stacked on a merge of S-0001, S-0002"),
        "{}",
        stderr(&out)
    );
    // Two dependencies that change the same line: blocked, both named.
    let repo = land_repo(
        &[
            ("S-0001", "line one", ""),
            ("S-0002", "line two", ""),
            ("S-0003", "file c", "dependencies: [S-0001, S-0002]\n"),
        ],
        serde_json::json!({}),
    );
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 1);
    let reason = repo.blocked_reason("S-0003");
    assert!(
        reason.contains("S-0001") && reason.contains("S-0002") && reason.contains("shared.txt"),
        "{reason}"
    );
}

#[test]
fn two_stories_that_change_one_line_both_land_the_second_after_its_agent_resolves() {
    let verify = "grep -q . shared.txt && echo checked >> \"$REC/verified\"";
    let repo = land_repo(
        &[("S-0001", "line one", ""), ("S-0002", "line two", "")],
        serde_json::json!({"merge": {"verify": ["sh", "-c", verify]}}),
    );
    expect_code(&repo.run(&["run", "--concurrent", "2"]), 0);
    // The dry run predicts it and changes nothing.
    let before = (
        refs(&repo),
        repo.read_story("S-0002"),
        git(&repo.root, &["status", "--porcelain"]),
    );
    let out = repo.run(&["land", "--dry-run"]);
    expect_code(&out, 0);
    let said = stdout(&out);
    assert!(
        said.contains("S-0002") && said.contains("conflicts with S-0001 in shared.txt"),
        "{said}"
    );
    assert_eq!(
        before,
        (
            refs(&repo),
            repo.read_story("S-0002"),
            git(&repo.root, &["status", "--porcelain"])
        )
    );
    assert!(
        repo.rec_file("verified").is_none(),
        "a dry run ran merge.verify"
    );
    let out = repo.run_env(&["land"], &[("REC", repo.rec.to_str().unwrap())]);
    expect_code(&out, 0);
    let text = std::fs::read_to_string(repo.root.join("shared.txt")).unwrap();
    assert!(
        text.contains("one") && text.contains("two"),
        "{text}\n{}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("S-0002: landed after 1 resolve round"),
        "{}",
        stdout(&out)
    );
    assert_eq!(repo.rec_file("resolved").as_deref(), Some("S-0002\n"));
    assert!(repo.field("S-0001", "merged_at").is_some());
    assert!(repo.field("S-0002", "merged_at").is_some());
    assert_eq!(repo.status("S-0002"), "done");
    // merge.verify ran on each landing: S-0001, S-0002 (once before its resolve, once after).
    assert!(repo.rec_file("verified").unwrap().lines().count() >= 2);
    // The base checkout is clean; the old tip of S-0002 is kept.
    assert_eq!(
        git(
            &repo.root,
            &["status", "--porcelain", "--untracked-files=no"]
        )
        .lines()
        .filter(|l| !l.contains(".ai-sdlc/"))
        .count(),
        0
    );
    let kept = git(
        &repo.root,
        &[
            "for-each-ref",
            "--format=%(refname)",
            "refs/ai-sdlc/previous/S-0002/",
        ],
    );
    assert!(!kept.trim().is_empty(), "no old tip kept");
}

#[test]
fn a_story_whose_agent_cannot_resolve_is_blocked_and_only_its_dependents_wait() {
    let repo = land_repo(
        &[
            ("S-0001", "line one", ""),
            ("S-0002", "line stubborn", ""),
            ("S-0003", "file after", "dependencies: [S-0002]\n"),
            ("S-0004", "file other", ""),
        ],
        serde_json::json!({}),
    );
    expect_code(&repo.run(&["run", "--concurrent", "2"]), 0);
    let out = repo.run(&["land", "--json"]);
    expect_code(&out, 1);
    let j = json(&out);
    let result = |id: &str| {
        j["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {j}"))["result"]
            .clone()
    };
    assert_eq!(result("S-0001"), "landed", "{j}");
    assert_eq!(result("S-0002"), "blocked", "{j}");
    assert_eq!(result("S-0003"), "waiting", "{j}");
    assert_eq!(result("S-0004"), "landed", "{j}");
    // Its agent tried twice (land.maxResolveRounds), then it is blocked.
    assert_eq!(repo.rec_file("resolved").unwrap(), "S-0002\nS-0002\n");
    assert_eq!(repo.status("S-0002"), "blocked");
    assert!(
        repo.blocked_reason("S-0002").contains("shared.txt"),
        "{}",
        repo.blocked_reason("S-0002")
    );
    // Nothing half-applied: the base checkout is clean, no merge in progress.
    assert!(!repo.root.join(".git/MERGE_HEAD").exists());
    assert_eq!(
        git(
            &repo.root,
            &["status", "--porcelain", "--untracked-files=no"]
        )
        .lines()
        .filter(|l| !l.contains(".ai-sdlc/"))
        .count(),
        0
    );
}

#[test]
fn a_stacked_story_is_restacked_when_its_dependency_lands_and_its_old_tip_is_kept() {
    for strategy in ["rebase", "squash", "merge"] {
        let repo = land_repo(
            &[
                ("S-0001", "file lib", ""),
                ("S-0002", "file use", "dependencies: [S-0001]\n"),
            ],
            serde_json::json!({"merge": {"strategy": strategy}}),
        );
        expect_code(&repo.run(&["run", "--concurrent", "2"]), 0);
        // main moves on, so nothing fast-forwards.
        std::fs::write(repo.root.join("other.txt"), "x\n").unwrap();
        git(&repo.root, &["add", "other.txt"]);
        git(&repo.root, &["commit", "-qm", "main moves"]);
        let old = |b: &str| git(&repo.root, &["rev-parse", b]).trim().to_string();
        let (old1, old2) = (
            old("ai-sdlc/S-0001-file-lib"),
            old("ai-sdlc/S-0002-file-use"),
        );
        let out = repo.run(&["land"]);
        expect_code(&out, 0);
        // The dependency's work is in main once, not twice.
        let log = git(
            &repo.root,
            &["log", "--no-merges", "--format=%s", "main", "--", "lib.txt"],
        );
        let lib_commits = log.lines().count();
        assert_eq!(
            lib_commits, 1,
            "{strategy}: S-0001's work landed {lib_commits} times:\n{log}"
        );
        assert!(repo.root.join("lib.txt").exists() && repo.root.join("use.txt").exists());
        // Every old tip is still reachable, under refs/ai-sdlc/previous.
        for (id, tip) in [("S-0001", &old1), ("S-0002", &old2)] {
            let kept = git(
                &repo.root,
                &[
                    "for-each-ref",
                    "--format=%(objectname)",
                    &format!("refs/ai-sdlc/previous/{id}/"),
                ],
            );
            let branch_now = old(&format!(
                "ai-sdlc/{id}-file-{}",
                if id == "S-0001" { "lib" } else { "use" }
            ));
            assert!(
                kept.lines().any(|k| k == tip) || branch_now == *tip,
                "{strategy}: {id}'s old tip {tip} is lost: kept {kept:?}"
            );
        }
        // `review <ID>` lists them, in text and JSON.
        let out = repo.run(&["review", "S-0002", "--stat"]);
        expect_code(&out, 0);
        assert!(
            stdout(&out).contains(&format!("refs/ai-sdlc/previous/S-0002/1  {}", &old2[..12])),
            "{strategy}: review does not list S-0002's old tip:\n{}",
            stdout(&out)
        );
        let json: serde_json::Value =
            serde_json::from_str(&stdout(&repo.run(&["review", "--json"]))).unwrap();
        let s2 = json["stories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == "S-0002")
            .unwrap();
        assert_eq!(
            s2["previous_tips"][0]["commit"],
            old2.as_str(),
            "{strategy}: {s2}"
        );
    }
}

#[test]
fn ctrl_c_in_the_middle_of_land_leaves_nothing_half_done() {
    // The resolve agent of S-0002 waits; Ctrl-C then.
    let repo = land_repo(
        &[
            ("S-0001", "line one", ""),
            ("S-0002", "line two", ""),
            ("S-0003", "file three", ""),
        ],
        serde_json::json!({}),
    );
    expect_code(&repo.run(&["run", "--concurrent", "2"]), 0);
    let slow = repo.agents.join("lander.sh");
    let script = std::fs::read_to_string(&slow).unwrap().replace(
        "  resolve)\n",
        "  resolve)\n    touch \"$REC/resolving\"; sleep 300\n",
    );
    std::fs::write(&slow, script).unwrap();
    let land = repo.spawn(&["land"]);
    repo.wait_rec("resolving");
    let main_at = git(&repo.root, &["rev-parse", "main"]);
    signal(land.id(), libc::SIGINT);
    let (code, _, err) = finish(land, 30);
    assert_eq!(code, 130, "{err}");
    // The base is where S-0001 put it; S-0003 did not start.
    assert_eq!(git(&repo.root, &["rev-parse", "main"]), main_at);
    assert!(repo.field("S-0001", "merged_at").is_some());
    assert_eq!(repo.field("S-0003", "merged_at"), None);
    // No merge or rebase in progress anywhere; S-0002's branch is at its tip.
    for wt in git(&repo.root, &["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
    {
        let gd = git(Path::new(wt), &["rev-parse", "--git-dir"]);
        let gd = Path::new(wt).join(gd.trim());
        for f in [
            "MERGE_HEAD",
            "REBASE_HEAD",
            "rebase-merge",
            "rebase-apply",
            "CHERRY_PICK_HEAD",
        ] {
            assert!(!gd.join(f).exists(), "{wt}: {f} left behind");
        }
    }
    // Its work is done; only its landing was interrupted.
    assert_eq!(repo.status("S-0002"), "done");
}

#[test]
fn pr_skips_merged_stories_and_a_stacked_one_targets_its_dependency_until_it_lands() {
    let repo = land_repo(
        &[
            ("S-0001", "file lib", ""),
            ("S-0002", "file use", "dependencies: [S-0001]\n"),
            ("S-0003", "file done", ""),
        ],
        serde_json::json!({}),
    );
    expect_code(&repo.run(&["run", "--concurrent", "2"]), 0);
    let (_, path) = remote_and_gh(
        &repo,
        &format!(
            "printf '%s\\n' \"$*\" >> {rec}/gh.calls\ncase \"$2\" in create) echo https://github.com/o/r/pull/$$ ;; esac\n",
            rec = repo.rec.display()
        ),
    );
    // S-0003 lands first: pr skips it and says so.
    expect_code(&repo.run(&["land", "S-0003"]), 0);
    let out = repo.run_env(&["pr", "--all", "--json"], &[("PATH", &path)]);
    expect_code(&out, 0);
    let j = json(&out);
    let result = |id: &str| {
        j["stories"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id}: {j}"))
            .clone()
    };
    assert_eq!(result("S-0003")["result"], "already_merged", "{j}");
    for id in ["S-0001", "S-0002"] {
        let r = result(id);
        assert_eq!(r["result"], "opened", "{j}");
        assert!(
            r["url"]
                .as_str()
                .unwrap()
                .starts_with("https://github.com/o/r/pull/")
        );
    }
    let calls = repo.rec_file("gh.calls").unwrap();
    assert!(!calls.contains("S-0003"), "{calls}");
    // S-0002's pull request goes to S-0001's branch.
    let s2 = calls
        .lines()
        .find(|l| l.contains("--head ai-sdlc/S-0002"))
        .unwrap();
    assert!(s2.contains("--base ai-sdlc/S-0001-file-lib"), "{s2}");
    let s1 = calls
        .lines()
        .find(|l| l.contains("--head ai-sdlc/S-0001"))
        .unwrap();
    assert!(s1.contains("--base main"), "{s1}");
    // The body is the story's own text, its template comment gone, and
    // what the agent said.
    assert!(s1.contains("Body of S-0001"), "{s1}");
    assert!(!s1.contains("<!--"), "{s1}");
    // Once S-0001 lands, the next land moves S-0002's pull request to main.
    let out = repo.run_env(&["land", "S-0001"], &[("PATH", &path)]);
    expect_code(&out, 0);
    let calls = repo.rec_file("gh.calls").unwrap();
    let edit = calls
        .lines()
        .find(|l| l.starts_with("pr edit"))
        .unwrap_or_else(|| panic!("no retarget: {calls}\n{}", stdout(&out)));
    assert!(edit.ends_with("--base main"), "{edit}");
    assert_eq!(repo.field("S-0002", "pr_base").as_deref(), Some("main"));
}

#[test]
fn run_with_land_lands_each_story_as_it_finishes_and_json_says_so() {
    let repo = land_repo(
        &[
            // The first two run at once and change one line: the second
            // lands after its agent resolves the conflict.
            ("S-0001", "line one", ""),
            ("S-0002", "line two", ""),
            ("S-0003", "file lib", ""),
            ("S-0004", "file use needs lib", "dependencies: [S-0003]\n"),
        ],
        serde_json::json!({}),
    );
    let out = repo.run(&["run", "--concurrent", "2", "--land", "--json"]);
    expect_code(&out, 0);
    let j = json(&out);
    for r in j["results"].as_array().unwrap() {
        assert_eq!(r["landed"]["result"], "landed", "{r}");
        assert!(
            repo.field(r["id"].as_str().unwrap(), "merged_at").is_some(),
            "{r}"
        );
    }
    // S-0004 started after S-0003 landed: from main, with lib.txt there.
    assert_eq!(
        repo.rec_file("saw").as_deref(),
        Some("S-0004 saw lib.txt\n")
    );
    // Whichever of the first two finished second went back to its agent.
    let resolved = repo.rec_file("resolved").unwrap_or_default();
    assert!(
        resolved == "S-0002\n" || resolved == "S-0001\n",
        "{resolved:?}"
    );
    for f in ["lib.txt", "use needs lib.txt"] {
        assert!(repo.root.join(f).exists(), "{f}");
    }
    let text = std::fs::read_to_string(repo.root.join("shared.txt")).unwrap();
    assert!(text.contains("one") && text.contains("two"), "{text}");
}
