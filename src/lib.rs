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
mod commands;
mod config;
mod demo;
mod doctor;
mod error;
mod executor;
mod git;
mod ipc;
mod land;
mod launch;
mod logs;
mod runner;
mod paths;
mod process;
mod prompt;
mod report;
mod shutdown;
mod story;

mod sha256;
mod time;
mod trust;
mod workflow;
mod worktree;
mod worktrees;

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

    /// A /proc/<pid>/stat line, as the process module reads it.
    pub fn proc_stat(line: &str) {
        for n in 3..60 {
            let _ = crate::process::stat_field(line, n);
        }
    }
}

use cli::{Command, Parsed};
use error::{Failure, Outcome};
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

fn run_cli(cli: cli::Cli) -> Outcome {
    if cli.version {
        outln!("ai-sdlc {}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let Some(command) = cli.command else {
        return Err(Failure::usage(
            "no command given; try `ai-sdlc demo`, `ai-sdlc status` or `ai-sdlc --help`",
        ));
    };
    let dir = cli.dir.as_deref();
    // The board's repo (searched upward from -C or the cwd) and its config.
    let config = || -> Result<config::Config, Failure> {
        Ok(config::Config::load(&commands::locate(dir)?)?)
    };
    match command {
        Command::Init(args) => commands::init(dir, &args),
        Command::Add(args) => commands::add(&config()?, &args),
        Command::Status(args) => commands::status(&config()?, &args),
        Command::Run(args) => runner::command(&commands::locate(dir)?, &args, cli.quiet),
        Command::Demo(args) => demo::run(&args, cli.quiet),
        Command::Logs(args) => logs::command(&config()?, &args),
        Command::Worktrees(args) => worktrees::command(&config()?, &args),
        Command::Doctor(_) => doctor::run(dir),
        Command::Prompt(args) => commands::prompt(&config()?, &args),
        Command::Trust(args) => trust::command(&config()?, args.show),
        Command::Untrust(_) => trust::untrust(&commands::locate(dir)?),
        Command::Review(args) => land::review::command(&config()?, &args),
        Command::Merge(args) => land::merge::command(&config()?, &args),
        Command::Pr(args) => land::pr::command(&config()?, &args),
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
            match commands::start_dir(dir.as_deref()) {
                Ok(root) => executor::main(&root, args),
                Err(f) => {
                    errln!("ai-sdlc agent-executor: {f}");
                    f.code
                }
            }
        }
        Parsed::Cli(cli) => {
            init_logging(cli.verbose, cli.quiet);
            match run_cli(cli) {
                Ok(code) => code,
                Err(f) => {
                    // A command that already said what went wrong has no message left.
                    if !f.message.is_empty() {
                        errln!("ai-sdlc: error: {}", f.message);
                    }
                    f.code
                }
            }
        }
    };
    std::process::exit(code);
}
