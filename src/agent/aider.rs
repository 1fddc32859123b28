//! aider (`--message-file /dev/stdin`): no JSON output, and exit 0 even
//! when the provider refused it, so its stdout is read as text: `Applied
//! edit to <file>`, `Tokens: 2.3k sent, 156 received. Cost: $0.01 message,
//! $0.02 session.`, and litellm's error lines. It needs `--model` (without
//! one it waits for a browser login); `--yes-always` never runs shell
//! commands; `--no-auto-commits` leaves the commit to the runner. Its
//! history files go to /dev/null, so nothing of aider's lands in the
//! worktree but the edits (and `.aider*` in `.gitignore`, its habit).

use super::{Line, Reader, Report, Tail, failure, step};

pub const ARGV: [&str; 15] = [
    "aider",
    "--message-file",
    "/dev/stdin",
    "--yes-always",
    "--no-pretty",
    "--no-stream",
    "--no-fancy-input",
    "--no-check-update",
    "--no-show-release-notes",
    "--no-analytics",
    "--no-auto-commits",
    "--chat-history-file",
    "/dev/null",
    "--input-history-file",
    "/dev/null",
];

#[derive(Default)]
pub struct Aider {
    report: Report,
    /// What it said since the last `Tokens:` line, but its edits.
    said: Tail,
    /// Inside a fenced block (an edit: its file's text, or SEARCH/REPLACE).
    in_fence: bool,
    /// The line before, held back: a file's name when a fence follows.
    held: Option<String>,
}

/// `2.3k` -> 2300, `648` -> 648.
fn tokens(word: &str) -> Option<u64> {
    let w = word.trim().replace(',', "");
    if let Some(k) = w.strip_suffix('k') {
        return k.parse::<f64>().ok().map(|f| (f * 1000.0).round() as u64);
    }
    if let Some(m) = w.strip_suffix('M') {
        return m
            .parse::<f64>()
            .ok()
            .map(|f| (f * 1_000_000.0).round() as u64);
    }
    w.parse().ok()
}

/// Lines of aider's own chatter, not the model's reply.
fn chatter(l: &str) -> bool {
    [
        "Aider v",
        "Main model:",
        "Weak model:",
        "Editor model:",
        "Git repo:",
        "Repo-map:",
        "Warning:",
        "Added ",
        "Applied edit",
        "Commit ",
        "litellm.",
        "Retrying in",
        "The API provider",
        "https://aider.chat",
        "Model:",
        "- ",
        "→ ",
        "You can skip this check",
        "Can't initialize prompt toolkit",
        "Update git name",
        "Update git email",
        // litellm's price list fetch, offline; aider's model warning.
        "HTTPSConnectionPool(",
        "Warning for ",
    ]
    .iter()
    .any(|p| l.starts_with(p))
}

impl Aider {
    /// A line of the reply: its words are kept, its edits are not (a fenced
    /// block, and the file name on the line before it).
    fn say(&mut self, l: &str) {
        if l.starts_with("```") {
            if !self.in_fence {
                // The held line names the edited file: not words.
                self.held = None;
            }
            self.in_fence = !self.in_fence;
            return;
        }
        if self.in_fence || l.is_empty() || chatter(l) {
            return;
        }
        if let Some(h) = self.held.replace(l.to_string()) {
            self.said.push(&h);
        }
    }
}

impl Reader for Aider {
    fn line(&mut self, stderr: bool, line: &str) -> Line {
        let l = line.trim();
        if let Some(file) = l.strip_prefix("Applied edit to ") {
            self.report.failure = None;
            return step("Edit", Some(file));
        }
        if let Some(rest) = l.strip_prefix("Tokens: ") {
            // Tokens: 648 sent, 24 received. Cost: $0.0019 message, $0.0019 session.
            // Tokens: 1.3k sent, 100 cache hit, 60 received. Cost: ...
            // (No `Cost:` for a model aider has no price for.)
            let counts = rest.split(". Cost:").next().unwrap_or(rest);
            let counts = counts.trim_end().trim_end_matches('.');
            let part = |suffix: &str| {
                counts
                    .split(", ")
                    .find_map(|p| p.trim().strip_suffix(suffix))
                    .and_then(tokens)
            };
            let (sent, got) = (part(" sent"), part(" received"));
            let add = |a: Option<u64>, b: Option<u64>| a.map(|a| a + b.unwrap_or(0)).or(b);
            self.report.input_tokens = add(self.report.input_tokens, sent);
            self.report.output_tokens = add(self.report.output_tokens, got);
            if let Some(session) = rest
                .split("message, $")
                .nth(1)
                .and_then(|s| s.split(" session").next())
                .and_then(|s| s.trim().parse::<f64>().ok())
            {
                self.report.cost_usd = Some(session);
            }
            self.report.failure = None;
            if let Some(h) = self.held.take() {
                self.said.push(&h);
            }
            self.report.final_message = self.said.text();
            self.said.clear();
            self.in_fence = false;
            return Line::show(l);
        }
        if l.starts_with("litellm.")
            || l.starts_with("The API provider")
            || l.contains("AuthenticationError")
            || l.contains("RateLimitError")
        {
            // litellm's line names the class; aider's next line says it plainly.
            let keep_first = self.report.failure.as_ref().is_some_and(|(_, m)| {
                m.starts_with("litellm.") && l.starts_with("The API provider")
            });
            if !keep_first {
                self.report.failure = Some(failure(l));
            }
            return Line::raw();
        }
        if !stderr {
            self.say(l);
        }
        Line::raw()
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
    use crate::agent::FailureKind;

    #[test]
    fn reads_edits_tokens_cost_and_the_provider_errors() {
        let mut a = Aider::default();
        for l in [
            "Aider v0.86.2",
            "Main model: gpt-4o with whole edit format",
            "Git repo: .git with 1 files",
            "I created notes.txt with a greeting.",
            "Tokens: 2.3k sent, 24 received. Cost: $0.0019 message, $0.0042 session.",
        ] {
            a.line(false, l);
        }
        assert_eq!(
            a.line(false, "Applied edit to notes.txt").show.as_deref(),
            Some("Edit notes.txt")
        );
        let r = a.report();
        assert_eq!(
            r.final_message.as_deref(),
            Some("I created notes.txt with a greeting.")
        );
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.cost_usd),
            (Some(2300), Some(24), Some(0.0042))
        );
        assert!(r.failure.is_none());

        let mut a = Aider::default();
        a.line(false, "litellm.AuthenticationError: AuthenticationError: OpenAIException - The api_key client option must be set");
        a.line(
            false,
            "The API provider is not able to authenticate you. Check your API key.",
        );
        let (kind, msg) = a.report().failure.unwrap();
        assert_eq!(kind, FailureKind::Auth);
        assert!(msg.starts_with("litellm.AuthenticationError"), "{msg}");

        let mut a = Aider::default();
        a.line(
            false,
            "litellm.RateLimitError: RateLimitError: OpenAIException - slow down",
        );
        assert_eq!(a.report().failure.unwrap().0, FailureKind::RateLimit);
    }

    #[test]
    fn a_tokens_line_with_cache_hits_keeps_its_received_and_the_chatter_is_not_the_message() {
        let mut a = Aider::default();
        for l in [
            "Added .aider* to .gitignore",
            "→ You can skip this check with --no-gitignore",
            "I added the greeting.",
            "Tokens: 1.3k sent, 100 cache hit, 60 received. Cost: $0.0045 message, $0.0045 session.",
        ] {
            a.line(false, l);
        }
        let r = a.report();
        assert_eq!((r.input_tokens, r.output_tokens), (Some(1300), Some(60)));
        assert_eq!(r.cost_usd, Some(0.0045));
        assert_eq!(r.final_message.as_deref(), Some("I added the greeting."));
    }

    /// As real aider 0.86.2 printed it for a model without a price (the
    /// real-CLI tier): no `Cost:`, litellm's failed price fetch, and the
    /// reply's edit in the "whole" format.
    #[test]
    fn a_reply_with_an_edit_and_no_cost_keeps_its_words_and_its_counts() {
        let mut a = Aider::default();
        for l in [
            "HTTPSConnectionPool(host='raw.githubusercontent.com', port=443): Max retries exceeded with url: /BerriAI/litellm/main/model_prices_and_context_window.json",
            "Warning for openai/standin: Unknown context window size and costs, using sane defaults.",
            "Aider v0.86.2",
            "Model: openai/standin with whole edit format",
            "notes.txt",
            "",
            "```",
            "hello from the stand-in model",
            "",
            "```",
            "",
            "STANDIN FINAL: created notes.txt",
            "",
            "Tokens: 1.5k sent, 70 received.",
        ] {
            a.line(false, l);
        }
        let r = a.report();
        assert_eq!(
            (r.input_tokens, r.output_tokens, r.cost_usd),
            (Some(1500), Some(70), None)
        );
        assert_eq!(
            r.final_message.as_deref(),
            Some("STANDIN FINAL: created notes.txt")
        );
    }
}
