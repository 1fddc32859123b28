//! Worktrees an agent can work in (SPEC §12): `.worktreeinclude`,
//! `worktree.setup`, `worktree.share`, and warm reuse from the pool.

use crate::support::*;
use std::path::Path;

fn config_with(repo: &TestRepo, agent: &Path, worktree: serde_json::Value) {
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "worktree": worktree,
        "orchestrator": {"healthCheckInterval": 200}
    }));
}

/// `.gitignore`: the board's own entries and `extra`, committed.
fn ignore_also(repo: &TestRepo, extra: &str) {
    std::fs::write(
        repo.root.join(".gitignore"),
        format!(".ai-sdlc/worktrees/\n.ai-sdlc/stories/*/logs/\n{extra}"),
    )
    .unwrap();
    commit_all(repo, "ignores");
}

fn commit_all(repo: &TestRepo, msg: &str) {
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-qm", msg]);
}

#[test]
fn included_files_are_copied_never_over_what_the_worktree_has() {
    let repo = TestRepo::new();
    let r = &repo.root;
    ignore_also(&repo, ".env\nconf/\n");
    std::fs::create_dir_all(r.join("conf")).unwrap();
    std::fs::write(r.join("conf/tracked.txt"), "tracked\n").unwrap();
    git(r, &["add", "-f", "conf/tracked.txt"]);
    commit_all(&repo, "a tracked file in an ignored folder");
    std::fs::write(r.join(".env"), "SECRET=1\n").unwrap();
    std::fs::write(r.join("conf/secret.txt"), "s3cret\n").unwrap();
    std::os::unix::fs::symlink("secret.txt", r.join("conf/link")).unwrap();
    // A local edit of the tracked file must not reach the worktree.
    std::fs::write(r.join("conf/tracked.txt"), "local edit\n").unwrap();
    // Listed but not ignored: not copied.
    std::fs::write(r.join("plain.txt"), "plain\n").unwrap();
    std::fs::write(r.join(".worktreeinclude"), ".env\nconf/\nplain.txt\n").unwrap();
    let agent = repo.agent(
        "look.sh",
        r#"{ cat .env; cat conf/secret.txt; readlink conf/link; cat conf/tracked.txt; [ ! -e plain.txt ] || echo plain; } > "$REC/$id.seen""#,
    );
    config_with(&repo, &agent, serde_json::json!({}));
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert_eq!(
        repo.rec_file("S-0001.seen").unwrap(),
        "SECRET=1\ns3cret\nsecret.txt\ntracked\n"
    );
    // Taken back with the worktree: it did not count as the agent's work.
    assert!(!repo.worktree("S-0001-s1").exists(), "{}", stderr(&out));
    assert!(
        repo.logs("S-0001")
            .join("")
            .contains("copied and linked 3 files")
    );
    // The originals are untouched.
    assert_eq!(
        std::fs::read_to_string(r.join(".env")).unwrap(),
        "SECRET=1\n"
    );
}

#[test]
fn setup_runs_first_in_a_new_worktree_and_a_failing_one_blocks() {
    let repo = TestRepo::new();
    let agent = repo.agent(
        "a.sh",
        r#"[ -f setup-done ] && echo yes > "$REC/$id.after-setup""#,
    );
    config_with(
        &repo,
        &agent,
        serde_json::json!({"setup": ["sh", "-c", "echo installing; pwd > setup-done; echo \"$AI_SDLC_MAIN_WORKTREE\" >> setup-done; [ \"$AI_SDLC_STORY_ID\" != S-0002 ] || { echo 'npm ERR! missing' >&2; exit 4; }"]}),
    );
    // setup-done is the setup's own output, ignored like a build cache.
    ignore_also(&repo, "setup-done\n");
    repo.ready_stories(2);
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 1);
    assert_eq!(
        repo.rec_file("S-0001.after-setup").as_deref(),
        Some("yes\n")
    );
    assert_eq!(repo.status("S-0001"), "done");
    // The failing setup: blocked with its words, the agent never ran, the worktree kept.
    assert_eq!(repo.status("S-0002"), "blocked");
    let reason = repo.blocked_reason("S-0002");
    assert!(reason.starts_with("setup failed:"), "{reason}");
    assert!(reason.contains("npm ERR! missing"), "{reason}");
    assert!(!repo.started("S-0002"));
    let wt = repo.worktree("S-0002-s2");
    let done = std::fs::read_to_string(wt.join("setup-done")).unwrap();
    assert_eq!(done, format!("{}\n{}\n", wt.display(), repo.root.display()));
    let log = repo.logs("S-0002").join("");
    assert!(log.contains("installing"), "{log}");
    assert!(log.contains("phase 1/2 setup"), "{log}");
}

/// Records what a story's agent finds in a reused worktree, then leaves
/// a build cache (ignored) and work (committed by the runner).
const REUSER: &str = r#"
{ [ -f target/marker ] && echo "cache from $(cat target/marker)"
  ls s-*.txt 2>/dev/null
  git rev-parse HEAD; git branch --show-current; } > "$REC/$id.found"
mkdir -p target && echo "$id" > target/marker
echo "work of $id" > "s-$id.txt"
"#;

fn reuse_repo() -> TestRepo {
    let repo = TestRepo::new();
    let agent = repo.agent("reuse.sh", REUSER);
    ignore_also(&repo, "target/\n");
    config_with(&repo, &agent, serde_json::json!({"reuse": true}));
    repo
}

#[test]
fn reuse_hands_the_next_story_a_clean_worktree_with_the_build_cache() {
    let repo = reuse_repo();
    let main_head = git(&repo.root, &["rev-parse", "HEAD"]);
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("worktree parked for reuse"),
        "{}",
        stderr(&out)
    );
    assert!(repo.root.join(".ai-sdlc/worktrees/.pool/0").is_dir());
    assert_eq!(repo.field("S-0001", "worktree_path"), None);
    repo.story("S-0002", "S2", 2, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("took a parked worktree"),
        "{}",
        stderr(&out)
    );
    // The cache is there; S-0001's work is not; the branch starts at the base.
    let found = repo.rec_file("S-0002.found").unwrap();
    assert_eq!(
        found,
        format!("cache from S-0001\n{}ai-sdlc/S-0002-s2\n", main_head),
        "{found}"
    );
    // S-0001's branch is intact.
    let files = git(
        &repo.root,
        &["show", "--name-only", "--format=", "ai-sdlc/S-0001-s1"],
    );
    assert!(files.contains("s-S-0001.txt"), "{files}");
    let files = git(
        &repo.root,
        &["show", "--name-only", "--format=", "ai-sdlc/S-0002-s2"],
    );
    assert!(
        files.contains("s-S-0002.txt") && !files.contains("S-0001"),
        "{files}"
    );
    // prune empties the pool.
    let out = repo.run(&["worktrees", "prune"]);
    expect_code(&out, 0);
    assert!(!repo.root.join(".ai-sdlc/worktrees/.pool/0").exists());
}

#[test]
fn a_dirty_parked_worktree_is_not_reused() {
    let repo = reuse_repo();
    repo.ready_stories(1);
    expect_code(&repo.run(&["run"]), 0);
    let parked = repo.root.join(".ai-sdlc/worktrees/.pool/0");
    std::fs::write(parked.join("stray.txt"), "someone was here\n").unwrap();
    repo.story("S-0002", "S2", 2, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert!(stderr(&out).contains("not reused"), "{}", stderr(&out));
    let found = repo.rec_file("S-0002.found").unwrap();
    assert!(!found.contains("cache from"), "{found}");
    assert!(parked.join("stray.txt").exists());
    let list = stdout(&repo.run(&["worktrees"]));
    assert!(
        list.contains("(parked for reuse)") && list.contains("dirty"),
        "{list}"
    );
}

#[test]
fn two_runners_with_reuse_never_share_a_worktree() {
    let repo = TestRepo::new();
    let agent = repo.agent(
        "own.sh",
        r#"
mkdir -p target
if [ -f target/owner ] && kill -0 "$(cat target/owner)" 2>/dev/null; then echo "$id met $(cat target/owner)" >> "$REC/violation"; fi
echo $$ > target/owner
sleep 0.3
rm -f target/owner
echo "$id" > "w-$id.txt"
"#,
    );
    ignore_also(&repo, "target/\n");
    config_with(&repo, &agent, serde_json::json!({"reuse": true}));
    for i in 1..=8 {
        repo.story(&format!("S-{i:04}"), &format!("S{i}"), i, "ready", "");
    }
    let a = repo.spawn(&["run", "--concurrent", "2"]);
    let b = repo.spawn(&["run", "--concurrent", "2"]);
    let (ca, _, ea) = finish(a, 60);
    let (cb, _, eb) = finish(b, 60);
    assert_eq!((ca, cb), (0, 0), "{ea}\n{eb}");
    assert_eq!(repo.rec_file("violation"), None);
    for i in 1..=8 {
        assert_eq!(repo.status(&format!("S-{i:04}")), "done");
    }
    // Worktrees were reused: fewer parked than stories.
    let parked = std::fs::read_dir(repo.root.join(".ai-sdlc/worktrees/.pool"))
        .unwrap()
        .count();
    assert!(parked < 8, "{parked} parked for 8 stories");
}

#[test]
fn shared_folders_are_links_to_the_main_checkout_and_go_with_the_worktree() {
    let repo = TestRepo::new();
    let r = &repo.root;
    ignore_also(&repo, "/node_modules\n.venv/\n");
    std::fs::create_dir_all(r.join("node_modules/left-pad")).unwrap();
    std::fs::write(r.join("node_modules/left-pad/index.js"), "pad\n").unwrap();
    std::fs::create_dir_all(r.join(".venv")).unwrap();
    let agent = repo.agent(
        "look.sh",
        r#"{ readlink node_modules; cat node_modules/left-pad/index.js; [ -e .venv ] || echo no-venv; } > "$REC/$id.seen""#,
    );
    config_with(
        &repo,
        &agent,
        serde_json::json!({"share": ["node_modules", ".venv"]}),
    );
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert_eq!(
        repo.rec_file("S-0001.seen").unwrap(),
        format!("{}\npad\nno-venv\n", r.join("node_modules").display())
    );
    // `.venv/` matches folders only: a link would be committed, so none is made.
    assert!(
        stderr(&out).contains("add `/.venv` to .gitignore"),
        "{}",
        stderr(&out)
    );
    // The link went with the worktree; what it pointed at did not.
    assert!(!repo.worktree("S-0001-s1").exists());
    assert!(r.join("node_modules/left-pad/index.js").exists());
    let files = git(
        r,
        &["show", "--name-only", "--format=", "ai-sdlc/S-0001-s1"],
    );
    assert!(!files.contains("node_modules"), "{files}");
    // A share that leaves the repo is a configuration error.
    repo.config_untrusted(serde_json::json!({"worktree": {"share": ["../elsewhere"]}}));
    let out = repo.run(&["status"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("worktree.share"), "{}", stderr(&out));
}

#[test]
fn a_worktreeinclude_that_is_a_link_out_of_the_repo_is_not_read() {
    let repo = TestRepo::new();
    // The link leads to a list outside the repo naming the user's secrets.
    let outside = repo.rec.join("elsewhere");
    std::fs::write(&outside, ".env\n").unwrap();
    std::os::unix::fs::symlink(&outside, repo.root.join(".worktreeinclude")).unwrap();
    ignore_also(&repo, ".env\n");
    std::fs::write(repo.root.join(".env"), "SECRET=1\n").unwrap();
    let agent = repo.agent(
        "look.sh",
        r#"[ -e .env ] && echo copied > "$REC/$id.seen"; true"#,
    );
    config_with(&repo, &agent, serde_json::json!({}));
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains(".worktreeinclude is not read"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.rec_file("S-0001.seen"), None, "the link was followed");
}
