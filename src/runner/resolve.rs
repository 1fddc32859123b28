//! `land`'s resolve phase, run as any story run is (claim, worktree,
//! executor, agent, outcome), with the workflow `resolve`: the story's
//! agent resolves what keeps it from landing, in its worktree. The runner
//! does not commit it: `land` commits the merge (`land::resolve::finish`).

use super::{Ctx, Settings, attempt};
use crate::board::{Board, Outcome};
use crate::config::Config;
use crate::land::Landing;
use crate::land::queue::Resolver;
use crate::land::resolve::Trouble;
use crate::report::Notes;
use std::sync::Arc;
use std::time::Duration;

/// Runs stories' resolve phases with their agents.
pub struct AgentResolver {
    ctx: Ctx,
}

/// The config of a resolve run: the workflow `resolve`; no commit by the
/// runner; the worktree kept (the merge is committed after).
fn resolve_config(config: &Config) -> Result<Config, String> {
    let mut c = config.clone();
    c.use_workflow("resolve")?;
    c.worktree.commit = false;
    c.worktree.keep = true;
    Ok(c)
}

impl AgentResolver {
    /// For `ai-sdlc land`: the config's own settings, on `base`.
    pub fn new(config: &Config, base: &str, notes: Notes) -> Result<AgentResolver, String> {
        let rc = resolve_config(config)?;
        let settings = Settings {
            concurrency: 1,
            timeout: Duration::from_millis(config.agent_timeout_ms.max(1)),
            grace: Duration::from_millis(config.shutdown_timeout_ms),
            worktrees: true,
            keep_worktrees: true,
            max: None,
            base_branch: Some(base.to_string()),
            health_interval: Duration::from_millis(config.health_check_interval_ms),
            health_misses: config.health_miss_threshold,
            workflow: Some("resolve".into()),
            from: None,
            pr: false,
            commands: crate::trust::fingerprint(&crate::trust::commands(&rc)),
            no_wait: true,
            attempts: None,
            story_budget: crate::governor::Budget {
                usd: config.budget.story,
                tokens: config.budget.story_tokens,
            },
            run_budget: crate::governor::Budget::default(),
        };
        let gov = Arc::new(super::Gov::new(&rc, &settings));
        let guard = crate::git::guard::Guard::new(&config.root)
            .ok()
            .map(Arc::new);
        Ok(AgentResolver {
            ctx: Ctx {
                board: Board::of(&rc),
                config: rc,
                settings,
                notes,
                by_id: true,
                force: true,
                guard,
                launch: crate::launch::Launch::Local,
                gov,
                slots: Arc::default(),
            },
        })
    }

    /// For `run --land`: the run's own settings and reporter.
    pub fn from_run(parent: &Ctx) -> Result<AgentResolver, String> {
        let rc = resolve_config(&parent.config)?;
        let mut settings = parent.settings.clone();
        settings.workflow = Some("resolve".into());
        settings.keep_worktrees = true;
        settings.from = None;
        settings.pr = false;
        settings.commands = crate::trust::fingerprint(&crate::trust::commands(&rc));
        Ok(AgentResolver {
            ctx: Ctx {
                gov: Arc::clone(&parent.gov),
                slots: Arc::default(),
                board: Board::of(&rc),
                config: rc,
                settings,
                notes: parent.notes.clone(),
                by_id: true,
                force: true,
                guard: parent.guard.clone(),
                launch: parent.launch.clone(),
            },
        })
    }
}

impl Resolver for AgentResolver {
    fn resolve(&mut self, l: &Landing, _: &Trouble, _: u32) -> Result<(), String> {
        match attempt::attempt(&self.ctx, &l.story) {
            attempt::Attempt::Ran(r) if r.outcome == Outcome::Succeeded => Ok(()),
            attempt::Attempt::Ran(r) => Err(r
                .error
                .unwrap_or_else(|| format!("its agent's resolve phase {}", r.outcome.describe()))),
            attempt::Attempt::Gone(why) => Err(why),
        }
    }
}
