//! The board: `Story`, `Status`, scanning the stories folder, queue order,
//! the slug rule, and writing fields back (SPEC §1, §4).

pub mod frontmatter;
pub mod lock;
mod new;
mod outcome;

pub use new::{NewStory, story_text};
pub use outcome::{Outcome, outcome_patch};

use crate::config::Config;
use crate::error::Error;
use crate::paths::{self, Dir, ReadError};
use frontmatter::{Change, Value};
use std::cmp::Ordering;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use yaml_rust2::Yaml;

pub const STORY_FILE: &str = "story.md";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Backlog,
    Ready,
    InProgress,
    Done,
    Blocked,
    /// A status this tool does not run (ai-sdlc has more); shown, never run.
    Other(String),
}

/// The statuses this tool runs or writes.
pub const STATUSES: [&str; 5] = ["backlog", "ready", "in-progress", "done", "blocked"];

impl Status {
    /// An `Other` status that looks like a typo of one of ours (`redy`):
    /// the one it meant.
    pub fn meant(&self) -> Option<&'static str> {
        let Status::Other(s) = self else {
            return None;
        };
        STATUSES
            .iter()
            .map(|k| (crate::config::distance(&s.to_lowercase(), k), *k))
            .filter(|(d, _)| *d <= 2)
            .min_by_key(|(d, _)| *d)
            .map(|(_, k)| k)
    }

    pub fn parse(s: &str) -> Status {
        match s {
            "backlog" => Status::Backlog,
            "ready" => Status::Ready,
            "in-progress" => Status::InProgress,
            "done" => Status::Done,
            "blocked" => Status::Blocked,
            other => Status::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Status::Backlog => "backlog",
            Status::Ready => "ready",
            Status::InProgress => "in-progress",
            Status::Done => "done",
            Status::Blocked => "blocked",
            Status::Other(s) => s,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Story {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub priority: Option<i64>,
    pub created: Option<String>,
    pub kind: Option<String>,
    pub labels: Vec<String>,
    pub epic: Option<String>,
    pub dependencies: Vec<String>,
    pub slug: String,
    pub branch: Option<String>,
    pub worktree_path: Option<String>,
    pub blocked_reason: Option<String>,
    /// The completion flags (`research_complete`, ...) that are `true`.
    pub complete: Vec<&'static str>,
    /// `last_run.outcome`: `running` while a run of this tool holds it.
    pub last_outcome: Option<String>,
    /// `last_run.log`.
    pub last_log: Option<String>,
    /// ai-sdlc's field for the story's pull request.
    pub pr_url: Option<String>,
    /// The branch its pull request targets (a stacked one: a dependency's).
    pub pr_base: Option<String>,
    /// When `ai-sdlc merge` merged its branch.
    pub merged_at: Option<String>,
    /// The commit its branch started from (its dependencies' work, or the
    /// base), when this tool made the branch.
    pub base_ref: Option<String>,
    /// Not to start before this time (ms since the epoch): parked at a
    /// usage cap until it lifts (SPEC §15).
    pub not_before: Option<u64>,
    /// `allow_empty: true`: it may be done without a change of its agent's.
    pub allow_empty: bool,
    /// `attempts: N`: how many attempts its implement phase gets (SPEC §17).
    pub attempts: Option<u32>,
    /// `attempt_agents: [claude, codex]`: the presets its attempts go to,
    /// round robin.
    pub attempt_agents: Vec<crate::agent::Preset>,
    /// The story's `story.md`, absolute.
    pub path: PathBuf,
}

impl Story {
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// In epic `name`: `epic: name` or the label `epic-name`.
    pub fn in_epic(&self, name: &str) -> bool {
        self.epic.as_deref() == Some(name)
            || self.labels.iter().any(|l| l == &format!("epic-{name}"))
    }

    /// The story's branch and worktree folder name: `<ID>-<slug>`.
    /// `in-progress` because a run of this tool started it (`last_run` says
    /// `running`); otherwise `in-progress` is a stage of the TS tool, which
    /// lasts between its commands.
    pub fn run_by_us(&self) -> bool {
        self.status == Status::InProgress && self.last_outcome.as_deref() == Some("running")
    }

    pub fn is_complete(&self, flag: &str) -> bool {
        self.complete.contains(&flag)
    }

    pub fn key(&self) -> String {
        if self.slug.is_empty() {
            self.id.clone()
        } else {
            format!("{}-{}", self.id, self.slug)
        }
    }
}

/// ai-sdlc's slug rule: lowercase, each run of characters outside `[a-z0-9]`
/// becomes one `-`, trimmed of `-`, cut to 50 characters.
pub fn slugify(title: &str) -> String {
    let mut out = String::with_capacity(title.len());
    for c in title.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    let cut: String = trimmed.chars().take(50).collect();
    cut.trim_end_matches('-').to_string()
}

/// Queue order (SPEC §4): priority ascending (none last), then `created`, then id.
pub fn queue_order(a: &Story, b: &Story) -> Ordering {
    let pa = a.priority.unwrap_or(i64::MAX);
    let pb = b.priority.unwrap_or(i64::MAX);
    pa.cmp(&pb)
        .then_with(|| match (&a.created, &b.created) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.id.cmp(&b.id))
}

/// A story file that could not be read.
#[derive(Debug, Clone)]
pub struct BadStory {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for BadStory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

fn yaml_string(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn field_error(field: &str, want: &str, got: &Yaml) -> String {
    let shown = match got {
        Yaml::String(s) => format!("{s:?}"),
        Yaml::Integer(i) => i.to_string(),
        Yaml::Real(r) => r.clone(),
        Yaml::Boolean(b) => b.to_string(),
        Yaml::Array(_) => "a list".to_string(),
        Yaml::Hash(_) => "a mapping".to_string(),
        other => format!("{other:?}"),
    };
    format!("field `{field}` must be {want}, got {shown}")
}

fn opt_string(map: &Yaml, field: &str) -> Result<Option<String>, String> {
    match &map[field] {
        Yaml::BadValue | Yaml::Null => Ok(None),
        y => yaml_string(y)
            .map(Some)
            .ok_or_else(|| field_error(field, "a string", y)),
    }
}

fn string_list(map: &Yaml, field: &str) -> Result<Vec<String>, String> {
    match &map[field] {
        Yaml::BadValue | Yaml::Null => Ok(Vec::new()),
        Yaml::Array(items) => items
            .iter()
            .map(|i| yaml_string(i).ok_or_else(|| field_error(field, "a list of strings", i)))
            .collect(),
        // ai-sdlc tolerates a single string where a list is expected; so do we.
        y => yaml_string(y)
            .map(|s| vec![s])
            .ok_or_else(|| field_error(field, "a list of strings", y)),
    }
}

/// Read a story from the text of its `story.md`; `folder` is the folder name.
pub fn parse_story(text: &str, path: &Path, folder: &str) -> Result<Story, String> {
    let map = frontmatter::parse(text)?;
    let id = opt_string(&map, "id")?.ok_or("required field `id` is missing")?;
    if id != folder {
        return Err(format!(
            "field `id` is {id:?} but the folder is {folder:?}; they must be equal"
        ));
    }
    let title = opt_string(&map, "title")?.ok_or("required field `title` is missing")?;
    let status = opt_string(&map, "status")?.ok_or("required field `status` is missing")?;
    let priority = match &map["priority"] {
        Yaml::BadValue | Yaml::Null => None,
        Yaml::Integer(n) => Some(*n),
        y => {
            return Err(field_error(
                "priority",
                "a whole number (lower runs first), like `priority: 2`",
                y,
            ));
        }
    };
    let slug = match opt_string(&map, "slug")? {
        Some(s) if !s.is_empty() => s,
        _ => slugify(&title),
    };
    Ok(Story {
        status: Status::parse(&status),
        priority,
        created: opt_string(&map, "created")?,
        kind: opt_string(&map, "type")?,
        labels: string_list(&map, "labels")?,
        epic: opt_string(&map, "epic")?,
        dependencies: string_list(&map, "dependencies")?,
        branch: opt_string(&map, "branch")?,
        worktree_path: opt_string(&map, "worktree_path")?,
        blocked_reason: opt_string(&map, "blocked_reason")?,
        complete: crate::workflow::FLAGS
            .into_iter()
            .filter(|f| map[*f].as_bool() == Some(true))
            .collect(),
        last_outcome: match &map["last_run"]["outcome"] {
            Yaml::String(s) => Some(s.clone()),
            _ => None,
        },
        last_log: match &map["last_run"]["log"] {
            Yaml::String(s) => Some(s.clone()),
            _ => None,
        },
        pr_url: opt_string(&map, "pr_url")?,
        pr_base: opt_string(&map, "pr_base")?,
        merged_at: opt_string(&map, "merged_at")?,
        // Given to git: only what ai-sdlc writes there, a commit id.
        base_ref: match opt_string(&map, "base_ref")? {
            Some(r) if !crate::git::is_object_id(&r) => {
                return Err(format!(
                    "field `base_ref` must be a commit id (40 hex digits), got {r:?}; ai-sdlc writes it when it makes the story's branch: remove the line"
                ));
            }
            r => r,
        },
        not_before: match opt_string(&map, "not_before")? {
            None => None,
            Some(t) => Some(crate::time::parse_iso(&t).ok_or_else(|| {
                format!("field `not_before` must be a UTC time like 2026-12-06T03:00:00Z, got {t:?}; fix it or remove the line")
            })?),
        },
        allow_empty: match &map["allow_empty"] {
            Yaml::Boolean(b) => *b,
            Yaml::BadValue | Yaml::Null => false,
            y => return Err(field_error("allow_empty", "true or false", y)),
        },
        attempts: match &map["attempts"] {
            Yaml::BadValue | Yaml::Null => None,
            Yaml::Integer(n) if (1..=crate::config::MAX_ATTEMPTS as i64).contains(n) => Some(*n as u32),
            y => {
                return Err(field_error(
                    "attempts",
                    &format!(
                        "a whole number from 1 to {}, like `attempts: 3`",
                        crate::config::MAX_ATTEMPTS
                    ),
                    y,
                ));
            }
        },
        attempt_agents: string_list(&map, "attempt_agents")?
            .iter()
            .map(|name| {
                crate::agent::Preset::parse(name)
                    .filter(|p| *p != crate::agent::Preset::Command)
                    .ok_or_else(|| {
                        format!(
                            "field `attempt_agents` names {name:?}, which is not a preset; use some of {}",
                            crate::agent::preset_names()
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
        path: path.to_path_buf(),
        slug,
        id,
        title,
    })
}

/// Every story of a board, and the files that could not be read.
#[derive(Debug, Default)]
pub struct Scan {
    /// In queue order.
    pub stories: Vec<Story>,
    pub bad: Vec<BadStory>,
}

impl Scan {
    pub fn get(&self, id: &str) -> Option<&Story> {
        self.stories.iter().find(|s| s.id == id)
    }
}

/// A story file is read only up to this size (the TS tool's busiest story
/// seen is 317 KB).
pub const MAX_STORY_BYTES: u64 = 4 << 20;

/// The stories folder of one repo. Every file in it is reached through
/// `paths`, never through a symlink the repo or an agent planted.
#[derive(Debug, Clone)]
pub struct Board {
    /// The repo root, which the tool trusts.
    pub root: PathBuf,
    /// The stories folder, below `root`.
    pub dir: PathBuf,
}

impl Board {
    pub fn of(config: &Config) -> Board {
        Board {
            root: config.root.clone(),
            dir: config.stories_dir(),
        }
    }

    fn folder(&self) -> io::Result<Dir> {
        paths::open_beneath(&self.root, &self.dir, false)
    }

    pub fn story_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub fn story_path(&self, id: &str) -> PathBuf {
        self.story_dir(id).join(STORY_FILE)
    }

    /// The story's folder, open (never through a symlink).
    pub fn open_story(&self, id: &str) -> io::Result<Dir> {
        if !paths::is_plain_name(id) || id.starts_with('.') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{id:?} is not a story id"),
            ));
        }
        self.folder()?.child(id)
    }

    /// Story folder names (whether or not their story parses).
    pub fn ids(&self) -> io::Result<Vec<String>> {
        let mut ids: Vec<String> = self
            .folder()?
            .entries()?
            .into_iter()
            .filter(|(name, is_dir)| *is_dir && !name.starts_with('.'))
            .map(|(name, _)| name)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The text of a story's `story.md`; `NotFound` when it has none.
    fn read_text(&self, dir: &Dir, id: &str) -> Result<String, ReadError> {
        let bytes = dir.read(STORY_FILE, MAX_STORY_BYTES)?;
        String::from_utf8(bytes).map_err(|_| {
            ReadError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{id}/{STORY_FILE} is not UTF-8 text"),
            ))
        })
    }

    fn parse_in(&self, dir: Result<Dir, io::Error>, id: &str) -> Result<Story, BadStory> {
        let path = self.story_path(id);
        let bad = |reason: String| BadStory {
            path: path.clone(),
            reason,
        };
        let dir = dir.map_err(|e| bad(format!("cannot open its folder: {e}")))?;
        let text = self.read_text(&dir, id).map_err(|e| match e {
            ReadError::TooBig(n) => bad(format!(
                "the file is {n} bytes, over the {MAX_STORY_BYTES}-byte limit for a story"
            )),
            e => bad(format!("cannot read: {e}")),
        })?;
        parse_story(&text, &path, id).map_err(bad)
    }

    /// The text of story `id`'s file, read as safely as `load` reads it.
    pub fn text(&self, id: &str) -> Result<String, String> {
        let shown = paths::rel(&self.root, &self.story_path(id));
        let dir = self
            .open_story(id)
            .map_err(|e| format!("cannot open {shown}: {e}"))?;
        self.read_text(&dir, id)
            .map_err(|e| format!("cannot read {shown}: {e}"))
    }

    /// The text of section file `file` of a story (`research.md`, ...),
    /// when it has one that can be read.
    pub fn section(&self, id: &str, file: &str) -> Option<String> {
        let dir = self.open_story(id).ok()?;
        match dir.read(file, MAX_STORY_BYTES) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                log::warn!("[{id}] cannot read its {file}: {e}");
                None
            }
        }
    }

    /// Write a section file of a story (atomically, never through a symlink).
    pub fn write_section(&self, id: &str, file: &str, text: &str) -> Result<(), String> {
        let shown = paths::rel(&self.root, &self.story_dir(id).join(file));
        self.open_story(id)
            .and_then(|dir| dir.replace(file, text.as_bytes(), None).map(|_| ()))
            .map_err(|e| format!("cannot write {shown}: {e}"))
    }

    /// Read one story.
    pub fn load(&self, id: &str) -> Result<Story, BadStory> {
        self.parse_in(self.open_story(id), id)
    }

    /// Read every story. A missing stories folder is an empty board.
    pub fn scan(&self) -> io::Result<Scan> {
        let folder = match self.folder() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Scan::default()),
            Err(e) => return Err(e),
        };
        let mut scan = Scan::default();
        for id in self.ids()? {
            let dir = folder.child(&id);
            if let Ok(d) = &dir
                && matches!(d.exists(STORY_FILE), Ok(false))
            {
                // A folder without story.md (logs of a deleted story, say) is not a story.
                continue;
            }
            match self.parse_in(dir, &id) {
                Ok(s) => scan.stories.push(s),
                Err(bad) => scan.bad.push(bad),
            }
        }
        scan.stories.sort_by(queue_order);
        Ok(scan)
    }

    /// Change fields of a story's frontmatter in place (SPEC §1): only when
    /// the result reads back as intended, and never over a save that
    /// landed meanwhile (the patch is redone on the new text).
    pub fn patch(&self, id: &str, changes: &[Change]) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        let shown = paths::rel(&self.root, &self.story_path(id));
        let dir = self
            .open_story(id)
            .map_err(|e| format!("cannot open {shown}: {e}"))?;
        patch_in(&dir, &shown, changes)
    }

    /// Make the folder and `story.md` of a new story; false when the id is taken.
    pub fn create(&self, id: &str, text: &str) -> io::Result<bool> {
        let folder = paths::open_beneath(&self.root, &self.dir, true)?;
        let dir = match folder.make_child(id) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e),
        };
        if let Err(e) = dir.replace(STORY_FILE, text.as_bytes(), None) {
            let _ = folder.remove_dir(id);
            return Err(e);
        }
        Ok(true)
    }
}

/// The lock the TS tool (proper-lockfile) takes while it writes a story:
/// a folder beside the file.
pub const TS_LOCK: &str = "story.md.lock";

/// How long a write waits for the TS tool's lock to go away.
const TS_LOCK_WAIT: Duration = Duration::from_secs(2);

/// A TS lock untouched this long was left by a TS process that died
/// (proper-lockfile refreshes its lock every 5 s and calls it stale after 10).
const TS_LOCK_STALE: Duration = Duration::from_secs(15);

/// The TS tool's lock, held by us while we write; removed on drop.
struct TsLock<'a> {
    dir: &'a Dir,
    ours: bool,
}

impl Drop for TsLock<'_> {
    fn drop(&mut self) {
        if self.ours {
            let _ = self.dir.remove_dir(TS_LOCK);
        }
    }
}

/// Take the TS tool's write lock in `dir`, as it does (an atomic `mkdir`),
/// so neither tool writes under the other. A held lock is waited for
/// briefly; a stale one is written past (TS removes it itself).
fn ts_lock<'a>(dir: &'a Dir, shown: &str) -> Result<TsLock<'a>, String> {
    let deadline = Instant::now() + TS_LOCK_WAIT;
    loop {
        match dir.make_child(TS_LOCK) {
            Ok(_) => return Ok(TsLock { dir, ours: true }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // Cannot make it (a read-only folder...): the write says why, if it fails.
            Err(_) => return Ok(TsLock { dir, ours: false }),
        }
        if dir.age(TS_LOCK).is_ok_and(|age| age > TS_LOCK_STALE) {
            log::warn!(
                "{shown}: the TS tool's lock {TS_LOCK} is stale (untouched for over {} s); writing anyway",
                TS_LOCK_STALE.as_secs()
            );
            return Ok(TsLock { dir, ours: false });
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the TS ai-sdlc is writing {shown} (its lock {TS_LOCK} is held); this update was skipped rather than written under its lock; run again once it is done (a lock untouched for 15 s is written past)"
            ));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Patch the `story.md` in `dir` (see `Board::patch`), under the TS
/// tool's lock.
pub fn patch_in(dir: &Dir, shown: &str, changes: &[Change]) -> Result<(), String> {
    let _lock = ts_lock(dir, shown)?;
    for _ in 0..10 {
        let text = dir
            .read(STORY_FILE, MAX_STORY_BYTES)
            .map_err(|e| format!("cannot read {shown}: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|_| format!("{shown} is not UTF-8 text")))?;
        let new = frontmatter::patch(&text, changes).map_err(|e| {
            format!(
                "cannot update {shown} safely: {e}; the file is unchanged. Write its frontmatter as plain `key: value` lines (lists and maps in block style), which ai-sdlc can update in place"
            )
        })?;
        match dir.replace(STORY_FILE, new.as_bytes(), Some(text.as_bytes())) {
            Ok(true) => return Ok(()),
            // Saved by someone else between our read and our rename: again.
            Ok(false) => continue,
            Err(e) => return Err(format!("cannot write {shown}: {e}")),
        }
    }
    Err(format!(
        "cannot update {shown}: it keeps changing while ai-sdlc writes it"
    ))
}

/// A string field value.
pub fn text(s: impl Into<String>) -> Option<Value> {
    Some(Value::Str(s.into()))
}

/// Why `story` cannot run yet, following its dependencies: one that names
/// no story, is `blocked` (from it, no path leads to done without a
/// person), or forms a cycle; `None` when nothing in its way is stuck (it
/// may still wait for a dependency to finish).
pub fn stuck(story: &Story, scan: &Scan) -> Option<String> {
    fn walk(id: &str, scan: &Scan, path: &mut Vec<String>) -> Option<String> {
        if let Some(at) = path.iter().position(|p| p == id) {
            let mut cycle = path[at..].to_vec();
            cycle.push(id.to_string());
            return Some(format!("in a dependency cycle: {}", cycle.join(" -> ")));
        }
        let Some(s) = scan.get(id) else {
            return Some(format!("{id}: no such story"));
        };
        if s.status == Status::Blocked {
            return Some(format!("{id}: it is blocked"));
        }
        if s.status == Status::Done {
            return None;
        }
        path.push(id.to_string());
        let found = s.dependencies.iter().find_map(|d| walk(d, scan, path));
        path.pop();
        found
    }
    let mut path = vec![story.id.clone()];
    story.dependencies.iter().find_map(|d| {
        let why = walk(d, scan, &mut path)?;
        Some(if why.starts_with(&format!("{d}:")) {
            format!("waiting on {why}")
        } else if why.starts_with("in a dependency cycle") {
            why
        } else {
            format!("waiting on {d}, which waits on {why}")
        })
    })
}

/// The board of `config`, read; an error names the folder.
pub fn scan(config: &Config) -> Result<Scan, Error> {
    Board::of(config).scan().map_err(|e| {
        Error::failed(format!(
            "cannot read {}: {e}",
            config.stories_dir().display()
        ))
    })
}

#[cfg(test)]
mod stuck_tests {
    use super::*;

    fn scan(stories: &[(&str, &str, &[&str])]) -> Scan {
        let stories = stories
            .iter()
            .map(|(id, status, deps)| {
                let text = format!(
                    "---\nid: {id}\ntitle: T\nstatus: {status}\ndependencies: [{}]\n---\n",
                    deps.join(", ")
                );
                parse_story(&text, &PathBuf::from("/b").join(id), id).unwrap()
            })
            .collect();
        Scan {
            stories,
            bad: Vec::new(),
        }
    }

    #[test]
    fn a_story_is_stuck_behind_a_missing_or_blocked_dependency_or_a_cycle() {
        let s = scan(&[
            ("A", "ready", &["X"]),
            ("B", "ready", &["C"]),
            ("C", "blocked", &[]),
            ("D", "ready", &["B"]),
            ("E", "ready", &["F"]),
            ("F", "ready", &["E"]),
            ("G", "ready", &["H"]),
            ("H", "ready", &[]),
            ("I", "ready", &["J"]),
            ("J", "done", &[]),
        ]);
        let why = |id: &str| stuck(s.get(id).unwrap(), &s);
        assert_eq!(why("A").as_deref(), Some("waiting on X: no such story"));
        assert_eq!(why("B").as_deref(), Some("waiting on C: it is blocked"));
        assert_eq!(
            why("D").as_deref(),
            Some("waiting on B, which waits on C: it is blocked")
        );
        assert_eq!(
            why("E").as_deref(),
            Some("in a dependency cycle: E -> F -> E")
        );
        assert_eq!(
            why("G"),
            None,
            "a dependency that is merely not done yet is not stuck"
        );
        assert_eq!(why("I"), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rule() {
        assert_eq!(slugify("Fix login"), "fix-login");
        assert_eq!(
            slugify("  Add OAuth2 (Google) -- & GitHub!! "),
            "add-oauth2-google-github"
        );
        assert_eq!(slugify("Ünïcode café"), "n-code-caf");
        assert_eq!(slugify("!!!"), "");
        let long = "word ".repeat(20);
        let s = slugify(&long);
        assert!(s.len() <= 50 && !s.ends_with('-'), "{s}");
    }

    fn story(id: &str, priority: Option<i64>, created: Option<&str>) -> Story {
        parse_story(
            &format!(
                "---\nid: {id}\ntitle: t\nstatus: ready\n{}{}---\n",
                priority
                    .map(|p| format!("priority: {p}\n"))
                    .unwrap_or_default(),
                created
                    .map(|c| format!("created: '{c}'\n"))
                    .unwrap_or_default()
            ),
            Path::new("x"),
            id,
        )
        .unwrap()
    }

    #[test]
    fn queue_order_is_priority_then_created_then_id() {
        let mut v = [
            story("S-5", None, None),
            story("S-4", Some(2), Some("2024-01-02")),
            story("S-3", Some(2), Some("2024-01-01")),
            story("S-2", Some(2), Some("2024-01-01")),
            story("S-1", Some(9), None),
        ];
        v.sort_by(queue_order);
        let ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["S-2", "S-3", "S-4", "S-1", "S-5"]);
    }

    #[test]
    fn reads_every_field_and_reports_bad_ones() {
        let text = "---\nid: S-0001\ntitle: Fix login\nstatus: in-progress\npriority: 3\ncreated: 2024-01-02\ntype: bug\nlabels:\n  - epic-auth\n  - ui\ndependencies: [S-0000]\nbranch: ai-sdlc/S-0001-x\nfuture_field: {a: 1}\n---\nbody\n";
        let s = parse_story(text, Path::new("p"), "S-0001").unwrap();
        assert_eq!(s.status, Status::InProgress);
        assert_eq!(s.priority, Some(3));
        assert_eq!(s.created.as_deref(), Some("2024-01-02"));
        assert_eq!(s.kind.as_deref(), Some("bug"));
        assert!(s.in_epic("auth") && !s.in_epic("ui"));
        assert_eq!(s.dependencies, ["S-0000"]);
        assert_eq!(s.slug, "fix-login");
        assert_eq!(s.key(), "S-0001-fix-login");

        let e = parse_story(
            &text.replace("priority: 3", "priority: high"),
            Path::new("p"),
            "S-0001",
        )
        .unwrap_err();
        assert!(e.contains("priority"), "{e}");
        let e = parse_story(text, Path::new("p"), "S-0002").unwrap_err();
        assert!(e.contains("folder"), "{e}");
        let e =
            parse_story("---\nid: S-1\nstatus: ready\n---\n", Path::new("p"), "S-1").unwrap_err();
        assert!(e.contains("title"), "{e}");
    }

    #[test]
    fn a_save_that_lands_while_the_runner_patches_is_never_lost() {
        let root = std::env::temp_dir().join(format!("ai-sdlc-saves-{}", std::process::id()));
        let board = Board {
            root: root.clone(),
            dir: root.join("stories"),
        };
        std::fs::create_dir_all(board.story_dir("S-1")).unwrap();
        let file = |n: u32| format!("---\nid: S-1\ntitle: t\nstatus: ready\n---\nsave {n}\n");
        std::fs::write(board.story_path("S-1"), file(0)).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let editor = {
            let (path, done) = (board.story_path("S-1"), done.clone());
            std::thread::spawn(move || {
                // An editor's save: a whole new file, renamed into place.
                for n in 1..=1000 {
                    let tmp = path.with_extension(format!("save{n}"));
                    std::fs::write(&tmp, file(n)).unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let (mut patches, mut refused) = (0, 0);
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            // Refusing when the file never holds still is fine; overwriting a save is not.
            match board.patch("S-1", &[("updated", text(patches.to_string()))]) {
                Ok(()) => patches += 1,
                Err(e) if e.contains("keeps changing") => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(patches > 0, "every patch was refused ({refused})");
        editor.join().unwrap();
        let last = std::fs::read_to_string(board.story_path("S-1")).unwrap();
        assert!(
            last.ends_with("save 1000\n"),
            "a save was lost after {patches} patches:\n{last}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
