//! ai-sdlc as a library: `main` parses the command line, sets up logging,
//! dispatches, and maps errors to exit codes (SPEC §7) in one place. The
//! binary is a one-line wrapper; the library exists so that fuzz targets can
//! reach the parsers (`fuzzing`).

#![deny(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
mod term;

mod agent;
mod board;
mod cli;
mod cmd;
mod completions;
mod config;
mod demo;
mod error;
mod executor;
mod git;
mod governor;
mod ipc;
mod land;
mod launch;
mod logs;
mod paths;
mod process;
mod prompt;
mod report;
mod runner;
mod sandbox;
mod shutdown;
mod story;
mod supervise;

mod sha256;
mod time;
mod trust;
mod workflow;
mod worktree;

/// Entry points for the fuzz targets in `tests/fuzz` (cargo fuzz): the
/// parsers that read untrusted input, and nothing else of the library.
#[doc(hidden)]
pub mod fuzzing {
    use crate::board::frontmatter::{self, Value};
    use crate::ipc::{Line, LineReader};

    /// Parse a story file's frontmatter; patch a field of it; when the
    /// patch is accepted, it must parse and be a fixed point. Panics on a
    /// broken promise, which is what the fuzzer looks for.
    pub fn frontmatter(text: &str, value: &str) {
        let _ = frontmatter::parse(text);
        let change = [("status", Some(Value::Str(value.to_string())))];
        if let Ok(new) = frontmatter::patch(text, &change) {
            assert!(frontmatter::parse(&new).is_ok(), "a patch broke the file");
            assert_eq!(
                frontmatter::patch(&new, &change).ok(),
                Some(new),
                "not a fixed point"
            );
        }
    }

    /// Read `input` as IPC lines with a small limit, decoding each.
    pub fn ipc_lines(input: &[u8], max: usize) {
        let mut reader = LineReader::new(input, max.max(1));
        while let Ok(Some(line)) = reader.next_line() {
            match line {
                Line::Full(b) | Line::Cut(b) => {
                    assert!(b.len() <= max.max(1), "a line over the limit");
                    let _ = crate::ipc::decode(b);
                }
                Line::TooLong(_) => {}
            }
        }
    }

    /// A trust record's text: checked, or refused with a reason. What is
    /// accepted has, for every repo, a list of commands with string keys
    /// and values.
    pub fn trust_record(text: &str) {
        if let Ok(v) = crate::trust::parse_record(text) {
            for (_, entry) in v["repos"].as_object().into_iter().flatten() {
                for c in entry["commands"].as_array().into_iter().flatten() {
                    assert!(
                        c["key"].is_string() && c["value"].is_string(),
                        "accepted {c}"
                    );
                }
            }
        }
    }

    /// Git config text, as the git boundary reads it: entries or a reason.
    pub fn git_config(text: &str) {
        if let Ok(entries) = crate::git::harden::parse(text) {
            for e in entries {
                assert!(e.key.contains('.'), "a key without a section: {}", e.key);
            }
        }
    }

    /// A /proc/<pid>/stat line, as the process module reads it.
    pub fn proc_stat(line: &str) {
        for n in 3..60 {
            let _ = crate::process::stat_field(line, n);
        }
    }
}

use cli::{Command, Parsed};
use error::Error;
use std::io::Write;

fn init_logging(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|buf, record| {
            writeln!(
                buf,
                "ai-sdlc: {}: {}",
                record.level().as_str().to_lowercase(),
                term::printable(&record.args().to_string())
            )
        })
        .init();
}

/// The executor's stderr is the story's run log: timestamp its lines too.
fn init_executor_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, record| {
            writeln!(
                buf,
                "{} [executor] {}: {}",
                time::iso_millis(time::now_ms()),
                record.level().as_str().to_lowercase(),
                term::printable(&record.args().to_string())
            )
        })
        .init();
}

/// The dispatch table: each command's `run`, with the repo and config it needs.
fn run_cli(cli: cli::Cli) -> Result<(), Error> {
    if cli.version {
        outln!("ai-sdlc {}", env!("CARGO_PKG_VERSION"));
        return Ok(());
    }
    let Some(command) = cli.command else {
        return Err(Error::usage(
            "no command given; try `ai-sdlc demo`, `ai-sdlc status` or `ai-sdlc --help`",
        ));
    };
    let dir = cli.dir.as_deref();
    // The board's repo (searched upward from -C or the cwd) and its config.
    let config = || -> Result<config::Config, Error> {
        let c = config::Config::load(&config::locate(dir)?)?;
        for w in &c.warnings {
            errln!("ai-sdlc: warning: {w}");
        }
        Ok(c)
    };
    match command {
        Command::Init(args) => cmd::init::run(dir, &args),
        Command::Add(args) => cmd::add::run(&config()?, &args),
        Command::Status(args) => cmd::status::run(&config()?, &args),
        Command::Cost(args) => cmd::cost::run(&config()?, &args),
        Command::Run(args) => cmd::run::run(&config::locate(dir)?, &args, cli.quiet, false),
        Command::Demo(args) => cmd::demo::run(&args, cli.quiet),
        Command::Logs(args) => cmd::logs::run(&config()?, &args),
        Command::Worktrees(args) => cmd::worktrees::run(&config()?, &args),
        Command::Doctor(args) => cmd::doctor::run(dir, args.json),
        Command::Prompt(args) => cmd::prompt::run(&config()?, &args),
        Command::Trust(args) => cmd::trust::run(&config()?, args.show, args.json),
        Command::Untrust(_) => cmd::trust::untrust(&config::locate(dir)?),
        Command::Review(args) => cmd::review::run(&config()?, &args),
        Command::Pick(args) => cmd::pick::run(&config()?, &args),
        Command::Merge(args) => cmd::merge::run(&config()?, &args),
        Command::Land(args) => cmd::land::run(&config()?, &args, cli.quiet),
        Command::Pr(args) => cmd::pr::run(&config()?, &args),
    }
}

pub fn main() {
    // One malloc arena: each thread that allocates would otherwise get its
    // own, and the runner has two threads per running story.
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match cli::parse(&args) {
        Parsed::Exit { output, code } => {
            if code == 0 {
                outln!("{output}");
            } else {
                errln!("{output}");
            }
            code
        }
        Parsed::Executor { dir, args } => {
            init_executor_logging();
            match config::start_dir(dir.as_deref()) {
                Ok(root) => executor::main(&root, args),
                Err(e) => {
                    errln!("ai-sdlc agent-executor: {e}");
                    e.code()
                }
            }
        }
        Parsed::Cli(cli) => {
            init_logging(cli.verbose, cli.quiet);
            match run_cli(cli) {
                Ok(()) => 0,
                Err(e) => {
                    // A command that already said what went wrong has no message left.
                    match (&e, e.message()) {
                        (Error::TryLater(_), Some(m)) => errln!("ai-sdlc: {m}"),
                        (_, Some(m)) => errln!("ai-sdlc: error: {m}"),
                        _ => {}
                    }
                    e.code()
                }
            }
        }
    };
    std::process::exit(code);
}
