//! `ai-sdlc cost`: what the board cost, from the spend ledger
//! (`.ai-sdlc/spend.jsonl`), per story, per day and per agent.

use crate::cli::CostArgs;
use crate::config::Config;
use crate::error::Error;
use crate::governor::ledger::{self, Sum};
use crate::paths::rel;
use std::collections::BTreeMap;

pub fn run(config: &Config, args: &CostArgs) -> Result<(), Error> {
    let since = match &args.since {
        Some(d) => {
            let day = format!("{d}T00:00:00Z");
            crate::time::parse_iso(&day).ok_or_else(|| {
                Error::usage(format!("--since {d:?}: expected a day like 2026-12-01"))
            })?;
            Some(d.clone())
        }
        None => None,
    };
    let (entries, skipped) = ledger::read(&config.sdlc_dir()).map_err(Error::failed)?;
    let chosen: Vec<_> = entries
        .iter()
        .filter(|e| since.as_ref().is_none_or(|d| e.ts.as_str() >= d.as_str()))
        .collect();
    let t = ledger::totals(chosen.iter().copied());
    let file = rel(&config.root, &config.sdlc_dir().join(ledger::FILE));
    if args.json {
        outln!(
            "{}",
            serde_json::json!({
                "ledger": file, "since": since, "skipped_lines": skipped,
                "total": t.total, "by_story": t.by_story, "by_day": t.by_day, "by_agent": t.by_agent,
            })
        );
        return Ok(());
    }
    if skipped > 0 {
        errln!("ai-sdlc: warning: {skipped} lines of {file} are not ledger entries; left out");
    }
    if t.total.phases == 0 {
        outln!(
            "Nothing spent yet{}: {file} has no phases; `ai-sdlc run` records each one there",
            since.map(|d| format!(" since {d}")).unwrap_or_default()
        );
        return Ok(());
    }
    outln!(
        "Spend on this board{} ({file}, {} phases):",
        since.map(|d| format!(" since {d}")).unwrap_or_default(),
        t.total.phases
    );
    outln!("  {:<12} {}", "total", line(&t.total));
    section("By story", &t.by_story);
    section("By day (UTC)", &t.by_day);
    section("By agent", &t.by_agent);
    if t.total.uncosted > 0 {
        outln!(
            "{} phases have no cost: their agent's CLI reports none (or only tokens); set agent.pricing (USD per million tokens, input and output) to count tokens",
            t.total.uncosted
        );
    }
    Ok(())
}

fn section(title: &str, rows: &BTreeMap<String, Sum>) {
    outln!("{title}:");
    for (k, s) in rows {
        outln!("  {:<12} {}", crate::term::printable(k), line(s));
    }
}

/// `$1.23  12,345 tokens in, 678 out  (4 phases, 1 uncosted)`.
fn line(s: &Sum) -> String {
    let uncosted = match s.uncosted {
        0 => String::new(),
        n => format!(", {n} uncosted"),
    };
    format!(
        "{:>9}  {} tokens in, {} out  ({} {}{uncosted})",
        crate::agent::usd(s.cost_usd),
        s.input_tokens,
        s.output_tokens,
        s.phases,
        if s.phases == 1 { "phase" } else { "phases" }
    )
}
