//! `ai-sdlc init`: the board folder, a default `.ai-sdlc.json` (trusted:
//! the user chose it) and `.gitignore` entries.

use crate::agent::Preset;
use crate::cli::InitArgs;
use crate::config::{self, CONFIG_FILE, Config};
use crate::error::Error;
use crate::paths::{self, Dir, ReadError};
use crate::process;
use std::io::{self, Write};
use std::path::Path;

const GITIGNORE_LINES: [&str; 3] = [
    ".ai-sdlc/worktrees/",
    ".ai-sdlc/stories/*/logs/",
    ".ai-sdlc/spend.jsonl",
];

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
fn init_preset(asked: Option<&str>) -> Result<(Preset, String), Error> {
    let names: Vec<&str> = INIT_PRESETS.iter().map(|p| p.name()).collect();
    if let Some(name) = asked {
        return match Preset::parse(name).filter(|p| INIT_PRESETS.contains(p)) {
            Some(p) => Ok((p, String::new())),
            None => Err(Error::usage(format!(
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

pub fn run(dir: Option<&Path>, args: &InitArgs) -> Result<(), Error> {
    let (preset, how) = init_preset(args.agent.as_deref())?;
    let root = config::start_dir(dir)?;
    let fail = |what: &str, e: &dyn std::fmt::Display| Error::failed(format!("cannot {what}: {e}"));
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
        match args.agent.as_deref() {
            // Asked for an agent: the board's config switches to it.
            Some(_) => done.extend(switch_agent(&root, &top, preset)?),
            None => done.push(format!(
                "kept {CONFIG_FILE} (already there; `ai-sdlc trust --show` lists the commands it would run, `ai-sdlc trust` allows them)"
            )),
        }
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
        let written = Config::load(&root).map_err(Error::from)?;
        match crate::trust::record(&root, &crate::trust::commands(&written)) {
            Ok(_) => done.push("trusted the commands it names (ai-sdlc trust --show)".into()),
            Err(e) => done.push(format!("could not record trust ({e}); run `ai-sdlc trust`")),
        }
    }
    if let Some(d) = ignore_entries(&root, &top)? {
        done.push(d);
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
    // What init wrote is uncommitted: a story branch made from the base
    // lacks it, and merging one back trips over the untracked .gitignore.
    let commit = if root.join(".git").exists() {
        "  git add .gitignore .ai-sdlc.json .ai-sdlc && git commit -m \"ai-sdlc board\"   # stories branch from what is committed\n"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "\nNext:\n{commit}  ai-sdlc doctor                        # is the agent installed and logged in?\n  ai-sdlc add \"My first story\" --ready\n  ai-sdlc prompt S-0001                 # what the agent will be told\n  ai-sdlc run"
    );
    Ok(())
}

/// `init --agent X` on a board that has a config: switch its agent to
/// `preset` (the other keys kept; `agent.model` and `agent.args`, which
/// belong to the old CLI, dropped and said). Trusted again only when all
/// it named was trusted before: init never trusts a stranger's commands.
fn switch_agent(root: &Path, top: &Dir, preset: Preset) -> Result<Vec<String>, Error> {
    let path = root.join(CONFIG_FILE);
    let fail = |e: &dyn std::fmt::Display| {
        Error::failed(format!(
            "cannot switch the agent in {}: {e}; fix the file (or set agent.preset there yourself), then run `ai-sdlc init --agent {}` again",
            path.display(),
            preset.name()
        ))
    };
    let bytes = top.read(CONFIG_FILE, 1 << 20).map_err(|e| fail(&e))?;
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::usage(format!(
            "{}: not JSON ({e}); fix it, then run `ai-sdlc init --agent {}` again",
            path.display(),
            preset.name()
        ))
    })?;
    let was_trusted = Config::load(root)
        .ok()
        .and_then(|c| crate::trust::untrusted_count(&c).ok())
        == Some(0);
    let Some(obj) = v.as_object_mut() else {
        return Err(fail(&"it is not a JSON object"));
    };
    let agent = obj.entry("agent").or_insert_with(|| serde_json::json!({}));
    let Some(agent) = agent.as_object_mut() else {
        return Err(fail(&"`agent` is not an object"));
    };
    if agent.contains_key("command") {
        return Err(Error::usage(format!(
            "{} sets agent.command (your own agent): remove it there to use the {} preset",
            path.display(),
            preset.name()
        )));
    }
    let old = agent
        .get("preset")
        .and_then(|p| p.as_str())
        .unwrap_or("none")
        .to_string();
    if old == preset.name() {
        return Ok(vec![format!(
            "kept {CONFIG_FILE} (agent.preset is {old} already)"
        )]);
    }
    agent.insert("preset".into(), preset.name().into());
    let mut out = vec![format!(
        "switched {CONFIG_FILE}: agent.preset {old} -> {}",
        preset.name()
    )];
    for key in ["model", "args"] {
        if let Some(value) = agent.remove(key) {
            out.push(format!("dropped agent.{key} {value} (it was {old}'s)"));
        }
    }
    if preset.needs_model() {
        out.push(format!(
            "{} needs agent.model in {CONFIG_FILE} to run unattended",
            preset.name()
        ));
    }
    let mut text = serde_json::to_string_pretty(&v).map_err(|e| fail(&e))?;
    text.push('\n');
    if !top
        .replace(CONFIG_FILE, text.as_bytes(), Some(&bytes))
        .map_err(|e| fail(&e))?
    {
        return Err(Error::failed(format!(
            "{} changed while ai-sdlc was updating it; run `ai-sdlc init --agent {}` again",
            path.display(),
            preset.name()
        )));
    }
    let written = Config::load(root).map_err(Error::from)?;
    out.push(if was_trusted {
        match crate::trust::record(root, &crate::trust::commands(&written)) {
            Ok(_) => "trusted the new agent (everything else it names was trusted already)".to_string(),
            Err(e) => format!("could not record trust ({e}); run `ai-sdlc trust`"),
        }
    } else {
        "not trusted: the config names commands you have not trusted; `ai-sdlc trust --show`, then `ai-sdlc trust`".to_string()
    });
    Ok(out)
}

/// Add the tool's entries (worktrees, logs) to the repo's `.gitignore`
/// where missing; what was done, if anything.
fn ignore_entries(root: &Path, top: &Dir) -> Result<Option<String>, Error> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Error::failed(format!("cannot {what}: {e}"));
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
    if missing.is_empty() {
        return Ok(None);
    }
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
        return Err(Error::failed(format!(
            "{} changed while ai-sdlc was updating it; run `ai-sdlc init` again",
            ignore.display()
        )));
    }
    Ok(Some(format!(
        "{} .gitignore (worktrees, logs)",
        if existing.is_empty() {
            "created"
        } else {
            "updated"
        }
    )))
}
