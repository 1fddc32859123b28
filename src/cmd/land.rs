//! `ai-sdlc land [<ID>...] [--dry-run] [--json]`: the merge queue (SPEC
//! §14), printed as it goes.

use crate::cli::LandArgs;
use crate::config::Config;
use crate::error::Error;
use crate::land::merge::Base;
use crate::land::queue::{self, LandOutcome, Options, Resolver};
use crate::land::resolve::Trouble;
use crate::land::{Landing, base};
use crate::report::{self, Note, Reporter};
use crate::runner::resolve::AgentResolver;
use serde_json::json;

/// Says each round before the agent's run starts.
struct Announced<R: Resolver> {
    inner: R,
    max: u32,
}

impl<R: Resolver> Resolver for Announced<R> {
    fn resolve(&mut self, l: &Landing, trouble: &Trouble, round: u32) -> Result<(), String> {
        errln!(
            "{}: {}: back to its agent (resolve round {round} of {})",
            l.story.id,
            trouble.describe(),
            self.max
        );
        self.inner.resolve(l, trouble, round)
    }
}

/// No agent to resolve with (`land.resolve` off).
struct NoAgent;

impl Resolver for NoAgent {
    fn resolve(&mut self, _: &Landing, _: &Trouble, _: u32) -> Result<(), String> {
        Err("land.resolve is off".into())
    }
}

pub fn run(config: &Config, args: &LandArgs, quiet: bool) -> Result<(), Error> {
    land(config, args, quiet, false)
}

/// `assume_trusted`: this process wrote the repo's config (the demo).
pub fn land(
    config: &Config,
    args: &LandArgs,
    quiet: bool,
    assume_trusted: bool,
) -> Result<(), Error> {
    let name = base(config)?;
    let order = queue::candidates(config, &name, &args.ids)?;
    let resolve = config.land.resolves(&config.agent);
    if order.is_empty() {
        if args.json {
            outln!("{}", json!({"base": name, "results": [], "landed": 0}));
        } else {
            outln!("nothing to land: no done story has work that {name} does not have");
        }
        return Ok(());
    }
    let base = Base::open(config)?;
    if args.dry_run {
        return dry_run(config, &base, &order, resolve, args.json);
    }
    // merge.verify and the agent are commands from the config: trusted, or nothing runs.
    if !assume_trusted && let Some(w) = crate::trust::check(config, false)? {
        errln!("ai-sdlc: warning: {w}");
    }
    if !args.json {
        errln!(
            "Landing {} {} on {name} ({}{}):",
            order.len(),
            if order.len() == 1 { "story" } else { "stories" },
            config.land.strategy,
            if resolve {
                "; conflicts go back to their agents"
            } else {
                ""
            }
        );
    }
    let sink: Box<dyn report::Sink> = if quiet || args.json {
        Box::new(report::Quiet)
    } else {
        Box::new(report::Plain {
            stream_output: false,
        })
    };
    let reporter = Reporter::start(sink);
    install_signals(&reporter.sender());
    let opts = Options {
        resolve,
        max_rounds: config.land.max_resolve_rounds,
    };
    let say = |l: &Landing, r: &LandOutcome| {
        if !args.json {
            outln!("{}", line(l, r));
        }
    };
    let results = if resolve {
        let agent = AgentResolver::new(config, &name, reporter.sender()).map_err(Error::usage)?;
        let mut r = Announced {
            inner: agent,
            max: opts.max_rounds,
        };
        queue::land_all(config, &base, &order, &opts, &mut r, &mut { say })
    } else {
        queue::land_all(config, &base, &order, &opts, &mut NoAgent, &mut { say })
    };
    reporter.finish();
    // Stacked pull requests whose dependency just landed now target the base.
    let landed_any = results
        .iter()
        .any(|(_, r)| matches!(r, LandOutcome::Landed { .. }));
    if landed_any
        && crate::process::on_path("gh")
        && crate::git::push::has_remote(&config.root, &config.land.remote)
        && let Ok(scan) = crate::board::scan(config)
    {
        // Under --json, stdout is the one JSON value: said on stderr.
        let mut moved = Vec::new();
        super::pr::say_retargeted(config, &name, &scan.stories, &mut moved, args.json);
        for m in moved {
            errln!("ai-sdlc: {m}");
        }
    }
    finish(&name, &results, args.json)
}

/// Ctrl-C stops the queue between stories (a resolve agent gets SIGTERM).
fn install_signals(notes: &report::Notes) {
    let notes = notes.clone();
    let _ = crate::shutdown::install(move |sig, _| {
        notes.send(Note::Warn {
            id: None,
            text: format!(
                "{}: stopping after the story being landed; nothing is left half-done",
                crate::process::signal_name(sig)
            ),
        });
    });
}

/// One story's line.
fn line(l: &Landing, r: &LandOutcome) -> String {
    let id = &l.story.id;
    match r {
        LandOutcome::Landed {
            how,
            commit,
            resolved,
            kept,
        } => {
            let short = &commit[..commit.len().min(12)];
            let after = match resolved {
                0 => String::new(),
                1 => " after 1 resolve round".into(),
                n => format!(" after {n} resolve rounds"),
            };
            let kept = kept
                .as_ref()
                .map(|k| format!(" (its old tip kept as {k})"))
                .unwrap_or_default();
            format!("{id}: landed{after}: {how} {short}{kept}")
        }
        LandOutcome::AlreadyIn => format!("{id}: already in the base"),
        LandOutcome::Blocked { reason } => format!("{id}: blocked: {reason}"),
        LandOutcome::Waiting { reason } => format!("{id}: {reason}"),
        LandOutcome::Interrupted => format!("{id}: not landed: interrupted"),
    }
}

/// The summary and the exit status: 0 when every story landed.
fn finish(base: &str, results: &[(String, LandOutcome)], as_json: bool) -> Result<(), Error> {
    let count = |f: fn(&LandOutcome) -> bool| results.iter().filter(|(_, r)| f(r)).count();
    let landed = count(|r| matches!(r, LandOutcome::Landed { .. } | LandOutcome::AlreadyIn));
    let blocked = count(|r| matches!(r, LandOutcome::Blocked { .. }));
    let waiting = count(|r| matches!(r, LandOutcome::Waiting { .. }));
    if as_json {
        let list: Vec<_> = results
            .iter()
            .map(|(id, r)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["id"] = json!(id);
                v
            })
            .collect();
        outln!(
            "{}",
            json!({"base": base, "results": list, "landed": landed, "blocked": blocked, "waiting": waiting})
        );
    } else {
        errln!("Summary: {landed} landed, {blocked} blocked, {waiting} waiting");
    }
    if let Some(code) = crate::shutdown::exit_code() {
        return Err(Error::Interrupted(code - 128));
    }
    if blocked + waiting > 0 {
        return Err(Error::Reported);
    }
    Ok(())
}

/// `land --dry-run`: the order and each story's prediction; nothing moves.
fn dry_run(
    config: &Config,
    base: &Base,
    order: &[Landing],
    resolve: bool,
    as_json: bool,
) -> Result<(), Error> {
    let predicted = queue::predict(config, base, order, resolve).map_err(Error::failed)?;
    if as_json {
        outln!(
            "{}",
            json!({"base": base.name, "dry_run": true, "stories": predicted})
        );
        return Ok(());
    }
    outln!(
        "Would land on {} ({}), in this order:",
        base.name,
        config.land.strategy
    );
    for (i, p) in predicted.iter().enumerate() {
        outln!("{:>3}. {}  {}  {}", i + 1, p.id, p.branch, p.text);
    }
    Ok(())
}
