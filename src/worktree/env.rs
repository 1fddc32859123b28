//! A story's worktree made ready to work in (SPEC §12): the ignored files
//! `.worktreeinclude` names, copied from the main checkout, and the
//! `worktree.share` folders, linked to it.
//!
//! What is copied or linked is recorded, so that before a worktree is
//! removed or parked exactly those files (when still as copied) and links
//! go again; anything an agent changed or added keeps the worktree.

use crate::git;
use crate::paths::{self, Dir, Kind, shareable};
use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

pub const INCLUDE_FILE: &str = ".worktreeinclude";

/// Copying stops past this many files (a `.worktreeinclude` that names a
/// huge tree by mistake should not fill the disk eight times over).
const MAX_FILES: u64 = 200_000;

/// What was put into a worktree, to take away again.
#[derive(Debug, Default)]
pub struct Placed {
    /// Copied files: path in the worktree, size and mtime as copied.
    files: Vec<(PathBuf, u64, Option<SystemTime>)>,
    /// Folders made for them, outermost first.
    dirs: Vec<PathBuf>,
    /// Symlinks made (copied ones and shares): path and target.
    links: Vec<(PathBuf, String)>,
    pub bytes: u64,
    pub skipped: Vec<String>,
}

impl Placed {
    pub fn count(&self) -> usize {
        self.files.len() + self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0 && self.dirs.is_empty()
    }
}

fn split(rel: &Path) -> (PathBuf, String) {
    let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (parent, name)
}

/// The folder `rel` in the worktree, made when missing (and recorded).
fn dest_dir(wt: &Dir, rel: &Path, placed: &mut Placed) -> std::io::Result<Dir> {
    let mut dir = wt.descend(Path::new("."), false)?;
    let mut at = PathBuf::new();
    for part in rel.components() {
        let Component::Normal(n) = part else {
            return Err(std::io::Error::other("not a plain path"));
        };
        let n = n.to_string_lossy();
        at.push(&*n);
        dir = match dir.child(&n) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let d = dir.make_child(&n)?;
                placed.dirs.push(at.clone());
                d
            }
            Err(e) => return Err(e),
        };
    }
    Ok(dir)
}

/// Copy `rel` (a file, a symlink as a symlink, or a folder) from the main
/// checkout into the worktree, never over anything already there.
fn copy(
    src_root: &Dir,
    wt: &Dir,
    rel: &Path,
    placed: &mut Placed,
    depth: u32,
) -> std::io::Result<()> {
    if depth > 64 || placed.files.len() as u64 >= MAX_FILES {
        return Ok(());
    }
    let (parent, name) = split(rel);
    let src = src_root.descend(&parent, false)?;
    match src.kind(&name)? {
        Kind::File(mode) => {
            let dst = dest_dir(wt, &parent, placed)?;
            let mut out = match dst.create_new(&name) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    placed.skipped.push(rel.to_string_lossy().into_owned());
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            let mut input = src.open_regular(&name)?;
            let n = std::io::copy(&mut input, &mut out)?;
            out.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode & 0o777))?;
            let mtime = out.metadata().and_then(|m| m.modified()).ok();
            placed.bytes += n;
            placed.files.push((rel.to_path_buf(), n, mtime));
        }
        Kind::Link => {
            let target = src.readlink(&name)?;
            let dst = dest_dir(wt, &parent, placed)?;
            match dst.symlink(&target, &name) {
                Ok(()) => placed.links.push((rel.to_path_buf(), target)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    placed.skipped.push(rel.to_string_lossy().into_owned())
                }
                Err(e) => return Err(e),
            }
        }
        Kind::Dir => {
            let folder = src.child(&name)?;
            let mut names: Vec<String> = folder.entries()?.into_iter().map(|(n, _)| n).collect();
            names.sort();
            for n in names {
                copy(src_root, wt, &rel.join(n), placed, depth + 1)?;
            }
        }
        Kind::Other => {}
    }
    Ok(())
}

/// Copy what `.worktreeinclude` names (and git ignores) from the main
/// checkout at `root` into the worktree `wt`.
pub fn include(root: &Path, wt: &Path, placed: &mut Placed) -> Result<(), String> {
    let top = Dir::open(root).map_err(|e| format!("{}: {e}", root.display()))?;
    // Read here, never through a link, and handed to git as patterns: git
    // itself opens no path from the repo.
    let text = match top.read(INCLUDE_FILE, 64 * 1024) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(paths::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(e) => return Err(format!("{INCLUDE_FILE} is not read: {e}")),
    };
    let patterns: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(1000)
        .map(str::to_string)
        .collect();
    if patterns.is_empty() {
        return Ok(());
    }
    let listed = git::status::matching(root, &patterns)?;
    let wanted: Vec<&str> = listed.iter().map(String::as_str).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    // Only what git itself ignores: a tracked or an ordinary untracked file is
    // never copied.
    let ignored = check_ignore(root, &wanted)?;
    let wt_dir = Dir::open(wt).map_err(|e| format!("{}: {e}", wt.display()))?;
    for rel in ignored {
        let rel = rel.trim_end_matches('/');
        if !shareable(rel) {
            continue;
        }
        copy(&top, &wt_dir, Path::new(rel), placed, 0)
            .map_err(|e| format!("cannot copy {rel} into the worktree: {e}"))?;
    }
    Ok(())
}

/// Those of `paths` git ignores in the checkout at `dir`.
fn check_ignore(dir: &Path, paths: &[&str]) -> Result<Vec<String>, String> {
    Ok(git::status::ignored_of(dir, paths)?)
}

/// Link the `share` folders of the main checkout into the worktree. A
/// folder git would not ignore as a link there (a `name/` pattern matches
/// folders only) is not linked: the agent would commit the link.
pub fn share(root: &Path, wt: &Path, folders: &[String], placed: &mut Placed) -> Vec<String> {
    let mut warnings = Vec::new();
    let Ok(wt_dir) = Dir::open(wt) else {
        return warnings;
    };
    for f in folders {
        if !root.join(f).is_dir() || wt.join(f).symlink_metadata().is_ok() {
            continue;
        }
        if check_ignore(wt, &[f.as_str()]).map_or(true, |v| v.is_empty()) {
            warnings.push(format!(
                "worktree.share: {f} is not shared: git would not ignore a link named {f} (a pattern `{f}/` matches folders only); add `/{f}` to .gitignore"
            ));
            continue;
        }
        let (parent, name) = split(Path::new(f));
        let target = root.join(f).to_string_lossy().into_owned();
        let made = dest_dir(&wt_dir, &parent, placed).and_then(|d| d.symlink(&target, &name));
        match made {
            Ok(()) => placed.links.push((PathBuf::from(f), target)),
            Err(e) => warnings.push(format!("worktree.share: cannot link {f}: {e}")),
        }
    }
    warnings
}

/// Take away what `place` put there, where it is still as placed.
pub fn take_back(wt: &Path, placed: &Placed) {
    let Ok(wt_dir) = Dir::open(wt) else { return };
    let at = |rel: &Path| {
        let (parent, name) = split(rel);
        wt_dir.descend(&parent, false).ok().map(|d| (d, name))
    };
    for (rel, size, mtime) in &placed.files {
        if let Some((d, name)) = at(rel)
            && let Ok(Kind::File(_)) = d.kind(&name)
            && let Ok(meta) = d.open_regular(&name).and_then(|f| f.metadata())
            && meta.len() == *size
            && meta.modified().ok() == *mtime
        {
            let _ = d.remove_file(&name);
        }
    }
    for (rel, target) in &placed.links {
        if let Some((d, name)) = at(rel)
            && d.readlink(&name).is_ok_and(|t| &t == target)
        {
            let _ = d.remove_file(&name);
        }
    }
    for rel in placed.dirs.iter().rev() {
        if let Some((d, name)) = at(rel) {
            // Only when empty: what an agent put there stays.
            let _ = d.remove_dir(&name);
        }
    }
}
