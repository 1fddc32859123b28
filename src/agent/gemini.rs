//! Gemini CLI (headless with piped stdin and no `-p`): stream-json events
//! (`init`, `message` with `role` and `delta` content, `tool_use`,
//! `tool_result`, `error`, and a final `result` with `status` and `stats`).
//! No cost in its output. Without credentials it exits 41 at once with
//! one line on stderr; `--skip-trust` avoids exit 55 in a new folder.

use super::{FailureKind, Line, Reader, Report, failure, short_path, step, str_at, u64_at};
use serde_json::Value;

pub const ARGV: [&str; 5] = [
    "gemini",
    "--output-format",
    "stream-json",
    "--yolo",
    "--skip-trust",
];

pub struct Gemini {
    worktree: String,
    report: Report,
    /// Assistant text since the last tool call: the final message so far.
    text: String,
    /// A stderr line that names what went wrong (auth, quota), until a
    /// `result` says better.
    stderr_failure: Option<String>,
}

impl Gemini {
    pub fn new(worktree: String) -> Gemini {
        Gemini {
            worktree,
            report: Report::default(),
            text: String::new(),
            stderr_failure: None,
        }
    }
}

impl Reader for Gemini {
    fn line(&mut self, stderr: bool, line: &str) -> Line {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            let l = line.trim();
            // "Attempt 2 failed with status 429. Retrying with backoff...":
            // it retries by itself, printing nothing else meanwhile.
            if stderr && l.starts_with("Attempt ") && l.contains("Retrying") {
                return match super::classify(l) {
                    k @ (FailureKind::RateLimit | FailureKind::Overloaded) => {
                        Line::raw().limited(k)
                    }
                    _ => Line::raw(),
                };
            }
            if stderr
                && !l.is_empty()
                && !l.starts_with("YOLO mode")
                && !l.starts_with("at ")
                && self.stderr_failure.is_none()
            {
                self.stderr_failure = Some(l.to_string());
            }
            return Line::raw();
        };
        if stderr {
            // json mode reports a fatal error as an object on stderr.
            if let Some(msg) = str_at(&v, &["error", "message"]) {
                self.report.failure = Some(failure(msg));
            }
            return Line::hidden();
        }
        match str_at(&v, &["type"]) {
            Some("message") if v["role"] == "assistant" => {
                let chunk = str_at(&v, &["content"]).unwrap_or("");
                if self.text.len() < super::MAX_MESSAGE {
                    self.text.push_str(chunk);
                }
                Line::show(chunk)
            }
            Some("tool_use") => {
                self.text.clear();
                let p = &v["parameters"];
                let path = str_at(p, &["file_path"]).map(|f| short_path(&self.worktree, f));
                match str_at(&v, &["tool_name"]).unwrap_or("tool") {
                    "run_shell_command" => step("Bash", str_at(p, &["command"])),
                    "write_file" | "replace" => step("Edit", path.as_deref()),
                    "read_file" => step("Read", path.as_deref()),
                    other => step(other, None),
                }
            }
            Some("result") => {
                let s = &v["stats"];
                self.report.input_tokens = u64_at(s, &["input_tokens"]);
                self.report.output_tokens = u64_at(s, &["output_tokens"]);
                if v["status"] == "success" {
                    self.report.failure = None;
                    let t = self.text.trim();
                    self.report.final_message = (!t.is_empty()).then(|| t.to_string());
                } else {
                    let msg = str_at(&v, &["error", "message"]).unwrap_or("the run failed");
                    self.report.failure = Some(failure(msg));
                }
                Line::hidden()
            }
            Some("error") => Line::show(str_at(&v, &["message"]).unwrap_or("")),
            _ => Line::hidden(),
        }
    }

    fn usage(&self) -> (Option<f64>, Option<u64>, Option<u64>) {
        let r = &self.report;
        (r.cost_usd, r.input_tokens, r.output_tokens)
    }

    fn report(&self) -> Report {
        let mut r = self.report.clone();
        if r.failure.is_none()
            && r.final_message.is_none()
            && let Some(line) = &self.stderr_failure
        {
            r.failure = Some(failure(line));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::FailureKind;

    #[test]
    fn reads_the_documented_stream_and_its_failures() {
        let mut g = Gemini::new("/wt".into());
        for l in [
            r#"{"type":"init","session_id":"x","model":"auto"}"#,
            r#"{"type":"tool_use","tool_name":"run_shell_command","tool_id":"a","parameters":{"command":"ls -la"}}"#,
            r#"{"type":"message","role":"assistant","content":"MOCK FINAL: ","delta":true}"#,
            r#"{"type":"message","role":"assistant","content":"created notes.txt","delta":true}"#,
            r#"{"type":"result","status":"success","stats":{"total_tokens":5160,"input_tokens":4936,"output_tokens":224}}"#,
        ] {
            g.line(false, l);
        }
        let r = g.report();
        assert_eq!(
            r.final_message.as_deref(),
            Some("MOCK FINAL: created notes.txt")
        );
        assert_eq!((r.input_tokens, r.output_tokens), (Some(4936), Some(224)));

        let mut g = Gemini::new("/wt".into());
        g.line(true, "Please set an Auth method in your /h/.gemini/settings.json or specify one of the following environment variables before running: GEMINI_API_KEY");
        assert_eq!(g.report().failure.unwrap().0, FailureKind::Auth);

        let mut g = Gemini::new("/wt".into());
        for l in include_str!("../../tests/agents/gemini-noauth.jsonl")
            .lines()
            .skip(1)
        {
            g.line(false, l);
        }
        assert_eq!(g.report().failure.unwrap().0, FailureKind::Auth);
    }
}
