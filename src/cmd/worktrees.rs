//! `ai-sdlc worktrees [list|remove <ID>|prune]`: the tool's worktrees, with
//! their story, state and size; removal that never loses uncommitted work
//! without --force, and never deletes a branch.

use crate::board::{Board, Scan, Status, Story, lock};
use crate::cli::{WorktreeAction, WorktreesArgs};
use crate::config::Config;
use crate::error::Error;
use crate::paths::rel;
use crate::worktree::{self, Entry};
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

/// One of our worktrees, and its story when the board has one.
struct Ours<'a> {
    entry: Entry,
    story: Option<&'a Story>,
    /// In the pool of parked worktrees (`worktree.reuse`).
    parked: bool,
}

/// The story's branch: the one it names, else ours.
fn branch_of(story: &crate::board::Story) -> String {
    story
        .branch
        .clone()
        .unwrap_or_else(|| worktree::branch_name(&story.key()))
}

/// The worktree at `path` is gone: so is the story's pointer to it (the
/// TS tool warns about, and will not resume, a story that points at a
/// missing worktree).
fn forget(config: &Config, story: Option<&crate::board::Story>, path: &std::path::Path) {
    let Some(s) = story else { return };
    let points_here = s.worktree_path.as_deref().is_some_and(|w| {
        let w = config.root.join(w);
        w == path || w.file_name() == path.file_name()
    });
    if points_here && let Err(e) = Board::of(config).patch(&s.id, &[("worktree_path", None)]) {
        errln!(
            "ai-sdlc: warning: [{}] its worktree_path still points at the removed worktree: {e}",
            s.id
        );
    }
}

fn ours<'a>(config: &Config, scan: &'a Scan) -> Result<Vec<Ours<'a>>, Error> {
    let base = config.worktree_base();
    let base = base.canonicalize().unwrap_or(base);
    let entries = worktree::list(&config.root).map_err(Error::usage)?;
    Ok(entries
        .into_iter()
        .filter(|e| e.path.starts_with(&base))
        .map(|entry| {
            let name = entry
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            let story = scan
                .stories
                .iter()
                .find(|s| {
                    name == s.key() || entry.branch.is_some() && entry.branch == Some(branch_of(s))
                })
                .or_else(|| {
                    scan.stories
                        .iter()
                        .find(|s| name.starts_with(&format!("{}-", s.id)) || name == s.id)
                });
            let parked = entry.path.parent().is_some_and(|p| {
                p.file_name()
                    .is_some_and(|n| n == crate::worktree::pool::POOL)
            });
            let story = if parked { None } else { story };
            Ours {
                entry,
                story,
                parked,
            }
        })
        .collect())
}

fn size_on_disk(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = p.symlink_metadata() else {
            continue;
        };
        total += std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
        if meta.is_dir()
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
        }
    }
    total
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// Seconds since the worktree was made (git writes its `.git` file then).
fn age_secs(path: &Path) -> Option<u64> {
    let made = path
        .join(".git")
        .metadata()
        .and_then(|m| m.modified())
        .ok()?;
    Some(
        SystemTime::now()
            .duration_since(made)
            .unwrap_or_default()
            .as_secs(),
    )
}

fn age(path: &Path) -> String {
    let Some(secs) = age_secs(path) else {
        return "?".into();
    };
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// "clean", "dirty (3)", or why it could not be told, from `worktree::changes`.
fn label(changes: &Result<Vec<String>, String>) -> String {
    match changes {
        Ok(c) if c.is_empty() => "clean".into(),
        Ok(c) => format!("dirty ({})", c.len()),
        Err(e) => format!("unknown: {e}"),
    }
}

pub fn run(config: &Config, args: &WorktreesArgs) -> Result<(), Error> {
    let scan = crate::board::scan(config)?;
    // Changes wait while a runner adds or removes a worktree.
    let serialize =
        || worktree::serialize(&config.root, &config.worktree_base()).map_err(Error::failed);
    match &args.action {
        Some(WorktreeAction::List(l)) if l.json => list_json(config, &scan),
        None if args.json => list_json(config, &scan),
        None | Some(WorktreeAction::List(_)) => list(config, &scan),
        Some(WorktreeAction::Remove(r)) => {
            let _lock = serialize()?;
            remove(config, &scan, &r.id, r.force)
        }
        Some(WorktreeAction::Prune(_)) => {
            let _lock = serialize()?;
            prune(config, &scan)
        }
    }
}

fn list(config: &Config, scan: &Scan) -> Result<(), Error> {
    let all = ours(config, scan)?;
    let mut out = std::io::stdout().lock();
    if all.is_empty() {
        let _ = writeln!(
            out,
            "No ai-sdlc worktrees under {}.",
            rel(&config.root, &config.worktree_base())
        );
        return Ok(());
    }
    let rows: Vec<[String; 7]> = all
        .iter()
        .map(|o| {
            [
                o.story.map(|s| s.id.clone()).unwrap_or_else(|| "?".into()),
                match (o.story, o.parked) {
                    (Some(s), _) => s.status.to_string(),
                    (None, true) => "(parked for reuse)".into(),
                    (None, false) => "(no story)".into(),
                },
                o.entry
                    .branch
                    .clone()
                    .unwrap_or_else(|| "(detached)".into()),
                label(&worktree::changes(&o.entry.path)),
                age(&o.entry.path),
                human_size(size_on_disk(&o.entry.path)),
                rel(&config.root, &o.entry.path),
            ]
        })
        .collect();
    let head = ["STORY", "STATUS", "BRANCH", "STATE", "AGE", "SIZE", "PATH"];
    let widths: Vec<usize> = (0..7)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(head.map(String::from)).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    Ok(())
}

/// `worktrees --json`: one object per worktree (an empty list for none).
fn list_json(config: &Config, scan: &Scan) -> Result<(), Error> {
    let list: Vec<serde_json::Value> = ours(config, scan)?
        .iter()
        .map(|o| {
            let changes = worktree::changes(&o.entry.path);
            serde_json::json!({
                "story": o.story.map(|s| s.id.clone()),
                "status": o.story.map(|s| s.status.to_string()),
                "parked": o.parked,
                "branch": o.entry.branch,
                "state": label(&changes),
                "clean": changes.as_ref().ok().map(|c| c.is_empty()),
                "age_s": age_secs(&o.entry.path),
                "size_bytes": size_on_disk(&o.entry.path),
                "path": rel(&config.root, &o.entry.path),
            })
        })
        .collect();
    outln!("{}", serde_json::Value::from(list));
    Ok(())
}

fn remove(config: &Config, scan: &Scan, id: &str, force: bool) -> Result<(), Error> {
    let all = ours(config, scan)?;
    let Some(o) = all.iter().find(|o| o.story.is_some_and(|s| s.id == id)) else {
        return Err(Error::usage(format!(
            "{id} has no worktree; `ai-sdlc worktrees` lists them"
        )));
    };
    let path = &o.entry.path;
    if o.story
        .is_some_and(|s| s.status == Status::InProgress && lock::is_held(&Board::of(config), &s.id))
    {
        return Err(Error::failed(format!(
            "{id} is running right now (a runner holds it); stop that run first"
        )));
    }
    let changes = worktree::changes(path);
    let st = label(&changes);
    let branch = o.story.map(branch_of).unwrap_or_default();
    if !force && let Err(why) = worktree::removable(path, &branch) {
        let mut msg = format!(
            "{} holds work that removing it would lose ({why}); commit it on {branch}, or pass --force to delete it",
            rel(&config.root, path)
        );
        let changes = changes.unwrap_or_default();
        let ignored = worktree::ignored(path).unwrap_or_default();
        let listed: Vec<String> = changes
            .into_iter()
            .chain(ignored.into_iter().map(|i| format!("!! {i}")))
            .collect();
        for c in listed.iter().take(20) {
            msg.push_str(&format!("\n  {c}"));
        }
        if listed.len() > 20 {
            msg.push_str(&format!("\n  ... and {} more", listed.len() - 20));
        }
        return Err(Error::failed(msg));
    }
    worktree::remove(&config.root, path, force)
        .map_err(|e| Error::failed(format!("git could not remove it: {e}")))?;
    forget(config, o.story, path);
    outln!(
        "removed {} ({st}); branch {} is kept",
        rel(&config.root, path),
        o.entry.branch.as_deref().unwrap_or("(none)")
    );
    Ok(())
}

fn prune(config: &Config, scan: &Scan) -> Result<(), Error> {
    let mut removed = 0;
    for o in ours(config, scan)? {
        let shown = rel(&config.root, &o.entry.path);
        if o.parked {
            // The pool is the tool's own: emptied, build caches and all.
            match worktree::remove(&config.root, &o.entry.path, true) {
                Ok(()) => {
                    outln!("removed {shown} (parked)");
                    removed += 1;
                }
                Err(e) => outln!("kept    {shown}: {e}"),
            }
            continue;
        }
        let Some(story) = o.story else {
            outln!("kept    {shown}: no story on the board matches it");
            continue;
        };
        if story.status != Status::Done {
            outln!("kept    {shown}: {} is {}", story.id, story.status);
            continue;
        }
        match worktree::removable(&o.entry.path, &branch_of(story)) {
            Err(why) => outln!("kept    {shown}: {why}"),
            Ok(()) => match worktree::remove(&config.root, &o.entry.path, false) {
                Ok(()) => {
                    forget(config, Some(story), &o.entry.path);
                    outln!("removed {shown}");
                    removed += 1;
                }
                Err(e) => outln!("kept    {shown}: {e}"),
            },
        }
    }
    worktree::prune_registrations(&config.root).map_err(Error::failed)?;
    outln!("{removed} removed; branches are kept; ran git worktree prune");
    Ok(())
}
