//! The live dashboard on a terminal: one line per running story, a footer
//! of counts, finished stories scrolling up above it. Redraws at most ten
//! times a second, only when something changed, in one write (no flicker),
//! and reads the terminal width on every draw (so it follows resizes).

use super::{Note, Sink, StoryResult, finished_line};
use crate::story::Outcome;
use crate::time::human_duration;
use std::io::Write;
use std::time::Instant;

struct Row {
    id: String,
    title: String,
    phase: String,
    index: usize,
    count: usize,
    started: Instant,
    last: String,
}

pub struct Dashboard {
    rows: Vec<Row>,
    /// Lines to print above the live area at the next draw.
    scroll: Vec<String>,
    total: usize,
    done: usize,
    failed: usize,
    skipped: usize,
    cancelled: usize,
    start: Instant,
    color: bool,
    /// Single-story mode: the agent's output scrolls above the status line.
    stream_output: bool,
    /// Lines of the live area now on screen.
    live: usize,
    dirty: bool,
    /// Elapsed times change every second: redraw for them too.
    last_second: u64,
    parked: usize,
    parked_ids: Vec<String>,
    /// The run waits for the agent's usage cap to lift (until, why).
    paused: Option<(u64, String)>,
    /// How many may run at once, when a rate limit lowered it.
    concurrency: Option<usize>,
    /// Spent against the budget.
    spent: Option<String>,
}

fn width() -> usize {
    crate::term::terminal_width().unwrap_or(80)
}

/// `s` cut to `max` characters, with `…` when cut.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// One line of story or agent text, safe for the live area: no escape
/// sequences (they would break the layout, or worse), no line breaks.
fn clean(line: &str) -> String {
    crate::term::printable(&line.replace(['\n', '\t'], " "))
        .trim()
        .to_string()
}

impl Dashboard {
    pub fn new(stream_output: bool) -> Dashboard {
        Dashboard {
            rows: Vec::new(),
            scroll: Vec::new(),
            total: 0,
            done: 0,
            failed: 0,
            skipped: 0,
            cancelled: 0,
            start: Instant::now(),
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            stream_output,
            live: 0,
            dirty: true,
            last_second: 0,
            parked: 0,
            parked_ids: Vec::new(),
            paused: None,
            concurrency: None,
            spent: None,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Coloured segments cut to `w - 1` visible characters (the last column
    /// stays empty so the terminal never wraps).
    fn segments(&self, parts: &[(&str, String)], w: usize) -> String {
        let mut room = w.saturating_sub(1);
        let mut out = String::new();
        for (code, text) in parts {
            if room == 0 {
                break;
            }
            let n = text.chars().count();
            let shown = if n > room {
                fit(text, room)
            } else {
                text.clone()
            };
            room -= shown.chars().count();
            out.push_str(&if code.is_empty() {
                shown
            } else {
                self.paint(code, &shown)
            });
        }
        out
    }

    fn row_line(&self, r: &Row, w: usize) -> String {
        let elapsed = human_duration(r.started.elapsed().as_millis() as u64);
        // Phases done, then `>` for the one running.
        let filled = (r.index * 10).checked_div(r.count).unwrap_or(0).min(9);
        let bar = format!("[{}>{}]", "#".repeat(filled), "-".repeat(9 - filled));
        let phase = if r.count == 0 && r.phase.is_empty() {
            "starting".to_string()
        } else if r.count == 0 {
            r.phase.clone()
        } else if r.phase.contains(' ') {
            // A review round (`implement 2/2`): the bar shows the phase.
            r.phase.clone()
        } else {
            format!("{} {}/{}", r.phase, r.index + 1, r.count)
        };
        let title_w = w.saturating_sub(62).clamp(8, 24);
        // The activity is what people watch: under 80 columns the bar
        // gives it its room.
        let bar = if w >= 80 {
            format!("{bar} ")
        } else {
            String::new()
        };
        self.segments(
            &[
                ("1;36", format!("{:<7} ", r.id)),
                ("", format!("{:<title_w$} ", fit(&r.title, title_w))),
                ("", format!("{:<14} ", fit(&phase, 14))),
                ("", bar),
                ("2", format!("{elapsed:>7}  ")),
                ("2", r.last.clone()),
            ],
            w,
        )
    }

    fn footer(&self, w: usize) -> String {
        let running = self.rows.len();
        let ended = self.done + self.failed + self.skipped + self.cancelled + self.parked;
        let queued = self.total.saturating_sub(running + ended);
        let mut extra = String::new();
        // Waiting for a cap to lift is what matters most: it comes first.
        let mut first = String::new();
        if let Some((until, why)) = &self.paused {
            let now = crate::time::now_ms();
            first = format!(
                "paused: {why}, resumes {} (in {}) · ",
                crate::time::local_clock(*until, now),
                human_duration(until.saturating_sub(now))
            );
        }
        if self.cancelled > 0 {
            extra.push_str(&format!(" · cancelled {}", self.cancelled));
        }
        if self.parked > 0 {
            extra.push_str(&format!(" · parked {}", self.parked));
        }
        if let Some(n) = self.concurrency {
            extra.push_str(&format!(" · concurrency {n} (rate limited)"));
        }
        if let Some(s) = &self.spent {
            extra.push_str(&format!(" · spent {s}"));
        }
        let text = format!(
            "{first}queued {queued} · running {running} · done {} · failed {} · skipped {}{extra} · {}",
            self.done,
            self.failed,
            self.skipped,
            human_duration(self.start.elapsed().as_millis() as u64)
        );
        self.paint("1", &fit(&text, w.saturating_sub(1)))
    }

    fn draw(&mut self) {
        let w = width();
        let mut frame = String::new();
        if self.live > 0 {
            // Back to the top of the live area, and clear it and below.
            frame.push_str(&format!("\r\x1b[{}A\x1b[J", self.live));
        }
        for line in self.scroll.drain(..) {
            frame.push_str(&line);
            frame.push_str("\x1b[K\n");
        }
        let rows: Vec<String> = self.rows.iter().map(|r| self.row_line(r, w)).collect();
        for r in &rows {
            frame.push_str(r);
            frame.push('\n');
        }
        frame.push_str(&self.footer(w));
        frame.push('\n');
        self.live = rows.len() + 1;
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(frame.as_bytes());
        let _ = err.flush();
        self.dirty = false;
    }

    fn finished(&mut self, r: &StoryResult) {
        // With its attempts' rows (`S-0001#2`).
        let part = format!("{}#", r.id);
        self.rows
            .retain(|row| row.id != r.id && !row.id.starts_with(&part));
        // A parked story that resumed and ended is counted once, as it ended.
        if let Some(i) = self.parked_ids.iter().position(|p| *p == r.id) {
            self.parked_ids.swap_remove(i);
            self.parked -= 1;
        }
        let (mark, code) = match r.outcome {
            Outcome::Succeeded => {
                self.done += 1;
                ("✓", "32")
            }
            Outcome::Skipped => {
                self.skipped += 1;
                ("-", "33")
            }
            Outcome::Cancelled => {
                self.cancelled += 1;
                ("·", "33")
            }
            Outcome::Parked => {
                self.parked += 1;
                self.parked_ids.push(r.id.clone());
                ("‖", "33")
            }
            _ => {
                self.failed += 1;
                ("✗", "31")
            }
        };
        let line = format!(
            "{} {} {}  {}",
            self.paint(code, mark),
            clean(&r.id),
            clean(&finished_line(r)),
            clean(&r.title)
        );
        self.scroll.push(fit(
            &line,
            width().saturating_sub(1) + if self.color { 9 } else { 0 },
        ));
    }
}

impl Sink for Dashboard {
    fn note(&mut self, note: Note) {
        self.dirty = true;
        match note {
            Note::Planned { total } => self.total = total,
            Note::Started { id, title, .. } => {
                // A story's next part (after its attempts) takes its row again.
                let id = clean(&id);
                self.rows.retain(|r| r.id != id);
                self.rows.push(Row {
                    id,
                    title: clean(&title),
                    phase: String::new(),
                    index: 0,
                    count: 0,
                    started: Instant::now(),
                    last: String::new(),
                })
            }
            Note::Phase {
                id,
                name,
                index,
                count,
                ..
            } => {
                if let Some(r) = self.rows.iter_mut().find(|r| r.id == id) {
                    (r.phase, r.index, r.count) = (name, index, count);
                }
            }
            Note::Output { id, line } => {
                if self.stream_output {
                    self.scroll.push(clean(&line));
                }
                if let Some(r) = self.rows.iter_mut().find(|r| r.id == id) {
                    r.last = clean(&line);
                }
            }
            Note::Info { id, text } => self.scroll.push(clean(&match id {
                Some(id) => format!("[{id}] {text}"),
                None => format!("ai-sdlc: {text}"),
            })),
            Note::Warn { id, text } => {
                let line = clean(&match id {
                    Some(id) => format!("[{id}] warning: {text}"),
                    None => format!("ai-sdlc: warning: {text}"),
                });
                let painted = self.paint("33", &line);
                self.scroll.push(painted);
            }
            Note::Finished(r) => self.finished(&r),
            Note::Paused(until, why) => self.paused = until.map(|t| (t, why)),
            Note::Concurrency(n) => self.concurrency = Some(n),
            Note::Spent(s) => self.spent = Some(s),
        }
    }

    fn ticks(&self) -> bool {
        true
    }

    fn tick(&mut self) {
        let second = self.start.elapsed().as_secs();
        if self.dirty || second != self.last_second {
            self.last_second = second;
            self.draw();
        }
    }

    fn close(&mut self) {
        self.rows.clear();
        self.draw();
        // Leave the final counts on screen, above the summary.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 4), "abc");
        assert_eq!(fit("ünïcödé", 3), "ün…");
        assert_eq!(clean("\x1b[31mred\x1b[0m\r"), "?[31mred?[0m?");
        assert_eq!(clean("a\u{202e}b\nc"), "a?b c");
    }

    #[test]
    fn a_row_fits_the_width_without_colour() {
        let mut d = Dashboard::new(false);
        d.color = false;
        let r = Row {
            id: "S-0001".into(),
            title: "A very long title that will not fit in the column".into(),
            phase: "implement".into(),
            index: 0,
            count: 2,
            started: Instant::now(),
            last: "x".repeat(500),
        };
        for w in [60, 80, 120] {
            let line = d.row_line(&r, w);
            assert!(
                line.chars().count() < w,
                "{w}: {} chars: {line}",
                line.chars().count()
            );
        }
    }
}
