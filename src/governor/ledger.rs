//! What the board cost (SPEC §15): `.ai-sdlc/spend.jsonl`, one JSON line
//! per phase that ran (story, agent, model, tokens, USD, time), appended by
//! the runner as each phase ends and never rewritten; and the sums of
//! `ai-sdlc cost`.
//!
//! One line is one `write` on a file opened `O_APPEND`, so runners that
//! share a board never interleave their lines. A line that does not parse
//! (a crash mid-write, a hand edit) is skipped and counted, never fatal.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

pub const FILE: &str = "spend.jsonl";

/// The most of the ledger `cost` reads: years of nights.
const MAX_READ: u64 = 256 << 20;

/// One phase's spend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When the phase ended: `2026-12-06T03:00:00Z`.
    pub ts: String,
    pub story: String,
    pub phase: String,
    #[serde(default = "one")]
    pub round: u32,
    /// Which of the story's attempts (SPEC §17), when it has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The preset (`claude`, `codex`, ..., `command`).
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Where the cost came from: `cli` (the agent's own figure) or
    /// `pricing` (its tokens at `agent.pricing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_from: Option<String>,
    pub duration_ms: u64,
    pub outcome: String,
}

fn one() -> u32 {
    1
}

/// Append `entry` to the ledger of the board in `folder` (`.ai-sdlc`).
pub fn append(folder: &Path, entry: &Entry) -> Result<(), String> {
    let mut line = serde_json::to_vec(entry).map_err(|e| e.to_string())?;
    line.push(b'\n');
    let dir = crate::paths::Dir::open(folder)
        .map_err(|e| format!("cannot open {}: {e}", folder.display()))?;
    let mut file = dir
        .open_append(FILE)
        .map_err(|e| format!("cannot open {}: {e}", dir.path().join(FILE).display()))?;
    file.write_all(&line)
        .map_err(|e| format!("cannot write {}: {e}", dir.path().join(FILE).display()))
}

/// Every entry of the ledger of the board in `folder`, and how many lines
/// were skipped.
pub fn read(folder: &Path) -> Result<(Vec<Entry>, usize), String> {
    let dir = match crate::paths::Dir::open(folder) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(format!("cannot open {}: {e}", folder.display())),
    };
    let shown = dir.path().join(FILE);
    let file = match dir.open_regular(FILE) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(format!("cannot read {}: {e}", shown.display())),
    };
    let mut entries = Vec::new();
    let mut skipped = 0;
    let reader = std::io::BufReader::new(std::io::Read::take(file, MAX_READ));
    for line in reader.split(b'\n') {
        let line = line.map_err(|e| format!("cannot read {}: {e}", shown.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Entry>(&line) {
            Ok(e) => entries.push(e),
            Err(_) => skipped += 1,
        }
    }
    Ok((entries, skipped))
}

/// Sums of cost and tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sum {
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub phases: usize,
    /// Phases whose agent reported no cost (and had no pricing).
    pub uncosted: usize,
}

impl Sum {
    fn add(&mut self, e: &Entry) {
        self.cost_usd += e.cost_usd.unwrap_or(0.0);
        self.input_tokens += e.input_tokens.unwrap_or(0);
        self.output_tokens += e.output_tokens.unwrap_or(0);
        self.phases += 1;
        if e.cost_usd.is_none() {
            self.uncosted += 1;
        }
    }
}

/// The ledger summed: in all, by story, by day (UTC), by agent.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub total: Sum,
    pub by_story: BTreeMap<String, Sum>,
    pub by_day: BTreeMap<String, Sum>,
    pub by_agent: BTreeMap<String, Sum>,
}

pub fn totals<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Totals {
    let mut t = Totals::default();
    for e in entries {
        t.total.add(e);
        t.by_story.entry(e.story.clone()).or_default().add(e);
        let day = e.ts.get(..10).unwrap_or(&e.ts).to_string();
        t.by_day.entry(day).or_default().add(e);
        t.by_agent.entry(e.agent.clone()).or_default().add(e);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(story: &str, ts: &str, agent: &str, usd: Option<f64>) -> Entry {
        Entry {
            ts: ts.into(),
            story: story.into(),
            phase: "implement".into(),
            round: 1,
            attempt: None,
            agent: agent.into(),
            model: None,
            input_tokens: Some(100),
            output_tokens: Some(10),
            cost_usd: usd,
            cost_from: usd.map(|_| "cli".into()),
            duration_ms: 5,
            outcome: "succeeded".into(),
        }
    }

    #[test]
    fn totals_sum_by_story_day_and_agent() {
        let e = [
            entry("S-1", "2026-12-05T23:59:00Z", "claude", Some(0.25)),
            entry("S-1", "2026-12-06T00:01:00Z", "claude", Some(0.5)),
            entry("S-2", "2026-12-06T01:00:00Z", "codex", None),
        ];
        let t = totals(&e);
        assert_eq!(t.total.cost_usd, 0.75);
        assert_eq!(t.total.input_tokens, 300);
        assert_eq!(t.total.uncosted, 1);
        assert_eq!(t.by_story["S-1"].cost_usd, 0.75);
        assert_eq!(t.by_day["2026-12-06"].phases, 2);
        assert_eq!(t.by_agent["codex"].uncosted, 1);
    }

    #[test]
    fn a_line_round_trips_and_a_broken_one_is_skipped() {
        let e = entry("S-1", "2026-12-06T00:00:00Z", "claude", Some(0.1));
        let line = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Entry>(&line).unwrap(), e);
        assert!(serde_json::from_str::<Entry>(&line[..line.len() / 2]).is_err());
    }
}
