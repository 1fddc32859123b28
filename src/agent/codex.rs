//! OpenAI Codex CLI (`codex exec --json`): JSONL events (`item.started`,
//! `item.completed` with `command_execution`, `file_change`,
//! `agent_message`; `turn.completed` with usage; `turn.failed`; `error`).
//! No cost in its output. Under `--sandbox workspace-write` `.git` is
//! read-only, so the agent cannot commit: the runner does. `exec` does not
//! check its login and retries forever without a network, so `login
//! status` runs first unless an API key variable is set.

use super::{FailureKind, Line, Reader, Report, failure, short_path, step, str_at, u64_at};
use serde_json::Value;

pub const ARGV: [&str; 6] = [
    "codex",
    "exec",
    "--json",
    "--sandbox",
    "workspace-write",
    "--skip-git-repo-check",
];

pub const AUTH_CHECK: &[&str] = &["codex", "login", "status"];
pub const KEY_VARS: &[&str] = &["CODEX_API_KEY", "OPENAI_API_KEY"];

pub struct Codex {
    worktree: String,
    report: Report,
}

impl Codex {
    pub fn new(worktree: String) -> Codex {
        Codex {
            worktree,
            report: Report::default(),
        }
    }

    fn item(&mut self, item: &Value, completed: bool) -> Line {
        match str_at(item, &["type"]) {
            Some("command_execution") => step("Bash", str_at(item, &["command"])),
            Some("file_change") => {
                let path = item["changes"][0]["path"]
                    .as_str()
                    .map(|p| short_path(&self.worktree, p));
                step("Edit", path.as_deref())
            }
            Some("agent_message") => {
                let text = str_at(item, &["text"]).unwrap_or("");
                if completed {
                    self.report.final_message = Some(super::cut(text, super::MAX_MESSAGE));
                }
                Line::show(text)
            }
            Some("mcp_tool_call") => step("Tool", str_at(item, &["tool"])),
            Some("web_search") => step("Search", str_at(item, &["query"])),
            _ => Line::hidden(),
        }
    }
}

impl Reader for Codex {
    fn line(&mut self, _stderr: bool, line: &str) -> Line {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Line::raw();
        };
        match str_at(&v, &["type"]) {
            Some("item.started") => self.item(&v["item"], false),
            Some("item.completed") => self.item(&v["item"], true),
            Some("turn.completed") => {
                let u = &v["usage"];
                self.report.input_tokens = u64_at(u, &["input_tokens"]);
                self.report.output_tokens = ["output_tokens", "reasoning_output_tokens"]
                    .iter()
                    .filter_map(|k| u64_at(u, &[k]))
                    .reduce(|a, b| a + b);
                self.report.failure = None;
                Line::hidden()
            }
            Some("turn.failed") => {
                let msg = str_at(&v, &["error", "message"]).unwrap_or("the turn failed");
                self.report.failure = Some(failure(msg));
                Line::show(msg)
            }
            Some("error") => {
                // "Reconnecting... 2/5": it is alive, but not getting anywhere.
                let msg = str_at(&v, &["message"]).unwrap_or("");
                let limited = match super::classify(msg) {
                    k @ (FailureKind::RateLimit | FailureKind::Overloaded) => Some(k),
                    _ => None,
                };
                Line {
                    show: Some(super::first_line(msg, 200)),
                    progress: !msg.starts_with("Reconnecting"),
                    limited,
                    hopeless: false,
                    retrying: false,
                }
            }
            _ => Line::hidden(),
        }
    }

    fn usage(&self) -> (Option<f64>, Option<u64>, Option<u64>) {
        let r = &self.report;
        (r.cost_usd, r.input_tokens, r.output_tokens)
    }

    fn report(&self) -> Report {
        self.report.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_stream_and_the_401() {
        let mut c = Codex::new("/wt".into());
        let lines = [
            r#"{"type":"thread.started","thread_id":"x"}"#,
            r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc 'ls -la'","status":"in_progress"}}"#,
            r#"{"type":"item.started","item":{"id":"item_2","type":"file_change","changes":[{"path":"/wt/notes.txt","kind":"add"}],"status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_3","type":"agent_message","text":"MOCK FINAL: created notes.txt"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":2468,"cached_input_tokens":200,"output_tokens":112,"reasoning_output_tokens":14}}"#,
        ];
        let shown: Vec<Option<String>> = lines.iter().map(|l| c.line(false, l).show).collect();
        assert_eq!(shown[1].as_deref(), Some("Bash /bin/bash -lc 'ls -la'"));
        assert_eq!(shown[2].as_deref(), Some("Edit notes.txt"));
        let r = c.report();
        assert_eq!(
            r.final_message.as_deref(),
            Some("MOCK FINAL: created notes.txt")
        );
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.cost_usd),
            (Some(2468), Some(126), None)
        );

        let mut c = Codex::new("/wt".into());
        for l in include_str!("../../tests/agents/codex-noauth.jsonl").lines() {
            c.line(false, l);
        }
        let (kind, msg) = c.report().failure.unwrap();
        assert_eq!(kind, super::super::FailureKind::Auth);
        assert!(
            msg.starts_with("unexpected status 401 Unauthorized"),
            "{msg}"
        );
        let reconnect = c.line(
            false,
            r#"{"type":"error","message":"Reconnecting... 2/5 (x)"}"#,
        );
        assert!(!reconnect.progress);
    }

    /// Codex 0.171's own output against a stand-in that answers
    /// `usage_limit_reached` with a `resets_at` (tests/agents/README.md).
    #[test]
    fn a_usage_limit_is_a_cap_and_says_when_in_words() {
        let mut c = Codex::new("/wt".into());
        for l in include_str!("../../tests/agents/codex-cap.jsonl").lines() {
            c.line(false, l);
        }
        let r = c.report();
        let (kind, words) = r.failure.clone().unwrap();
        assert_eq!(kind, FailureKind::UsageCap);
        assert!(words.contains("try again at 7:49 AM."), "{words}");
        // Captured at 2026-12-06T05:47Z, in UTC: 07:49 that day, to the minute's end.
        let at = crate::agent::resets::reset_time(&words, 1_796_536_020, &|_| 0);
        assert_eq!(at, Some(1_796_543_400));
    }

    #[test]
    fn a_429_while_it_reconnects_is_a_sign_to_slow_down() {
        let mut c = Codex::new("/wt".into());
        let l = c.line(false, r#"{"type":"error","message":"Reconnecting... 2/5 (exceeded retry limit, last status: 429 Too Many Requests)"}"#);
        assert_eq!(l.limited, Some(FailureKind::RateLimit));
        let l = c.line(false, r#"{"type":"error","message":"Reconnecting... 2/5 (stream disconnected before completion)"}"#);
        assert_eq!(l.limited, None);
    }
}
