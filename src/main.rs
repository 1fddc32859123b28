//! ai-sdlc: parse the command line, set up logging, dispatch, and map
//! errors to exit codes (SPEC §7) in one place.

mod board;
mod cli;
mod commands;
mod config;
mod error;
mod time;

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
                record.args()
            )
        })
        .init();
}

fn run_cli(cli: cli::Cli) -> Outcome {
    if cli.version {
        println!("ai-sdlc {}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let Some(command) = cli.command else {
        return Err(Failure::usage(
            "no command given; try `ai-sdlc demo`, `ai-sdlc status` or `ai-sdlc --help`",
        ));
    };
    let dir = cli.dir.as_deref();
    match command {
        Command::Init(_) => commands::init(dir),
        Command::Add(args) => {
            let config = config::Config::load(&commands::locate(dir)?)?;
            commands::add(&config, &args)
        }
        Command::Status(args) => {
            let config = config::Config::load(&commands::locate(dir)?)?;
            commands::status(&config, &args)
        }
        _ => Err(Failure::usage("not implemented yet")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match cli::parse(&args) {
        Parsed::Exit { output, code } => {
            if code == 0 {
                println!("{output}");
            } else {
                eprintln!("{output}");
            }
            code
        }
        Parsed::Executor { .. } => {
            init_logging(0, false);
            2
        }
        Parsed::Cli(cli) => {
            init_logging(cli.verbose, cli.quiet);
            match run_cli(cli) {
                Ok(code) => code,
                Err(f) => {
                    eprintln!("ai-sdlc: error: {}", f.message);
                    f.code
                }
            }
        }
    };
    std::process::exit(code);
}
