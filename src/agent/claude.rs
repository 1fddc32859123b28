//! Claude Code (`claude -p`): stream-json events (`system`, `assistant`,
//! `user`, and a final `result` with `is_error`, `result`,
//! `total_cost_usd`, `usage`). `--verbose` is required with stream-json.
//! As root, `bypassPermissions` is refused unless `IS_SANDBOX=1` is set
//! (the runner checks that before anything starts).

use super::{Line, Reader, Report, failure, short_path, step, str_at, u64_at};
use serde_json::Value;

pub const ARGV: [&str; 7] = [
    "claude",
    "-p",
    "--output-format",
    "stream-json",
    "--verbose",
    "--permission-mode",
    "bypassPermissions",
];

pub struct Claude {
    worktree: String,
    report: Report,
}

impl Claude {
    pub fn new(worktree: String) -> Claude {
        Claude {
            worktree,
            report: Report::default(),
        }
    }

    fn tool(&self, name: &str, input: &Value) -> Line {
        let path = |k: &str| str_at(input, &[k]).map(|p| short_path(&self.worktree, p));
        match name {
            "Edit" | "MultiEdit" | "Write" | "Read" | "NotebookEdit" => step(
                name,
                path("file_path")
                    .or_else(|| path("notebook_path"))
                    .as_deref(),
            ),
            "Bash" => step(name, str_at(input, &["command"])),
            "Grep" | "Glob" => step(name, str_at(input, &["pattern"])),
            "WebFetch" => step(name, str_at(input, &["url"])),
            "WebSearch" => step(name, str_at(input, &["query"])),
            "Task" => step(name, str_at(input, &["description"])),
            _ => step(name, None),
        }
    }
}

impl Reader for Claude {
    fn line(&mut self, stderr: bool, line: &str) -> Line {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            // Its stderr (the root refusal, for one) is plain text.
            if stderr && !line.trim().is_empty() && self.report.failure.is_none() {
                self.report.failure = Some(failure(line));
            }
            return Line::raw();
        };
        match str_at(&v, &["type"]) {
            Some("assistant") => {
                if let Some(err) = str_at(&v, &["error"]) {
                    // `authentication_failed`, `rate_limit`, ...: the text says it in words.
                    let text = v["message"]["content"][0]["text"].as_str().unwrap_or(err);
                    self.report.failure = Some(failure(&format!("{text} ({err})")));
                }
                let content = v["message"]["content"].as_array();
                let last = content.and_then(|c| c.last());
                match last {
                    Some(item) if item["type"] == "tool_use" => {
                        self.tool(item["name"].as_str().unwrap_or("tool"), &item["input"])
                    }
                    Some(item) if item["type"] == "text" => {
                        Line::show(item["text"].as_str().unwrap_or(""))
                    }
                    _ => Line::hidden(),
                }
            }
            Some("result") => {
                let text = str_at(&v, &["result"]).unwrap_or("").to_string();
                let usage = &v["usage"];
                let input = [
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ]
                .iter()
                .filter_map(|k| u64_at(usage, &[k]))
                .reduce(|a, b| a + b);
                self.report.input_tokens = input;
                self.report.output_tokens = u64_at(usage, &["output_tokens"]);
                self.report.cost_usd = v["total_cost_usd"].as_f64();
                if v["is_error"] == true {
                    let msg = if text.is_empty() {
                        str_at(&v, &["subtype"]).unwrap_or("error").to_string()
                    } else {
                        text.clone()
                    };
                    self.report.failure = Some(failure(&msg));
                } else {
                    self.report.failure = None;
                    self.report.final_message = Some(super::cut(&text, super::MAX_MESSAGE));
                }
                let verb = if v["is_error"] == true {
                    "failed"
                } else {
                    "finished"
                };
                Line::show(format!("{verb}: {}", super::first_line(&text, 160)))
            }
            _ => Line::hidden(),
        }
    }

    fn report(&self) -> Report {
        self.report.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_steps_result_cost_and_the_login_failure() {
        let mut c = Claude::new("/wt".into());
        let tool = r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Edit","input":{"file_path":"/wt/src/lib.rs"}}]}}"#;
        assert_eq!(c.line(false, tool).show.as_deref(), Some("Edit src/lib.rs"));
        let bash = r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"cargo test"}}]}}"#;
        assert_eq!(c.line(false, bash).show.as_deref(), Some("Bash cargo test"));
        let init = r#"{"type":"system","subtype":"init"}"#;
        assert_eq!(c.line(false, init).show.as_deref(), Some(""));
        let done = r#"{"type":"result","subtype":"success","is_error":false,"result":"Added it.\nAll tests pass.","total_cost_usd":0.25,"usage":{"input_tokens":100,"cache_read_input_tokens":50,"output_tokens":20}}"#;
        c.line(false, done);
        let r = c.report();
        assert_eq!(
            r.final_message.as_deref(),
            Some("Added it.\nAll tests pass.")
        );
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.cost_usd),
            (Some(150), Some(20), Some(0.25))
        );
        assert!(r.failure.is_none());

        // The stream of a run without a login, as Claude Code 2.1 prints it.
        let mut c = Claude::new("/wt".into());
        c.line(false, r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Not logged in · Please run /login"}]},"error":"authentication_failed"}"#);
        c.line(false, r#"{"type":"result","subtype":"success","is_error":true,"result":"Not logged in · Please run /login","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0}}"#);
        let (kind, msg) = c.report().failure.unwrap();
        assert_eq!(kind, super::super::FailureKind::Auth);
        assert_eq!(msg, "Not logged in · Please run /login");
    }
}
