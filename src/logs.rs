//! Per-story run logs: `stories/<ID>/logs/<UTC timestamp>.log`, one per run,
//! every line timestamped; the newest `logs.keep` are kept.

use crate::board::{Board, lock};
use crate::cli::LogsArgs;
use crate::config::Config;
use crate::error::{Failure, Outcome};
use crate::time;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
            .map(|p| run_key(p))
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

fn run_key(p: &Path) -> (String, u32) {
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

/// `ai-sdlc logs <ID> [--follow] [--lines N] [--run K]`.
pub fn command(config: &Config, args: &LogsArgs) -> Outcome {
    let board = Board::new(config.stories_dir());
    let dir = board.story_dir(&args.id);
    if !dir.is_dir() {
        return Err(Failure::usage(format!(
            "no story {} on the board; `ai-sdlc status` lists them",
            args.id
        )));
    }
    let all = runs(&dir);
    let k = args.run.unwrap_or(1);
    if all.is_empty() {
        return Err(Failure::failed(format!(
            "{} has no run logs yet; one is written each time it runs (ai-sdlc run --story {})",
            args.id, args.id
        )));
    }
    let Some(path) = k.checked_sub(1).and_then(|i| all.get(i)) else {
        return Err(Failure::usage(format!(
            "--run {k}: {} has {} run {} (1 is the latest)",
            args.id,
            all.len(),
            if all.len() == 1 { "log" } else { "logs" }
        )));
    };
    let follow = args.follow && k == 1;
    match print(path, &dir, args.lines, follow) {
        Ok(()) => Ok(0),
        // `ai-sdlc logs X | head`: the reader left; that is fine.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Failure::failed(format!(
            "cannot show {}: {e}",
            path.display()
        ))),
    }
}

/// Print the log (or its last `lines`); with `follow`, keep printing what is
/// appended while a runner holds the story's claim.
fn print(path: &Path, story_dir: &Path, lines: Option<usize>, follow: bool) -> io::Result<()> {
    let mut file = File::open(path)?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let start = lines.map_or(0, |n| tail_start(&text, n));
    let mut out = io::stdout().lock();
    out.write_all(&text[start..])?;
    out.flush()?;
    if !follow {
        return Ok(());
    }
    let mut pos = text.len() as u64;
    loop {
        // Read the claim first: a run that ends after this still gets its last lines printed.
        let running = lock::is_held(story_dir);
        file.seek(SeekFrom::Start(pos))?;
        let mut more = Vec::new();
        file.read_to_end(&mut more)?;
        pos += more.len() as u64;
        out.write_all(&more)?;
        out.flush()?;
        if !running && more.is_empty() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where the last `n` lines of `text` start.
fn tail_start(text: &[u8], n: usize) -> usize {
    if n == 0 {
        return text.len();
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return i + 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tail_finds_the_last_lines() {
        assert_eq!(super::tail_start(b"a\nb\nc\n", 2), 2);
        assert_eq!(super::tail_start(b"a\nb\nc", 1), 4);
        assert_eq!(super::tail_start(b"a\nb\n", 5), 0);
        assert_eq!(super::tail_start(b"a\n", 0), 2);
    }

    use super::*;

    #[test]
    fn keeps_the_newest_and_timestamps_lines() {
        let dir = std::env::temp_dir().join(format!("ai-sdlc-logs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut paths = Vec::new();
        for i in 0..4 {
            let mut log = RunLog::create(&dir, 2).unwrap();
            log.note(&format!("run {i}"));
            paths.push(log.path.clone());
        }
        let left = runs(&dir);
        assert_eq!(left, vec![paths[3].clone(), paths[2].clone()]);
        let text = fs::read_to_string(&paths[3]).unwrap();
        assert!(text.ends_with("Z [runner] run 3\n"), "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
