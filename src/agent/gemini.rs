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

/// A Gemini CLI failure, classified by its structure first: the HTTP
/// status and the API's `status` (`[API Error: {"error":{"code":429,
/// "status":"RESOURCE_EXHAUSTED",…}}]`, or `"code":429` on the stderr
/// object), the words only when there is none. A 429 is a rate limit —
/// its words say "request a quota increase" — unless it is the daily free
/// tier's TerminalQuotaError (`limit: 0`), which is a usage cap.
fn gemini_failure(message: &str, code: Option<u64>) -> (FailureKind, String) {
    let (kind, first) = failure(message);
    let api: Option<Value> = message
        .find('{')
        .zip(message.rfind('}'))
        .and_then(|(a, b)| serde_json::from_str(&message[a..=b]).ok());
    let code = api
        .as_ref()
        .and_then(|v| v["error"]["code"].as_u64())
        .or(code);
    let status = api
        .as_ref()
        .and_then(|v| v["error"]["status"].as_str().map(str::to_string))
        .unwrap_or_default();
    let kind = match (code, status.as_str()) {
        (Some(429), _) | (_, "RESOURCE_EXHAUSTED") if message.contains("limit: 0") => {
            FailureKind::UsageCap
        }
        (Some(429), _) | (_, "RESOURCE_EXHAUSTED") => FailureKind::RateLimit,
        (Some(401 | 403), _) | (_, "UNAUTHENTICATED" | "PERMISSION_DENIED") => FailureKind::Auth,
        (Some(500..=599), _) | (_, "UNAVAILABLE") => FailureKind::Overloaded,
        _ => kind,
    };
    (kind, first)
}

impl Reader for Gemini {
    fn line(&mut self, stderr: bool, line: &str) -> Line {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            let l = line.trim();
            // "Attempt 2 failed with status 429. Retrying with backoff...":
            // it retries by itself, printing nothing else meanwhile.
            if stderr && l.starts_with("Attempt ") && l.contains("Retrying") {
                let line = Line {
                    retrying: true,
                    ..Line::show(l)
                };
                return match super::classify(l) {
                    k @ (FailureKind::RateLimit | FailureKind::Overloaded) => line.limited(k),
                    _ => line,
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
                let code = v["error"]["code"].as_u64();
                self.report.failure = Some(gemini_failure(msg, code));
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
                    self.report.failure = Some(gemini_failure(msg, None));
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

    #[test]
    fn a_429_is_a_rate_limit_by_its_status_and_only_limit_0_is_a_cap() {
        // Its retryable 429's words speak of quota: the structure decides.
        let retryable = r#"[API Error: {"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota). Please retry later, or request a quota increase.","status":"RESOURCE_EXHAUSTED"}}]"#;
        let mut g = Gemini::new("/wt".into());
        let line = format!(
            r#"{{"type":"result","status":"error","error":{{"type":"unknown","message":{}}},"stats":{{}}}}"#,
            serde_json::to_string(retryable).unwrap()
        );
        g.line(false, &line);
        assert_eq!(g.report().failure.unwrap().0, FailureKind::RateLimit);
        // The daily free tier (TerminalQuotaError, CLI-FACTS): a cap.
        let mut g = Gemini::new("/wt".into());
        g.line(true, r#"{"error":{"type":"TerminalQuotaError","message":"[API Error: You exceeded your current quota, please check your plan and billing details. Quota exceeded for metric: generate_content_free_tier_requests, limit: 0, model: gemini-2.5-pro]","code":429}}"#);
        assert_eq!(g.report().failure.unwrap().0, FailureKind::UsageCap);
        // A 429 object on stderr without those words: a rate limit.
        let mut g = Gemini::new("/wt".into());
        g.line(
            true,
            r#"{"error":{"type":"Error","message":"request a quota increase","code":429}}"#,
        );
        assert_eq!(g.report().failure.unwrap().0, FailureKind::RateLimit);
        // Its real 401 sample still reads as auth, by its status.
        assert_eq!(
            gemini_failure(
                r#"[API Error: {"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}]"#,
                None
            )
            .0,
            FailureKind::Auth
        );
    }
}
