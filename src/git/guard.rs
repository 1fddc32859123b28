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
    crate::git::harden::parse(text)
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.key, e.value.unwrap_or_default()))
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

/// Where the baseline of a repo's shared git state is recorded, so that
/// every runner on the repo (and each of their executors) compares with
/// the same one: the state the user last had before any runner's agent
/// ran, not whatever a runner found when it started.
/// `$XDG_STATE_HOME/ai-sdlc/git-state/<hash of the repo's .git>/`: outside
/// the repo, beside what the user owns.
fn record_dir(git_dir: &Path) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".local/state"))
        })?;
    let key = git_dir
        .canonicalize()
        .unwrap_or_else(|_| git_dir.to_path_buf());
    let hash = crate::sha256::hex(key.as_os_str().as_encoded_bytes());
    Some(base.join("ai-sdlc").join("git-state").join(&hash[..32]))
}

const BASELINE: &str = "baseline.json";
/// The folder every running runner holds a shared lock on.
const RUNNERS: &str = "runners";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn to_json(snap: &Snapshot) -> String {
    let m: serde_json::Map<String, serde_json::Value> = snap
        .iter()
        .map(|(k, e)| {
            let v = match e {
                Entry::File { bytes, mode } => {
                    serde_json::json!({"file": hex(bytes), "mode": mode})
                }
                Entry::TooBig(n) => serde_json::json!({"too_big": n}),
                Entry::Link(t) => serde_json::json!({"link": t}),
                Entry::Dir => serde_json::json!({"dir": true}),
                Entry::Other => serde_json::json!({"other": true}),
            };
            (k.clone(), v)
        })
        .collect();
    serde_json::Value::Object(m).to_string()
}

fn from_json(text: &str) -> Option<Snapshot> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.as_object()?
        .iter()
        .map(|(k, e)| {
            let entry = if let Some(h) = e["file"].as_str() {
                Entry::File {
                    bytes: unhex(h)?,
                    mode: e["mode"].as_u64()? as u32,
                }
            } else if let Some(n) = e["too_big"].as_u64() {
                Entry::TooBig(n)
            } else if let Some(t) = e["link"].as_str() {
                Entry::Link(t.to_string())
            } else if e["dir"] == true {
                Entry::Dir
            } else {
                Entry::Other
            };
            Some((k.clone(), entry))
        })
        .collect()
}

/// The recorded baseline, shared by the runners of one repo.
struct Record {
    dir: Dir,
    /// Held shared while this runner runs (`None` for an executor).
    _runner: Option<Dir>,
}

impl Record {
    /// Hold the record's lock while `f` runs: one check or update at a time
    /// across runners and executors.
    fn locked<T>(&self, f: impl FnOnce(&Dir) -> T) -> T {
        let _ = crate::paths::flock(&self.dir, libc::LOCK_EX);
        let out = f(&self.dir);
        let _ = crate::paths::flock(&self.dir, libc::LOCK_UN);
        out
    }

    fn load(dir: &Dir) -> Option<Snapshot> {
        let bytes = dir.read(BASELINE, 64 << 20).ok()?;
        from_json(&String::from_utf8_lossy(&bytes))
    }

    fn save(dir: &Dir, snap: &Snapshot) {
        if let Err(e) = dir.replace(BASELINE, to_json(snap).as_bytes(), None) {
            log::warn!(
                "cannot record the repo's git state in {}: {e}",
                dir.path().display()
            );
        }
    }
}

/// Open (making it) the record folder for the repo's `.git`.
fn open_record(git_dir: &Path) -> Option<Dir> {
    let path = record_dir(git_dir)?;
    std::fs::create_dir_all(path.join(RUNNERS)).ok()?;
    Dir::open(&path).ok()
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
    record: Option<Record>,
}

/// The git dir of the repo at `root`.
fn common_git_dir(root: &Path) -> Result<PathBuf, String> {
    Ok(super::refs::common_dir(root)?)
}

impl Guard {
    /// The guard of a runner on the repo at `root`. Its baseline is the one
    /// recorded for the repo while any other runner runs on it; a runner
    /// alone on it records the state as it is now.
    pub fn new(root: &Path) -> Result<Guard, String> {
        let git_dir = common_git_dir(root)?;
        let dir = Dir::open(&git_dir).map_err(|e| format!("{}: {e}", git_dir.display()))?;
        let record = open_record(&git_dir).map(|d| {
            let runners = d.child(RUNNERS).ok();
            Record {
                dir: d,
                _runner: runners,
            }
        });
        let baseline = match &record {
            None => read_state(&dir),
            Some(r) => r.locked(|rd| {
                let others = r._runner.as_ref().is_some_and(|run| {
                    !matches!(
                        crate::paths::flock(run, libc::LOCK_EX | libc::LOCK_NB),
                        Ok(true)
                    )
                });
                let snap = match (others, Record::load(rd)) {
                    (true, Some(recorded)) => recorded,
                    _ => {
                        let now = read_state(&dir);
                        Record::save(rd, &now);
                        now
                    }
                };
                // Held shared from now on: the next runner sees this one.
                if let Some(run) = &r._runner {
                    let _ = crate::paths::flock(run, libc::LOCK_SH);
                }
                snap
            }),
        };
        Ok(Guard {
            state: Mutex::new(State {
                quick: quick_state(&dir),
                baseline,
                running: BTreeSet::new(),
                suspects: BTreeSet::new(),
                blamed: BTreeMap::new(),
            }),
            git_dir,
            record,
        })
    }

    /// The repo's git dir (its `.git`), where the guard looks.
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The guard of an executor, inside a runner's run: the runner's
    /// recorded baseline, if there is one (none: nothing to check).
    /// `git_dir`: the repo's git dir as the runner found it (else asked of
    /// git, which costs a process).
    pub fn attach(root: &Path, git_dir: Option<&Path>) -> Option<Guard> {
        let git_dir = match git_dir {
            Some(d) => d.to_path_buf(),
            None => common_git_dir(root).ok()?,
        };
        let rd = open_record(&git_dir)?;
        let record = Record {
            dir: rd,
            _runner: None,
        };
        let baseline = record.locked(Record::load)?;
        Some(Guard {
            state: Mutex::new(State {
                quick: BTreeMap::new(),
                baseline,
                running: BTreeSet::new(),
                suspects: BTreeSet::new(),
                blamed: BTreeMap::new(),
            }),
            git_dir,
            record: Some(record),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` holding the shared record's lock, if there is a record.
    fn shared<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.record {
            Some(r) => r.locked(|_| f()),
            None => f(),
        }
    }

    /// A story's agent is about to start.
    pub fn started(&self, id: &str) {
        let mut s = self.lock();
        s.running.insert(id.to_string());
        s.suspects.insert(id.to_string());
    }

    /// An executor's check after one of its agent's phases: the state is
    /// compared with the recorded baseline; a change is undone (what the
    /// agent wrote is kept in `keep`) and told, before any later phase
    /// (a trusted command that runs git) could run what was planted.
    pub fn check_now(&self, keep: &dyn Fn() -> Option<Dir>) -> Option<Tampered> {
        let s = self.lock();
        self.shared(|| {
            let dir = Dir::open(&self.git_dir).ok()?;
            let now = read_state(&dir);
            if now == s.baseline {
                return None;
            }
            let changes = describe(&s.baseline, &now);
            let kept_in = keep();
            let not_undone = match &kept_in {
                Some(k) => restore(&dir, &s.baseline, &now, k),
                None => changes.clone(),
            };
            Some(Tampered {
                changes,
                kept: kept_in.as_ref().map(|k| k.path().to_path_buf()),
                others: Vec::new(),
                not_undone,
            })
        })
    }

    /// A story's agent has ended: compare, undo, and say what it (or an
    /// agent running beside it) changed. `keep` opens the folder where what
    /// an agent wrote is kept for story `id`.
    pub fn ended(&self, id: &str, keep: &dyn Fn(&str) -> Option<Dir>) -> Option<Tampered> {
        let mut s = self.lock();
        s.running.remove(id);
        self.shared(|| self.compare(&mut s, id, keep));
        // The state is clean now: only agents still running can change it.
        s.suspects = s.running.clone();
        s.blamed.remove(id)
    }

    /// Compare the state with the baseline; undo a change, blaming every
    /// suspect.
    fn compare(&self, s: &mut State, id: &str, keep: &dyn Fn(&str) -> Option<Dir>) {
        let Ok(dir) = Dir::open(&self.git_dir) else {
            return;
        };
        if quick_state(&dir) == s.quick {
            return;
        }
        let now = read_state(&dir);
        if now != s.baseline {
            let changes = describe(&s.baseline, &now);
            let suspects: Vec<String> = s.suspects.iter().cloned().collect();
            // Kept once, with the story that ends now (or the first suspect).
            let keeper = if suspects.iter().any(|x| x == id) || suspects.is_empty() {
                id
            } else {
                &suspects[0]
            };
            let kept_in = keep(keeper);
            let not_undone = match &kept_in {
                Some(k) => restore(&dir, &s.baseline, &now, k),
                None => changes.clone(),
            };
            for x in suspects.iter().chain(std::iter::once(&id.to_string())) {
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
                if let Some(r) = &self.record {
                    Record::save(&r.dir, &s.baseline);
                }
            }
        }
        // Restored files are new inodes: the next check compares with these.
        s.quick = quick_state(&dir);
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
