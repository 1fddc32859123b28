//! Per-story run logs: `stories/<ID>/logs/<UTC timestamp>.log`, one per run,
//! every line timestamped; the newest `logs.keep` are kept.

use crate::board::Board;
use crate::paths::Dir;
use crate::time;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

pub const LOGS_DIR: &str = "logs";

pub struct RunLog {
    pub path: PathBuf,
    out: BufWriter<File>,
    failed: bool,
}

/// Is `name` one of the tool's run logs (`<stamp>.log`, `<stamp>-<n>.log`),
/// which it may rotate away? The TS tool's logs and anything else are never touched.
fn is_run_log(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".log") else {
        return false;
    };
    let (stamp, n) = stem.split_once('-').unwrap_or((stem, "0"));
    let b = stamp.as_bytes();
    b.len() == 20
        && b[8] == b'T'
        && b[15] == b'.'
        && b[19] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 8 | 15 | 19) || c.is_ascii_digit())
        && !n.is_empty()
        && n.bytes().all(|c| c.is_ascii_digit())
}

/// The order of run logs: `<stamp>.log`, then `<stamp>-1.log`, ... for runs
/// started in the same millisecond.
fn run_key(name: &str) -> (String, u32) {
    let stem = name.strip_suffix(".log").unwrap_or(name);
    match stem.split_once('-').map(|(s, n)| (s, n.parse::<u32>())) {
        Some((stamp, Ok(n))) => (stamp.to_string(), n),
        _ => (stem.to_string(), 0),
    }
}

/// The names of the tool's run logs in `logs`, newest first.
fn run_names(logs: &Dir) -> Vec<String> {
    let mut names: Vec<String> = logs
        .entries()
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, is_dir)| !is_dir && is_run_log(name))
        .map(|(name, _)| name)
        .collect();
    names.sort_by_key(|n| std::cmp::Reverse(run_key(n)));
    names
}

impl RunLog {
    /// Start a new log for a run of story `id`, and drop the oldest beyond
    /// `keep`. The `logs` folder must be a real folder, never a symlink.
    pub fn create(board: &Board, id: &str, keep: usize) -> io::Result<RunLog> {
        let logs = board.open_story(id)?.child_or_create(LOGS_DIR)?;
        let stamp = time::file_stamp(time::now_ms());
        // After the newest run of this same millisecond, never in a gap that rotation left.
        let mut n = run_names(&logs)
            .first()
            .map(|name| run_key(name))
            .filter(|(s, _)| *s == stamp)
            .map_or(0, |(_, n)| n + 1);
        let (path, file) = loop {
            let name = if n == 0 {
                format!("{stamp}.log")
            } else {
                format!("{stamp}-{n}.log")
            };
            // O_APPEND: the executor's stderr shares this file.
            match logs.create_new(&name) {
                Ok(f) => break (logs.path().join(name), f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(e),
            }
        };
        for old in run_names(&logs).into_iter().skip(keep.max(1)) {
            if let Err(e) = logs.remove_file(&old) {
                log::debug!("cannot remove old log {old}: {e}");
            }
        }
        Ok(RunLog {
            path,
            out: BufWriter::with_capacity(64 * 1024, file),
            failed: false,
        })
    }

    /// A second handle on the file, for a child's stderr.
    pub fn file(&self) -> io::Result<File> {
        self.out.get_ref().try_clone()
    }

    /// Append `<timestamp> [tag] text`. A failing disk is reported once and
    /// never fails the story.
    pub fn line(&mut self, tag: &str, text: &str) {
        if self.failed {
            return;
        }
        let stamp = time::iso_millis(time::now_ms());
        if let Err(e) = writeln!(self.out, "{stamp} [{tag}] {text}") {
            self.fail(e);
        }
    }

    /// A lifecycle line of the runner, written through at once so that
    /// `logs --follow` and people see it when it happens.
    pub fn note(&mut self, text: &str) {
        self.line("runner", text);
        self.flush();
    }

    pub fn flush(&mut self) {
        if !self.failed
            && let Err(e) = self.out.flush()
        {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: io::Error) {
        self.failed = true;
        log::warn!(
            "cannot write the run log {}: {e}; the run goes on without it",
            self.path.display()
        );
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The log of a run, shared by the worker and the child's reader thread.
pub fn lock(log: &std::sync::Mutex<RunLog>) -> std::sync::MutexGuard<'_, RunLog> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Story `id`'s run logs, newest first (paths, for people), and their folder.
pub fn runs(board: &Board, id: &str) -> (Vec<PathBuf>, Option<Dir>) {
    match board.open_story(id).and_then(|d| d.child(LOGS_DIR)) {
        Ok(logs) => (
            run_names(&logs)
                .into_iter()
                .map(|n| logs.path().join(n))
                .collect(),
            Some(logs),
        ),
        Err(_) => (Vec::new(), None),
    }
}

/// A new folder beside story `id`'s logs, for what its agent wrote into
/// the shared git state (kept, never deleted).
pub fn git_state_folder(board: &Board, id: &str) -> Option<Dir> {
    let name = format!("{}.git-state", time::file_stamp(time::now_ms()));
    let made = board
        .open_story(id)
        .and_then(|d| d.child_or_create(LOGS_DIR))
        .and_then(|logs| logs.make_child(&name));
    match made {
        Ok(d) => Some(d),
        Err(e) => {
            log::warn!("[{id}] cannot make a folder for what its agent wrote into .git: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_of_its_own_and_timestamps_lines() {
        let root = std::env::temp_dir().join(format!("ai-sdlc-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let board = Board {
            root: root.clone(),
            dir: root.join("stories"),
        };
        let logs_dir = board.story_dir("S-1").join(LOGS_DIR);
        std::fs::create_dir_all(&logs_dir).unwrap();
        // Another tool's log and a stranger's file are never rotated away.
        for other in ["2026-11-26T12-51-03.log", "notes.log"] {
            std::fs::write(logs_dir.join(other), "keep").unwrap();
        }
        let mut paths = Vec::new();
        for i in 0..4 {
            let mut log = RunLog::create(&board, "S-1", 2).unwrap();
            log.note(&format!("run {i}"));
            paths.push(log.path.clone());
        }
        assert_eq!(
            runs(&board, "S-1").0,
            vec![paths[3].clone(), paths[2].clone()]
        );
        let text = std::fs::read_to_string(&paths[3]).unwrap();
        assert!(text.ends_with("Z [runner] run 3\n"), "{text}");
        assert!(logs_dir.join("2026-11-26T12-51-03.log").exists());
        assert!(logs_dir.join("notes.log").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
