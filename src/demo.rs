//! `ai-sdlc demo`: a throwaway git repo with six stories and a scripted
//! agent that needs only sh and git, run with `run --concurrent N`; then the
//! board, and where the branches, kept worktrees and logs are.

use crate::board::{NewStory, story_text};
use crate::config::{self};
use crate::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

const AGENT: &str = r#"#!/bin/sh
# The demo's scripted agent. A real one (claude -p, codex exec, ...) gets the
# same things: the story on stdin, the worktree as its cwd, AI_SDLC_* variables.
prompt=$(cat)
if [ "$AI_SDLC_PHASE" = resolve ]; then
  # `ai-sdlc land` gave the story back: its branch and main changed the
  # same lines. Keep both sides, as a person would here.
  for f in $(grep -rl '^<<<<<<< ' --exclude-dir=.git --exclude-dir=.ai-sdlc . ); do
    sed -i -e '/^<<<<<<< /d' -e '/^=======$/d' -e '/^>>>>>>> /d' "$f"
    echo "agent: resolved the conflict in $f, keeping both sides"
  done
  exit 0
fi
echo "agent: picked up $AI_SDLC_STORY_ID \"$AI_SDLC_STORY_TITLE\" on $AI_SDLC_BRANCH"
steps=$(( $(printf '%s' "$AI_SDLC_STORY_ID" | tr -cd '0-9' | sed 's/^0*//') % 3 + 1 ))
for step in reading planning editing; do
  [ "$steps" -gt 0 ] || break
  echo "agent: $step..."
  sleep 1
  steps=$((steps - 1))
done
case "$prompt" in
  *"demo: fail"*)
    echo "agent: running the integration tests"
    echo "error: integration test failed: expected HTTP 200, got 503" >&2
    exit 1 ;;
esac
mkdir -p src
file="src/$(printf '%s' "$AI_SDLC_STORY_ID" | tr 'A-Z' 'a-z').txt"
printf 'Work for %s: %s\n' "$AI_SDLC_STORY_ID" "$AI_SDLC_STORY_TITLE" > "$file"
if [ -n "$AI_SDLC_ATTEMPT" ]; then
  # One of several attempts at the story: each drafts it its own way.
  case "$AI_SDLC_ATTEMPT" in
    1) printf 'A long first draft,\nwith more words\nthan it needs.\n' >> "$file" ;;
    3) printf 'A second thought,\nin two lines.\n' >> "$file" ;;
  esac
  echo "agent: this is attempt $AI_SDLC_ATTEMPT"
fi
echo "agent: wrote $file (ai-sdlc commits it on the story branch)"
for dep in src/s-*.txt; do
  [ "$dep" = "$file" ] || echo "agent: building on $dep, which a story this one depends on wrote"
done
case "$prompt" in
  *"demo: changelog"*)
    echo "- $AI_SDLC_STORY_TITLE" >> CHANGELOG.md
    echo "agent: added a line to CHANGELOG.md" ;;
esac
case "$prompt" in
  *"demo: leave build output"*)
    mkdir -p build
    echo "a build report the agent left" > build/report.txt
    echo "agent: left build/report.txt, which git ignores" ;;
esac
"#;

/// The demo story whose agent fails on purpose (the fourth).
pub const FAILS_ON_PURPOSE: &str = "S-0004";

struct DemoStory {
    title: &'static str,
    body: &'static str,
    deps: &'static [&'static str],
    /// Several attempts at it, the best kept (SPEC §17).
    attempts: u32,
}

const STORIES: [DemoStory; 6] = [
    DemoStory {
        title: "Add a greeting module",
        body: "Create the greeting module.",
        deps: &[],
        attempts: 1,
    },
    DemoStory {
        title: "Write the command-line entry point",
        body: "Parse arguments and call the module.\n\ndemo: changelog (this story and S-0006 both add a line at the end of CHANGELOG.md: `ai-sdlc land` finds the conflict and gives it back to the agent)",
        deps: &[],
        attempts: 1,
    },
    DemoStory {
        title: "Document the public API",
        body: "Describe every function.\n\ndemo: leave build output (the agent leaves build/report.txt, which git ignores: it is not committed, and the worktree is kept so that it is not lost)",
        deps: &[],
        attempts: 1,
    },
    DemoStory {
        title: "Fix the flaky integration test",
        body: "demo: fail (this story fails on purpose, to show a blocked story)",
        deps: &[],
        attempts: 1,
    },
    DemoStory {
        title: "Validate user input",
        body: "Runs after S-0001 is done, stacked on its work: its worktree starts with S-0001's file.",
        deps: &["S-0001"],
        attempts: 1,
    },
    DemoStory {
        title: "Polish the README",
        body: "Make it read well.\n\ndemo: changelog\n\nIt gets three attempts, each in a worktree of its own; the smallest change is kept, and `ai-sdlc review S-0006` lists them.",
        deps: &[],
        attempts: 3,
    },
];

fn fail(what: &str, e: impl std::fmt::Display) -> Error {
    Error::failed(format!("demo: cannot {what}: {e}"))
}

pub fn make_dir(dir: Option<&Path>) -> Result<PathBuf, Error> {
    let dir = match dir {
        Some(d) => {
            if d.exists()
                && fs::read_dir(d)
                    .map(|mut r| r.next().is_some())
                    .unwrap_or(true)
            {
                return Err(Error::usage(format!(
                    "demo --dir {}: the folder exists and is not empty; give a new or empty folder",
                    d.display()
                )));
            }
            d.to_path_buf()
        }
        None => std::env::temp_dir().join(format!(
            "ai-sdlc-demo-{}",
            crate::time::file_stamp(crate::time::now_ms()).replace('.', "")
        )),
    };
    fs::create_dir_all(&dir).map_err(|e| fail(&format!("create {}", dir.display()), e))?;
    fs::canonicalize(&dir).map_err(|e| fail(&format!("resolve {}", dir.display()), e))
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| fail(&format!("create {}", parent.display()), e))?;
    }
    fs::write(path, text).map_err(|e| fail(&format!("write {}", path.display()), e))
}

pub fn build_repo(root: &Path) -> Result<(), Error> {
    let g = |args: &[&str]| {
        crate::git::run(root, args).map_err(|e| fail(&format!("run git {}", args.join(" ")), e))
    };
    g(&["init", "-q"])?;
    g(&["symbolic-ref", "HEAD", "refs/heads/main"])?;
    g(&["config", "user.name", "ai-sdlc demo"])?;
    g(&["config", "user.email", "demo@ai-sdlc.invalid"])?;
    g(&["config", "commit.gpgsign", "false"])?;
    write(
        &root.join("README.md"),
        "# Demo project\n\nMade by `ai-sdlc demo`.\n",
    )?;
    write(&root.join("CHANGELOG.md"), "# Changelog\n\n")?;
    write(
        &root.join(".gitignore"),
        ".ai-sdlc/worktrees/\n.ai-sdlc/stories/*/logs/\nbuild/\n",
    )?;
    let agent = root.join(".ai-sdlc").join("demo-agent.sh");
    write(&agent, AGENT)?;
    let cfg = serde_json::json!({
        "agent": { "command": ["sh", agent.to_string_lossy()] },
        "orchestrator": { "shutdownTimeout": 3000 },
    });
    write(&root.join(config::CONFIG_FILE), &format!("{cfg:#}\n"))?;
    for (i, s) in STORIES.iter().enumerate() {
        let id = format!("S-{:04}", i + 1);
        let deps: Vec<String> = s.deps.iter().map(|d| d.to_string()).collect();
        let mut text = story_text(&NewStory {
            id: &id,
            title: s.title,
            priority: (i as i64 + 1) * 10,
            status: "ready",
            kind: "feature",
            labels: &[],
            dependencies: &deps,
            body: s.body,
        });
        if s.attempts > 1 {
            text = text.replacen(
                "status: ready\n",
                &format!("status: ready\nattempts: {}\n", s.attempts),
                1,
            );
        }
        write(
            &root.join(".ai-sdlc/stories").join(&id).join("story.md"),
            &text,
        )?;
    }
    g(&["add", "-A"])?;
    g(&["commit", "-q", "-m", "Demo project with six stories"])?;
    Ok(())
}
