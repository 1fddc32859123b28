//! Per-story run logs: `stories/<ID>/logs/<UTC timestamp>.log`, one per run,
//! every line timestamped; the newest `logs.keep` are kept.

use crate::time;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

pub const LOGS_DIR: &str = "logs";

pub struct RunLog {
    pub path: PathBuf,
    out: BufWriter<File>,
    failed: bool,
}

impl RunLog {
    /// Start a new log for a run of the story in `story_dir`, and drop the
    /// oldest beyond `keep`.
    pub fn create(story_dir: &Path, keep: usize) -> io::Result<RunLog> {
        let dir = story_dir.join(LOGS_DIR);
        fs::create_dir_all(&dir)?;
        let stamp = time::file_stamp(time::now_ms());
        // After the newest run of this same millisecond, never in a gap that rotation left.
        let mut n = runs(story_dir)
            .first()
            .map(run_key)
            .filter(|(s, _)| *s == stamp)
            .map_or(0, |(_, n)| n + 1);
        let (path, file) = loop {
            let name = if n == 0 {
                format!("{stamp}.log")
            } else {
                format!("{stamp}-{n}.log")
            };
            let path = dir.join(name);
            // O_APPEND: the executor's stderr shares this file.
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(e),
            }
        };
        rotate(&dir, keep);
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

    pub fn flush(&mut self) {
        if !self.failed {
            if let Err(e) = self.out.flush() {
                self.fail(e);
            }
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

/// A story's run logs, newest first.
pub fn runs(story_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(story_dir.join(LOGS_DIR)) else {
        return Vec::new();
    };
    let mut logs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    // `<stamp>.log`, then `<stamp>-1.log`, ... for runs started in the same millisecond.
    logs.sort_by_key(|p| std::cmp::Reverse(run_key(p)));
    logs
}

fn run_key(p: &PathBuf) -> (String, u32) {
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    match stem.rsplit_once('-').map(|(s, n)| (s, n.parse::<u32>())) {
        Some((stamp, Ok(n))) => (stamp.to_string(), n),
        _ => (stem.to_string(), 0),
    }
}

fn rotate(dir: &Path, keep: usize) {
    let story_dir = dir.parent().unwrap_or(dir);
    for old in runs(story_dir).into_iter().skip(keep.max(1)) {
        if let Err(e) = fs::remove_file(&old) {
            log::debug!("cannot remove old log {}: {e}", old.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_timestamps_lines() {
        let dir = std::env::temp_dir().join(format!("ai-sdlc-logs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut paths = Vec::new();
        for i in 0..4 {
            let mut log = RunLog::create(&dir, 2).unwrap();
            log.line("runner", &format!("run {i}"));
            paths.push(log.path.clone());
        }
        let left = runs(&dir);
        assert_eq!(left, vec![paths[3].clone(), paths[2].clone()]);
        let text = fs::read_to_string(&paths[3]).unwrap();
        assert!(text.ends_with("Z [runner] run 3\n"), "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
