//! One board, two tools: a board the TypeScript ai-sdlc wrote
//! (`tests/fixtures/ts-board`, committed in a temp repo) run by this one.
//! Everything TS wrote stays as it was but the fields this tool owns; TS's
//! lasting `in-progress` stage, its branch and its logs are left alone;
//! the worktree's copy of the board says what the board says.

use crate::support::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ts-board");
const STANDINS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents/bin");

/// The fields this tool writes; every other line of a TS story stays.
const OWNED: [&str; 9] = [
    "status:",
    "started_at:",
    "updated:",
    "branch:",
    "worktree_path:",
    "finished_at:",
    "last_run:",
    "implementation_complete:",
    "blocked",
];

/// A copy of the TS board in a fresh repo, committed (as a team sharing
/// the board has it), after `edit` changes its config.
fn ts_repo(edit: impl FnOnce(&mut serde_json::Value)) -> TestRepo {
    let repo = TestRepo::new();
    let out = std::process::Command::new("cp")
        .args(["-R", &format!("{FIXTURE}/."), repo.root.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let path = repo.root.join(".ai-sdlc.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // The stand-in records what it was given in the test's folder: the
    // sandbox lets it (TS's own config has no `agent` key).
    cfg["agent"] = serde_json::json!({"sandbox": {"write": [repo.rec.to_string_lossy()]}});
    edit(&mut cfg);
    repo.config(cfg);
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-q", "-m", "the TS board"]);
    repo
}

/// The TS config's agent is `ai.provider: claude`: the stand-in answers.
fn run_ts(repo: &TestRepo, args: &[&str]) -> std::process::Output {
    let path = format!("{STANDINS}:{}", std::env::var("PATH").unwrap());
    let rec = repo.rec.display().to_string();
    repo.run_env(
        args,
        &[("PATH", &path), ("STANDIN_REC", &rec), ("IS_SANDBOX", "1")],
    )
}

/// Every file under `dir` (not `.git`, not worktrees), with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".git") || rel == Path::new(".ai-sdlc/worktrees") {
                continue;
            }
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn not_owned(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .filter(|l| !OWNED.iter().any(|o| l.starts_with(o)))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_run_of_a_ts_board_changes_only_the_fields_this_tool_owns() {
    let repo = ts_repo(|cfg| cfg["logs"] = serde_json::json!({"keep": 1}));
    let out = repo.run(&["status"]);
    expect_code(&out, 0);
    for id in ["S-0001", "S-0002", "S-0003", "S-0004", "S-0005", "S-0006"] {
        assert!(stdout(&out).contains(id), "{id}:\n{}", stdout(&out));
    }
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let before = files(&repo.root);

    // A dry run writes nothing at all.
    let out = run_ts(&repo, &["run", "--dry-run", "--concurrent", "3"]);
    expect_code(&out, 0);
    assert!(files(&repo.root) == before, "--dry-run changed a file");

    let out = run_ts(&repo, &["run", "--concurrent", "3"]);
    expect_code(&out, 0);
    assert!(
        stderr(&out).contains("[S-0005] is in-progress in the TS ai-sdlc"),
        "{}",
        stderr(&out)
    );
    let after = files(&repo.root);
    for (path, bytes) in &before {
        let now = after
            .get(path)
            .unwrap_or_else(|| panic!("{} is gone", path.display()));
        let story = path.ends_with("story.md");
        let ran = ["S-0001", "S-0002", "S-0003"]
            .iter()
            .any(|id| path.starts_with(format!(".ai-sdlc/stories/{id}")));
        if story && ran {
            assert_eq!(not_owned(now), not_owned(bytes), "{}", path.display());
        } else if path != Path::new(".ai-sdlc.json") {
            // TS's other files, its logs, S-0004..6 entirely: byte for byte.
            assert!(now == bytes, "{} changed", path.display());
        }
    }
    let story = |id: &str| {
        String::from_utf8(after[&PathBuf::from(format!(".ai-sdlc/stories/{id}/story.md"))].clone())
            .unwrap()
    };
    for id in ["S-0001", "S-0002", "S-0003"] {
        let s = story(id);
        assert!(s.contains("status: done"), "{s}");
        assert!(s.contains("implementation_complete: true"), "{s}");
        // TS's rule for `done` needs both flags; the default workflow ran
        // no review, so it does not claim one (workflow.markReviewed).
        assert!(s.contains("reviews_complete: false"), "{s}");
    }
    // S-0001 was planned by TS: its implement prompt carried TS's plan.
    let plan = std::fs::read_to_string(repo.root.join(".ai-sdlc/stories/S-0001/plan.md")).unwrap();
    let first_line = plan.lines().find(|l| !l.trim().is_empty()).unwrap();
    let prompt = repo.rec_file("S-0001.stdin").unwrap_or_default();
    assert!(
        prompt.contains(first_line.trim()),
        "plan not in the prompt:\n{prompt}"
    );
}

#[test]
fn a_ts_story_in_progress_is_resumed_on_its_own_branch_and_the_worktree_copy_stays_in_step() {
    let repo = ts_repo(|cfg| cfg["worktree"]["enabled"] = true.into());
    // S-0003's agent cannot log in: it fails, and its worktree is kept.
    let s3 = repo.story_path("S-0003");
    let text = std::fs::read_to_string(&s3).unwrap();
    std::fs::write(&s3, format!("{text}\nstand-in: auth\n")).unwrap();
    git(&repo.root, &["commit", "-q", "-am", "S-0003 will fail"]);

    let out = run_ts(&repo, &["run", "--concurrent", "3"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0003"), "blocked");
    assert_eq!(
        repo.status("S-0005"),
        "in-progress",
        "a TS stage is left alone"
    );
    // The kept worktree's copy of the board says what the board says, and
    // that is not a change of the story's: the worktree reads clean.
    let wt = PathBuf::from(repo.field("S-0003", "worktree_path").unwrap());
    assert!(wt.is_absolute() && wt.is_dir(), "{}", wt.display());
    let copy = std::fs::read_to_string(wt.join(".ai-sdlc/stories/S-0003/story.md")).unwrap();
    assert!(copy.contains("status: blocked"), "{copy}");
    assert!(copy.contains("blocked_reason:"), "{copy}");
    assert_eq!(git(&wt, &["status", "--porcelain"]), "");
    // A removed worktree leaves no pointer to it.
    for id in ["S-0001", "S-0002", "S-0003", "S-0005"] {
        if let Some(w) = repo.field(id, "worktree_path") {
            assert!(Path::new(&w).is_dir(), "{id} points at a missing {w}");
        }
    }
    assert_eq!(repo.field("S-0001", "worktree_path"), None);
    // The commit holds the agent's work, never the board.
    let files = git(
        &repo.root,
        &[
            "show",
            "--name-only",
            "--format=",
            "ai-sdlc/S-0001-add-login-page",
        ],
    );
    assert!(files.contains("notes-claude.txt"), "{files}");
    assert!(!files.contains(".ai-sdlc"), "{files}");

    // `run --story` takes over TS's story on TS's branch.
    let out = run_ts(&repo, &["run", "--story", "S-0005"]);
    expect_code(&out, 0);
    assert_eq!(
        repo.field("S-0005", "branch").as_deref(),
        Some("ai-sdlc/fifth-in-progress-by-ts")
    );
    let log = git(
        &repo.root,
        &["log", "--format=%s", "ai-sdlc/fifth-in-progress-by-ts"],
    );
    assert!(log.contains("S-0005:"), "{log}");
    assert_eq!(repo.status("S-0005"), "done");
    assert_eq!(repo.field("S-0005", "worktree_path"), None);
    // Removing a kept worktree by hand takes its pointer along too.
    let out = repo.run(&["worktrees", "remove", "S-0003"]);
    expect_code(&out, 0);
    assert!(!wt.exists());
    assert_eq!(repo.field("S-0003", "worktree_path"), None);
}

#[test]
fn a_write_waits_for_the_ts_lock_and_never_writes_under_it() {
    let repo = ts_repo(|_| {});
    let lock = repo.root.join(".ai-sdlc/stories/S-0003/story.md.lock");
    std::fs::create_dir(&lock).unwrap();
    let before = repo.read_story("S-0003");
    let out = run_ts(&repo, &["run", "--story", "S-0003"]);
    expect_code(&out, 1);
    assert!(stderr(&out).contains("story.md.lock"), "{}", stderr(&out));
    assert_eq!(repo.read_story("S-0003"), before);
    assert!(lock.is_dir(), "TS's lock is TS's to remove");
    // A lock nobody refreshed for a minute was left by a TS that died.
    let out = std::process::Command::new("touch")
        .args(["-d", "2 minutes ago", lock.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = run_ts(&repo, &["run", "--story", "S-0003"]);
    expect_code(&out, 0);
    assert_eq!(repo.status("S-0003"), "done");
    assert!(lock.is_dir());
}
