//! `ai-sdlc add <title>`: a new story, numbered after the highest.

use crate::board::{self, Board, Status};
use crate::cli::AddArgs;
use crate::config::Config;
use crate::error::Error;

const TYPES: [&str; 4] = ["feature", "bug", "chore", "spike"];

pub fn run(config: &Config, args: &AddArgs) -> Result<(), Error> {
    let title = args.title.trim();
    if title.is_empty() {
        return Err(Error::usage(
            "add: the title is empty; give the story a title",
        ));
    }
    let kind = args.kind.as_deref().unwrap_or("feature");
    if !TYPES.contains(&kind) {
        return Err(Error::usage(format!(
            "add: --type {kind:?} is not one of {}",
            TYPES.join(", ")
        )));
    }
    let body = description(args)?;
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
            body: body.as_deref().unwrap_or(TEMPLATE),
        });
        match board.create(&id, &text) {
            Ok(true) => break id,
            Ok(false) => number += 1,
            Err(e) => {
                return Err(Error::failed(format!(
                    "cannot create {}: {e}",
                    board.story_path(&id).display()
                )));
            }
        }
    };
    if args.edit {
        edit(config, &board.story_path(&id))?;
    }
    outln!("{id}");
    // A habitual `git commit -am` does not take a new file.
    if config.root.join(".git").exists() {
        errln!(
            "ai-sdlc: added {}; commit it: git add {} && git commit -m \"{id}\"",
            crate::paths::rel(&config.root, &board.story_path(&id)),
            crate::paths::rel(&config.root, &board.story_path(&id).with_file_name(""))
                .trim_end_matches('/')
        );
    }
    Ok(())
}

/// The body of a story made without `--body`.
const TEMPLATE: &str = "<!-- What to build and how to check it: the agent gets this body (without the frontmatter) in its prompt. -->";

/// A description is at most this big (a story file is read up to 4 MiB).
const MAX_BODY: u64 = 1 << 20;

/// `--body` or `--body-file` (`-`: standard input), if given.
fn description(args: &AddArgs) -> Result<Option<String>, Error> {
    use std::io::Read;
    let text = match (&args.body, &args.body_file) {
        (Some(_), Some(_)) => {
            return Err(Error::usage("add: give --body or --body-file, not both"));
        }
        (Some(b), None) => b.clone(),
        (None, Some(f)) => {
            let mut bytes = Vec::new();
            let read = if f == "-" {
                std::io::stdin()
                    .lock()
                    .take(MAX_BODY + 1)
                    .read_to_end(&mut bytes)
            } else {
                std::fs::File::open(f)
                    .and_then(|file| file.take(MAX_BODY + 1).read_to_end(&mut bytes))
            };
            read.map_err(|e| Error::usage(format!("add: --body-file {f}: {e}")))?;
            if bytes.len() as u64 > MAX_BODY {
                return Err(Error::usage(format!(
                    "add: --body-file {f}: over {} MiB; a story's description is shorter",
                    MAX_BODY >> 20
                )));
            }
            String::from_utf8(bytes).map_err(|_| {
                Error::usage(format!(
                    "add: --body-file {f}: not UTF-8 text; save it as UTF-8"
                ))
            })?
        }
        (None, None) => return Ok(None),
    };
    let text = text.trim().to_string();
    Ok((!text.is_empty()).then_some(text))
}

/// `--edit`: the user's editor on the new story, as git runs one (through
/// the shell, so `EDITOR="code -w"` works); then whether it says more than
/// its title.
fn edit(config: &Config, path: &std::path::Path) -> Result<(), Error> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".to_string());
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("{editor} \"$1\""), "editor"])
        .arg(path)
        .current_dir(&config.root)
        .status()
        .map_err(|e| Error::failed(format!("add --edit: cannot run {editor:?}: {e}")))?;
    if !status.success() {
        return Err(Error::failed(format!(
            "add --edit: {editor:?} exited with {status}; the story is there as it was left: {}",
            crate::paths::rel(&config.root, path)
        )));
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if crate::prompt::description(&text).is_empty() {
        errln!(
            "ai-sdlc: warning: {} still says nothing but its title; the agent would get the title alone",
            crate::paths::rel(&config.root, path)
        );
    }
    Ok(())
}
