//! Before anything starts: which stories run, in what order; stale claims
//! recovered; dependency cycles and a missing agent refused (SPEC §4).

use super::Settings;
use crate::agent::{PRESETS, Preset};
use crate::board::frontmatter::Value;
use crate::board::lock::{ClaimError, StoryClaim};
use crate::board::{Board, lock};
use crate::board::{Scan, Status, Story, text};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::Error;
use crate::launch::Launch;
use crate::paths::rel;
use crate::time;
use std::collections::HashMap;
use std::path::Path;

/// A process still working in the worktree of a story nobody holds, if any:
/// its runner died, but something it started did not, so the story is
/// not stale and must not be run a second time.
pub fn busy_worktree(config: &Config, story: &Story) -> Option<u32> {
    let base = config.worktree_base();
    let base = base.canonicalize().unwrap_or(base);
    let mut places = vec![base.join(story.key())];
    // `worktree_path` comes from the story file: it counts only inside the
    // worktree base (`/` would make every process this story's).
    if let Some(w) = &story.worktree_path {
        places.extend(config.root.join(w).canonicalize().ok());
    }
    places
        .iter()
        .filter(|p| p.starts_with(&base) && p != &&base && p.is_dir())
        .find_map(|p| crate::process::working_in(p).first().copied())
}

/// Return `in-progress` stories that a run of this tool started and no
/// runner holds to `ready` (their runner died). The TS tool's lasting
/// `in-progress` stage is left alone. Returns how many were recovered;
/// what it did goes to `said`.
pub fn recover_stale(config: &Config, scan: &Scan, said: &mut Vec<String>) -> usize {
    let board = crate::board::Board::of(config);
    let mut n = 0;
    for s in scan.stories.iter().filter(|s| s.run_by_us()) {
        let claim = match StoryClaim::try_claim(&board, &s.id) {
            Ok(c) => c,
            Err(ClaimError::Held) => continue,
            Err(ClaimError::Io(p, e)) => {
                log::warn!("[{}] cannot check its claim {}: {e}", s.id, p.display());
                continue;
            }
        };
        if let Some(pid) = busy_worktree(config, s) {
            said.push(format!(
                "[{}] is in-progress and no runner holds it, but process {pid} still works in its worktree; leaving it alone (stop that process to run the story again)",
                s.id
            ));
            continue;
        }
        // Re-read under the claim: its runner may have finished meanwhile.
        if board.load(&s.id).is_ok_and(|now| now.run_by_us()) {
            let stamp = time::iso_seconds(time::now_ms());
            let mut last_run = vec![
                ("outcome".into(), Value::Str("cancelled".into())),
                ("error".into(), Value::Str("its runner died".into())),
            ];
            if let Some(l) = &s.last_log {
                last_run.push(("log".into(), Value::Str(l.clone())));
            }
            let changes = [
                ("status", text(Status::Ready.as_str())),
                ("updated", text(stamp)),
                ("last_run", Some(Value::Map(last_run))),
            ];
            match board.patch(&s.id, &changes) {
                Ok(()) => {
                    said.push(format!(
                        "[{}] was in-progress but no runner holds it (its runner died); returned it to ready",
                        s.id
                    ));
                    n += 1;
                }
                Err(e) => log::warn!("[{}] cannot return the stale story to ready: {e}", s.id),
            }
        }
        drop(claim);
    }
    n
}

/// Stories whose `<ID>-<slug>` cannot name a worktree and branch, or names
/// the same one as another story's (`S-1` + `2-fix` and `S-1-2` + `fix`):
/// id -> why it cannot run. They are skipped before anything is touched.
pub fn key_problems(scan: &Scan) -> HashMap<String, String> {
    let mut by_key: HashMap<String, Vec<&str>> = HashMap::new();
    for s in &scan.stories {
        by_key.entry(s.key()).or_default().push(&s.id);
    }
    let mut out = HashMap::new();
    for (key, ids) in &by_key {
        if ids.len() > 1 {
            for id in ids {
                let others: Vec<&str> = ids.iter().copied().filter(|o| o != id).collect();
                out.insert(
                    id.to_string(),
                    format!(
                        "its worktree and branch name {key} is also that of {}; give one of them a different `slug:`",
                        others.join(", ")
                    ),
                );
            }
        } else if let Some(why) = crate::worktree::key_problem(key) {
            out.insert(ids[0].to_string(), why);
        }
    }
    out
}

/// The stories this run is about, in the order to try them.
/// `-v`: which stories were selected, and of the rest how many, by status
/// (one line however big the board).
fn explain_selection(scan: &Scan, selected: &[Story], args: &RunArgs) {
    if !log::log_enabled!(log::Level::Info) {
        return;
    }
    let ids: Vec<&str> = selected.iter().map(|s| s.id.as_str()).collect();
    let how = if args.story.is_empty() {
        match &args.epic {
            Some(e) => format!("the ready stories of epic {e}"),
            None => "the ready stories".to_string(),
        }
    } else {
        "--story".to_string()
    };
    let list = if ids.is_empty() {
        "none".to_string()
    } else {
        ids.join(" ")
    };
    log::info!("selected ({how}, in priority order): {list}");
    let mut rest: std::collections::BTreeMap<String, usize> = Default::default();
    for s in scan
        .stories
        .iter()
        .filter(|s| !ids.contains(&s.id.as_str()))
    {
        let why = match (&s.status, &args.epic) {
            (Status::Ready, Some(_)) => "ready, not in the epic".to_string(),
            (st, _) => st.to_string(),
        };
        *rest.entry(why).or_default() += 1;
    }
    if !rest.is_empty() {
        let list: Vec<String> = rest.iter().map(|(k, n)| format!("{n} {k}")).collect();
        log::info!("not selected: {}", list.join(", "));
    }
}

pub fn select(scan: &Scan, args: &RunArgs, root: &Path) -> Result<Vec<Story>, Error> {
    if args.story.is_empty() {
        return Ok(scan
            .stories
            .iter()
            .filter(|s| s.status == Status::Ready)
            .filter(|s| args.epic.as_deref().is_none_or(|e| s.in_epic(e)))
            .cloned()
            .collect());
    }
    let mut out: Vec<Story> = Vec::new();
    for id in &args.story {
        if out.iter().any(|s| &s.id == id) {
            continue;
        }
        let Some(story) = scan.get(id) else {
            if let Some(bad) = scan
                .bad
                .iter()
                .find(|b| b.path.parent().is_some_and(|p| p.ends_with(id)))
            {
                return Err(Error::usage(format!(
                    "--story {id}: {}: {}; fix the file first",
                    rel(root, &bad.path),
                    bad.reason
                )));
            }
            return Err(Error::usage(format!(
                "--story {id}: no such story on the board; `ai-sdlc status` lists them"
            )));
        };
        if story.status == Status::Done && !args.force {
            return Err(Error::usage(format!(
                "--story {id}: the story is done; add --force to run it again"
            )));
        }
        out.push(story.clone());
    }
    Ok(out)
}

/// Refuse dependency cycles that involve a selected story.
pub fn check_cycles(scan: &Scan, selected: &[Story]) -> Result<(), Error> {
    let deps: HashMap<&str, &[String]> = scan
        .stories
        .iter()
        .map(|s| (s.id.as_str(), s.dependencies.as_slice()))
        .collect();
    // 1 = on the current path, 2 = finished.
    let mut mark: HashMap<&str, u8> = HashMap::new();
    fn visit<'a>(
        id: &'a str,
        deps: &HashMap<&'a str, &'a [String]>,
        mark: &mut HashMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match mark.get(id) {
            Some(2) => return None,
            Some(_) => {
                let from = path.iter().position(|p| *p == id).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..].iter().map(|s| s.to_string()).collect();
                cycle.push(id.to_string());
                return Some(cycle);
            }
            None => {}
        }
        mark.insert(id, 1);
        path.push(id);
        for d in deps.get(id).copied().unwrap_or_default() {
            if let Some(c) = visit(d.as_str(), deps, mark, path) {
                return Some(c);
            }
        }
        path.pop();
        mark.insert(id, 2);
        None
    }
    for s in selected {
        if let Some(cycle) = visit(&s.id, &deps, &mut mark, &mut Vec::new()) {
            return Err(Error::usage(format!(
                "dependency cycle: {}; remove one of these dependencies",
                cycle.join(" -> ")
            )));
        }
    }
    Ok(())
}

/// A phase to run, resolved before anything starts.
pub struct PlannedPhase {
    pub name: String,
    pub preset: Preset,
    pub argv: Vec<String>,
}

/// Claude Code refuses its unattended mode as root unless `IS_SANDBOX=1`:
/// say so before anything starts, rather than block every story.
pub fn claude_as_root_problem() -> Option<String> {
    // SAFETY: geteuid has no side effects.
    let root = unsafe { libc::geteuid() } == 0;
    let sandbox = std::env::var("IS_SANDBOX").is_ok_and(|v| v == "1");
    (root && !sandbox).then(|| {
        "Claude Code refuses to edit and run commands unattended (--permission-mode bypassPermissions) as root: \"cannot be used with root/sudo privileges\", unless IS_SANDBOX=1 is set. If this machine or container is a sandbox you can afford to let an agent change, run with IS_SANDBOX=1 (export IS_SANDBOX=1); otherwise run ai-sdlc as a normal user".to_string()
    })
}

/// The command of each phase; refuse a missing or unfindable agent, and a
/// preset that cannot run unattended here, before anything starts.
pub fn phase_commands(config: &Config) -> Result<Vec<PlannedPhase>, Error> {
    let mut out = Vec::new();
    for phase in &config.phases {
        let Some((preset, argv)) = config.command_of(phase) else {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.name()).collect();
            return Err(Error::usage(format!(
                "no agent configured. Set one in {}, for example:\n  {{ \"agent\": {{ \"preset\": \"claude\" }} }}\nPresets: {}. Or any command: {{ \"agent\": {{ \"command\": [\"my-agent\", \"--flag\"] }} }}; it runs in the story's worktree with the prompt on stdin. `ai-sdlc init --agent <preset>` writes one.",
                config.file_name(),
                names.join(", ")
            )));
        };
        let program = &argv[0];
        if !program.contains('{') && !crate::process::findable(program, &config.root) {
            return Err(Error::usage(match (phase.command.is_some(), preset) {
                (true, _) => format!(
                    "the command of phase {:?}, {program:?}, is not on PATH (in {}); install it or change the phase's command",
                    phase.name,
                    config.file_name()
                ),
                (false, Preset::Command) => format!(
                    "agent command {program:?} not found on PATH (agent.command in {}); install it or change agent.command",
                    config.file_name()
                ),
                (false, p) => format!(
                    "{program} (agent.preset {:?} in {}) is not on PATH; install it ({}) or choose another preset",
                    p.name(),
                    config.file_name(),
                    p.install_hint()
                ),
            }));
        }
        if phase.command.is_none() {
            if preset == Preset::Claude
                && let Some(why) = claude_as_root_problem()
            {
                return Err(Error::usage(why));
            }
            if preset.needs_model() && config.agent.model.is_none() {
                return Err(Error::usage(format!(
                    "{} needs a model to run unattended (without one it waits for a browser login): set agent.model in {}, for example \"sonnet\" or \"gpt-4o\"",
                    preset.name(),
                    config.file_name()
                )));
            }
        }
        // A script that would eval a story's text is refused.
        if let Some(i) = crate::prompt::shell_script(&argv) {
            crate::prompt::fill_script(&argv[i], &crate::prompt::placeholder_var).map_err(
                |why| {
                    Error::usage(format!(
                        "the command of phase {:?} in {}: {why}",
                        phase.name,
                        config.file_name()
                    ))
                },
            )?;
        }
        out.push(PlannedPhase {
            name: phase.name.clone(),
            preset,
            argv,
        });
    }
    Ok(out)
}

/// What `run` will do, decided before anything starts. A dry run prints
/// it; a run carries it out.
pub struct Plan {
    pub scan: Scan,
    /// In the order to try them.
    pub selected: Vec<Story>,
    pub phases: Vec<PlannedPhase>,
    pub launch: Launch,
    /// What people should read before the run: unreadable stories, stale
    /// ones returned to ready, warnings. One line each.
    pub said: Vec<String>,
}

/// Decide what `run` does: scan the board (returning stale stories to
/// ready, unless this is a dry run), select and order the stories, check
/// the agent, the launcher and the repo. Sets the base branch in
/// `settings`. A plan with no stories stops here.
pub fn prepare(config: &Config, settings: &mut Settings, args: &RunArgs) -> Result<Plan, Error> {
    let mut said = Vec::new();
    let scan = crate::board::scan(config)?;
    for b in &scan.bad {
        said.push(format!(
            "ai-sdlc: warning: {}: {} (skipped)",
            rel(&config.root, &b.path),
            b.reason
        ));
    }
    // A dry run writes nothing: stale stories are only reported.
    let scan = if !args.dry_run && recover_stale(config, &scan, &mut said) > 0 {
        crate::board::scan(config)?
    } else {
        scan
    };
    if args.story.is_empty() {
        let board = Board::of(config);
        for s in scan.stories.iter().filter(|s| {
            s.status == Status::InProgress && !s.run_by_us() && !lock::is_held(&board, &s.id)
        }) {
            said.push(format!(
                "ai-sdlc: [{}] is in-progress in the TS ai-sdlc, not in a run of this tool; left alone (`ai-sdlc run --story {}` takes it over)",
                s.id, s.id
            ));
        }
    }
    let selected = select(&scan, args, &config.root)?;
    check_cycles(&scan, &selected)?;
    explain_selection(&scan, &selected, args);
    // Before agent tokens are spent on a title alone.
    let board = Board::of(config);
    for id in selected.iter().map(|s| &s.id) {
        let text = board.text(id).unwrap_or_default();
        if crate::prompt::description(&text).is_empty() {
            said.push(format!(
                "ai-sdlc: warning: [{id}] says nothing but its title (its body is still the template): the agent gets the title alone; write what to build in {}",
                rel(&config.root, &board.story_path(id))
            ));
        }
    }
    let mut plan = Plan {
        scan,
        selected,
        phases: Vec::new(),
        launch: Launch::Local,
        said,
    };
    if plan.selected.is_empty() {
        return Ok(plan);
    }
    plan.phases = phase_commands(config)?;
    for p in &plan.phases {
        log::info!("phase {} ({}): {}", p.name, p.preset, p.argv.join(" "));
    }
    plan.launch = Launch::resolve(config, args.launcher.as_deref()).map_err(Error::usage)?;
    if let (false, Some(argv)) = (args.dry_run, plan.launch.prefix())
        && plan.launch.missing(&config.root)
    {
        return Err(Error::usage(format!(
            "the launcher {:?} is not on PATH (orchestrator.launcher in {}, or --launcher); install it, or run without one",
            argv[0],
            config.file_name()
        )));
    }
    if args.pr && !args.dry_run {
        crate::land::pr::ready(config)?;
    }
    if args.land && !settings.worktrees {
        return Err(Error::usage(
            "run --land needs worktrees: each story lands from its own branch (drop --no-worktree)",
        ));
    }
    if args.land && !args.dry_run {
        // A dirty base checkout is refused before anything starts.
        crate::land::merge::Base::open(config)?;
    }
    if settings.worktrees {
        crate::worktree::check_repo(&config.root).map_err(Error::usage)?;
        settings.base_branch = Some(
            crate::worktree::base_branch(&config.root, config.worktree.base_branch.as_deref())
                .map_err(Error::usage)?,
        );
    } else {
        settings.base_branch = crate::worktree::base_branch(&config.root, None).ok();
    }
    Ok(plan)
}
