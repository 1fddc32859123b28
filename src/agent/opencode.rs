//! opencode (`opencode run --format json --auto`): JSONL events, each with
//! a `part` (`step_start`, `tool_use` on completion, `text`, `step_finish`
//! with `tokens` and `cost`), and `error` events. It reads its prompt from
//! stdin until EOF.

use super::{FailureKind, Line, Reader, Report, failure, short_path, step, str_at, u64_at};
use serde_json::Value;

pub const ARGV: [&str; 8] = [
    "opencode",
    "run",
    "--format",
    "json",
    "--auto",
    "--print-logs",
    "--log-level",
    "ERROR",
];

pub struct Opencode {
    worktree: String,
    report: Report,
    /// Text of the current step; the final message once a step ends with `stop`.
    text: String,
    /// The last `error="..."` of its logs (`--print-logs`): the real cause
    /// behind an "Unexpected server error" event.
    logged: Option<String>,
    /// The failure is opencode's generic "Unexpected server error".
    generic: bool,
}

impl Opencode {
    pub fn new(worktree: String) -> Opencode {
        Opencode {
            worktree,
            report: Report::default(),
            text: String::new(),
            logged: None,
            generic: false,
        }
    }
}

impl Reader for Opencode {
    fn line(&mut self, stderr: bool, line: &str) -> Line {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            if stderr && let Some(e) = logged_error(line) {
                self.logged = Some(e);
            }
            // Two opencode runs starting at once on a fresh install race to
            // make its SQLite database (1.18.33): "database is locked", or
            // "Failed query: CREATE TABLE ..." (made by the other). Worth a
            // retry: the database is there by then.
            let busy = line.contains("database is locked") || line.starts_with("Failed query:");
            if stderr && busy && self.report.failure.is_none() {
                self.report.failure = Some((
                    FailureKind::Overloaded,
                    format!("its database was busy ({})", line.trim()),
                ));
            }
            return Line::raw();
        };
        if stderr {
            return Line::raw();
        }
        self.event(&v)
    }

    fn usage(&self) -> (Option<f64>, Option<u64>, Option<u64>) {
        let r = &self.report;
        (r.cost_usd, r.input_tokens, r.output_tokens)
    }

    fn report(&self) -> Report {
        let mut r = self.report.clone();
        // Its logs (another pipe, read in another order) say what it meant.
        if self.generic
            && let Some(cause) = &self.logged
        {
            r.failure = Some(failure(cause));
        }
        r
    }
}

/// The value of `error="..."` in one of opencode's log lines.
fn logged_error(line: &str) -> Option<String> {
    let start = line.find(" error=\"")? + " error=\"".len();
    let rest = &line[start..];
    let end = rest.find("\" ").or_else(|| rest.rfind('"'))?;
    Some(rest[..end].replace("\\n", " "))
}

impl Opencode {
    fn event(&mut self, v: &Value) -> Line {
        let part = &v["part"];
        match str_at(v, &["type"]) {
            Some("step_start") => {
                self.text.clear();
                Line::hidden()
            }
            Some("tool_use") => {
                let input = &part["state"]["input"];
                let path = str_at(input, &["filePath"]).map(|p| short_path(&self.worktree, p));
                match str_at(part, &["tool"]).unwrap_or("tool") {
                    "bash" => step("Bash", str_at(input, &["command"])),
                    "write" | "edit" => step("Edit", path.as_deref()),
                    "read" => step("Read", path.as_deref()),
                    other => step(other, str_at(part, &["state", "title"])),
                }
            }
            Some("text") => {
                let t = str_at(part, &["text"]).unwrap_or("");
                if self.text.len() < super::MAX_MESSAGE {
                    self.text.push_str(t);
                }
                Line::show(t)
            }
            Some("step_finish") => {
                let t = &part["tokens"];
                let input = [
                    u64_at(t, &["input"]),
                    u64_at(t, &["cache", "read"]),
                    u64_at(t, &["cache", "write"]),
                ];
                let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
                    (Some(x), Some(y)) => Some(x + y),
                    (x, y) => x.or(y),
                };
                let step_in = input.into_iter().fold(None, add);
                let step_out = add(u64_at(t, &["output"]), u64_at(t, &["reasoning"]));
                self.report.input_tokens = add(self.report.input_tokens, step_in);
                self.report.output_tokens = add(self.report.output_tokens, step_out);
                if let Some(c) = part["cost"].as_f64() {
                    self.report.cost_usd = Some(self.report.cost_usd.unwrap_or(0.0) + c);
                }
                if part["reason"] == "stop" {
                    let t = self.text.trim();
                    self.report.final_message = (!t.is_empty()).then(|| t.to_string());
                }
                Line::hidden()
            }
            Some("error") => {
                let e = &v["error"];
                self.generic = str_at(e, &["name"]) == Some("UnknownError");
                let msg = str_at(e, &["data", "message"])
                    .or_else(|| str_at(e, &["name"]))
                    .unwrap_or("error");
                let status = u64_at(e, &["data", "statusCode"]);
                let body = str_at(e, &["data", "responseBody"]).unwrap_or("");
                let (kind, first) = failure(&format!("{msg} {body}"));
                let kind = match status {
                    Some(401) | Some(403) => super::FailureKind::Auth,
                    Some(429) if kind != super::FailureKind::UsageCap => {
                        super::FailureKind::RateLimit
                    }
                    _ => kind,
                };
                let first = match status {
                    Some(code) => format!("{} (HTTP {code})", super::first_line(msg, 300)),
                    None => super::first_line(&first, 300),
                };
                self.report.failure = Some((kind, first));
                Line::show(msg)
            }
            _ => Line::hidden(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::FailureKind;

    #[test]
    fn sums_steps_and_reads_the_documented_errors() {
        let mut o = Opencode::new("/wt".into());
        for l in [
            r#"{"type":"step_start","part":{"type":"step-start"}}"#,
            r#"{"type":"tool_use","part":{"type":"tool","tool":"bash","state":{"status":"completed","input":{"command":"ls -la"},"title":"ls -la"}}}"#,
            r#"{"type":"step_finish","part":{"reason":"tool-calls","tokens":{"input":1134,"output":56,"reasoning":0,"cache":{"write":0,"read":100}},"cost":0.01}}"#,
            r#"{"type":"step_start","part":{"type":"step-start"}}"#,
            r#"{"type":"tool_use","part":{"type":"tool","tool":"write","state":{"input":{"filePath":"/wt/notes.txt"},"title":"notes.txt"}}}"#,
            r#"{"type":"text","part":{"type":"text","text":"MOCK FINAL: created notes.txt"}}"#,
            r#"{"type":"step_finish","part":{"reason":"stop","tokens":{"input":10,"output":5,"cache":{"read":0,"write":0}},"cost":0.02}}"#,
        ] {
            o.line(false, l);
        }
        let r = o.report();
        assert_eq!(
            r.final_message.as_deref(),
            Some("MOCK FINAL: created notes.txt")
        );
        assert_eq!((r.input_tokens, r.output_tokens), (Some(1244), Some(61)));
        assert!((r.cost_usd.unwrap() - 0.03).abs() < 1e-9);

        let samples: Vec<&str> = include_str!("../../tests/agents/opencode-noauth.jsonl")
            .lines()
            .collect();
        let mut o = Opencode::new("/wt".into());
        o.line(false, samples[1]);
        let (kind, msg) = o.report().failure.unwrap();
        assert_eq!(kind, FailureKind::Auth);
        assert_eq!(
            msg,
            "Missing bearer or basic authentication in header (HTTP 401)"
        );
    }

    /// Real opencode 1.18.33, two runs started at once on a fresh install.
    #[test]
    fn a_locked_database_is_worth_a_retry() {
        let mut o = Opencode::new(String::new());
        o.line(true, "database is locked");
        let (kind, msg) = o.report().failure.unwrap();
        assert!(kind.transient(), "{kind:?}");
        assert_eq!(msg, "its database was busy (database is locked)");
        let mut o = Opencode::new(String::new());
        o.line(true, "\u{1b}[91mError: \u{1b}[0mUnexpected error");
        o.line(true, "Failed query: ");
        o.line(true, "        CREATE TABLE `workspace` (");
        assert!(o.report().failure.unwrap().0.transient());
    }
}
