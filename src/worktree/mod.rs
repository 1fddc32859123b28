//! Story worktrees: check the repo, create or reuse `<basePath>/<ID>-<slug>`
//! on branch `ai-sdlc/<ID>-<slug>`, tell what a worktree holds that would
//! be lost with it, remove, list. Every git call goes through `git`.

use crate::git::{self, refs};
use crate::paths::{self, Dir};
use std::path::{Path, PathBuf};

pub mod env;
pub mod pool;

pub const BRANCH_PREFIX: &str = "ai-sdlc/";

/// Is `root` a git repo with at least one commit? The error says what to do.
pub fn check_repo(root: &Path) -> Result<(), String> {
    if !git::status::is_repo(root)? {
        return Err(format!(
            "{} is not a git repository; stories run in git worktrees. Run `git init && git add -A && git commit -m init` there, or pass --no-worktree",
            root.display()
        ));
    }
    if !refs::resolves(root, "HEAD^{commit}")? {
        return Err(format!(
            "the git repository at {} has no commit yet; worktrees branch from a commit. Make a first commit (git add -A && git commit -m init), or pass --no-worktree",
            root.display()
        ));
    }
    Ok(())
}

/// The branch worktrees start from: the configured one, or what the repo has checked out.
pub fn base_branch(root: &Path, configured: Option<&str>) -> Result<String, String> {
    if let Some(b) = configured {
        if !refs::resolves(root, &format!("{b}^{{commit}}"))? {
            return Err(format!(
                "worktree.baseBranch {b:?} is not a branch or commit in {}",
                root.display()
            ));
        }
        return Ok(b.to_string());
    }
    match refs::head_ref(root)? {
        Some(r) => Ok(r.strip_prefix("refs/heads/").unwrap_or(&r).to_string()),
        // Detached HEAD: branch from the commit itself.
        None => Ok(refs::commit_of(root, "HEAD")?),
    }
}

pub fn branch_name(key: &str) -> String {
    format!("{BRANCH_PREFIX}{key}")
}

/// Why `key` (`<ID>-<slug>`) cannot name a story's folder and branch, if it
/// cannot: checked before anything touches the filesystem. The rule is
/// stricter than git's for branch names: one plain path component of ASCII
/// letters, digits, `-`, `_` and `.`, no `..`, not starting with `.` or
/// `-`, not ending in `.` or `.lock`.
pub fn key_problem(key: &str) -> Option<String> {
    let safe = paths::is_plain_name(key)
        && !key.starts_with(['.', '-'])
        && key.len() <= 200
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !key.contains("..")
        && !key.ends_with(".lock")
        && !key.ends_with('.');
    if safe {
        return None;
    }
    Some(format!(
        "its id and slug make {key:?}, which cannot be a worktree folder and branch name; give the story a `slug:` of letters, digits and dashes"
    ))
}

/// One of the repo's worktrees: its folder and branch.
pub use git::worktree::Listed as Entry;

pub fn list(root: &Path) -> Result<Vec<Entry>, String> {
    Ok(git::worktree::list(root)?)
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The worktree base folder, made when missing. Inside the repo it is
/// reached without following a symlink; an absolute `basePath` outside the
/// repo is the user's own choice (the config is trusted).
pub fn base_dir(root: &Path, base: &Path) -> Result<Dir, String> {
    let opened = if base.starts_with(root) {
        paths::open_beneath(root, base, true)
    } else {
        std::fs::create_dir_all(base).and_then(|_| Dir::open(base))
    };
    opened.map_err(|e| format!("cannot use the worktree folder {}: {e}", base.display()))
}

/// Serializes worktree changes across every runner on this repo: git's own
/// locks do not make concurrent `git worktree add` and `prune` safe. An
/// flock on the base folder itself, which `git clean` cannot remove while
/// it holds worktrees. Held until dropped.
pub fn serialize(root: &Path, base: &Path) -> Result<Dir, String> {
    crate::paths::hold(base_dir(root, base)?)
        .map_err(|e| format!("cannot lock {}: {e}", base.display()))
}

/// `Ok` when the worktree `wt` is still tied to this repo the way `git
/// worktree add` tied it, in every file git follows from it: `wt/.git` is
/// a regular file (not a link) naming a folder in this repo's
/// `.git/worktrees/`; that folder's `commondir` leads back to this repo's
/// `.git`, its `gitdir` back to `wt/.git`, its `HEAD` names a branch or a
/// commit, and its `config.worktree` moves no work tree. An agent that
/// re-points any of them (at the main checkout's `.git`, at another repo)
/// would otherwise have the runner's next git call there (commit, switch,
/// update-index) write into that repo. Its metadata folder, when it is tied.
pub fn check_link(root: &Path, wt: &Path) -> Result<PathBuf, String> {
    let shown = paths::rel(root, &wt.join(".git"));
    let fail = |what: &str, why: String| {
        Err(format!(
            "{what} {why}; the worktree is no longer tied to this repo, so ai-sdlc runs no git there (an agent changed it?). Look at it, then remove the worktree with `ai-sdlc worktrees remove --force`"
        ))
    };
    // Inside the repo, reached without a link; a base outside it is the user's own.
    let opened = if wt.starts_with(root) {
        paths::open_beneath(root, wt, false)
    } else {
        Dir::open(wt)
    };
    let text = match opened.map_err(|e| e.to_string()) {
        Ok(dir) => match dir.read(".git", 4096) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => return fail(&shown, format!("cannot be read as a plain file ({e})")),
        },
        Err(e) => return fail(&shown, format!("cannot be reached ({e})")),
    };
    let Some(target) = text.trim().strip_prefix("gitdir:").map(str::trim) else {
        return fail(&shown, "is not a `gitdir:` link".into());
    };
    let target = wt.join(target);
    let common = common_dir(root)?;
    let ours = common.join("worktrees").canonicalize().ok();
    let gitdir = match target.canonicalize() {
        Ok(t) if t.parent().map(Path::to_path_buf) == ours && ours.is_some() => t,
        _ => return fail(&shown, format!("points at {}", target.display())),
    };
    let meta = |name: &str| format!("{} (its {name})", paths::rel(root, &gitdir.join(name)));
    // Its metadata folder, opened without following a link in it.
    let folder = Dir::open(&gitdir).map_err(|e| format!("{}: {e}", gitdir.display()))?;
    let read = |name: &str| -> Result<Option<String>, String> {
        match folder.read(name, 4096) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).trim().to_string())),
            Err(paths::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot be read as a plain file ({e})")),
        }
    };
    let same = |a: &Path, b: &Path| {
        a.canonicalize()
            .ok()
            .is_some_and(|x| Some(x) == b.canonicalize().ok())
    };
    match read("commondir") {
        Ok(Some(c)) if same(&gitdir.join(&c), &common) => {}
        Ok(Some(c)) => return fail(&meta("commondir"), format!("points at {c}")),
        Ok(None) => return fail(&meta("commondir"), "is missing".into()),
        Err(e) => return fail(&meta("commondir"), e),
    }
    match read("gitdir") {
        Ok(Some(g)) if same(Path::new(&g), &wt.join(".git")) => {}
        Ok(Some(g)) => return fail(&meta("gitdir"), format!("points at {g}")),
        Ok(None) => return fail(&meta("gitdir"), "is missing".into()),
        Err(e) => return fail(&meta("gitdir"), e),
    }
    match read("HEAD") {
        Ok(Some(h)) if head_is_plain(&h) => {}
        Ok(Some(h)) => return fail(&meta("HEAD"), format!("says {h:?}")),
        Ok(None) => return fail(&meta("HEAD"), "is missing".into()),
        Err(e) => return fail(&meta("HEAD"), e),
    }
    match read("config.worktree") {
        Ok(None) => {}
        Ok(Some(text)) => {
            let moved = git::harden::parse(&text)
                .map_err(|e| e.to_string())
                .and_then(|entries| {
                    match entries
                        .iter()
                        .find(|e| e.key == "core.worktree" || e.key == "core.bare")
                    {
                        Some(e) => Err(format!("sets {}", e.key)),
                        None => Ok(()),
                    }
                });
            if let Err(why) = moved {
                return fail(&meta("config.worktree"), why);
            }
        }
        Err(e) => return fail(&meta("config.worktree"), e),
    }
    Ok(gitdir)
}

/// A HEAD git will not follow out of the repo: a branch, or a commit.
fn head_is_plain(head: &str) -> bool {
    match head.strip_prefix("ref:") {
        Some(r) => {
            let r = r.trim();
            r.starts_with("refs/heads/") && !r.contains("..") && !r.contains('\\')
        }
        None => git::is_object_id(head),
    }
}

/// This repo's common git dir (its `.git`).
pub fn common_dir(root: &Path) -> Result<PathBuf, String> {
    if root.join(".git").is_dir() {
        return Ok(root.join(".git"));
    }
    Ok(refs::common_dir(root)?)
}

/// `Ok` when the worktree's HEAD is the tip of `branch` in this repo, as
/// the repo itself (not the worktree's metadata) sees it: the runner's
/// commit is on the story's branch here, not somewhere an agent sent it.
pub fn verify_on_branch(root: &Path, wt: &Path, branch: &str) -> Result<String, String> {
    let in_wt = refs::commit_of(wt, "HEAD")?;
    let in_repo = refs::commit_of(root, &format!("refs/heads/{branch}"))?;
    if in_wt.trim() != in_repo.trim() {
        return Err(format!(
            "the worktree's HEAD ({}) is not the tip of {branch} in this repo ({}): its commit is not on the story's branch",
            in_wt.trim(),
            in_repo.trim()
        ));
    }
    Ok(in_repo.trim().to_string())
}

/// What became of a story's worktree after its run.
#[derive(Debug, Clone, PartialEq)]
pub enum WorktreeFate {
    Removed,
    /// Parked in the pool for the next story (`worktree.reuse`).
    Parked,
    /// Kept, and why: "story failed", "2 uncommitted changes".
    Kept(String),
}

/// What `prepare` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    Created,
    /// The worktree was there already, on the story's branch (a resumed run).
    Reused,
    /// A parked worktree of an earlier story, switched to this one's branch.
    Pooled,
}

/// Why `branch` (a story's `branch:` field, which the TS tool may have
/// set) cannot be used, if it cannot: letters, digits, `-_./`, no `..`,
/// no empty part, not starting with `-`, not ending in `.lock`.
pub fn branch_problem(branch: &str) -> Option<String> {
    let safe = !branch.is_empty()
        && branch.len() <= 200
        && branch
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && !branch.starts_with('-')
        && !branch.contains("..")
        && branch
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.ends_with(".lock"));
    (!safe).then(|| {
        format!(
            "its branch field {branch:?} is not a branch name ai-sdlc uses; fix or clear `branch:`"
        )
    })
}

/// Where a story's worktree goes, and its branch: what the story names
/// (an earlier run set them, this tool's or the TS tool's: never
/// replaced), else `<base>/<ID>-<slug>` on `ai-sdlc/<ID>-<slug>`.
/// Returns the folder's name in `base` and the branch.
pub fn place(
    root: &Path,
    base: &Path,
    story: &crate::board::Story,
) -> Result<(String, String), String> {
    let key = story.key();
    let branch = story.branch.clone().unwrap_or_else(|| branch_name(&key));
    let Some(w) = story.worktree_path.as_deref().filter(|w| !w.is_empty()) else {
        return Ok((key, branch));
    };
    let path = root.join(w);
    let folder = path
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|_| path.parent().is_some_and(|p| same_path(p, base)))
        .filter(|n| paths::is_plain_name(n));
    match folder {
        Some(f) => Ok((f.to_string(), branch)),
        None => Err(format!(
            "its worktree_path {w:?} is not a folder in the worktree base {}; ai-sdlc does not work there. Clear `worktree_path:` to let it make one",
            base.display()
        )),
    }
}

/// Create or reuse the worktree `<base>/<folder>` on `branch`, branching
/// from `from` when the branch does not exist. `base` is the folder
/// `serialize` opened and holds.
pub fn prepare(
    root: &Path,
    base: &Dir,
    folder: &str,
    branch: &str,
    from: &str,
) -> Result<Prepared, String> {
    if let Some(why) = key_problem(folder).or_else(|| branch_problem(branch)) {
        return Err(why);
    }
    let key = folder;
    let path = base.path().join(key);
    if base.exists(key).map_err(|e| e.to_string())? {
        let entries = list(root)?;
        let ours = entries.iter().find(|e| same_path(&e.path, &path));
        return match ours {
            Some(e) if e.branch.as_deref() == Some(branch) => {
                check_link(root, &path)?;
                Ok(Prepared::Reused)
            }
            Some(e) => Err(format!(
                "{} is a worktree on {} rather than {branch}; remove it (ai-sdlc worktrees remove) or check out {branch} there",
                path.display(),
                e.branch.as_deref().unwrap_or("a detached HEAD")
            )),
            None => Err(format!(
                "{} exists and is not a git worktree of this repo; move it away and run again",
                path.display()
            )),
        };
    }
    let add = || {
        let new = !refs::branch_exists(root, branch)?;
        git::worktree::add(root, &path, branch, new.then_some(from))
    };
    if let Err(e) = add() {
        // A stale registration (its folder deleted by hand) makes git
        // refuse the path: forget those, and try once more.
        if !e.message.contains("registered") && !e.message.contains("already") {
            return Err(e.message);
        }
        git::worktree::prune(root)?;
        add()?;
    }
    Ok(Prepared::Created)
}

/// Uncommitted and untracked changes in the worktree, as `git status --porcelain` lines.
pub fn changes(path: &Path) -> Result<Vec<String>, String> {
    Ok(git::status::changes(path)?)
}

/// Files and folders in the worktree that git ignores (`out/`, `.env`):
/// not committed, and lost if the worktree were removed.
pub fn ignored(path: &Path) -> Result<Vec<String>, String> {
    Ok(git::status::with_ignored(path)?.1)
}

/// `Ok` when the worktree holds nothing that removing it would lose: HEAD
/// is the tip of `branch` (commits made on a detached HEAD or another
/// branch would otherwise become hard to find), and there are no
/// uncommitted, untracked or ignored files. Otherwise why to keep it.
pub fn removable(path: &Path, branch: &str) -> Result<(), String> {
    on_branch(path, branch)?;
    // One status for both: changes, and ignored files.
    let (c, mut ign) = git::status::with_ignored(path)?;
    if !c.is_empty() {
        return Err(uncommitted(c.len()));
    }
    // An agent CLI's own caches (aider's tags cache) are no one's work.
    ign.retain(|f| !crate::agent::CACHES.contains(&f.trim_end_matches('/')));
    if !ign.is_empty() {
        let shown: Vec<&str> = ign.iter().take(3).map(String::as_str).collect();
        let what = match (ign.len(), ign[0].ends_with('/')) {
            (1, true) => "folder",
            (1, false) => "file",
            _ => "files or folders",
        };
        return Err(format!(
            "{} git-ignored {what} the agent left ({}{})",
            ign.len(),
            shown.join(", "),
            if ign.len() > 3 { ", ..." } else { "" }
        ));
    }
    Ok(())
}

fn uncommitted(n: usize) -> String {
    format!(
        "{n} uncommitted or untracked {}",
        if n == 1 { "change" } else { "changes" }
    )
}

/// `removable` but for ignored files, which a parked worktree keeps (its
/// build caches are the point of parking it).
pub fn parkable(path: &Path, branch: &str) -> Result<(), String> {
    on_branch(path, branch)?;
    let c = changes(path)?;
    if !c.is_empty() {
        return Err(uncommitted(c.len()));
    }
    Ok(())
}

/// `Ok` when HEAD is the tip of `branch`.
fn on_branch(path: &Path, branch: &str) -> Result<(), String> {
    match refs::head_ref(path)? {
        Some(r) if r == format!("refs/heads/{branch}") => Ok(()),
        Some(r) => {
            let on = r.strip_prefix("refs/heads/").unwrap_or(&r);
            Err(format!("its HEAD is on {on}, not on {branch}"))
        }
        None => {
            let at = refs::short(path, "HEAD").unwrap_or_default();
            Err(format!(
                "its HEAD is detached (at {at}), not on {branch}; commits made there are only in this worktree"
            ))
        }
    }
}

/// Commit everything the agent changed in the worktree on `branch`
/// (`git add -A`: git-ignored files stay uncommitted). `None` when there
/// was nothing to commit. Refuses when HEAD is not on `branch`: the work
/// would land elsewhere.
pub fn commit(path: &Path, branch: &str, message: &str) -> Result<Option<String>, String> {
    let head = refs::head_ref(path).ok().flatten().unwrap_or_default();
    if head.trim() != format!("refs/heads/{branch}") {
        return Err(format!(
            "the agent left the worktree off {branch} ({}); its work is kept there, uncommitted",
            if head.trim().is_empty() {
                "HEAD detached".to_string()
            } else {
                format!("on {}", head.trim().trim_start_matches("refs/heads/"))
            }
        ));
    }
    Ok(git::commit::commit_all(path, message)?)
}

/// Remove a worktree. Without `force`, git refuses one with changes.
pub fn remove(root: &Path, path: &Path, force: bool) -> Result<(), String> {
    Ok(git::worktree::remove(root, path, force)?)
}

/// `git worktree prune`: forget worktrees whose folders are gone.
pub fn prune_registrations(root: &Path) -> Result<(), String> {
    Ok(git::worktree::prune(root)?)
}

/// The story branches (`ai-sdlc/*`) of the repo.
pub fn story_branches(root: &Path) -> Result<Vec<String>, String> {
    Ok(git::refs::list(root, "refs/heads/ai-sdlc/")?)
}
