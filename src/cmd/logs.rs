//! `ai-sdlc logs <ID> [--follow] [--lines N] [--run K]`: a story's run log.

use crate::board::{Board, lock};
use crate::cli::LogsArgs;
use crate::config::Config;
use crate::error::Error;
use crate::logs::runs;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::time::Duration;

/// `ai-sdlc logs <ID> [--follow] [--lines N] [--run K]`.
pub fn run(config: &Config, args: &LogsArgs) -> Result<(), Error> {
    let board = Board::of(config);
    if board.open_story(&args.id).is_err() {
        return Err(Error::usage(format!(
            "no story {} on the board; `ai-sdlc status` lists them",
            args.id
        )));
    }
    let (all, logs) = runs(&board, &args.id);
    let k = args.run.unwrap_or(1);
    if all.is_empty() {
        return Err(Error::failed(format!(
            "{} has no run logs yet; one is written each time it runs (ai-sdlc run --story {})",
            args.id, args.id
        )));
    }
    let Some(path) = k.checked_sub(1).and_then(|i| all.get(i)) else {
        return Err(Error::usage(format!(
            "--run {k}: {} has {} run {} (1 is the latest)",
            args.id,
            all.len(),
            if all.len() == 1 { "log" } else { "logs" }
        )));
    };
    let follow = args.follow && k == 1;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let opened = match &logs {
        Some(logs) => logs.open_regular(name),
        None => Err(io::Error::from(io::ErrorKind::NotFound)),
    };
    let held = || lock::is_held(&board, &args.id);
    match opened.and_then(|file| {
        print(
            file,
            args.lines,
            follow.then_some(&held as &dyn Fn() -> bool),
        )
    }) {
        Ok(()) => Ok(()),
        // `ai-sdlc logs X | head`: the reader left; that is fine.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::failed(format!(
            "cannot show {}: {e}",
            path.display()
        ))),
    }
}

/// Print the log (or its last `lines`); with `follow`, keep printing what is
/// appended while `follow()` says a runner holds the story's claim.
fn print(
    mut file: File,
    lines: Option<usize>,
    follow: Option<&dyn Fn() -> bool>,
) -> io::Result<()> {
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    let start = lines.map_or(0, |n| tail_start(&text, n));
    let mut out = io::stdout().lock();
    out.write_all(&text[start..])?;
    out.flush()?;
    let Some(running) = follow else {
        return Ok(());
    };
    let mut pos = text.len() as u64;
    loop {
        // Read the claim first: a run that ends after this still gets its last lines printed.
        let running = running();
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
}
