//! The repo's shared git state, guarded while agents run (SPEC §13).
//!
//! Every worktree shares the main repo's `.git/config`, its hooks and its
//! `info/attributes`, and so does the user's own checkout: an agent that
//! writes there (`git config core.fsmonitor <cmd>`, a `post-checkout`
//! hook) makes git run its commands for everyone, later. The guard keeps
//! a snapshot of that state from before any agent ran; when a story's
//! agent ends, the state is compared with it, and any change is undone
//! (what the agent wrote is kept beside the story's log) and reported.
//!
//! Attribution: with several stories at once, a change cannot be pinned
//! on one agent. It is blamed on every story whose agent ran since the
//! state was last seen clean; each of them is blocked with the change named.

use crate::paths::{self, Dir, Kind};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A file larger than this is fingerprinted by size only and cannot be
/// restored (no such file belongs in `.git/config` or hooks).
const MAX_FILE: u64 = 1 << 20;
/// Entries read per folder (hooks).
const MAX_ENTRIES: usize = 512;

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    File { bytes: Vec<u8>, mode: u32 },
    TooBig(u64),
    Link(String),
    Dir,
    Other,
}

/// Path (relative to the git dir, `/`-separated) -> what is there.
type Snapshot = BTreeMap<String, Entry>;

/// Visit each entry of the shared state: its folder, its name there, and
/// its key (its path below the git dir).
fn each_entry(git_dir: &Dir, visit: &mut dyn FnMut(&Dir, &str, String)) {
    visit(git_dir, "config", "config".into());
    visit(git_dir, "config.worktree", "config.worktree".into());
    if let Ok(info) = git_dir.child("info") {
        visit(&info, "attributes", "info/attributes".into());
    }
    if let Ok(hooks) = git_dir.child("hooks") {
        let mut names: Vec<String> = hooks
            .entries()
            .unwrap_or_default()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        for n in names.iter().take(MAX_ENTRIES) {
            visit(&hooks, n, format!("hooks/{n}"));
        }
    }
    if let Ok(wts) = git_dir.child("worktrees") {
        let folders = wts.entries().unwrap_or_default();
        for (n, _) in folders.into_iter().filter(|(_, d)| *d).take(MAX_ENTRIES) {
            if let Ok(wt) = wts.child(&n) {
                visit(
                    &wt,
                    "config.worktree",
                    format!("worktrees/{n}/config.worktree"),
                );
            }
        }
    }
}

/// The files and folders that make up the shared state, with their contents.
fn read_state(git_dir: &Dir) -> Snapshot {
    let mut snap = Snapshot::new();
    each_entry(git_dir, &mut |dir, name, key| {
        let entry = match dir.kind(name) {
            Ok(Kind::File(mode)) => match dir.read(name, MAX_FILE) {
                Ok(bytes) => Entry::File { bytes, mode },
                Err(paths::ReadError::TooBig(n)) => Entry::TooBig(n),
                Err(_) => return,
            },
            Ok(Kind::Link) => Entry::Link(dir.readlink(name).unwrap_or_default()),
            Ok(Kind::Dir) => Entry::Dir,
            Ok(Kind::Other) => Entry::Other,
            Err(_) => return,
        };
        snap.insert(key, entry);
    });
    snap
}

/// The same entries by fingerprint only (no reads).
fn quick_state(git_dir: &Dir) -> BTreeMap<String, [i64; 5]> {
    let mut out = BTreeMap::new();
    each_entry(git_dir, &mut |dir, name, key| {
        if let Ok(f) = dir.fingerprint(name) {
            out.insert(key, f);
        }
    });
    out
}

/// `section.key=value` of a git config text, as far as a simple reader
/// sees it: enough to name what changed (nothing: "changed config").
fn config_entries(text: &str) -> BTreeSet<(String, String)> {
    crate::git::config_entries(text)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// What changed from `before` to `after`, in words: "set core.fsmonitor",
/// "added hooks/post-checkout".
fn describe(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for k in keys {
        match (before.get(k), after.get(k)) {
            (Some(a), Some(b)) if a == b => {}
            (None, Some(_)) => out.push(format!("added {k}")),
            (Some(_), None) => out.push(format!("removed {k}")),
            (Some(Entry::File { bytes: a, .. }), Some(Entry::File { bytes: b, .. }))
                if k.ends_with("config") || k.ends_with("config.worktree") =>
            {
                let (old, new) = (
                    config_entries(&String::from_utf8_lossy(a)),
                    config_entries(&String::from_utf8_lossy(b)),
                );
                let old_keys: BTreeSet<&String> = old.iter().map(|(k, _)| k).collect();
                let new_keys: BTreeSet<&String> = new.iter().map(|(k, _)| k).collect();
                let mut named = Vec::new();
                for (key, _) in new.difference(&old) {
                    named.push(format!("set {key}"));
                }
                for key in old_keys.difference(&new_keys) {
                    named.push(format!("unset {key}"));
                }
                named.dedup();
                if named.is_empty() {
                    named.push(format!("changed {k}"));
                } else if k != "config" {
                    named.iter_mut().for_each(|n| *n = format!("{n} (in {k})"));
                }
                out.extend(named);
            }
            _ => out.push(format!("changed {k}")),
        }
    }
    out
}

/// Open (or make) the folder `rel` below `base`.
fn folder(base: &Dir, rel: &str) -> std::io::Result<Dir> {
    base.descend(Path::new(rel), true)
}

/// Put `before` back where `after` differs, keeping what was there in
/// `keep` (under the same relative paths). Returns what could not be undone.
fn restore(git_dir: &Dir, before: &Snapshot, after: &Snapshot, keep: &Dir) -> Vec<String> {
    let mut failed = Vec::new();
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for k in keys {
        let (old, new) = (before.get(k), after.get(k));
        if old == new {
            continue;
        }
        let (parent, name) = match k.rsplit_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, k.as_str()),
        };
        let at = match parent {
            Some(p) => folder(git_dir, p),
            None => git_dir.descend(Path::new("."), false),
        };
        let kept = parent.map_or_else(|| keep.descend(Path::new("."), false), |p| folder(keep, p));
        let (Ok(at), Ok(kept)) = (at, kept) else {
            failed.push(k.clone());
            continue;
        };
        // What the agent left: moved aside (kept, never deleted).
        if new.is_some() && at.move_to(name, &kept, name).is_err() {
            // Another file system: keep a copy, then take it away.
            let copied = match new {
                Some(Entry::File { bytes, mode }) => kept
                    .replace_as(name, bytes, None, *mode & 0o644)
                    .map(|_| ()),
                Some(Entry::Link(t)) => kept.symlink(t, name),
                _ => Err(std::io::Error::other("cannot copy")),
            };
            if copied.is_err() || at.remove_file(name).is_err() {
                failed.push(k.clone());
                continue;
            }
        }
        let put_back = match old {
            None => Ok(()),
            Some(Entry::File { bytes, mode }) => {
                at.replace_as(name, bytes, None, *mode).map(|_| ())
            }
            Some(Entry::Link(t)) => at.symlink(t, name),
            Some(_) => Err(std::io::Error::other("cannot restore")),
        };
        if put_back.is_err() {
            failed.push(k.clone());
        }
    }
    failed
}

/// What a story is told when its agent changed the shared state.
#[derive(Debug, Clone)]
pub struct Tampered {
    pub changes: Vec<String>,
    /// Where what the agent wrote was kept.
    pub kept: Option<PathBuf>,
    /// Other stories whose agents ran at the time.
    pub others: Vec<String>,
    pub not_undone: Vec<String>,
}

impl Tampered {
    pub fn message(&self, root: &Path) -> String {
        let mut m = format!(
            "the agent changed the repo's shared git state, which every worktree and your own checkout use: {}",
            self.changes.join(", ")
        );
        if !self.others.is_empty() {
            m.push_str(&format!(
                " (while {} also ran; any of their agents may have made it)",
                self.others.join(", ")
            ));
        }
        if self.not_undone.is_empty() {
            m.push_str("; undone");
        } else {
            m.push_str(&format!(
                "; could NOT undo {}: check .git before running git there",
                self.not_undone.join(", ")
            ));
        }
        if let Some(k) = &self.kept {
            m.push_str(&format!(", what it wrote is in {}", paths::rel(root, k)));
        }
        m
    }
}

struct State {
    baseline: Snapshot,
    /// The baseline's fingerprints: when they all match, nothing is read.
    quick: BTreeMap<String, [i64; 5]>,
    /// Stories whose agent runs now.
    running: BTreeSet<String>,
    /// Stories whose agent ran since the state was last seen clean.
    suspects: BTreeSet<String>,
    /// Changes blamed on a story still running, for its end.
    blamed: BTreeMap<String, Tampered>,
}

pub struct Guard {
    git_dir: PathBuf,
    state: Mutex<State>,
}

impl Guard {
    /// The guard of the repo at `root`: its snapshot, taken now.
    pub fn new(root: &Path) -> Result<Guard, String> {
        let out = crate::git::run(
            root,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )?;
        let git_dir = PathBuf::from(out.trim());
        let dir = Dir::open(&git_dir).map_err(|e| format!("{}: {e}", git_dir.display()))?;
        Ok(Guard {
            state: Mutex::new(State {
                quick: quick_state(&dir),
                baseline: read_state(&dir),
                running: BTreeSet::new(),
                suspects: BTreeSet::new(),
                blamed: BTreeMap::new(),
            }),
            git_dir,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A story's agent is about to start.
    pub fn started(&self, id: &str) {
        let mut s = self.lock();
        s.running.insert(id.to_string());
        s.suspects.insert(id.to_string());
    }

    /// A story's agent has ended: compare, undo, and say what it (or an
    /// agent running beside it) changed. `keep` opens the folder where what
    /// an agent wrote is kept for story `id`.
    pub fn ended(&self, id: &str, keep: &dyn Fn(&str) -> Option<Dir>) -> Option<Tampered> {
        let mut s = self.lock();
        s.running.remove(id);
        if let Ok(dir) = Dir::open(&self.git_dir)
            && quick_state(&dir) != s.quick
        {
            let now = read_state(&dir);
            if now != s.baseline {
                let changes = describe(&s.baseline, &now);
                let suspects: Vec<String> = s.suspects.iter().cloned().collect();
                // Kept once, with the story that ends now (or the first suspect).
                let keeper = if suspects.iter().any(|x| x == id) {
                    id
                } else {
                    &suspects[0]
                };
                let kept_in = keep(keeper);
                let not_undone = match &kept_in {
                    Some(k) => restore(&dir, &s.baseline, &now, k),
                    None => changes.clone(),
                };
                for x in &suspects {
                    let others = suspects.iter().filter(|o| *o != x).cloned().collect();
                    s.blamed.insert(
                        x.clone(),
                        Tampered {
                            changes: changes.clone(),
                            kept: kept_in.as_ref().map(|k| k.path().to_path_buf()),
                            others,
                            not_undone: not_undone.clone(),
                        },
                    );
                }
                if !not_undone.is_empty() {
                    // What could not be undone stays the new normal, reported once.
                    s.baseline = read_state(&dir);
                }
            }
            // Restored files are new inodes: the next check compares with these.
            s.quick = quick_state(&dir);
        }
        // The state is clean now: only agents still running can change it.
        s.suspects = s.running.clone();
        s.blamed.remove(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_changes_are_named_by_key() {
        let f = |t: &str| Entry::File {
            bytes: t.as_bytes().to_vec(),
            mode: 0o644,
        };
        let before = Snapshot::from([
            (
                "config".to_string(),
                f("[core]\n\tbare = false\n[remote \"origin\"]\n\turl = x\n"),
            ),
            ("hooks/pre-commit.sample".to_string(), f("#!/bin/sh\n")),
        ]);
        let after = Snapshot::from([
            (
                "config".to_string(),
                f(
                    "[core]\n\tbare = false\n\tfsmonitor = \"touch /tmp/x\"\n[filter \"lfs2\"]\n\tsmudge = evil\n",
                ),
            ),
            ("hooks/pre-commit.sample".to_string(), f("#!/bin/sh\n")),
            ("hooks/post-checkout".to_string(), f("#!/bin/sh\nevil\n")),
        ]);
        assert_eq!(
            describe(&before, &after),
            [
                "set core.fsmonitor",
                "set filter.lfs2.smudge",
                "unset remote.origin.url",
                "added hooks/post-checkout"
            ]
        );
    }
}
