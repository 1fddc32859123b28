//! Every command and flag, as argh structs with their help text.
//!
//! Parsing goes through `parse`, which maps argh's errors to exit code 2
//! (SPEC §7), accepts `--flag=value`, and lets the global flags `-v`, `-q`
//! and `-C DIR` stand after the command too.

use argh::FromArgs;
use std::path::PathBuf;

/// ai-sdlc: run a repo's stories (.ai-sdlc/stories/<ID>/story.md) through an
/// AI coding agent of your choice, several at once, each in its own git
/// worktree and branch.
#[derive(FromArgs, Debug)]
#[argh(
    example = "ai-sdlc demo",
    example = "ai-sdlc init && ai-sdlc add \"Fix login\" --ready --priority 2",
    example = "ai-sdlc run --concurrent 3",
    note = "Global options go before or after the command. RUST_LOG sets log levels; NO_COLOR turns colour off. Shell completions: eval \"$(ai-sdlc completions bash)\" (or zsh; fish: ai-sdlc completions fish | source). Exit codes: ai-sdlc help exit-codes."
)]
pub struct Cli {
    /// the repo to work in (default: the current directory, searched upward for .ai-sdlc)
    #[argh(option, short = 'C', long = "dir")]
    pub dir: Option<PathBuf>,
    /// more log output; repeat for more (-vv)
    #[argh(switch, short = 'v')]
    pub verbose: u8,
    /// print only errors and the run summary
    #[argh(switch, short = 'q')]
    pub quiet: bool,
    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Init(InitArgs),
    Demo(DemoArgs),
    Add(AddArgs),
    Status(StatusArgs),
    Run(RunArgs),
    Logs(LogsArgs),
    Worktrees(WorktreesArgs),
    Doctor(DoctorArgs),
    Prompt(PromptArgs),
    Trust(TrustArgs),
    Untrust(UntrustArgs),
    Review(ReviewArgs),
    Pick(PickArgs),
    Merge(MergeArgs),
    Land(LandArgs),
    Pr(PrArgs),
    Cost(CostArgs),
}

/// What the board cost: the spend ledger (.ai-sdlc/spend.jsonl) summed per story, per day and per agent.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "cost",
    example = "ai-sdlc cost",
    example = "ai-sdlc cost --since 2026-12-01 --json",
    note = "Costs are the agents' own figures, or their tokens at agent.pricing (USD per million tokens, input and output) for CLIs that report only tokens; never estimated otherwise. A phase whose agent reported no cost is counted as uncosted."
)]
pub struct CostArgs {
    /// only phases that ended on or after this day (YYYY-MM-DD, UTC)
    #[argh(option)]
    pub since: Option<String>,
    /// print the sums as JSON on stdout
    #[argh(switch)]
    pub json: bool,
}

/// Land finished stories on their base, one by one (a merge queue): each brought up to the current base, checked with merge.verify, and merged; one that conflicts or fails its checks goes back to its agent to resolve.
#[derive(FromArgs, Debug, Default)]
#[argh(
    subcommand,
    name = "land",
    example = "ai-sdlc land --dry-run",
    example = "ai-sdlc land",
    example = "ai-sdlc land S-0004 S-0007 --json",
    note = "Order: a story after the stories it depends on, then by priority. merge.strategy (merge, squash, rebase) says how each lands; a story stacked on a dependency that landed is restacked onto the base first. land.resolve (default: on when an agent is configured) and land.maxResolveRounds (default 2) say how a conflict or a failed check goes back to the story's agent; after that it is blocked, and only the stories that depend on it wait. Exit codes: 0 every story landed; 1 one is blocked or waits; 130 interrupted."
)]
pub struct LandArgs {
    /// the stories to land (default: every done story whose branch has work the base has not)
    #[argh(positional)]
    pub ids: Vec<String>,
    /// print the order and what each story would do (land clean, conflict with which story, wait), and change nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// print the result as JSON on stdout
    #[argh(switch)]
    pub json: bool,
}

/// Story branches against their base: commits ahead and behind, diff stat, whether each merges cleanly (now, and after the ones before it), pull request. With an id: that story, and its diff.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "review",
    example = "ai-sdlc review",
    example = "ai-sdlc review S-0001 --stat"
)]
pub struct ReviewArgs {
    /// one story: its figures and its full diff
    #[argh(positional)]
    pub id: Option<String>,
    /// print as JSON
    #[argh(switch)]
    pub json: bool,
    /// with an id: the diff stat only
    #[argh(switch)]
    pub stat: bool,
    /// with an id: never page the diff
    #[argh(switch)]
    pub no_pager: bool,
}

/// Switch a story with several attempts to another of them: its branch moves to that attempt's work; what it held is kept.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "pick",
    example = "ai-sdlc review S-0001        # lists its attempts",
    example = "ai-sdlc pick S-0001 3",
    note = "Every attempt's work stays under refs/ai-sdlc/attempts/<ID>/<k>; the branch's old tip is kept under refs/ai-sdlc/previous/<ID>/. A worktree that has the branch checked out follows (git reset --keep)."
)]
pub struct PickArgs {
    /// the story
    #[argh(positional)]
    pub id: String,
    /// the attempt to switch to (its number, as review lists them)
    #[argh(positional)]
    pub attempt: String,
}

/// Merge story branches into their base, safely: in dependency then priority order, refusing before anything changes when the base's checkout is dirty or a branch conflicts.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "merge",
    example = "ai-sdlc merge S-0001 S-0002",
    example = "ai-sdlc merge --all --delete-branch",
    note = "merge.strategy in .ai-sdlc.json: merge (default; fast-forward when possible), squash or rebase. merge.verify: a command run on the merged result before the base moves."
)]
pub struct MergeArgs {
    /// the stories to merge
    #[argh(positional)]
    pub ids: Vec<String>,
    /// every done story whose branch has work not yet in the base
    #[argh(switch)]
    pub all: bool,
    /// delete each story branch once merged
    #[argh(switch)]
    pub delete_branch: bool,
    /// the results as JSON on stdout: {"base", "stories": [{"id", "result": "merged"|"already_in"|"stopped", "branch", "commit", "how", "error"}]}
    #[argh(switch)]
    pub json: bool,
}

/// Push story branches and open pull requests with gh; writes pr_url.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "pr",
    example = "ai-sdlc pr S-0001",
    example = "ai-sdlc pr --all",
    note = "Pushes to pr.remote (default origin). Needs the GitHub CLI (gh), logged in. A story whose pr_url is set is not opened again."
)]
pub struct PrArgs {
    /// the stories
    #[argh(positional)]
    pub ids: Vec<String>,
    /// every done story with a branch and no pull request yet
    #[argh(switch)]
    pub all: bool,
    /// the results as JSON on stdout: {"base", "stories": [{"id", "result": "opened"|"already_open"|"already_merged"|"failed", "url", "error"}], "retargeted"}
    #[argh(switch)]
    pub json: bool,
}

/// Show the commands this repo's .ai-sdlc.json may make ai-sdlc run (agent, phase commands) and record them as trusted.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "trust",
    example = "ai-sdlc trust --show",
    note = "The record is kept outside the repo, in $XDG_CONFIG_HOME/ai-sdlc/trust.json (~/.config/ai-sdlc/trust.json). `run` refuses a command that is not in it; AI_SDLC_TRUST=1 (or run --trust) trusts for one run."
)]
pub struct TrustArgs {
    /// only show the commands and whether they are trusted
    #[argh(switch)]
    pub show: bool,
    /// with --show: the commands as JSON on stdout: [{"key", "command", "trusted"}]
    #[argh(switch)]
    pub json: bool,
}

/// Forget the commands trusted for this repo.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "untrust", example = "ai-sdlc untrust")]
pub struct UntrustArgs {}

/// Create .ai-sdlc/stories, a default .ai-sdlc.json and .gitignore entries.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "init",
    example = "ai-sdlc init --agent codex",
    note = "Without --agent, the first of claude, codex, gemini, opencode, aider found on PATH is written (claude when none is)."
)]
pub struct InitArgs {
    /// the agent preset to write: claude, codex, gemini, aider or opencode
    #[argh(option)]
    pub agent: Option<String>,
}

/// Check git, the agent CLI (on PATH, version, logged in where that costs no tokens), the board and the config; say what to fix.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "doctor",
    example = "ai-sdlc doctor",
    example = "ai-sdlc doctor --json"
)]
pub struct DoctorArgs {
    /// the findings as JSON on stdout: {"root", "checks": [{"level": "ok"|"warn"|"fail", "what", "fix"}], "problems"}
    #[argh(switch)]
    pub json: bool,
}

/// Print the exact prompt a phase of a story would get.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "prompt",
    example = "ai-sdlc prompt S-0001",
    example = "ai-sdlc prompt S-0001 --workflow sdlc --phase review"
)]
pub struct PromptArgs {
    /// the story id
    #[argh(positional)]
    pub id: String,
    /// the phase (default: the first phase that runs the agent)
    #[argh(option)]
    pub phase: Option<String>,
    /// the built-in workflow, as `run --workflow` takes it: sdlc or implement
    #[argh(option)]
    pub workflow: Option<String>,
}

/// Run the built-in demo: a throwaway git repo with six stories and a scripted agent (needs only sh and git).
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "demo",
    example = "ai-sdlc demo",
    example = "ai-sdlc demo --concurrent 6 --dir /tmp/my-demo"
)]
pub struct DemoArgs {
    /// how many stories to run at once (default 3)
    #[argh(option)]
    pub concurrent: Option<String>,
    /// where to make the demo repo (default: a new temporary directory); must not exist or be empty
    #[argh(option)]
    pub dir: Option<PathBuf>,
}

/// Add a story to the board and print its id.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "add",
    example = "ai-sdlc add \"Fix login\" --ready --body \"The form rejects valid emails. Check: cargo test login\"",
    example = "ai-sdlc add \"Use the new API\" --depends S-0003 --label epic-api --body-file notes.md"
)]
pub struct AddArgs {
    /// the story's title
    #[argh(positional)]
    pub title: String,
    /// priority; lower runs first (default: the highest on the board + 10)
    #[argh(option)]
    pub priority: Option<i64>,
    /// status ready instead of backlog
    #[argh(switch)]
    pub ready: bool,
    /// feature, bug, chore or spike (default feature)
    #[argh(option, long = "type")]
    pub kind: Option<String>,
    /// a label (repeatable); epic-<name> puts the story in an epic
    #[argh(option)]
    pub label: Vec<String>,
    /// a story this one depends on (repeatable)
    #[argh(option)]
    pub depends: Vec<String>,
    /// the story's description: what to build and how to check it (the
    /// agent gets it in its prompt)
    #[argh(option)]
    pub body: Option<String>,
    /// the description from a file (- reads standard input)
    #[argh(option)]
    pub body_file: Option<String>,
    /// open the new story in $VISUAL or $EDITOR (default vi) to write it
    #[argh(switch)]
    pub edit: bool,
}

/// Show the board: stories grouped by status, in priority order.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "status",
    example = "ai-sdlc status",
    example = "ai-sdlc status --json"
)]
pub struct StatusArgs {
    /// print the board as JSON on stdout
    #[argh(switch)]
    pub json: bool,
}

/// Run stories: the top ready one in the foreground, or up to N at once with --concurrent N.
#[derive(FromArgs, Debug, Default, Clone)]
#[argh(
    subcommand,
    name = "run",
    example = "ai-sdlc run                      # the top ready story, in the foreground",
    example = "ai-sdlc run --concurrent 4       # every ready story, four at a time",
    example = "ai-sdlc run --story S-0003 --story S-0007 --timeout 900",
    example = "ai-sdlc run --concurrent 4 --budget-story 2 --budget-run 20   # US dollars",
    example = "ai-sdlc run --story S-0003 --attempts 3 --concurrent 3   # best of three",
    note = "At a usage cap the story is parked (ready, not_before) and the run waits until the cap lifts; --no-wait exits 75 instead. A rate limit halves the concurrency until things are quiet (governor.rateQuiet). Exit codes: 0 every started story succeeded (or nothing to run); 1 a story failed, timed out or was skipped; 2 usage or configuration error; 75 stopped at a usage cap with --no-wait; 130/143 interrupted (ai-sdlc help exit-codes)."
)]
pub struct RunArgs {
    /// run up to N stories at once, each in its own child process (default 1: the foreground single-story mode)
    #[argh(option)]
    pub concurrent: Option<String>,
    /// run this story instead of the ready queue (repeatable; any status but done)
    #[argh(option)]
    pub story: Vec<String>,
    /// with --story: run a done story too; run parked stories (not_before) now
    #[argh(switch)]
    pub force: bool,
    /// at a usage cap, do not wait for it to lift: exit 75 and say when to run again
    #[argh(switch)]
    pub no_wait: bool,
    /// the most one story may spend in this run, in US dollars (overrides budget.story)
    #[argh(option)]
    pub budget_story: Option<String>,
    /// the most the whole run may spend, in US dollars (overrides budget.run)
    #[argh(option)]
    pub budget_run: Option<String>,
    /// implement each story N times, in N worktrees, and keep the best (overrides attempts and agent.attempts)
    #[argh(option)]
    pub attempts: Option<String>,
    /// only ready stories of this epic (epic: <name> or label epic-<name>)
    #[argh(option)]
    pub epic: Option<String>,
    /// start at most K stories
    #[argh(option)]
    pub max: Option<usize>,
    /// per-story time limit in seconds (overrides timeouts.agentTimeout)
    #[argh(option)]
    pub timeout: Option<String>,
    /// seconds between SIGTERM and SIGKILL on shutdown (default 10)
    #[argh(option)]
    pub shutdown_timeout: Option<String>,
    /// run in the repo itself, no worktree
    #[argh(switch)]
    pub no_worktree: bool,
    /// never remove worktrees after a run
    #[argh(switch)]
    pub keep_worktrees: bool,
    /// print the plan (order, worktrees, branches, commands) and exit
    #[argh(switch)]
    pub dry_run: bool,
    /// the workflow to run instead of the configured phases: sdlc (research, plan, implement, review) or implement
    #[argh(option)]
    pub workflow: Option<String>,
    /// start each story at this phase again: clears its completion flag and those of the later phases
    #[argh(option)]
    pub from: Option<String>,
    /// open a pull request (ai-sdlc pr) for each story that finishes done
    #[argh(switch)]
    pub pr: bool,
    /// land each story on its base as it finishes done (ai-sdlc land: merge.verify, a conflict back to its agent)
    #[argh(switch)]
    pub land: bool,
    /// start each story's executor through a launcher: slurm (srun), or none
    #[argh(option)]
    pub launcher: Option<String>,
    /// run the config's commands even if they are not trusted (`ai-sdlc trust`), for this run only; same as AI_SDLC_TRUST=1
    #[argh(switch)]
    pub trust: bool,
    /// print the run summary as JSON on stdout; human output goes to stderr
    #[argh(switch)]
    pub json: bool,
}

/// Show a story's latest (or K-th latest) run log.
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "logs",
    example = "ai-sdlc logs S-0001",
    example = "ai-sdlc logs S-0001 -f",
    example = "ai-sdlc logs S-0001 --run 2 -n 50"
)]
pub struct LogsArgs {
    /// the story id
    #[argh(positional)]
    pub id: String,
    /// keep printing as the log grows, until its run ends
    #[argh(switch, short = 'f')]
    pub follow: bool,
    /// print only the last N lines
    #[argh(option, short = 'n')]
    pub lines: Option<usize>,
    /// which run: 1 is the latest (default), 2 the one before, ...
    #[argh(option)]
    pub run: Option<usize>,
}

/// List and clean up the tool's worktrees (default: list).
#[derive(FromArgs, Debug)]
#[argh(
    subcommand,
    name = "worktrees",
    example = "ai-sdlc worktrees",
    example = "ai-sdlc worktrees remove S-0004",
    example = "ai-sdlc worktrees prune"
)]
pub struct WorktreesArgs {
    #[argh(subcommand)]
    pub action: Option<WorktreeAction>,
    /// the list as JSON on stdout: [{"story", "status", "parked", "branch", "state", "clean", "age_s", "size_bytes", "path"}]
    #[argh(switch)]
    pub json: bool,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum WorktreeAction {
    List(WorktreeList),
    Remove(WorktreeRemove),
    Prune(WorktreePrune),
}

/// List worktrees with story, status, branch, clean/dirty, age and size.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct WorktreeList {
    /// the list as JSON on stdout (as `worktrees --json`)
    #[argh(switch)]
    pub json: bool,
}

/// Remove one story's worktree (never its branch).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
pub struct WorktreeRemove {
    /// the story id
    #[argh(positional)]
    pub id: String,
    /// remove it even with uncommitted or untracked changes (they are lost)
    #[argh(switch)]
    pub force: bool,
}

/// Remove the clean worktrees of done stories, then `git worktree prune`.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "prune")]
pub struct WorktreePrune {}

/// Internal: the child process that runs one story's phases and speaks JSON lines (SPEC §6).
#[derive(FromArgs, Debug, Clone, PartialEq)]
pub struct ExecutorArgs {
    /// the story id
    #[argh(positional)]
    pub id: String,
    /// the worktree (the agents' working directory)
    #[argh(option)]
    pub worktree: PathBuf,
    /// the story's branch
    #[argh(option)]
    pub branch: String,
    /// the branch the story's branch started from
    #[argh(option)]
    pub base: Option<String>,
    /// milliseconds between SIGTERM and SIGKILL when stopping agents
    #[argh(option)]
    pub grace_ms: Option<u64>,
    /// the built-in workflow the runner uses instead of the configured phases
    #[argh(option)]
    pub workflow: Option<String>,
    /// the fingerprint of the commands the runner checked were trusted
    #[argh(option)]
    pub commands: Option<String>,
    /// the worktree is new: run worktree.setup first
    #[argh(switch)]
    pub setup: bool,
    /// the most the story may spend in this run, in US dollars
    #[argh(option)]
    pub budget_usd: Option<f64>,
    /// the most tokens (in and out) the story may use in this run
    #[argh(option)]
    pub budget_tokens: Option<u64>,
    /// the repo's git dir, as the runner found it
    #[argh(option)]
    pub git_dir: Option<PathBuf>,
    /// run only these phases (comma-separated), even when complete
    #[argh(option)]
    pub only: Option<String>,
    /// which attempt at the story this is (AI_SDLC_ATTEMPT)
    #[argh(option)]
    pub attempt: Option<u32>,
    /// the preset this attempt's agent is, instead of the configured one
    #[argh(option)]
    pub agent: Option<String>,
}

impl ExecutorArgs {
    /// The command line that starts the executor for the repo at `root`,
    /// after the program: what `parse` reads back as these arguments.
    pub fn to_argv(&self, root: &std::path::Path) -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec![
            "-C".into(),
            root.into(),
            EXECUTOR_COMMAND.into(),
            "--worktree".into(),
            (&self.worktree).into(),
            "--branch".into(),
            (&self.branch).into(),
        ];
        let mut opt = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                v.extend([flag.into(), value.into()]);
            }
        };
        opt("--base", self.base.clone());
        opt("--grace-ms", self.grace_ms.map(|g| g.to_string()));
        opt("--commands", self.commands.clone());
        opt("--workflow", self.workflow.clone());
        opt("--budget-usd", self.budget_usd.map(|d| d.to_string()));
        opt("--budget-tokens", self.budget_tokens.map(|t| t.to_string()));
        opt("--only", self.only.clone());
        opt("--attempt", self.attempt.map(|k| k.to_string()));
        opt("--agent", self.agent.clone());
        if let Some(d) = &self.git_dir {
            v.extend(["--git-dir".into(), d.into()]);
        }
        if self.setup {
            v.push("--setup".into());
        }
        // An id may start with `-`: after `--` it is never an option.
        v.extend(["--".into(), (&self.id).into()]);
        v
    }
}

/// What `parse` returns: a command line to run, or text to print and an exit code.
pub enum Parsed {
    Cli(Cli),
    Executor {
        dir: Option<PathBuf>,
        args: ExecutorArgs,
    },
    Exit {
        output: String,
        code: i32,
    },
}

pub const EXECUTOR_COMMAND: &str = "agent-executor";

/// Parse `args` (without the program name).
pub fn parse(args: &[String]) -> Parsed {
    // No arguments: the help, as cargo and gh do.
    let args = if args.is_empty() {
        vec!["--help".to_string()]
    } else {
        normalize(args)
    };
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Some(pos) = command_at(&strs)
        && strs[pos] == "completions"
    {
        return completions(strs.get(pos + 1).copied().unwrap_or(""));
    }
    if strs.ends_with(&["help", "exit-codes"]) {
        return Parsed::Exit {
            output: EXIT_CODES.trim_end().to_string(),
            code: 0,
        };
    }
    if let Some(pos) = strs.iter().position(|a| *a == EXECUTOR_COMMAND) {
        // The executor is internal and hidden from --help, so it is not an argh subcommand.
        let global = match Cli::from_args(&["ai-sdlc"], &strs[..pos]) {
            Ok(cli) => cli,
            Err(e) => return early_exit(e),
        };
        return match ExecutorArgs::from_args(&["ai-sdlc", EXECUTOR_COMMAND], &strs[pos + 1..]) {
            Ok(args) => Parsed::Executor {
                dir: global.dir,
                args,
            },
            Err(e) => early_exit(e),
        };
    }
    match Cli::from_args(&["ai-sdlc"], &strs) {
        Ok(cli) => Parsed::Cli(cli),
        Err(e) => {
            let command = strs.iter().find(|a| SUBCOMMANDS.contains(a)).copied();
            let mut exit = early_exit(e);
            if let Parsed::Exit { output, code: 2 } = &mut exit {
                *output = with_advice(output, command);
            }
            exit
        }
    }
}

/// Where the command word is, after the global options.
fn command_at(strs: &[&str]) -> Option<usize> {
    let mut i = 0;
    while let Some(w) = strs.get(i) {
        match *w {
            "-C" | "--dir" => i += 2,
            w if w.starts_with('-') => i += 1,
            _ => return Some(i),
        }
    }
    None
}

/// `ai-sdlc completions bash|zsh|fish`, from the commands' own help.
fn completions(shell: &str) -> Parsed {
    let help = |args: &[&str]| match Cli::from_args(&["ai-sdlc"], args) {
        Err(e) => e.output,
        Ok(_) => String::new(),
    };
    let commands: Vec<crate::completions::Spec> = SUBCOMMANDS
        .iter()
        .filter(|c| **c != EXECUTOR_COMMAND)
        .map(|c| crate::completions::spec(c, &help(&[c, "--help"])))
        .collect();
    let global = crate::completions::spec("", &help(&["--help"])).flags;
    match crate::completions::script(shell, &commands, &global) {
        Ok(output) => Parsed::Exit { output, code: 0 },
        Err(why) => Parsed::Exit {
            output: why,
            code: 2,
        },
    }
}

/// argh's error, with "did you mean" for a misspelt command or flag, and
/// the help of the command at hand.
fn with_advice(output: &str, command: Option<&str>) -> String {
    let wrong = output
        .lines()
        .find_map(|l| l.strip_prefix("Unrecognized argument: "))
        .map(str::trim);
    let known: Vec<String> = match command {
        // The command's own flags, from its help.
        Some(c) => match Cli::from_args(&["ai-sdlc"], &[c, "--help"]) {
            Err(help) => help
                .output
                .split_whitespace()
                .filter(|w| w.starts_with("--"))
                .map(|w| w.trim_end_matches([',', '.']).to_string())
                .collect(),
            Ok(_) => Vec::new(),
        },
        None => SUBCOMMANDS
            .iter()
            .filter(|s| **s != EXECUTOR_COMMAND)
            .map(|s| s.to_string())
            .collect(),
    };
    let mut out = output
        .lines()
        .filter(|l| !l.starts_with("Run ai-sdlc --help"))
        .collect::<Vec<_>>()
        .join("\n");
    if let Some(w) = wrong {
        let best = known
            .iter()
            .map(|k| (crate::config::distance(w, k), k))
            .filter(|(d, _)| *d > 0 && *d <= (w.len() / 3).clamp(1, 3))
            .min_by_key(|(d, _)| *d);
        if let Some((_, k)) = best {
            out.push_str(&format!("\nDid you mean `{k}`?"));
        }
    }
    out.push_str(&match command {
        Some(c) => format!("\nRun ai-sdlc {c} --help for its usage."),
        None => "\nRun ai-sdlc --help for usage.".to_string(),
    });
    out
}

fn early_exit(e: argh::EarlyExit) -> Parsed {
    let code = if e.status.is_ok() { 0 } else { 2 };
    let mut output = e.output;
    if code == 2 && !output.contains("--help") {
        output.push_str("Run ai-sdlc --help for usage.");
    }
    Parsed::Exit { output, code }
}

const SUBCOMMANDS: [&str; 18] = [
    "init",
    "demo",
    "add",
    "status",
    "run",
    "logs",
    "worktrees",
    "doctor",
    "prompt",
    "trust",
    "untrust",
    "review",
    "pick",
    "merge",
    "land",
    "pr",
    "cost",
    EXECUTOR_COMMAND,
];

/// `ai-sdlc help exit-codes`: the one table of exit codes (SPEC §7).
pub const EXIT_CODES: &str = "\
Exit codes of ai-sdlc:
  0    success: every started story succeeded (or there was nothing to run);
       land: every story landed
  1    something failed: a story failed, timed out or was skipped (a
       dependency failed, the run's budget was spent); land: a story is
       blocked or waits; doctor: a check failed
  2    bad input: a flag, an argument or the config is wrong, or the agent
       cannot run (not installed, not trusted); nothing was started
  75   try again later: stopped at the agent's usage cap with --no-wait;
       the stories are parked (ready, not_before) and nothing failed
  130  interrupted by Ctrl-C (SIGINT); 143 by SIGTERM; 129 by SIGHUP
A story waiting on a dependency outside the run (missing, not done) does
not fail a run by itself.
";

/// `-vv`, `-vq`: clusters of the global short switches, which argh wants one per word.
fn is_switch_cluster(a: &str) -> bool {
    a.len() > 2
        && a.starts_with('-')
        && !a.starts_with("--")
        && a[1..].chars().all(|c| c == 'v' || c == 'q')
}

/// Splits `--flag=value` and `-vv`, and moves the global flags that stand
/// after the command to before it, where argh expects them.
fn normalize(args: &[String]) -> Vec<String> {
    let mut words = Vec::with_capacity(args.len());
    let mut iter = args.iter();
    for a in iter.by_ref() {
        match a.split_once('=') {
            _ if a == "--" => {
                words.push(a.clone());
                break;
            }
            Some((flag, value)) if flag.starts_with("--") && flag.len() > 2 => {
                words.push(flag.to_string());
                words.push(value.to_string());
            }
            _ if is_switch_cluster(a) => words.extend(a[1..].chars().map(|c| format!("-{c}"))),
            // The conventions people bring: -h, -V, and -n2 for -n 2.
            _ if a == "-h" => words.push("--help".into()),
            _ if a == "-V" => words.push("--version".into()),
            _ if a.len() > 2
                && (a.starts_with("-n") || a.starts_with("-C"))
                && !a.starts_with("--") =>
            {
                words.push(a[..2].to_string());
                words.push(a[2..].to_string());
            }
            _ => words.push(a.clone()),
        }
    }
    // After `--`, nothing is touched.
    words.extend(iter.cloned());
    let Some(cmd) = words.iter().position(|a| SUBCOMMANDS.contains(&a.as_str())) else {
        return words;
    };
    let mut front = words[..cmd].to_vec();
    let mut back = vec![words[cmd].clone()];
    let mut rest = words[cmd + 1..].iter();
    while let Some(a) = rest.next() {
        match a.as_str() {
            "--" => {
                back.push(a.clone());
                back.extend(rest.by_ref().cloned());
            }
            "-v" | "-q" | "--verbose" | "--quiet" => front.push(a.clone()),
            "-C" => match rest.next() {
                Some(dir) => front.extend([a.clone(), dir.clone()]),
                None => back.push(a.clone()),
            },
            _ => back.push(a.clone()),
        }
    }
    front.extend(back);
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn global_flags_may_follow_the_command() {
        let Parsed::Cli(cli) = parse(&args("run -vv --concurrent=3 -C /tmp/x -q")) else {
            panic!("did not parse");
        };
        assert_eq!(cli.verbose, 2);
        assert!(cli.quiet);
        assert_eq!(cli.dir.as_deref(), Some(std::path::Path::new("/tmp/x")));
        let Some(Command::Run(run)) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.concurrent.as_deref(), Some("3"));
    }

    #[test]
    fn clusters_expand_without_a_command_and_not_after_double_dash() {
        assert_eq!(normalize(&args("-vv --version")), args("-v -v --version"));
        assert_eq!(normalize(&args("add -vq -- -vv")), args("-v -q add -- -vv"));
    }

    #[test]
    fn demo_keeps_its_own_dir_flag() {
        let Parsed::Cli(cli) = parse(&args("demo --dir /tmp/d")) else {
            panic!("did not parse");
        };
        assert!(cli.dir.is_none());
        let Some(Command::Demo(d)) = cli.command else {
            panic!("not demo")
        };
        assert_eq!(d.dir.as_deref(), Some(std::path::Path::new("/tmp/d")));
    }

    #[test]
    fn usage_errors_exit_2_and_help_exits_0() {
        match parse(&args("run --bogus")) {
            Parsed::Exit { code, .. } => assert_eq!(code, 2),
            _ => panic!("accepted --bogus"),
        }
        match parse(&args("--help")) {
            Parsed::Exit { code, output } => {
                assert_eq!(code, 0);
                assert!(output.contains("run"), "{output}");
                assert!(!output.contains(EXECUTOR_COMMAND), "{output}");
            }
            _ => panic!("no help"),
        }
    }

    #[test]
    fn the_executors_command_line_reads_back_as_itself() {
        let args = ExecutorArgs {
            id: "-S-0001".into(),
            worktree: "/w t/x".into(),
            branch: "ai-sdlc/S-0001-x".into(),
            base: Some("main".into()),
            grace_ms: Some(2500),
            workflow: Some("sdlc".into()),
            commands: Some("abc".into()),
            setup: true,
            budget_usd: Some(0.5),
            budget_tokens: Some(200_000),
            git_dir: Some("/repo/.git".into()),
            only: Some("implement".into()),
            attempt: Some(2),
            agent: Some("codex".into()),
        };
        let bare = ExecutorArgs {
            base: None,
            grace_ms: None,
            workflow: None,
            commands: None,
            setup: false,
            budget_usd: None,
            budget_tokens: None,
            git_dir: None,
            only: None,
            attempt: None,
            agent: None,
            ..args.clone()
        };
        for a in [args, bare] {
            let argv: Vec<String> = a
                .to_argv(std::path::Path::new("/repo"))
                .into_iter()
                .map(|s| s.into_string().unwrap())
                .collect();
            match parse(&argv) {
                Parsed::Executor { dir, args } => {
                    assert_eq!(dir.as_deref(), Some(std::path::Path::new("/repo")));
                    assert_eq!(args, a);
                }
                _ => panic!("not the executor: {argv:?}"),
            }
        }
    }

    #[test]
    fn executor_is_parsed_apart() {
        match parse(&args(
            "-C /r agent-executor --worktree /w --branch b -- -S-0001",
        )) {
            Parsed::Executor { dir, args } => {
                assert_eq!(dir.as_deref(), Some(std::path::Path::new("/r")));
                assert_eq!(args.id, "-S-0001");
                assert_eq!(args.branch, "b");
            }
            _ => panic!("not the executor"),
        }
    }
}
