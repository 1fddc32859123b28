//! Claude Code (`claude -p`): stream-json events (`system`, `assistant`,
//! `user`, and a final `result` with `is_error`, `result`,
//! `total_cost_usd`, `usage`). `--verbose` is required with stream-json.
//! As root, `bypassPermissions` is refused unless `IS_SANDBOX=1` is set
//! (the runner checks that before anything starts).

use super::{FailureKind, Line, Reader, Report, failure, short_path, step, str_at, u64_at};
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

/// A `usage` object's input tokens, cached input included.
fn input_tokens(usage: &Value) -> Option<u64> {
    [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|k| u64_at(usage, &[k]))
    .reduce(|a, b| a + b)
}

pub struct Claude {
    worktree: String,
    report: Report,
    /// A `rate_limit_event` said the plan's usage limit is reached (with
    /// when it resets, if it said): the failure that follows is a cap.
    capped: Option<Option<u64>>,
    /// The API messages counted so far (each repeats its usage on every
    /// content block it streams).
    counted: Vec<String>,
}

impl Claude {
    pub fn new(worktree: String) -> Claude {
        Claude {
            worktree,
            report: Report::default(),
            capped: None,
            counted: Vec::new(),
        }
    }

    /// `{"type":"rate_limit_event","rate_limit_info":{"status":"rejected",
    /// "resetsAt":1796539499,"rateLimitType":"five_hour",…}}`: a plan limit
    /// names its window and reset; a plain 429 (the server "temporarily
    /// limiting requests") names neither. `allowed` and `allowed_warning`
    /// are not failures.
    fn rate_limit_event(&mut self, info: &Value) -> Line {
        if info["status"] != "rejected" {
            return Line::hidden();
        }
        let resets = info["resetsAt"].as_u64();
        if resets.is_some() || info.get("rateLimitType").is_some() {
            self.capped = Some(resets);
            self.report.resets_at = resets;
            Line::hidden().limited(FailureKind::UsageCap)
        } else {
            Line::hidden().limited(FailureKind::RateLimit)
        }
    }

    /// Tokens as they stream: each API message's usage, once (the result
    /// then gives the totals, and the cost).
    fn count(&mut self, message: &Value) {
        let Some(id) = str_at(message, &["id"]) else {
            return;
        };
        if self.counted.iter().any(|c| c == id) || self.counted.len() >= 10_000 {
            return;
        }
        self.counted.push(id.to_string());
        let u = &message["usage"];
        let input = input_tokens(u);
        let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(x), Some(y)) => Some(x + y),
            (x, y) => x.or(y),
        };
        self.report.input_tokens = add(self.report.input_tokens, input);
        self.report.output_tokens = add(self.report.output_tokens, u64_at(u, &["output_tokens"]));
    }

    /// The failure of a result or an assistant error: a cap when an event
    /// said so, whatever the words.
    fn fail(&mut self, words: &str) {
        let (mut kind, first) = failure(words);
        if let Some(resets) = self.capped {
            kind = FailureKind::UsageCap;
            self.report.resets_at = resets;
        }
        self.report.failure = Some((kind, first));
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
                self.count(&v["message"]);
                if let Some(err) = str_at(&v, &["error"]) {
                    // `authentication_failed`, `rate_limit`, ...: the text says it in words.
                    let text = v["message"]["content"][0]["text"].as_str().unwrap_or(err);
                    self.fail(&format!("{text} ({err})"));
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
                self.report.input_tokens = input_tokens(usage);
                self.report.output_tokens = u64_at(usage, &["output_tokens"]);
                self.report.cost_usd = v["total_cost_usd"].as_f64();
                if v["subtype"] == "error_max_budget_usd" {
                    // It stopped itself at --max-budget-usd.
                    let spent = self.report.cost_usd.unwrap_or(0.0);
                    self.report.failure = Some((
                        FailureKind::OverBudget,
                        format!("over budget: ${spent:.2} spent, its --max-budget-usd reached"),
                    ));
                } else if v["is_error"] == true {
                    let msg = if text.is_empty() {
                        str_at(&v, &["subtype"]).unwrap_or("error").to_string()
                    } else {
                        text.clone()
                    };
                    self.fail(&msg);
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
            Some("rate_limit_event") => self.rate_limit_event(&v["rate_limit_info"]),
            // It retries by itself: `{"type":"system","subtype":"api_retry",
            // "attempt":3,"max_retries":10,"error_status":429,"error":"rate_limit"}`.
            Some("system") if v["subtype"] == "api_retry" => {
                let status = v["error_status"].as_u64().unwrap_or(0);
                let error = str_at(&v, &["error"]).unwrap_or("error");
                let words = format!(
                    "retry {}/{}: {status} {error}",
                    v["attempt"].as_u64().unwrap_or(0),
                    v["max_retries"].as_u64().unwrap_or(0)
                );
                let line = Line {
                    progress: false,
                    retrying: true,
                    ..Line::show(&words)
                };
                match status {
                    429 => line.limited(FailureKind::RateLimit),
                    503 | 529 => line.limited(FailureKind::Overloaded),
                    // A login that fails fails ten times over three minutes.
                    401 | 403 => {
                        self.report.failure = Some((
                            FailureKind::Auth,
                            format!("API error {status} {error}; stopped at its first retry"),
                        ));
                        Line {
                            hopeless: true,
                            ..line
                        }
                    }
                    _ => line,
                }
            }
            _ => Line::hidden(),
        }
    }

    fn report(&self) -> Report {
        self.report.clone()
    }

    fn usage(&self) -> (Option<f64>, Option<u64>, Option<u64>) {
        let r = &self.report;
        (r.cost_usd, r.input_tokens, r.output_tokens)
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

    /// Claude Code 2.1.197's own output against a stand-in server that
    /// answers 429 with the plan-limit headers (tests/agents/README.md).
    #[test]
    fn a_plan_limit_is_a_usage_cap_with_the_reset_from_its_event() {
        let mut c = Claude::new("/wt".into());
        let mut limited = Vec::new();
        for l in include_str!("../../tests/agents/claude-cap.jsonl").lines() {
            limited.extend(c.line(false, l).limited);
        }
        let r = c.report();
        let (kind, words) = r.failure.clone().unwrap();
        assert_eq!(kind, FailureKind::UsageCap);
        assert!(
            words.starts_with("You've hit your session limit · resets"),
            "{words}"
        );
        assert_eq!(r.resets_at, Some(1_796_539_499));
        assert_eq!(r.cap_lifts_at(1_796_536_000), Some(1_796_539_499));
        assert_eq!(limited, vec![FailureKind::UsageCap]);
    }

    #[test]
    fn a_plain_429_is_a_rate_limit_whatever_its_words_say_of_usage_limits() {
        let mut c = Claude::new("/wt".into());
        let mut limited = Vec::new();
        for l in include_str!("../../tests/agents/claude-ratelimit.jsonl").lines() {
            limited.extend(c.line(false, l).limited);
        }
        let (kind, words) = c.report().failure.unwrap();
        assert_eq!(kind, FailureKind::RateLimit, "{words}");
        assert_eq!(limited, vec![FailureKind::RateLimit]);
        // Its own retries, as they happen.
        let retry = r#"{"type":"system","subtype":"api_retry","attempt":3,"max_retries":10,"retry_delay_ms":2445.1,"error_status":429,"error":"rate_limit"}"#;
        let line = c.line(false, retry);
        assert_eq!(line.limited, Some(FailureKind::RateLimit));
        assert_eq!(line.show.as_deref(), Some("retry 3/10: 429 rate_limit"));
        assert!(!line.progress && !line.hopeless);
        // A login that fails is not retried ten times: stopped at once.
        let mut c = Claude::new("/wt".into());
        let retry = r#"{"type":"system","subtype":"api_retry","attempt":1,"max_retries":10,"retry_delay_ms":531.0,"error_status":401,"error":"authentication_failed"}"#;
        let line = c.line(false, retry);
        assert!(line.hopeless);
        assert_eq!(
            line.show.as_deref(),
            Some("retry 1/10: 401 authentication_failed")
        );
        assert_eq!(c.report().failure.unwrap().0, FailureKind::Auth);
    }

    #[test]
    fn a_cap_in_words_alone_is_a_cap_and_its_reset_is_read_from_them() {
        let mut c = Claude::new("/wt".into());
        c.line(false, r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"You've hit your weekly limit · resets Dec 8, 2:20pm (UTC)","total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0}}"#);
        let r = c.report();
        assert_eq!(r.failure.as_ref().unwrap().0, FailureKind::UsageCap);
        assert_eq!(r.resets_at, None);
        // 2026-12-08T14:21:00Z: the end of the minute it names.
        assert_eq!(r.cap_lifts_at(1_796_536_020), Some(1_796_739_660));
    }
}
