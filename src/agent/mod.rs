//! Agent presets (SPEC §9): for each CLI, the command line of its
//! documented non-interactive mode with the flags that let it edit files and
//! run commands unattended, and a reader of its output that finds the
//! current step (for the dashboard), the final message, tokens and cost,
//! and a failure in the CLI's own words, classified (auth, usage cap, rate
//! limit, ...). Every preset gets its prompt on stdin, then EOF.

mod aider;
mod claude;
mod codex;
mod gemini;
mod opencode;
pub mod resets;

use serde_json::Value;
use std::fmt;

/// Folders an agent CLI leaves in the worktree as its own cache (git-
/// ignored, rebuilt at will): never a reason to keep a worktree, never
/// committed. aider's repo-map tags cache.
pub const CACHES: [&str; 2] = [".aider.tags.cache.v4", ".aider.tags.cache.v3"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Claude,
    Codex,
    Gemini,
    Aider,
    Opencode,
    /// `agent.command` as given.
    Command,
}

pub const PRESETS: [Preset; 6] = [
    Preset::Claude,
    Preset::Codex,
    Preset::Gemini,
    Preset::Aider,
    Preset::Opencode,
    Preset::Command,
];

/// The built-in presets by name, for messages: `claude, codex, ...`.
pub fn preset_names() -> String {
    PRESETS
        .iter()
        .filter(|p| **p != Preset::Command)
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Preset {
    pub fn parse(name: &str) -> Option<Preset> {
        PRESETS.into_iter().find(|p| p.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::Claude => "claude",
            Preset::Codex => "codex",
            Preset::Gemini => "gemini",
            Preset::Aider => "aider",
            Preset::Opencode => "opencode",
            Preset::Command => "command",
        }
    }

    /// The CLI's program name (`None` for `command`).
    pub fn program(self) -> Option<&'static str> {
        match self {
            Preset::Command => None,
            p => Some(p.name()),
        }
    }

    /// How to install the CLI, for messages.
    pub fn install_hint(self) -> &'static str {
        match self {
            Preset::Claude => "npm install -g @anthropic-ai/claude-code",
            Preset::Codex => "npm install -g @openai/codex",
            Preset::Gemini => "npm install -g @google/gemini-cli",
            Preset::Opencode => "npm install -g opencode-ai",
            Preset::Aider => "python3 -m pip install aider-chat",
            Preset::Command => "",
        }
    }

    /// The command line of a preset (`command`: none), `model` added where given.
    pub fn argv(self, model: Option<&str>) -> Vec<String> {
        let words: Vec<&str> = match self {
            Preset::Claude => claude::ARGV.to_vec(),
            Preset::Codex => codex::ARGV.to_vec(),
            Preset::Gemini => gemini::ARGV.to_vec(),
            Preset::Aider => aider::ARGV.to_vec(),
            Preset::Opencode => opencode::ARGV.to_vec(),
            Preset::Command => Vec::new(),
        };
        let mut argv: Vec<String> = words.into_iter().map(String::from).collect();
        if let Some(m) = model.filter(|_| self != Preset::Command) {
            let flag = match self {
                Preset::Claude | Preset::Aider => "--model",
                _ => "-m",
            };
            argv.extend([flag.to_string(), m.to_string()]);
        }
        argv
    }

    /// What the CLI's environment needs beyond ours: aider wraps its output
    /// at 80 columns off a terminal, cutting errors and token lines apart.
    pub fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Preset::Aider => &[("COLUMNS", "4096")],
            _ => &[],
        }
    }

    /// The environment variables that are the CLI's own (its keys, its
    /// endpoints, its settings): the agent keeps them (`sandbox`).
    pub fn env_keys(self) -> &'static [&'static str] {
        match self {
            Preset::Claude => &["ANTHROPIC_*", "CLAUDE_*", "IS_SANDBOX", "DISABLE_*"],
            Preset::Codex => &["OPENAI_*", "CODEX_*"],
            Preset::Gemini => &["GEMINI_*", "GOOGLE_*"],
            Preset::Opencode => &["OPENCODE_*", "ANTHROPIC_*", "OPENAI_*", "GEMINI_*"],
            Preset::Aider => &[
                "AIDER_*",
                "ANTHROPIC_*",
                "OPENAI_*",
                "GEMINI_*",
                "OPENROUTER_*",
                "DEEPSEEK_*",
                "OLLAMA_*",
            ],
            Preset::Command => &[],
        }
    }

    /// The CLI's own state, under `$HOME`: folders (ending in `/`) and
    /// files it must be able to write inside the sandbox. Never a shared
    /// one like `~/.cache`: other tools keep code there that the user runs
    /// (pre-commit's hook environments), so an agent could plant it.
    pub fn state(self) -> &'static [&'static str] {
        match self {
            Preset::Claude => &[".claude/", ".claude.json", ".config/claude/"],
            Preset::Codex => &[".codex/"],
            Preset::Gemini => &[".gemini/"],
            Preset::Opencode => &[
                ".local/share/opencode/",
                ".local/state/opencode/",
                ".config/opencode/",
                ".cache/opencode/",
            ],
            Preset::Aider => &[".aider/"],
            Preset::Command => &[],
        }
    }

    /// Its command line under ai-sdlc's filesystem sandbox. Codex's own
    /// sandbox (`--sandbox workspace-write`, bubblewrap) cannot start inside
    /// Landlock, which denies mount(2): its commands fail with no event, so
    /// the confinement is left to ours, which writes the same worktree and
    /// also hides the user's secrets.
    pub fn inside_sandbox(self, argv: &mut Vec<String>) {
        if self != Preset::Codex {
            return;
        }
        if let Some(i) = argv
            .windows(2)
            .position(|w| w[0] == "--sandbox" && w[1] == "workspace-write")
        {
            argv.splice(
                i..i + 2,
                ["--dangerously-bypass-approvals-and-sandbox".to_string()],
            );
        }
    }

    /// Environment variables that move the CLI's state elsewhere, and the
    /// folder under each (written like `state` when set).
    pub fn state_env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Preset::Claude => &[("CLAUDE_CONFIG_DIR", ""), ("XDG_CONFIG_HOME", "claude")],
            Preset::Codex => &[("CODEX_HOME", "")],
            Preset::Opencode => &[
                ("XDG_DATA_HOME", "opencode"),
                ("XDG_STATE_HOME", "opencode"),
                ("XDG_CONFIG_HOME", "opencode"),
                ("XDG_CACHE_HOME", "opencode"),
            ],
            _ => &[],
        }
    }

    /// Does the CLI need `agent.model` to run unattended? (aider without a
    /// model waits five minutes for a browser login.)
    pub fn needs_model(self) -> bool {
        self == Preset::Aider
    }

    /// A reader of this CLI's output for one phase.
    pub fn reader(self, worktree: &str) -> Box<dyn Reader> {
        let worktree = worktree.trim_end_matches('/').to_string();
        match self {
            Preset::Claude => Box::new(claude::Claude::new(worktree)),
            Preset::Codex => Box::new(codex::Codex::new(worktree)),
            Preset::Gemini => Box::new(gemini::Gemini::new(worktree)),
            Preset::Aider => Box::new(aider::Aider::default()),
            Preset::Opencode => Box::new(opencode::Opencode::new(worktree)),
            Preset::Command => Box::new(Plain::default()),
        }
    }

    /// Before the agent starts: a check that costs no tokens and says the
    /// CLI cannot authenticate, for CLIs that would otherwise hang (codex
    /// retries forever without a network). The command, and the variables
    /// that make it moot when set.
    pub fn auth_check(self) -> Option<(&'static [&'static str], &'static [&'static str])> {
        match self {
            Preset::Codex => Some((codex::AUTH_CHECK, codex::KEY_VARS)),
            _ => None,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of failure a CLI reported, which decides whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Not logged in, no or bad API key.
    Auth,
    /// Quota, billing, plan usage limit: retrying will not help today.
    UsageCap,
    RateLimit,
    Overloaded,
    Network,
    /// The story's budget is spent (the CLI's own limit, or the runner's).
    OverBudget,
    /// Anything else the CLI called an error.
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Auth => "auth",
            FailureKind::UsageCap => "usage_cap",
            FailureKind::RateLimit => "rate_limit",
            FailureKind::Overloaded => "overloaded",
            FailureKind::Network => "network",
            FailureKind::OverBudget => "over_budget",
            FailureKind::Other => "other",
        }
    }

    pub const ALL: [FailureKind; 7] = [
        FailureKind::Auth,
        FailureKind::UsageCap,
        FailureKind::RateLimit,
        FailureKind::Overloaded,
        FailureKind::Network,
        FailureKind::OverBudget,
        FailureKind::Other,
    ];

    pub fn parse(s: &str) -> Option<FailureKind> {
        FailureKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Worth retrying after a pause (`agent.retries`).
    pub fn transient(self) -> bool {
        matches!(
            self,
            FailureKind::RateLimit | FailureKind::Overloaded | FailureKind::Network
        )
    }

    /// True of the account, not of one story, until a person acts: no
    /// other story will do better. (A usage cap lifts by itself: the run
    /// waits for it instead.)
    pub fn account_wide(self) -> bool {
        self == FailureKind::Auth
    }

    /// In words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            FailureKind::Auth => "authentication failed",
            FailureKind::UsageCap => "usage limit reached",
            FailureKind::RateLimit => "rate limited",
            FailureKind::Overloaded => "the service or the CLI is busy",
            FailureKind::Network => "network error",
            FailureKind::OverBudget => "over budget",
            FailureKind::Other => "the agent reported an error",
        }
    }
}

/// Classify an error message a CLI printed. Order matters: a quota 429 is a
/// usage cap, not a rate limit.
pub fn classify(message: &str) -> FailureKind {
    let m = message.to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if any(&["not your usage limit"]) {
        // Claude Code: "Server is temporarily limiting requests (not your usage limit)".
        FailureKind::RateLimit
    } else if any(&[
        // Claude Code 2.1: "You've hit your session limit · resets 4:06pm",
        // "weekly limit", "Opus limit", "monthly spend limit", ...
        "you've hit your",
        "you’ve hit your",
        "you've reached your",
        "out of usage credits",
        "out of extra usage",
        "usage limit",
        "usage_limit",
        "quota",
        "credit balance",
        "billing",
        "limit: 0",
        "free usage exceeded",
        "freeusagelimiterror",
        "out of credits",
    ]) {
        FailureKind::UsageCap
    } else if any(&[
        "not logged in",
        "/login",
        "authentication",
        "unauthenticated",
        "unauthorized",
        "401",
        "invalid api key",
        "invalid x-api-key",
        "api key",
        "api_key",
        "auth method",
        "credentials",
        "permission denied by the api",
    ]) {
        FailureKind::Auth
    } else if any(&[
        "rate limit",
        "rate_limit",
        "ratelimit",
        "429",
        "too many requests",
        "resource_exhausted",
    ]) {
        FailureKind::RateLimit
    } else if any(&[
        "overloaded",
        "529",
        "503",
        "service unavailable",
        "server is busy",
    ]) {
        FailureKind::Overloaded
    } else if any(&[
        "network",
        "connection refused",
        "connection reset",
        "econnreset",
        "econnrefused",
        "etimedout",
        "timed out",
        "could not resolve",
        "failed to lookup",
        "name does not resolve",
        "stream disconnected",
        "fetch failed",
        "unable to connect",
    ]) {
        FailureKind::Network
    } else {
        FailureKind::Other
    }
}

/// A CLI's report on one phase, read from its output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The agent's last word, from presets whose CLI says which it is.
    pub final_message: Option<String>,
    /// What later phases' prompts get of this one: the final message, or
    /// (for a plain command) the end of its output.
    pub handover: Option<String>,
    /// Including cached input, where the CLI counts it apart.
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
    /// A failure the CLI reported, in its own words (first line).
    pub failure: Option<(FailureKind, String)>,
    /// When a usage cap lifts (seconds since the epoch), where the CLI
    /// said it in its structured output.
    pub resets_at: Option<u64>,
    /// `cost_usd` is its tokens at `agent.pricing`, not the CLI's figure.
    pub priced: bool,
}

impl Report {
    /// "$0.25, 12300 tokens in, 456 out", when the agent's CLI reported any of it.
    pub fn usage_text(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(c) = self.cost_usd {
            parts.push(usd(c));
        }
        match (self.input_tokens, self.output_tokens) {
            (None, None) => {}
            (i, o) => parts.push(format!(
                "{} tokens in, {} out",
                i.map_or("?".into(), |n| n.to_string()),
                o.map_or("?".into(), |n| n.to_string())
            )),
        }
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// When the usage cap this report failed on lifts: the CLI's structured
    /// answer, else its words (`resets 4:06pm`, `try again at 7:49 AM`).
    /// `None` when it did not fail on a cap or did not say.
    pub fn cap_lifts_at(&self, now_secs: u64) -> Option<u64> {
        let (kind, words) = self.failure.as_ref()?;
        if *kind != FailureKind::UsageCap {
            return None;
        }
        self.resets_at.or_else(|| {
            resets::reset_time(words, now_secs as i64, &crate::time::local_offset)
                .and_then(|t| u64::try_from(t).ok())
        })
    }

    /// Add `other` (a later phase or attempt) to these totals.
    pub fn add_usage(&mut self, other: &Report) {
        fn sum<T: std::ops::Add<Output = T> + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(x), Some(y)) => Some(x + y),
                (x, y) => x.or(y),
            }
        }
        self.input_tokens = sum(self.input_tokens, other.input_tokens);
        self.output_tokens = sum(self.output_tokens, other.output_tokens);
        self.cost_usd = sum(self.cost_usd, other.cost_usd);
        self.priced |= other.priced;
    }
}

/// US dollars for people: `$1.23`, and `$0.0045` below a cent (a cheap
/// run is not free).
pub fn usd(c: f64) -> String {
    if c != 0.0 && c.abs() < 0.01 {
        format!("${c:.4}")
    } else {
        format!("${c:.2}")
    }
}

/// What one output line told.
#[derive(Debug, Default, PartialEq)]
pub struct Line {
    /// What to show people: `Some("")` shows nothing (a structured event
    /// with nothing to say); `None` shows the raw line.
    pub show: Option<String>,
    /// Counts as a sign of life for `agent.idleTimeout` (a CLI retrying
    /// its connection forever prints, but makes no progress).
    pub progress: bool,
    /// The CLI says it is being rate limited (or the service is
    /// overloaded) and retries by itself: a sign to slow the whole run.
    pub limited: Option<FailureKind>,
    /// The CLI met a failure no retry of its own will mend (a login that
    /// fails): stop it now rather than after its retries.
    pub hopeless: bool,
    /// The CLI retries a failed request by itself (minutes of silence
    /// otherwise): shown and logged as news, not as a line of output.
    pub retrying: bool,
}

impl Line {
    fn raw() -> Line {
        Line {
            show: None,
            progress: true,
            limited: None,
            hopeless: false,
            retrying: false,
        }
    }

    fn show(text: impl Into<String>) -> Line {
        Line {
            show: Some(first_line(&text.into(), 200)),
            progress: true,
            limited: None,
            hopeless: false,
            retrying: false,
        }
    }

    fn hidden() -> Line {
        Line {
            show: Some(String::new()),
            progress: true,
            limited: None,
            hopeless: false,
            retrying: false,
        }
    }

    /// This line, as a sign that the CLI is being rate limited.
    fn limited(mut self, kind: FailureKind) -> Line {
        self.limited = Some(kind);
        self
    }
}

/// Reads one phase's output, line by line.
pub trait Reader: Send {
    fn line(&mut self, stderr: bool, line: &str) -> Line;
    fn report(&self) -> Report;
    /// What the phase has spent so far, as the CLI reported it: cost,
    /// input and output tokens. Asked after every line, so it must be
    /// cheap: a reader whose CLI reports usage answers from its fields;
    /// the rest report none.
    fn usage(&self) -> (Option<f64>, Option<u64>, Option<u64>) {
        (None, None, None)
    }
}

/// The `command` preset: any program; its output is shown as is, and the
/// end of its stdout is handed to later phases. It has no "final message",
/// and no failure classification: an arbitrary program's words are its
/// own business.
#[derive(Default)]
struct Plain {
    tail: Tail,
}

impl Reader for Plain {
    fn line(&mut self, stderr: bool, line: &str) -> Line {
        if !stderr {
            self.tail.push(line);
        }
        Line::raw()
    }

    fn report(&self) -> Report {
        Report {
            handover: self.tail.text(),
            ..Report::default()
        }
    }
}

/// The largest final message kept (it may go into later phases' prompts).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The last lines of a stream, at most about `MAX_MESSAGE` bytes, in one
/// buffer (a flood of short lines must not mean a flood of allocations).
#[derive(Default)]
struct Tail {
    text: String,
}

impl Tail {
    fn push(&mut self, line: &str) {
        self.text.push_str(&cut(line, MAX_MESSAGE));
        self.text.push('\n');
        if self.text.len() > 2 * MAX_MESSAGE {
            // Drop whole lines from the front, down to the limit.
            let excess = self.text.len() - MAX_MESSAGE;
            let cut_at = self.text[excess..]
                .find('\n')
                .map_or(self.text.len(), |i| excess + i + 1);
            self.text.drain(..cut_at);
        }
    }

    fn clear(&mut self) {
        self.text.clear();
    }

    fn text(&self) -> Option<String> {
        let mut t = self.text.as_str();
        if t.len() > MAX_MESSAGE {
            let from = t.len() - MAX_MESSAGE;
            t = &t[t[from..].find('\n').map_or(from, |i| from + i + 1)..];
        }
        let t = t.trim();
        (!t.is_empty()).then(|| t.to_string())
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The first non-empty line of `s`, cut to `max` bytes.
pub fn first_line(s: &str, max: usize) -> String {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    cut(line, max)
}

/// `path` relative to the worktree when it is inside it.
fn short_path(worktree: &str, path: &str) -> String {
    path.strip_prefix(worktree)
        .map(|p| p.trim_start_matches('/'))
        .filter(|p| !p.is_empty())
        .unwrap_or(path)
        .to_string()
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_u64()
}

/// A tool call as a step: `Edit src/lib.rs`, `Bash cargo test`.
fn step(verb: &str, what: Option<&str>) -> Line {
    match what.map(str::trim).filter(|w| !w.is_empty()) {
        Some(w) => Line::show(format!("{verb} {}", first_line(w, 160))),
        None => Line::show(verb),
    }
}

/// The failure a CLI reported, in its words: first line, classified.
fn failure(message: &str) -> (FailureKind, String) {
    let first = first_line(message, 300);
    (classify(message), first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_read_well_and_a_cheap_run_is_not_free() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(0.0045), "$0.0045");
        assert_eq!(usd(0.25), "$0.25");
        assert_eq!(usd(12.345), "$12.35");
    }

    #[test]
    fn classifies_the_messages_the_clis_print() {
        for (msg, kind) in [
            ("Not logged in · Please run /login", FailureKind::Auth),
            (
                "unexpected status 401 Unauthorized: Missing bearer",
                FailureKind::Auth,
            ),
            (
                "Please set an Auth method in your ~/.gemini/settings.json",
                FailureKind::Auth,
            ),
            (
                "litellm.AuthenticationError: Missing Anthropic API Key",
                FailureKind::Auth,
            ),
            (
                "exceeded retry limit, last status: 429 Too Many Requests",
                FailureKind::RateLimit,
            ),
            (
                "You’ve hit your usage limit. Upgrade to Pro or try again later.",
                FailureKind::UsageCap,
            ),
            (
                "Quota exceeded. Check your plan and billing details.",
                FailureKind::UsageCap,
            ),
            (
                "[API Error: You exceeded your current quota, limit: 0, model: x]",
                FailureKind::UsageCap,
            ),
            ("API Error: 529 Overloaded", FailureKind::Overloaded),
            (
                "stream disconnected before completion",
                FailureKind::Network,
            ),
            ("the tests failed", FailureKind::Other),
        ] {
            assert_eq!(classify(msg), kind, "{msg}");
        }
    }

    #[test]
    fn a_failure_kind_has_one_name_in_json_and_in_ipc() {
        for k in FailureKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
            assert_eq!(FailureKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn every_preset_has_a_command_line_that_reads_its_prompt_from_stdin() {
        assert_eq!(
            Preset::Claude.argv(Some("sonnet")).join(" "),
            "claude -p --output-format stream-json --verbose --permission-mode bypassPermissions --model sonnet"
        );
        assert_eq!(
            Preset::Codex.argv(None).join(" "),
            "codex exec --json --sandbox workspace-write --skip-git-repo-check"
        );
        assert!(Preset::Gemini.argv(None).contains(&"--yolo".to_string()));
        assert!(
            Preset::Aider
                .argv(Some("sonnet"))
                .windows(2)
                .any(|w| w == ["--message-file", "/dev/stdin"])
        );
        assert!(Preset::Opencode.argv(None).contains(&"--auto".to_string()));
        assert!(Preset::Command.argv(Some("x")).is_empty());
    }

    #[test]
    fn codex_leaves_its_sandbox_to_ours_and_nothing_else_changes() {
        let mut argv: Vec<String> = super::codex::ARGV.iter().map(|s| s.to_string()).collect();
        Preset::Codex.inside_sandbox(&mut argv);
        assert_eq!(
            argv,
            [
                "codex",
                "exec",
                "--json",
                "--dangerously-bypass-approvals-and-sandbox",
                "--skip-git-repo-check"
            ]
        );
        // A user's read-only choice stands; other presets are untouched.
        let mut ro: Vec<String> = ["codex", "exec", "--sandbox", "read-only"]
            .map(String::from)
            .to_vec();
        Preset::Codex.inside_sandbox(&mut ro);
        assert_eq!(ro[2..], ["--sandbox", "read-only"]);
        let mut claude: Vec<String> = ["claude", "--sandbox", "workspace-write"]
            .map(String::from)
            .to_vec();
        Preset::Claude.inside_sandbox(&mut claude);
        assert_eq!(claude.len(), 3);
    }
}
