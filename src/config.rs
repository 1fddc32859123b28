//! `.ai-sdlc.json` -> `Config`: defaults, environment overrides and
//! validation (SPEC §2). Errors name the key and the file.

use crate::agent::{PRESETS, Preset};
use crate::error::Error;
pub use crate::workflow::Phase;
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = ".ai-sdlc.json";
pub const DEFAULT_FOLDER: &str = ".ai-sdlc";

/// The preset names `run --launcher` and `orchestrator.launcher` take.
pub const LAUNCHER_PRESETS: [&str; 2] = ["slurm", "none"];

#[derive(Debug, Clone)]
pub struct WorktreeConfig {
    pub enabled: bool,
    pub base_path: String,
    pub base_branch: Option<String>,
    pub keep: bool,
    /// Commit a succeeded story's changes on its branch.
    pub commit: bool,
    /// Run in each new worktree before the first phase.
    pub setup: Option<Vec<String>>,
    /// Folders of the main checkout linked into each new worktree.
    pub share: Vec<String>,
    /// Park clean worktrees of finished stories for the next story.
    pub reuse: bool,
}

/// `workflow.*` beyond its phases.
#[derive(Debug, Clone)]
pub struct WorkflowConfig {
    /// Implement rounds a review may ask for before the story is blocked.
    pub max_review_rounds: u32,
    /// With no review phase in the workflow, a done story also gets
    /// `reviews_complete: true`.
    pub mark_reviewed: bool,
    /// A story whose implement phase changed nothing may be done (else it
    /// is blocked: "the agent made no change").
    pub allow_empty: bool,
}

/// `orchestrator.launcher*`: how executors are started.
#[derive(Debug, Clone)]
pub struct LauncherConfig {
    /// A preset name (`slurm`).
    pub preset: Option<String>,
    /// Or a command line to put before the executor's.
    pub command: Option<Vec<String>>,
    /// Appended to either.
    pub args: Vec<String>,
    pub cpus_per_story: u64,
}

/// `merge.*` and `pr.*`: how `ai-sdlc merge` and `pr` land a story.
#[derive(Debug, Clone)]
pub struct LandConfig {
    /// `merge` (fast-forward when possible), `squash` or `rebase`.
    pub strategy: String,
    /// Run on the merged result before the base moves.
    pub verify: Option<Vec<String>>,
    pub remote: String,
    /// `land.resolve`: give a story that does not land back to its agent
    /// (`None`: when an agent is configured).
    pub resolve: Option<bool>,
    /// `land.maxResolveRounds`.
    pub max_resolve_rounds: u32,
}

/// How the attempts of a story are chosen among (SPEC §17).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// A phase of the agent's compares them and names one.
    Judge,
    /// The fewest changed lines.
    Smallest,
    /// The first to pass the verify command.
    First,
}

impl Pick {
    pub const NAMES: [&'static str; 3] = ["smallest", "first", "judge"];

    pub fn parse(s: &str) -> Option<Pick> {
        Some(match s {
            "judge" => Pick::Judge,
            "smallest" => Pick::Smallest,
            "first" => Pick::First,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Pick::Judge => "judge",
            Pick::Smallest => "smallest",
            Pick::First => "first",
        }
    }
}

/// `agent.attempts`, `agent.attemptAgents` and `attempts.*` (SPEC §17):
/// several attempts at a story's implement phase, the best one kept.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptsConfig {
    /// `agent.attempts`: 1 runs the story once, as always.
    pub count: u32,
    /// `agent.attemptAgents`: the presets the attempts go to, round robin
    /// (empty: the configured agent).
    pub agents: Vec<Preset>,
    /// `attempts.verify`: run in each attempt's worktree; a failure drops
    /// the attempt (`None`: `merge.verify`, else every attempt passes).
    pub verify: Option<Vec<String>>,
    /// `attempts.pick`.
    pub pick: Pick,
}

/// `governor.*` (SPEC §15): how a run lives with its agent's limits.
#[derive(Debug, Clone)]
pub struct GovernorConfig {
    /// How long a story parked at a usage cap waits when the CLI did not
    /// say when the cap lifts.
    pub cap_wait_ms: u64,
    /// How long without a rate limit before the run's concurrency climbs
    /// back by one.
    pub rate_quiet_ms: u64,
}

/// `budget.*` (SPEC §15): the most a story and a run may spend; `None`
/// is no limit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetConfig {
    /// USD, per story per run.
    pub story: Option<f64>,
    pub run: Option<f64>,
    /// Tokens (in and out), for CLIs that report no cost.
    pub story_tokens: Option<u64>,
    pub run_tokens: Option<u64>,
}

/// `agent.pricing`: USD per million tokens, for CLIs that report only
/// tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub input: f64,
    pub output: f64,
}

/// `agent.*`: which agent runs the phases without a command of their own.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// `None` with a command means `command`; with neither, no agent.
    pub preset: Option<Preset>,
    pub command: Option<Vec<String>>,
    /// Appended to the preset's (or the command's) arguments.
    pub args: Vec<String>,
    pub model: Option<String>,
    /// No output this long means the agent hangs; 0 turns it off.
    pub idle_timeout_ms: u64,
    /// Retries of a phase whose agent failed in a way its preset calls transient.
    pub retries: u32,
    /// The first retry's pause; it doubles with each retry.
    pub retry_delay_ms: u64,
    pub pricing: Option<Pricing>,
    /// `agent.env.pass`: more variables the agent keeps (names, `PREFIX_*`).
    pub env_pass: Vec<String>,
    /// `agent.env.set`: variables set for the agent.
    pub env_set: Vec<(String, String)>,
    /// `agent.ports`: how many ports each running story has for itself.
    pub ports: u16,
    /// `agent.sandbox`: the filesystem sandbox (on where the kernel has it).
    pub sandbox: SandboxConfig,
}

/// `agent.sandbox`: `false`, or `{"write": [...], "hide": [...]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    pub enabled: bool,
    /// More folders an agent may write (absolute, `~/...`, or under the
    /// repo).
    pub write: Vec<String>,
    /// More paths it may not read (absolute, or under `$HOME`).
    pub hide: Vec<String>,
}

impl SandboxConfig {
    pub fn is_default(&self) -> bool {
        self.enabled && self.write.is_empty() && self.hide.is_empty()
    }
}

impl LandConfig {
    /// Does `land` give a story that does not land back to its agent?
    pub fn resolves(&self, agent: &AgentConfig) -> bool {
        self.resolve.unwrap_or(agent.preset().is_some())
    }
}

impl AgentConfig {
    /// The preset in effect.
    pub fn preset(&self) -> Option<Preset> {
        self.preset
            .or_else(|| self.command.as_ref().map(|_| Preset::Command))
    }

    /// The presets a story's attempts may go to: the configured agent's
    /// and `agent.attemptAgents` (built-in presets only).
    pub fn attempt_presets(&self, attempts: &AttemptsConfig) -> Vec<Preset> {
        let mut v: Vec<Preset> = self
            .preset()
            .into_iter()
            .chain(attempts.agents.iter().copied())
            .collect();
        v.dedup();
        v
    }

    /// Run the built-in preset `p` instead: its own command line, without
    /// the configured agent's extra arguments and model (they are for
    /// another CLI).
    pub fn use_preset(&mut self, p: Preset) {
        if self.preset() != Some(p) {
            self.preset = Some(p);
            self.command = None;
            self.args.clear();
            self.model = None;
        }
    }
}

/// The most attempts a story may have (`attempts`, `agent.attempts`,
/// `run --attempts`).
pub const MAX_ATTEMPTS: u32 = 16;

/// The longest time any setting may name (a year): more would overflow
/// the clock arithmetic, and nobody means it.
pub const MAX_MS: u64 = 365 * 24 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct Config {
    /// The repo root: the directory holding `.ai-sdlc.json` or the board folder.
    pub root: PathBuf,
    /// The config file, when there is one.
    pub file: Option<PathBuf>,
    pub sdlc_folder: String,
    pub agent: AgentConfig,
    pub phases: Vec<Phase>,
    pub workflow: WorkflowConfig,
    pub agent_timeout_ms: u64,
    /// As configured; `run` turns 0 or less into 1 with a warning.
    pub concurrency: i64,
    pub shutdown_timeout_ms: u64,
    pub health_check_interval_ms: u64,
    pub health_miss_threshold: u32,
    pub worktree: WorktreeConfig,
    pub logs_keep: usize,
    pub land: LandConfig,
    pub launcher: LauncherConfig,
    pub governor: GovernorConfig,
    pub budget: BudgetConfig,
    pub attempts: AttemptsConfig,
    /// Keys that look like typos of ours ("did you mean"), for every
    /// command that reads the config to say.
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Usage(e.0)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Config {
    pub fn defaults(root: PathBuf) -> Config {
        Config {
            root,
            file: None,
            sdlc_folder: DEFAULT_FOLDER.to_string(),
            agent: AgentConfig {
                preset: None,
                command: None,
                args: Vec::new(),
                model: None,
                idle_timeout_ms: 600_000,
                retries: 0,
                retry_delay_ms: 30_000,
                pricing: None,
                env_pass: Vec::new(),
                env_set: Vec::new(),
                ports: 10,
                sandbox: SandboxConfig {
                    enabled: true,
                    write: Vec::new(),
                    hide: Vec::new(),
                },
            },
            phases: vec![Phase {
                name: "implement".to_string(),
                command: None,
            }],
            workflow: WorkflowConfig {
                max_review_rounds: 2,
                mark_reviewed: false,
                allow_empty: false,
            },
            agent_timeout_ms: 1_800_000,
            concurrency: 1,
            shutdown_timeout_ms: 10_000,
            health_check_interval_ms: 5_000,
            health_miss_threshold: 2,
            worktree: WorktreeConfig {
                enabled: true,
                base_path: ".ai-sdlc/worktrees".to_string(),
                base_branch: None,
                keep: false,
                commit: true,
                setup: None,
                share: Vec::new(),
                reuse: false,
            },
            logs_keep: 5,
            launcher: LauncherConfig {
                preset: None,
                command: None,
                args: Vec::new(),
                cpus_per_story: 1,
            },
            land: LandConfig {
                strategy: "merge".to_string(),
                verify: None,
                remote: "origin".to_string(),
                resolve: None,
                max_resolve_rounds: 2,
            },
            governor: GovernorConfig {
                cap_wait_ms: 30 * 60 * 1000,
                rate_quiet_ms: 60_000,
            },
            budget: BudgetConfig::default(),
            attempts: AttemptsConfig {
                count: 1,
                agents: Vec::new(),
                verify: None,
                pick: Pick::Smallest,
            },
            warnings: Vec::new(),
        }
    }

    /// What a phase runs: its own command, or the agent (the preset's
    /// command line, or `agent.command`, with `agent.args`). `None` when no
    /// agent is configured.
    pub fn command_of(&self, phase: &Phase) -> Option<(Preset, Vec<String>)> {
        if let Some(c) = &phase.command {
            return Some((Preset::Command, c.clone()));
        }
        let a = &self.agent;
        let preset = a.preset()?;
        let mut argv = match preset {
            Preset::Command => a.command.clone()?,
            p => p.argv(a.model.as_deref()),
        };
        argv.extend(a.args.iter().cloned());
        Some((preset, argv))
    }

    /// Use the built-in workflow `name` (`run --workflow`) instead of the
    /// configured phases.
    pub fn use_workflow(&mut self, name: &str) -> Result<(), String> {
        self.phases = crate::workflow::preset(name).ok_or_else(|| {
            format!(
                "--workflow {name:?}: no such workflow; the built-in ones are {}",
                crate::workflow::WORKFLOWS.join(", ")
            )
        })?;
        Ok(())
    }

    /// The board folder, absolute.
    pub fn sdlc_dir(&self) -> PathBuf {
        self.root.join(&self.sdlc_folder)
    }

    pub fn stories_dir(&self) -> PathBuf {
        self.sdlc_dir().join("stories")
    }

    pub fn worktree_base(&self) -> PathBuf {
        self.root.join(&self.worktree.base_path)
    }

    /// Where to tell the user to put a setting.
    pub fn file_name(&self) -> String {
        match &self.file {
            Some(f) => f.display().to_string(),
            None => self.root.join(CONFIG_FILE).display().to_string(),
        }
    }

    /// Load the config of the repo at `root` (which need not have a config file).
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::defaults(root.to_path_buf());
        let file = root.join(CONFIG_FILE);
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let value: Value = serde_json::from_str(&text).map_err(|e| {
                    ConfigError(format!(
                        "{}: not valid JSON: {e}; fix the file or delete it to use the defaults",
                        file.display()
                    ))
                })?;
                config.file = Some(file.clone());
                apply(&mut config, &value, &file)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ConfigError(format!("cannot read {}: {e}", file.display())));
            }
        }
        apply_env(&mut config, |k| std::env::var(k).ok())?;
        Ok(config)
    }
}

/// The repo to work in: `-C DIR` or the cwd, searched upward for a board.
pub fn locate(dir: Option<&Path>) -> Result<PathBuf, Error> {
    let start = start_dir(dir)?;
    let root = find_root(&start).ok_or_else(|| {
        Error::usage(format!(
            "no ai-sdlc board in {} or any folder above it; run `ai-sdlc init` in your repo first, or pass -C <repo>",
            start.display()
        ))
    })?;
    Ok(main_board(&root).unwrap_or(root))
}

/// When `root` is one of the tool's own story worktrees, its board is a
/// stale copy: the main checkout's root, whose board is the real one.
fn main_board(root: &Path) -> Option<PathBuf> {
    // A linked worktree has a `.git` file, not a folder.
    if !std::fs::symlink_metadata(root.join(".git")).ok()?.is_file() {
        return None;
    }
    let common = crate::git::refs::common_dir(root).ok()?;
    if common.file_name()? != ".git" {
        return None;
    }
    let main = common.parent()?.to_path_buf();
    let main = find_root(&main).filter(|m| m == &main)?;
    let base = Config::load(&main).ok()?.worktree_base();
    let base = base.canonicalize().unwrap_or(base);
    root.starts_with(&base).then(|| {
        log::info!(
            "{} is a story worktree; using the board of the main checkout, {}",
            root.display(),
            main.display()
        );
        main
    })
}

/// `-C DIR` made absolute, or the cwd.
pub fn start_dir(dir: Option<&Path>) -> Result<PathBuf, Error> {
    match dir {
        Some(d) => std::fs::canonicalize(d)
            .and_then(|p| {
                if p.is_dir() {
                    Ok(p)
                } else {
                    Err(std::io::Error::other("not a directory"))
                }
            })
            .map_err(|e| Error::usage(format!("cannot use -C {}: {e}", d.display()))),
        None => std::env::current_dir()
            .map_err(|e| Error::usage(format!("cannot read the current directory: {e}"))),
    }
}

/// Search upward from `start` for a directory with `.ai-sdlc.json` or `.ai-sdlc/`.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(CONFIG_FILE).is_file() || dir.join(DEFAULT_FOLDER).is_dir())
        .map(Path::to_path_buf)
}

struct Reader<'a> {
    file: &'a Path,
    /// What to tell the user of keys that look like typos of ours.
    warnings: std::cell::RefCell<Vec<String>>,
}

/// Every key this tool reads, by its full dotted name.
const KNOWN: &[&str] = &[
    "sdlcFolder",
    "ai.provider",
    "agent.preset",
    "agent.command",
    "agent.args",
    "agent.model",
    "agent.idleTimeout",
    "agent.retries",
    "agent.retryDelay",
    "agent.pricing",
    "agent.env.pass",
    "agent.env.set",
    "agent.ports",
    "agent.sandbox",
    "agent.sandbox.write",
    "agent.sandbox.hide",
    "workflow.phases",
    "workflow.preset",
    "workflow.maxReviewRounds",
    "workflow.markReviewed",
    "workflow.allowEmpty",
    "timeouts.agentTimeout",
    "orchestrator.concurrency",
    "orchestrator.shutdownTimeout",
    "orchestrator.healthCheckInterval",
    "orchestrator.healthMissThreshold",
    "orchestrator.launcher",
    "orchestrator.launcherArgs",
    "orchestrator.cpusPerStory",
    "worktree.enabled",
    "worktree.basePath",
    "worktree.baseBranch",
    "worktree.keep",
    "worktree.commit",
    "worktree.setup",
    "worktree.share",
    "worktree.reuse",
    "merge.strategy",
    "merge.verify",
    "agent.attempts",
    "agent.attemptAgents",
    "attemptAgents",
    "attempts.verify",
    "attempts.pick",
    "pr.remote",
    "land.resolve",
    "land.maxResolveRounds",
    "governor.capWait",
    "governor.rateQuiet",
    "budget.story",
    "budget.run",
    "budget.storyTokens",
    "budget.runTokens",
    "logs.keep",
];

/// Keys of the TS ai-sdlc's config that share sections with ours (from the
/// config it writes): never a typo.
const TS_KEYS: &[&str] = &[
    "timeouts.buildTimeout",
    "timeouts.testTimeout",
    "merge.enabled",
    "merge.deleteBranchAfterMerge",
    "merge.checksTimeout",
    "merge.checksPollingInterval",
    "merge.requireAllChecksPassing",
    "retry",
    "epic",
    "tdd",
    "daemon",
    "logging",
    "theme",
];

/// Edit distance with a swap of two neighbours as one edit (optimal
/// string alignment), for "did you mean".
pub fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// The known key `key` (dotted) is most likely a typo of, if any: the same
/// last word misspelt (anywhere), or a near miss in its own section.
pub fn did_you_mean(key: &str) -> Option<&'static str> {
    let last = |k: &str| k.rsplit('.').next().unwrap_or(k).to_lowercase();
    let word = last(key);
    KNOWN
        .iter()
        .map(|k| (distance(&word, &last(k)), *k))
        .filter(|(d, _)| *d > 0 && *d <= (word.len() / 3).clamp(1, 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl Reader<'_> {
    fn err(&self, key: &str, want: &str, got: &Value) -> ConfigError {
        ConfigError(format!(
            "{}: key `{key}` must be {want}, not {got}",
            self.file.display()
        ))
    }

    fn object<'v>(&self, v: &'v Value, key: &str) -> Result<&'v Map<String, Value>, ConfigError> {
        v.as_object().ok_or_else(|| self.err(key, "an object", v))
    }

    fn uint(&self, v: &Value, key: &str) -> Result<u64, ConfigError> {
        v.as_u64()
            .ok_or_else(|| self.err(key, "a non-negative integer", v))
    }

    /// Milliseconds, at most `MAX_MS`.
    fn millis(&self, v: &Value, key: &str) -> Result<u64, ConfigError> {
        let want = format!("a number of milliseconds from 0 to {MAX_MS} (a year)");
        v.as_u64()
            .filter(|ms| *ms <= MAX_MS)
            .ok_or_else(|| self.err(key, &want, v))
    }

    fn strings(&self, v: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
        let want = "a list of strings";
        let list = v.as_array().ok_or_else(|| self.err(key, want, v))?;
        list.iter()
            .map(|w| {
                w.as_str()
                    .map(String::from)
                    .ok_or_else(|| self.err(key, want, v))
            })
            .collect()
    }

    /// A list of built-in presets (`agent.attemptAgents`).
    fn presets(&self, v: &Value, key: &str) -> Result<Vec<Preset>, ConfigError> {
        let list = v
            .as_array()
            .ok_or_else(|| self.err(key, "a list of presets, like [\"claude\", \"codex\"]", v))?;
        list.iter()
            .map(|p| match self.preset(p, key) {
                Ok(Preset::Command) => Err(self.err(
                    key,
                    &format!("built-in presets ({})", crate::agent::preset_names()),
                    p,
                )),
                got => got,
            })
            .collect()
    }

    fn preset(&self, v: &Value, key: &str) -> Result<Preset, ConfigError> {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name()).collect();
        let want = format!("one of {}", names.join(", "));
        v.as_str()
            .and_then(Preset::parse)
            .ok_or_else(|| self.err(key, &want, v))
    }

    /// US dollars: a number from 0 up.
    fn usd(&self, v: &Value, key: &str) -> Result<f64, ConfigError> {
        v.as_f64()
            .filter(|d| d.is_finite() && *d >= 0.0 && *d <= 1e9)
            .ok_or_else(|| self.err(key, "an amount in US dollars (a number, like 0.50)", v))
    }

    fn int(&self, v: &Value, key: &str) -> Result<i64, ConfigError> {
        v.as_i64().ok_or_else(|| self.err(key, "an integer", v))
    }

    fn bool(&self, v: &Value, key: &str) -> Result<bool, ConfigError> {
        v.as_bool().ok_or_else(|| self.err(key, "true or false", v))
    }

    fn string(&self, v: &Value, key: &str) -> Result<String, ConfigError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.err(key, "a string", v))
    }

    fn command(&self, v: &Value, key: &str) -> Result<Vec<String>, ConfigError> {
        let want = "a non-empty list of strings, like [\"claude\", \"-p\"]";
        let list = v.as_array().ok_or_else(|| self.err(key, want, v))?;
        let words: Option<Vec<String>> =
            list.iter().map(|w| w.as_str().map(String::from)).collect();
        match words {
            Some(w) if !w.is_empty() && !w[0].is_empty() => Ok(w),
            _ => Err(self.err(key, want, v)),
        }
    }

    /// A key this tool does not read: the TS tool's, or a typo of ours.
    fn unknown(&self, key: &str) {
        log::debug!("{}: ignoring unknown key `{key}`", self.file.display());
        if TS_KEYS
            .iter()
            .any(|t| key == *t || key.starts_with(&format!("{t}.")))
        {
            return;
        }
        if let Some(k) = did_you_mean(key) {
            self.warnings.borrow_mut().push(format!(
                "{}: `{key}` is not a setting ai-sdlc knows, and is ignored; did you mean `{k}`?",
                self.file.display()
            ));
        }
    }
}

fn apply(c: &mut Config, v: &Value, file: &Path) -> Result<(), ConfigError> {
    let r = Reader {
        file,
        warnings: Default::default(),
    };
    for (key, value) in r.object(v, "(top level)")? {
        match key.as_str() {
            "sdlcFolder" => c.sdlc_folder = r.string(value, "sdlcFolder")?,
            "agent" => apply_agent(c, &r, value)?,
            "workflow" => apply_workflow(c, &r, value)?,
            "timeouts" => apply_timeouts(c, &r, value)?,
            "orchestrator" => apply_orchestrator(c, &r, value)?,
            "worktree" => apply_worktree(c, &r, value)?,
            "merge" => apply_merge(c, &r, value)?,
            "pr" => apply_pr(c, &r, value)?,
            "land" => apply_land(c, &r, value)?,
            "governor" => apply_governor(c, &r, value)?,
            "budget" => apply_budget(c, &r, value)?,
            "attempts" => apply_attempts(c, &r, value)?,
            // Also read where SPEC §17's words put it, beside `agent`.
            "attemptAgents" => c.attempts.agents = r.presets(value, "attemptAgents")?,
            "logs" => apply_logs(c, &r, value)?,
            _ => r.unknown(key),
        }
    }
    // ai-sdlc's own `ai.provider`, when this tool's `agent` names no agent.
    if c.agent.preset().is_none()
        && let Some(p) = v["ai"]["provider"].as_str().and_then(Preset::parse)
        && p != Preset::Command
    {
        c.agent.preset = Some(p);
    }
    c.warnings = r.warnings.into_inner();
    Ok(())
}

/// The `agent` section.
fn apply_agent(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "agent")? {
        let key = format!("agent.{k}");
        let a = &mut c.agent;
        match k.as_str() {
            "preset" if v.is_null() => a.preset = None,
            "preset" => a.preset = Some(r.preset(v, &key)?),
            "command" if v.is_null() => a.command = None,
            "command" => a.command = Some(r.command(v, &key)?),
            "args" => a.args = r.strings(v, &key)?,
            "model" if v.is_null() => a.model = None,
            "model" => a.model = Some(r.string(v, &key)?),
            "idleTimeout" => a.idle_timeout_ms = r.millis(v, &key)?,
            "retries" => a.retries = r.uint(v, &key)?.min(100) as u32,
            "retryDelay" => a.retry_delay_ms = r.millis(v, &key)?,
            "env" => apply_agent_env(a, r, v)?,
            "sandbox" => match v {
                Value::Bool(b) => a.sandbox.enabled = *b,
                _ => {
                    for (sk, sv) in r.object(v, &key)? {
                        let skey = format!("{key}.{sk}");
                        match sk.as_str() {
                            "enabled" => a.sandbox.enabled = r.bool(sv, &skey)?,
                            "write" => a.sandbox.write = r.strings(sv, &skey)?,
                            "hide" => a.sandbox.hide = r.strings(sv, &skey)?,
                            _ => r.unknown(&skey),
                        }
                    }
                }
            },
            "ports" => a.ports = r.uint(v, &key)?.clamp(1, 1000) as u16,
            "attempts" => {
                let max = MAX_ATTEMPTS;
                c.attempts.count = match r.uint(v, &key)? {
                    n @ 1.. if n <= max.into() => n as u32,
                    _ => {
                        let want = format!("a whole number from 1 to {max}");
                        return Err(r.err(&key, &want, v));
                    }
                }
            }
            "attemptAgents" => c.attempts.agents = r.presets(v, &key)?,
            "pricing" if v.is_null() => a.pricing = None,
            "pricing" => {
                let p = r.object(v, &key)?;
                let price = |k: &str| match p.get(k) {
                    Some(x) => r.usd(x, &format!("{key}.{k}")),
                    None => Err(ConfigError(format!(
                        "{}: key `{key}` needs both `input` and `output`, in USD per million tokens, like {{\"input\": 3, \"output\": 15}}",
                        r.file.display()
                    ))),
                };
                a.pricing = Some(Pricing {
                    input: price("input")?,
                    output: price("output")?,
                });
            }
            _ => r.unknown(&key),
        }
    }
    check_agent(&c.agent, r.file)?;
    Ok(())
}

/// `agent.env`: `pass` (names or `PREFIX_*`) and `set` (name -> value).
fn apply_agent_env(a: &mut AgentConfig, r: &Reader, v: &Value) -> Result<(), ConfigError> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.trim_end_matches('*')
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    for (k, v) in r.object(v, "agent.env")? {
        let key = format!("agent.env.{k}");
        match k.as_str() {
            "pass" => {
                let names = r.strings(v, &key)?;
                if let Some(bad) = names.iter().find(|n| !name_ok(n) || n.as_str() == "*") {
                    return Err(r.err(
                        &key,
                        "names of variables, or PREFIX_* (not *)",
                        &Value::from(bad.as_str()),
                    ));
                }
                a.env_pass = names;
            }
            "set" => {
                let mut set = Vec::new();
                for (name, value) in r.object(v, &key)? {
                    if !name_ok(name) || name.contains('*') {
                        return Err(r.err(&key, "a map of variable names to strings", v));
                    }
                    set.push((name.clone(), r.string(value, &format!("{key}.{name}"))?));
                }
                a.env_set = set;
            }
            _ => r.unknown(&key),
        }
    }
    Ok(())
}

/// The `workflow` section.
fn apply_workflow(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    let w = r.object(value, "workflow")?;
    if w.contains_key("phases") && w.get("preset").is_some_and(|p| !p.is_null()) {
        return Err(ConfigError(format!(
            "{}: workflow.preset and workflow.phases are both set; keep one",
            r.file.display()
        )));
    }
    for (k, v) in w {
        let key = format!("workflow.{k}");
        match k.as_str() {
            "phases" => c.phases = phases(r, v)?,
            "preset" if v.is_null() => {}
            "preset" => {
                let want = format!("one of {}", crate::workflow::WORKFLOWS.join(", "));
                c.phases = v
                    .as_str()
                    .and_then(crate::workflow::preset)
                    .ok_or_else(|| r.err(&key, &want, v))?;
            }
            "maxReviewRounds" => {
                c.workflow.max_review_rounds = r.uint(v, &key)?.clamp(1, 100) as u32
            }
            "markReviewed" => c.workflow.mark_reviewed = r.bool(v, &key)?,
            "allowEmpty" => c.workflow.allow_empty = r.bool(v, &key)?,
            _ => r.unknown(&key),
        }
    }
    Ok(())
}

/// The `timeouts` section.
fn apply_timeouts(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "timeouts")? {
        match k.as_str() {
            "agentTimeout" => c.agent_timeout_ms = r.millis(v, "timeouts.agentTimeout")?.max(1),
            _ => r.unknown(&format!("timeouts.{k}")),
        }
    }
    Ok(())
}

/// The `orchestrator` section.
fn apply_orchestrator(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "orchestrator")? {
        let key = format!("orchestrator.{k}");
        match k.as_str() {
            "concurrency" => c.concurrency = r.int(v, &key)?,
            "shutdownTimeout" => c.shutdown_timeout_ms = r.millis(v, &key)?,
            "healthCheckInterval" => c.health_check_interval_ms = r.millis(v, &key)?.max(1),
            "healthMissThreshold" => {
                c.health_miss_threshold = r.uint(v, &key)?.clamp(1, 1000) as u32
            }
            "launcher" if v.is_null() => {
                c.launcher.preset = None;
                c.launcher.command = None;
            }
            "launcher" if v.is_string() => {
                let name = r.string(v, &key)?;
                if !LAUNCHER_PRESETS.contains(&name.as_str()) {
                    let want = format!(
                        "one of {}, or a command line like [\"ssh\", \"build-host\"]",
                        LAUNCHER_PRESETS.join(", ")
                    );
                    return Err(r.err(&key, &want, v));
                }
                c.launcher.preset = Some(name);
            }
            "launcher" => c.launcher.command = Some(r.command(v, &key)?),
            "launcherArgs" => c.launcher.args = r.strings(v, &key)?,
            "cpusPerStory" => c.launcher.cpus_per_story = r.uint(v, &key)?.clamp(1, 4096),
            _ => r.unknown(&key),
        }
    }
    Ok(())
}

/// The `worktree` section.
fn apply_worktree(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "worktree")? {
        let key = format!("worktree.{k}");
        match k.as_str() {
            "enabled" => c.worktree.enabled = r.bool(v, &key)?,
            "basePath" => c.worktree.base_path = r.string(v, &key)?,
            "baseBranch" if v.is_null() => c.worktree.base_branch = None,
            "baseBranch" => c.worktree.base_branch = Some(r.string(v, &key)?),
            "keep" => c.worktree.keep = r.bool(v, &key)?,
            "commit" => c.worktree.commit = r.bool(v, &key)?,
            "setup" if v.is_null() => c.worktree.setup = None,
            "setup" => c.worktree.setup = Some(r.command(v, &key)?),
            "share" => {
                let list = r.strings(v, &key)?;
                if let Some(bad) = list.iter().find(|f| !crate::paths::shareable(f)) {
                    return Err(ConfigError(format!(
                        "{}: worktree.share entry {bad:?} must be a folder path inside the repo, like \"node_modules\" (no `..`, not absolute)",
                        r.file.display()
                    )));
                }
                c.worktree.share = list;
            }
            "reuse" => c.worktree.reuse = r.bool(v, &key)?,
            _ => r.unknown(&key),
        }
    }
    Ok(())
}

/// The `merge` section.
fn apply_merge(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "merge")? {
        let key = format!("merge.{k}");
        match k.as_str() {
            "strategy" => {
                let s = r.string(v, &key)?;
                if !["merge", "squash", "rebase"].contains(&s.as_str()) {
                    return Err(r.err(&key, "one of merge, squash, rebase", v));
                }
                c.land.strategy = s;
            }
            "verify" if v.is_null() => c.land.verify = None,
            "verify" => c.land.verify = Some(r.command(v, &key)?),
            _ => r.unknown(&key),
        }
    }
    Ok(())
}

/// The `attempts` section (SPEC §17).
fn apply_attempts(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "attempts")? {
        let key = format!("attempts.{k}");
        match k.as_str() {
            "verify" if v.is_null() => c.attempts.verify = None,
            "verify" => c.attempts.verify = Some(r.command(v, &key)?),
            "pick" => {
                let want = format!("one of {}", Pick::NAMES.join(", "));
                c.attempts.pick = v
                    .as_str()
                    .and_then(Pick::parse)
                    .ok_or_else(|| r.err(&key, &want, v))?;
            }
            _ => r.unknown(&key),
        }
    }
    Ok(())
}

/// The `pr` section.
fn apply_pr(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "pr")? {
        match k.as_str() {
            "remote" => c.land.remote = r.string(v, "pr.remote")?,
            _ => r.unknown(&format!("pr.{k}")),
        }
    }
    Ok(())
}

/// The `land` section.
fn apply_land(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "land")? {
        let key = format!("land.{k}");
        match k.as_str() {
            "resolve" if v.is_null() => c.land.resolve = None,
            "resolve" => c.land.resolve = Some(r.bool(v, &key)?),
            "maxResolveRounds" => c.land.max_resolve_rounds = r.uint(v, &key)?.min(100) as u32,
            _ => r.unknown(&key),
        }
    }
    Ok(())
}

/// The `governor` section.
fn apply_governor(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "governor")? {
        let key = format!("governor.{k}");
        match k.as_str() {
            "capWait" => c.governor.cap_wait_ms = r.millis(v, &key)?,
            "rateQuiet" => c.governor.rate_quiet_ms = r.millis(v, &key)?.max(1),
            _ => r.unknown(&key),
        }
    }
    Ok(())
}

/// The `budget` section.
fn apply_budget(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "budget")? {
        let key = format!("budget.{k}");
        let b = &mut c.budget;
        match k.as_str() {
            _ if v.is_null() => match k.as_str() {
                "story" => b.story = None,
                "run" => b.run = None,
                "storyTokens" => b.story_tokens = None,
                "runTokens" => b.run_tokens = None,
                _ => r.unknown(&key),
            },
            "story" => b.story = Some(r.usd(v, &key)?),
            "run" => b.run = Some(r.usd(v, &key)?),
            "storyTokens" => b.story_tokens = Some(r.uint(v, &key)?),
            "runTokens" => b.run_tokens = Some(r.uint(v, &key)?),
            _ => r.unknown(&key),
        }
    }
    Ok(())
}

/// The `logs` section.
fn apply_logs(c: &mut Config, r: &Reader, value: &Value) -> Result<(), ConfigError> {
    for (k, v) in r.object(value, "logs")? {
        match k.as_str() {
            "keep" => c.logs_keep = r.uint(v, "logs.keep")?.max(1) as usize,
            _ => r.unknown(&format!("logs.{k}")),
        }
    }
    Ok(())
}

/// `agent.preset` and `agent.command` must agree.
fn check_agent(a: &AgentConfig, file: &Path) -> Result<(), ConfigError> {
    let f = file.display();
    match (a.preset, &a.command) {
        (Some(Preset::Command), None) => Err(ConfigError(format!(
            "{f}: agent.preset \"command\" needs agent.command, the command line to run, like [\"my-agent\", \"--flag\"]"
        ))),
        (Some(p), Some(_)) if p != Preset::Command => Err(ConfigError(format!(
            "{f}: agent.preset {:?} and agent.command are both set; keep agent.preset (extra flags go in agent.args) or set agent.preset to \"command\"",
            p.name()
        ))),
        _ => Ok(()),
    }
}

fn phases(r: &Reader, v: &Value) -> Result<Vec<Phase>, ConfigError> {
    let list = v
        .as_array()
        .ok_or_else(|| r.err("workflow.phases", "a list of {\"name\": ...} objects", v))?;
    if list.is_empty() {
        return Err(r.err("workflow.phases", "a non-empty list", v));
    }
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let key = format!("workflow.phases[{i}]");
        let obj = r.object(p, &key)?;
        let name = match obj.get("name") {
            Some(n) => r.string(n, &format!("{key}.name"))?,
            None => return Err(r.err(&format!("{key}.name"), "a string", &Value::Null)),
        };
        let command = match obj.get("command") {
            None | Some(Value::Null) => None,
            Some(c) => Some(r.command(c, &format!("{key}.command"))?),
        };
        for k in obj.keys().filter(|k| *k != "name" && *k != "command") {
            r.unknown(&format!("{key}.{k}"));
        }
        out.push(Phase { name, command });
    }
    Ok(out)
}

fn apply_env(c: &mut Config, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let parse = |name: &str| -> Result<Option<i64>, ConfigError> {
        match get(name) {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Ok(None),
            Some(s) => s.trim().parse::<i64>().map(Some).map_err(|_| {
                ConfigError(format!(
                    "environment variable {name}={s:?} must be an integer; unset it or fix it"
                ))
            }),
        }
    };
    if let Some(n) = parse("AI_SDLC_CONCURRENCY")? {
        c.concurrency = n;
    }
    let millis = |name: &str, n: i64| -> Result<u64, ConfigError> {
        u64::try_from(n.max(0))
            .ok()
            .filter(|ms| *ms <= MAX_MS)
            .ok_or_else(|| {
                ConfigError(format!(
                    "environment variable {name}={n} is more than a year in milliseconds; unset it or fix it"
                ))
            })
    };
    if let Some(n) = parse("AI_SDLC_AGENT_TIMEOUT")? {
        c.agent_timeout_ms = millis("AI_SDLC_AGENT_TIMEOUT", n)?.max(1);
    }
    if let Some(n) = parse("AI_SDLC_SHUTDOWN_TIMEOUT")? {
        c.shutdown_timeout_ms = millis("AI_SDLC_SHUTDOWN_TIMEOUT", n)?;
    }
    Ok(())
}

/// The config `init` writes, for agent `preset`.
pub fn default_file_text(preset: Preset) -> String {
    let agent = match preset {
        // aider without a model waits for a browser login.
        Preset::Aider => serde_json::json!({ "preset": preset.name(), "model": "sonnet" }),
        p => serde_json::json!({ "preset": p.name() }),
    };
    let v = serde_json::json!({
        "agent": agent,
        "orchestrator": { "concurrency": 1, "shutdownTimeout": 10000 },
        "timeouts": { "agentTimeout": 1800000 },
        "worktree": { "enabled": true, "basePath": ".ai-sdlc/worktrees" },
        "logs": { "keep": 5 }
    });
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "ai-sdlc-config-{}-{}",
            std::process::id(),
            crate::time::now_ms() ^ text.len() as u64
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(CONFIG_FILE), text).unwrap();
        let mut c = Config::defaults(dir.clone());
        let value: Value = serde_json::from_str(text).unwrap();
        let r = apply(&mut c, &value, &dir.join(CONFIG_FILE));
        std::fs::remove_dir_all(&dir).unwrap();
        r.map(|_| c)
    }

    #[test]
    fn a_near_miss_of_a_key_is_named_and_the_ts_tools_keys_are_not() {
        assert_eq!(did_you_mean("concurency"), Some("orchestrator.concurrency"));
        assert_eq!(
            did_you_mean("orchestrator.concurency"),
            Some("orchestrator.concurrency")
        );
        assert_eq!(did_you_mean("agent.retires"), Some("agent.retries"));
        assert_eq!(did_you_mean("budget.stroy"), Some("budget.story"));
        for far in [
            "theme",
            "testCommand",
            "stageGates",
            "notification",
            "useOrchestrator",
        ] {
            assert_eq!(did_you_mean(far), None, "{far}");
        }
    }

    #[test]
    fn attempts_are_read_where_the_spec_puts_them_and_refused_with_the_key() {
        let c = load_text(
            r#"{"agent": {"preset": "claude", "attempts": 3, "attemptAgents": ["claude", "codex"]},
               "attempts": {"verify": ["make", "test"], "pick": "judge"}}"#,
        )
        .unwrap();
        assert_eq!(c.attempts.count, 3);
        assert_eq!(c.attempts.agents, [Preset::Claude, Preset::Codex]);
        assert_eq!(c.attempts.verify, Some(vec!["make".into(), "test".into()]));
        assert_eq!(c.attempts.pick, Pick::Judge);
        let top = load_text(r#"{"attemptAgents": ["gemini"]}"#).unwrap();
        assert_eq!(top.attempts.agents, [Preset::Gemini]);
        assert_eq!(
            Config::defaults(PathBuf::from("/r")).attempts.pick,
            Pick::Smallest
        );
        for (bad, key) in [
            (r#"{"agent": {"attempts": 0}}"#, "agent.attempts"),
            (r#"{"agent": {"attempts": 17}}"#, "agent.attempts"),
            (
                r#"{"agent": {"attemptAgents": ["command"]}}"#,
                "agent.attemptAgents",
            ),
            (r#"{"attemptAgents": "claude"}"#, "attemptAgents"),
            (r#"{"attempts": {"pick": "best"}}"#, "attempts.pick"),
        ] {
            let e = load_text(bad).unwrap_err().0;
            assert!(e.contains(&format!("key `{key}` must be")), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_without_file() {
        let c = Config::defaults(PathBuf::from("/r"));
        assert_eq!(c.agent_timeout_ms, 1_800_000);
        assert_eq!(c.shutdown_timeout_ms, 10_000);
        assert_eq!(c.phases.len(), 1);
        assert_eq!(c.phases[0].name, "implement");
        assert!(c.worktree.enabled);
        assert_eq!(c.logs_keep, 5);
        assert_eq!(c.stories_dir(), PathBuf::from("/r/.ai-sdlc/stories"));
    }

    #[test]
    fn reads_every_key() {
        let c = load_text(
            r#"{"sdlcFolder": ".board", "agent": {"command": ["codex", "exec"]},
               "workflow": {"phases": [{"name": "implement"}, {"name": "verify", "command": ["cargo", "test"]}]},
               "timeouts": {"agentTimeout": 5000},
               "orchestrator": {"concurrency": 4, "shutdownTimeout": 2000, "healthCheckInterval": 100, "healthMissThreshold": 3},
               "worktree": {"enabled": false, "basePath": "wt", "baseBranch": "main", "keep": true},
               "logs": {"keep": 2}, "reviewConfig": {"whatever": 1}}"#,
        )
        .unwrap();
        assert_eq!(c.sdlc_folder, ".board");
        assert_eq!(c.agent.command, Some(vec!["codex".into(), "exec".into()]));
        assert_eq!(
            c.phases[1].command,
            Some(vec!["cargo".into(), "test".into()])
        );
        assert_eq!(c.agent_timeout_ms, 5000);
        assert_eq!(
            (
                c.concurrency,
                c.shutdown_timeout_ms,
                c.health_check_interval_ms
            ),
            (4, 2000, 100)
        );
        assert_eq!(c.health_miss_threshold, 3);
        assert!(!c.worktree.enabled && c.worktree.keep);
        assert_eq!(c.worktree.base_branch.as_deref(), Some("main"));
        assert_eq!(c.logs_keep, 2);
    }

    #[test]
    fn wrong_types_name_the_key_and_file() {
        let e = load_text(r#"{"orchestrator": {"concurrency": "lots"}}"#).unwrap_err();
        assert!(e.0.contains("orchestrator.concurrency"), "{e}");
        assert!(e.0.contains(CONFIG_FILE), "{e}");
        assert!(e.0.contains("\"lots\""), "{e}");
        let e = load_text(r#"{"agent": {"command": "claude -p"}}"#).unwrap_err();
        assert!(
            e.0.contains("agent.command") && e.0.contains("list of strings"),
            "{e}"
        );
        let e = load_text(r#"{"workflow": {"phases": [{"command": ["x"]}]}}"#).unwrap_err();
        assert!(e.0.contains("workflow.phases[0].name"), "{e}");
    }

    #[test]
    fn ai_sdlcs_own_provider_is_the_fallback_agent() {
        let c = load_text(r#"{"ai": {"provider": "codex"}}"#).unwrap();
        assert_eq!(c.agent.preset(), Some(Preset::Codex));
        // This tool's own setting wins, whichever key comes first.
        let c =
            load_text(r#"{"ai": {"provider": "claude"}, "agent": {"command": ["x"]}}"#).unwrap();
        assert_eq!(c.agent.preset(), Some(Preset::Command));
        let c =
            load_text(r#"{"ai": {"provider": "claude"}, "agent": {"preset": "gemini"}}"#).unwrap();
        assert_eq!(c.agent.preset(), Some(Preset::Gemini));
        let e = load_text(r#"{"agent": {"preset": "claude", "command": ["x"]}}"#).unwrap_err();
        assert!(e.0.contains("agent.args"), "{e}");
        let e = load_text(r#"{"timeouts": {"agentTimeout": 1e20}}"#).unwrap_err();
        assert!(e.0.contains("31536000000"), "{e}");
    }

    #[test]
    fn env_overrides_and_bad_env() {
        let mut c = Config::defaults(PathBuf::from("/r"));
        apply_env(&mut c, |k| match k {
            "AI_SDLC_CONCURRENCY" => Some("6".into()),
            "AI_SDLC_SHUTDOWN_TIMEOUT" => Some("250".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((c.concurrency, c.shutdown_timeout_ms), (6, 250));
        let e = apply_env(&mut c, |k| {
            (k == "AI_SDLC_AGENT_TIMEOUT").then(|| "soon".into())
        })
        .unwrap_err();
        assert!(e.0.contains("AI_SDLC_AGENT_TIMEOUT"), "{e}");
    }
}
