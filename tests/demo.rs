//! `ai-sdlc demo`, the README's first command: it must work on a fresh machine.

use crate::support::*;

#[test]
fn the_demo_runs_six_stories_and_exits_0() {
    let tmp = TempDir::new("demo");
    let dir = tmp.0.join("demo");
    let out = tmp
        .bin()
        .args(["demo", "--concurrent", "3", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    expect_code(&out, 0);
    let board = tmp
        .bin()
        .arg("-C")
        .arg(&dir)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&board.stdout).unwrap();
    let stories = j["stories"].as_array().unwrap();
    assert_eq!(stories.len(), 6);
    for s in stories {
        let want = if s["id"] == "S-0004" {
            "blocked"
        } else {
            "done"
        };
        assert_eq!(s["status"], want, "{s}");
    }
    let reason = stories.iter().find(|s| s["id"] == "S-0004").unwrap()["blocked_reason"].clone();
    assert!(
        reason.as_str().unwrap().contains("integration test failed"),
        "{reason}"
    );
    // The demo landed the finished stories: S-0006 after its agent
    // resolved its conflict with S-0002.
    for s in stories.iter().filter(|s| s["status"] == "done") {
        assert!(s["merged_at"].is_string(), "{s}");
    }
    let changelog = std::fs::read_to_string(dir.join("CHANGELOG.md")).unwrap();
    assert!(
        changelog.contains("Write the command-line entry point")
            && changelog.contains("Polish the README")
            && !changelog.contains("<<<<<<<"),
        "{changelog}"
    );
    assert!(
        stdout(&out).contains("S-0006: landed after 1 resolve round"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("[S-0005] stacked on S-0001"),
        "{}",
        stderr(&out)
    );
    // S-0006 made three attempts; the smallest was kept, every one is reachable.
    assert!(
        stderr(&out).contains("[S-0006] chose attempt 2 (smallest)"),
        "{}",
        stderr(&out)
    );
    let attempts = git(&dir, &["for-each-ref", "refs/ai-sdlc/attempts/S-0006/"]);
    assert_eq!(attempts.lines().count(), 3, "{attempts}");
    let branches = git(&dir, &["branch", "--list", "ai-sdlc/*"]);
    assert_eq!(branches.lines().count(), 6, "{branches}");
    // The runner committed the agent's work on the story branch.
    let msg = git(
        &dir,
        &[
            "log",
            "-1",
            "--format=%B",
            "ai-sdlc/S-0001-add-a-greeting-module",
        ],
    );
    assert!(
        msg.starts_with("S-0001: Add a greeting module") && msg.contains("Story: S-0001"),
        "{msg}"
    );
    // The git-ignored build output is kept, with its worktree.
    let kept = dir.join(".ai-sdlc/worktrees/S-0003-document-the-public-api/build/report.txt");
    assert!(kept.exists(), "{}", stderr(&out));
    // The demo prints where to look next.
    assert!(stdout(&out).contains("logs S-0004"), "{}", stdout(&out));
    // A second demo into the same (now non-empty) folder is refused, and nothing changes.
    let again = tmp
        .bin()
        .args(["demo", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    expect_code(&again, 2);
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}
