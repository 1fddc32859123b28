//! Files: symlinks and `..` in the board, hostile story files, writes that fail.

use crate::support::*;

/// A folder outside the repo with files in it: nothing the tool does may
/// change it (checked by content and by count).
struct Victim {
    dir: TempDir,
}

impl Victim {
    fn new() -> Victim {
        let dir = TempDir::new("victim");
        for name in ["a.log", "b.log", "precious.txt"] {
            std::fs::write(dir.0.join(name), format!("{name} must survive\n")).unwrap();
        }
        Victim { dir }
    }

    fn path(&self) -> &std::path::Path {
        &self.dir.0
    }

    /// Every file below the folder, with its bytes, sorted.
    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.0.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    stack.push(p.clone());
                    out.push((p.display().to_string(), Vec::new()));
                } else {
                    out.push((
                        p.display().to_string(),
                        std::fs::read(&p).unwrap_or_default(),
                    ));
                }
            }
        }
        out.sort();
        out
    }
}

fn symlink(target: &std::path::Path, link: &std::path::Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn symlinks_and_dotdot_in_the_board_never_lead_outside_the_repo() {
    let repo = TestRepo::new();
    let victim = Victim::new();
    let before = victim.snapshot();
    repo.with_agent(
        "a.sh",
        "echo work > work.txt && git add -A && git commit -qm work",
    );
    repo.ready_stories(1);
    // A committed `logs` symlink: rotation must never delete the victim's *.log.
    repo.story("S-0002", "Logs link", 2, "ready", "");
    symlink(
        victim.path(),
        &repo.root.join(".ai-sdlc/stories/S-0002/logs"),
    );
    // A story file that is a symlink out of the repo.
    let s3 = repo.root.join(".ai-sdlc/stories/S-0003/story.md");
    symlink(&victim.path().join("precious.txt"), &s3);
    // A slug that climbs out of the worktree base.
    let climb = format!("x/{}{}/y", "../".repeat(12), victim.path().display());
    repo.story(
        "S-0004",
        "Climber",
        4,
        "ready",
        &format!("slug: '{climb}'\n"),
    );

    let out = repo.run(&["run", "--concurrent", "3"]);
    let err = stderr(&out);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "done", "{err}");
    assert_eq!(repo.status("S-0002"), "ready", "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert!(err.contains("S-0003/story.md"), "{err}");
    assert_eq!(repo.status("S-0004"), "ready", "{err}");
    assert!(err.contains("cannot be a worktree folder"), "{err}");
    assert!(!repo.started("S-0002") && !repo.started("S-0004"));
    assert_eq!(
        victim.snapshot(),
        before,
        "something outside the repo changed"
    );
}

#[test]
fn a_symlinked_board_worktree_base_or_gitignore_is_refused() {
    let repo = TestRepo::new();
    let victim = Victim::new();
    repo.with_agent("a.sh", "exit 0");
    repo.ready_stories(1);
    symlink(victim.path(), &repo.root.join(".ai-sdlc/worktrees"));
    let before = victim.snapshot();
    let out = repo.run(&["run"]);
    let err = stderr(&out);
    expect_code(&out, 1);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(repo.status("S-0001"), "ready", "{err}");
    assert!(!repo.started("S-0001"));
    assert_eq!(victim.snapshot(), before);

    // The stories folder itself a link to a folder holding a ready story.
    let other = TestRepo::new();
    other.with_agent("a.sh", "exit 0");
    let elsewhere = victim.path().join("board");
    std::fs::create_dir_all(elsewhere.join("S-0009")).unwrap();
    std::fs::copy(repo.story_path("S-0001"), elsewhere.join("S-0009/story.md")).unwrap();
    std::fs::remove_dir_all(other.root.join(".ai-sdlc/stories")).unwrap();
    symlink(&elsewhere, &other.root.join(".ai-sdlc/stories"));
    let before = victim.snapshot();
    for args in [&["status"][..], &["run"][..], &["add", "x"][..]] {
        let out = other.run(args);
        assert_ne!(code(&out), 0, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    }
    assert_eq!(victim.snapshot(), before);

    // `init` never writes through a symlinked .gitignore.
    let fresh = TempDir::new("init");
    symlink(
        &victim.path().join("precious.txt"),
        &fresh.0.join(".gitignore"),
    );
    let out = fresh
        .bin()
        .arg("-C")
        .arg(&fresh.0)
        .arg("init")
        .output()
        .unwrap();
    assert_ne!(code(&out), 0, "{}", stdout(&out));
    assert!(stderr(&out).contains(".gitignore"), "{}", stderr(&out));
    assert_eq!(victim.snapshot(), before);
}

#[test]
fn unusual_frontmatter_is_patched_faithfully_or_refused_untouched() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    let write = |id: &str, fm: &str| {
        let p = repo.story_path(id);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("---\n{fm}---\nBody of {id}.\n")).unwrap();
    };
    write(
        "S-0001",
        "id: S-0001\ntitle: Spaced\npriority: 1\nstatus   : ready  # keep me\n",
    );
    write(
        "S-0002",
        "{id: S-0002, title: Flow, priority: 2, status: ready}\n",
    );
    write(
        "S-0003",
        "id: S-0003\ntitle: Anchored\npriority: 3\nstatus: &st ready\nwas: *st\n",
    );
    let flow = repo.read_story("S-0002");
    let anchored = repo.read_story("S-0003");
    let out = repo.run(&["run", "--concurrent", "3"]);
    let err = stderr(&out);
    expect_code(&out, 1);
    let s1 = repo.read_story("S-0001");
    assert!(s1.contains("status: done  # keep me\n"), "{s1}");
    assert_eq!(s1.matches("status").count(), 1, "{s1}");
    assert_eq!(repo.read_story("S-0002"), flow);
    assert_eq!(repo.read_story("S-0003"), anchored);
    assert!(
        err.contains("cannot update") && err.contains("safely"),
        "{err}"
    );
    assert!(!repo.started("S-0002") && !repo.started("S-0003"));
}

/// Run the binary with its address space capped (KiB): a story that makes
/// it allocate gigabytes fails instead of taking the machine.
fn capped(repo: &TestRepo, kib: u64, args: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new("sh");
    cmd.env("XDG_CONFIG_HOME", repo.xdg())
        .arg("-c")
        .arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .arg("-C")
        .arg(&repo.root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().unwrap()
}

#[test]
fn hostile_story_files_are_reported_and_skipped_never_fatal() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.ready_stories(1);
    let dir = |id: &str| {
        let d = repo.root.join(".ai-sdlc/stories").join(id);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let fifo = std::ffi::CString::new(dir("S-0002").join("story.md").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    symlink(
        std::path::Path::new("/dev/zero"),
        &dir("S-0003").join("story.md"),
    );
    let nested = |n: usize| {
        format!(
            "---\nid: X\ntitle: t\nstatus: ready\nx:\n  {}x\n---\n",
            "- ".repeat(n)
        )
    };
    std::fs::write(
        dir("S-0004").join("story.md"),
        nested(1_000).replace("X", "S-0004"),
    )
    .unwrap();
    std::fs::write(
        dir("S-0005").join("story.md"),
        nested(50_000).replace("X", "S-0005"),
    )
    .unwrap();
    let mut bomb = String::from(
        "---\nid: S-0006\ntitle: t\nstatus: ready\na0: &a0 [x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..9 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 9].join(",")
        ));
    }
    bomb.push_str("---\n");
    assert!(bomb.len() < 1024);
    std::fs::write(dir("S-0006").join("story.md"), bomb).unwrap();

    let (c, out, err) = finish(capped(&repo, 1 << 20, &["status"]), 20);
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("S-0001"), "{out}");
    for id in ["S-0002", "S-0003", "S-0004", "S-0005", "S-0006"] {
        assert!(
            err.contains(&format!("{id}/story.md")),
            "{id} not reported:\n{err}"
        );
    }
    assert!(err.contains("not a regular file"), "{err}");
    let (c, _, err) = finish(capped(&repo, 1 << 20, &["add", "Another"]), 20);
    assert_eq!(c, 0, "{err}");
    let (c, _, err) = finish(capped(&repo, 1 << 21, &["run", "--concurrent", "2"]), 60);
    assert_eq!(c, 0, "{err}");
    assert_eq!(repo.status("S-0001"), "done", "{err}");
}

#[test]
fn an_outcome_that_cannot_be_written_exits_1_and_says_what_is_on_disk() {
    let repo = TestRepo::new();
    repo.with_agent("rm.sh", "rm \"$AI_SDLC_STORY_FILE\"");
    repo.ready_stories(1);
    let out = repo.run(&["run", "--no-worktree"]);
    let err = stderr(&out);
    expect_code(&out, 1);
    assert!(err.contains("was not recorded"), "{err}");
    assert!(err.contains("cannot be read now"), "{err}");
}
