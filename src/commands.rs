//! The board commands: `init`, `add`, `status`.

use crate::agent::Preset;
use crate::board::frontmatter::scalar;
use crate::board::{self, Board, Scan, Status, lock};
use crate::cli::{AddArgs, InitArgs, PromptArgs, StatusArgs};
use crate::config::{self, CONFIG_FILE, Config};
use crate::error::{Failure, Outcome};
use crate::paths::{self, Dir, ReadError, rel};
use crate::process;
use crate::time;
use serde_json::json;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The repo to work in: `-C DIR` or the cwd, searched upward for a board.
pub fn locate(dir: Option<&Path>) -> Result<PathBuf, Failure> {
    let start = start_dir(dir)?;
    let root = config::find_root(&start).ok_or_else(|| {
        Failure::usage(format!(
            "no ai-sdlc board in {} or any folder above it; run `ai-sdlc init` in your repo first, or pass -C <repo>",
            start.display()
        ))
    })?;
    Ok(main_board(&root).unwrap_or(root))
}

/// When `root` is one of the tool's own story worktrees, its board is a
/// stale copy: the main checkout's root, whose board is the real one.
fn main_board(root: &Path) -> Option<PathBuf> {
    // A linked worktree has a `.git` file, not a folder.
    if !std::fs::symlink_metadata(root.join(".git")).ok()?.is_file() {
        return None;
    }
    let common = crate::git::run(
        root,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .ok()?;
    let common = PathBuf::from(common.trim());
    if common.file_name()? != ".git" {
        return None;
    }
    let main = common.parent()?.to_path_buf();
    let main = config::find_root(&main).filter(|m| m == &main)?;
    let base = Config::load(&main).ok()?.worktree_base();
    let base = base.canonicalize().unwrap_or(base);
    root.starts_with(&base).then(|| {
        log::info!(
            "{} is a story worktree; using the board of the main checkout, {}",
            root.display(),
            main.display()
        );
        main
    })
}

/// `-C DIR` made absolute, or the cwd.
pub fn start_dir(dir: Option<&Path>) -> Result<PathBuf, Failure> {
    match dir {
        Some(d) => fs::canonicalize(d)
            .and_then(|p| {
                if p.is_dir() {
                    Ok(p)
                } else {
                    Err(io::Error::other("not a directory"))
                }
            })
            .map_err(|e| Failure::usage(format!("cannot use -C {}: {e}", d.display()))),
        None => std::env::current_dir()
            .map_err(|e| Failure::usage(format!("cannot read the current directory: {e}"))),
    }
}

const GITIGNORE_LINES: [&str; 2] = [".ai-sdlc/worktrees/", ".ai-sdlc/stories/*/logs/"];

/// `.gitignore` is at most this big for `init` to extend it.
const MAX_GITIGNORE: u64 = 1 << 20;

/// The presets `init` may pick, in order of preference when several are on PATH.
const INIT_PRESETS: [Preset; 5] = [
    Preset::Claude,
    Preset::Codex,
    Preset::Gemini,
    Preset::Opencode,
    Preset::Aider,
];

/// The preset `init` writes, and a note on how it was chosen.
fn init_preset(asked: Option<&str>) -> Result<(Preset, String), Failure> {
    let names: Vec<&str> = INIT_PRESETS.iter().map(|p| p.name()).collect();
    if let Some(name) = asked {
        return match Preset::parse(name).filter(|p| INIT_PRESETS.contains(p)) {
            Some(p) => Ok((p, String::new())),
            None => Err(Failure::usage(format!(
                "--agent {name:?}: choose one of {}; for any other command, set agent.command in {CONFIG_FILE} yourself",
                names.join(", ")
            ))),
        };
    }
    let found = INIT_PRESETS
        .into_iter()
        .find(|p| p.program().is_some_and(process::on_path));
    Ok(match found {
        Some(p) => (p, format!(" (found {} on PATH)", p.name())),
        None => (
            Preset::Claude,
            format!(
                " (none of {} is on PATH; install Claude Code with `{}`, or pass --agent)",
                names.join(", "),
                Preset::Claude.install_hint()
            ),
        ),
    })
}

pub fn init(dir: Option<&Path>, args: &InitArgs) -> Outcome {
    let (preset, how) = init_preset(args.agent.as_deref())?;
    let root = start_dir(dir)?;
    let fail =
        |what: &str, e: &dyn std::fmt::Display| Failure::failed(format!("cannot {what}: {e}"));
    let stories = root.join(config::DEFAULT_FOLDER).join("stories");
    let mut done = Vec::new();
    let existed = stories.is_dir();
    paths::open_beneath(&root, &stories, true)
        .map_err(|e| fail(&format!("create {}", stories.display()), &e))?;
    done.push(if existed {
        "kept .ai-sdlc/stories/ (already there)".to_string()
    } else {
        "created .ai-sdlc/stories/".to_string()
    });
    let top = Dir::open(&root).map_err(|e| fail(&format!("open {}", root.display()), &e))?;
    let config_path = root.join(CONFIG_FILE);
    if top.exists(CONFIG_FILE).unwrap_or(true) {
        done.push(format!(
            "kept {CONFIG_FILE} (already there; `ai-sdlc trust --show` lists the commands it would run, `ai-sdlc trust` allows them)"
        ));
    } else {
        top.replace(
            CONFIG_FILE,
            config::default_file_text(preset).as_bytes(),
            None,
        )
        .map_err(|e| fail(&format!("write {}", config_path.display()), &e))?;
        done.push(format!(
            "created {CONFIG_FILE} (agent.preset: {}{how})",
            preset.name()
        ));
        // What init wrote, the user chose: trusted.
        let written = Config::load(&root).map_err(Failure::from)?;
        match crate::trust::record(&root, &crate::trust::commands(&written)) {
            Ok(_) => done.push("trusted the commands it names (ai-sdlc trust --show)".into()),
            Err(e) => done.push(format!("could not record trust ({e}); run `ai-sdlc trust`")),
        }
    }
    let ignore = root.join(".gitignore");
    let existing = match top.read(".gitignore", MAX_GITIGNORE) {
        Ok(bytes) => bytes,
        Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(fail(&format!("read {}", ignore.display()), &e)),
    };
    let text = String::from_utf8_lossy(&existing).into_owned();
    let missing: Vec<&str> = GITIGNORE_LINES
        .iter()
        .copied()
        .filter(|l| !text.lines().any(|e| e.trim() == *l))
        .collect();
    if !missing.is_empty() {
        let mut new = text.clone();
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str("# ai-sdlc: worktrees and run logs\n");
        for l in &missing {
            new.push_str(l);
            new.push('\n');
        }
        let written = top
            .replace(
                ".gitignore",
                new.as_bytes(),
                Some(&existing).filter(|e| !e.is_empty()).map(|e| &e[..]),
            )
            .map_err(|e| fail(&format!("write {}", ignore.display()), &e))?;
        if !written {
            return Err(Failure::failed(format!(
                "{} changed while ai-sdlc was updating it; run `ai-sdlc init` again",
                ignore.display()
            )));
        }
        done.push(format!(
            "{} .gitignore (worktrees, logs)",
            if existing.is_empty() {
                "created"
            } else {
                "updated"
            }
        ));
    }
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "Initialized an ai-sdlc board in {}", root.display());
    for d in done {
        let _ = writeln!(out, "  {d}");
    }
    if !root.join(".git").exists() {
        let _ = writeln!(
            out,
            "note: {} is not a git repo; `run` needs one for worktrees (git init && git commit), or use --no-worktree",
            root.display()
        );
    }
    let _ = writeln!(
        out,
        "\nNext:\n  ai-sdlc doctor                        # is the agent installed and logged in?\n  ai-sdlc add \"My first story\" --ready\n  ai-sdlc prompt S-0001                 # what the agent will be told\n  ai-sdlc run"
    );
    Ok(0)
}

/// `ai-sdlc prompt <ID> [--phase P]`: the exact prompt a phase would get.
pub fn prompt(config: &Config, args: &PromptArgs) -> Outcome {
    let board = Board::of(config);
    let story = board
        .load(&args.id)
        .map_err(|b| Failure::usage(format!("{}: {}", rel(&config.root, &b.path), b.reason)))?;
    let (workdir, branch, base) = if config.worktree.enabled {
        let base =
            crate::worktree::base_branch(&config.root, config.worktree.base_branch.as_deref())
                .unwrap_or_else(|_| "HEAD".into());
        let wbase = config.worktree_base();
        let (folder, branch) =
            crate::worktree::place(&config.root, &wbase, &story).map_err(Failure::usage)?;
        (wbase.join(folder), branch, base)
    } else {
        let branch = crate::worktree::base_branch(&config.root, None).unwrap_or_default();
        (config.root.clone(), branch.clone(), branch)
    };
    let mut job = crate::story::Job::new(config, &story, workdir, &branch, &base, false)
        .map_err(Failure::usage)?;
    job.load_prompts(config).map_err(Failure::usage)?;
    let names: Vec<&str> = job.phases.iter().map(|p| p.name.as_str()).collect();
    let phase = match &args.phase {
        Some(p) => job.phases.iter().find(|x| &x.name == p).ok_or_else(|| {
            Failure::usage(format!(
                "--phase {p:?}: the workflow's phases are {}",
                names.join(", ")
            ))
        })?,
        None => job
            .phases
            .iter()
            .find(|p| {
                config
                    .phases
                    .iter()
                    .any(|c| c.name == p.name && c.command.is_none())
            })
            .unwrap_or(&job.phases[0]),
    };
    let mut text = crate::story::prompt_for(&job, phase, &job.sections, &[]);
    // The exact prompt, unless a terminal would run escape sequences in it.
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1 {
        text = crate::term::printable(&text).into_owned();
    }
    let mut out = io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    if names.first() != Some(&phase.name.as_str()) {
        errln!(
            "note: this prompt carries what the story's section files hold now; during a run, it also carries what the phases before {} say then",
            phase.name
        );
    }
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Failure::failed(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(0),
    }
}

const TYPES: [&str; 4] = ["feature", "bug", "chore", "spike"];

pub fn add(config: &Config, args: &AddArgs) -> Outcome {
    let title = args.title.trim();
    if title.is_empty() {
        return Err(Failure::usage(
            "add: the title is empty; give the story a title",
        ));
    }
    let kind = args.kind.as_deref().unwrap_or("feature");
    if !TYPES.contains(&kind) {
        return Err(Failure::usage(format!(
            "add: --type {kind:?} is not one of {}",
            TYPES.join(", ")
        )));
    }
    let board = Board::of(config);
    let scan = board::scan(config)?;
    for dep in &args.depends {
        if scan.get(dep).is_none() {
            errln!("warning: --depends {dep}: no such story on the board (yet)");
        }
    }
    let priority = args.priority.unwrap_or_else(|| {
        scan.stories
            .iter()
            .filter_map(|s| s.priority)
            .max()
            .unwrap_or(0)
            + 10
    });
    let ids = board.ids().unwrap_or_default();
    let mut number = ids
        .iter()
        .filter_map(|id| id.strip_prefix("S-").and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(0)
        + 1;
    let status = if args.ready {
        Status::Ready
    } else {
        Status::Backlog
    };
    // The folder is made exclusively: if another `add` took the number first, take the next.
    let id = loop {
        let id = format!("S-{number:04}");
        let text = board::story_text(&board::NewStory {
            id: &id,
            title,
            priority,
            status: status.as_str(),
            kind,
            labels: &args.label,
            dependencies: &args.depends,
            body: "<!-- What to build and how to check it: the agent gets this body (without the frontmatter) in its prompt. -->",
        });
        match board.create(&id, &text) {
            Ok(true) => break id,
            Ok(false) => number += 1,
            Err(e) => {
                return Err(Failure::failed(format!(
                    "cannot create {}: {e}",
                    board.story_path(&id).display()
                )));
            }
        }
    };
    outln!("{id}");
    Ok(0)
}

const GROUPS: [&str; 5] = ["in-progress", "ready", "backlog", "blocked", "done"];

pub fn status(config: &Config, args: &StatusArgs) -> Outcome {
    let scan = board::scan(config)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let board = Board::of(config);
    let held = |s: &board::Story| s.status == Status::InProgress && lock::is_held(&board, &s.id);
    let res = if args.json {
        let stories: Vec<_> = scan
            .stories
            .iter()
            .map(|s| {
                json!({
                    "id": s.id, "title": s.title, "status": s.status.as_str(),
                    "priority": s.priority, "created": s.created, "type": s.kind,
                    "labels": s.labels, "epic": s.epic, "dependencies": s.dependencies,
                    "slug": s.slug, "branch": s.branch, "worktree_path": s.worktree_path,
                    "pr_url": s.pr_url, "merged_at": s.merged_at,
                    "blocked_reason": s.blocked_reason,
                    "path": rel(&config.root, &s.path),
                    "claimed": held(s),
                })
            })
            .collect();
        let errors: Vec<_> = scan
            .bad
            .iter()
            .map(|b| json!({"path": rel(&config.root, &b.path), "reason": b.reason}))
            .collect();
        writeln!(out, "{}", json!({"stories": stories, "errors": errors}))
    } else {
        print_board(&mut out, config, &scan, held)
    };
    let flushed = res.and_then(|_| out.flush());
    drop(out);
    if !args.json {
        for b in &scan.bad {
            errln!(
                "warning: {}: {} (skipped; fix the file to bring it back)",
                rel(&config.root, &b.path),
                b.reason
            );
        }
    }
    match flushed {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Failure::failed(format!("cannot write to stdout: {e}"))),
    }
}

fn print_board(
    out: &mut impl Write,
    config: &Config,
    scan: &Scan,
    held: impl Fn(&board::Story) -> bool,
) -> io::Result<()> {
    let n = scan.stories.len();
    writeln!(
        out,
        "Board {} ({n} {})",
        config.root.display(),
        if n == 1 { "story" } else { "stories" }
    )?;
    if n == 0 {
        writeln!(
            out,
            "\nNo stories yet. Add one: ai-sdlc add \"Fix login\" --ready"
        )?;
    }
    let title_width = scan
        .stories
        .iter()
        .map(|s| s.title.chars().count())
        .max()
        .unwrap_or(0)
        .min(48);
    let mut others: Vec<&str> = scan
        .stories
        .iter()
        .map(|s| s.status.as_str())
        .filter(|s| !GROUPS.contains(s))
        .collect();
    others.sort();
    others.dedup();
    for group in GROUPS.iter().copied().chain(others) {
        let members: Vec<&board::Story> = scan
            .stories
            .iter()
            .filter(|s| s.status.as_str() == group)
            .collect();
        if members.is_empty() {
            continue;
        }
        writeln!(out, "\n{} ({})", group.to_uppercase(), members.len())?;
        for s in members {
            let title: String = if s.title.chars().count() > title_width {
                let mut t: String = s.title.chars().take(title_width - 1).collect();
                t.push('…');
                t
            } else {
                s.title.clone()
            };
            let note = match s.status {
                Status::InProgress if held(s) => "running (claimed by a runner)".to_string(),
                Status::InProgress if !s.run_by_us() => {
                    "a stage of the TS ai-sdlc (not a run of this tool); `run --story` takes it over".to_string()
                }
                Status::InProgress => match crate::runner::plan::busy_worktree(config, s) {
                    Some(pid) => {
                        format!("no runner holds it, but process {pid} still works in its worktree")
                    }
                    None => "stale: no runner holds it; the next `run` returns it to ready".into(),
                },
                Status::Blocked => s.blocked_reason.clone().unwrap_or_default(),
                Status::Done => match (&s.merged_at, &s.pr_url) {
                    (Some(_), Some(u)) => format!("merged; PR {u}"),
                    (Some(_), None) => "merged".to_string(),
                    (None, Some(u)) => format!("PR {u}"),
                    (None, None) => String::new(),
                },
                _ if !s.dependencies.is_empty() => format!("after {}", s.dependencies.join(", ")),
                _ => String::new(),
            };
            let prio = s
                .priority
                .map(|p| format!("p{p}"))
                .unwrap_or_else(|| "p-".into());
            let line = format!(
                "  {:<8} {:>5}  {:<title_width$}  {}",
                s.id, prio, title, note
            );
            writeln!(out, "{}", crate::term::printable(line.trim_end()))?;
        }
    }
    Ok(())
}
