//! The run's queue, as pure decisions: which waiting story starts next
//! (its dependencies done, not parked until later, within `--max`, no
//! account-wide failure yet), which is skipped or left to another runner,
//! and what becomes of the stories that never started. The dispatcher
//! (`mod.rs`) starts them; the governor says when none may start.

use crate::board::{Status, Story};
use crate::governor::Hold;
use crate::story::Outcome;
use std::collections::{HashMap, HashSet};

/// Why a queued story never started: the run was interrupted first.
pub const INTERRUPTED: &str = "not started: the run was interrupted";

/// Why a story is skipped, as a code for `--json` (`reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Its `<ID>-<slug>` cannot name a worktree and branch.
    NoWorktreeName,
    /// A dependency failed (or was skipped) in this run.
    DependencyFailed,
    /// A dependency is not done on the board (blocked, backlog...): it
    /// waits, and does not fail the run.
    DependencyNotDone,
    /// A dependency names no story: it waits, and does not fail the run.
    DependencyMissing,
    /// An agent failed in a way every story would (not logged in).
    Halted,
    /// No worker thread could be started.
    NoWorker,
    /// The agent is at its usage cap and the run does not wait for it
    /// (`--no-wait`).
    Paused,
    /// Parked at a usage cap (`not_before`) until after the run ends.
    Parked,
    /// The run's budget is spent.
    RunBudget,
}

impl Skip {
    pub fn code(self) -> &'static str {
        match self {
            Skip::NoWorktreeName => "no_worktree_name",
            Skip::DependencyFailed => "dependency_failed",
            Skip::DependencyNotDone => "dependency_not_done",
            Skip::DependencyMissing => "dependency_missing",
            Skip::Halted => "account_halted",
            Skip::NoWorker => "no_worker",
            Skip::Paused => "usage_cap",
            Skip::Parked => "parked",
            Skip::RunBudget => "run_budget",
        }
    }

    /// It waits on something outside this run: it does not fail the run
    /// (SPEC §7; the README's exit codes).
    pub fn waits(self) -> bool {
        matches!(
            self,
            Skip::DependencyNotDone | Skip::DependencyMissing | Skip::Paused | Skip::Parked
        )
    }
}

/// What to do with one waiting story now.
#[derive(Debug)]
pub enum Move {
    Start(Story),
    /// Not run, and reported: its dependency failed or does not exist.
    Skip(Story, String, Skip),
    /// Another runner has it, or a dependency of it: not ours, not counted.
    Leave(Story, String),
}

enum Gate {
    Go,
    Wait,
    /// Parked until this time (ms since the epoch).
    Later(u64),
    Skip(String, Skip),
    Leave(String),
}

pub struct Queue {
    /// Selected, not started, in queue order.
    waiting: Vec<Story>,
    /// Where the scan for the next move resumes: stories before it wait
    /// on something that has not changed since.
    cursor: usize,
    /// Statuses on the board when the run started.
    board: HashMap<String, Status>,
    /// Stories that cannot get a worktree: id -> why.
    bad_keys: HashMap<String, String>,
    finished: HashMap<String, Outcome>,
    /// Selected and not finished: waiting or in flight.
    pending: HashSet<String>,
    /// Left to another runner.
    left: HashSet<String>,
    started: usize,
    max: usize,
    /// An agent that cannot log in fails every story alike: nothing more
    /// starts, and this says why.
    halted: Option<String>,
    /// `--force`: a story's `not_before` does not hold it back.
    force: bool,
    /// The earliest `not_before` of a story passed over: when the scan
    /// must start again from the top.
    later: Option<u64>,
    /// Each story's place in the queue, to put a parked one back in it.
    place: HashMap<String, usize>,
}

impl Queue {
    pub fn new(
        selected: Vec<Story>,
        board: HashMap<String, Status>,
        bad_keys: HashMap<String, String>,
        max: Option<usize>,
    ) -> Queue {
        Queue {
            pending: selected.iter().map(|s| s.id.clone()).collect(),
            place: selected
                .iter()
                .enumerate()
                .map(|(i, s)| (s.id.clone(), i))
                .collect(),
            force: false,
            later: None,
            waiting: selected,
            cursor: 0,
            board,
            bad_keys,
            finished: HashMap::new(),
            left: HashSet::new(),
            started: 0,
            max: max.unwrap_or(usize::MAX),
            halted: None,
        }
    }

    /// `--force`: run stories parked until later now.
    pub fn forced(mut self, force: bool) -> Queue {
        self.force = force;
        self
    }

    /// The stories not started yet, in queue order.
    pub fn waiting(&self) -> &[Story] {
        &self.waiting
    }

    /// `held(id)`: does another runner hold story `id` right now?
    fn gate(&self, story: &Story, held: &dyn Fn(&str) -> bool, now: u64) -> Gate {
        if let Some(why) = self.bad_keys.get(&story.id) {
            return Gate::Skip(why.clone(), Skip::NoWorktreeName);
        }
        if let Some(t) = story.not_before.filter(|t| *t > now && !self.force) {
            return Gate::Later(t);
        }
        for dep in &story.dependencies {
            match self.finished.get(dep) {
                Some(Outcome::Succeeded) => continue,
                Some(o) => {
                    return Gate::Skip(
                        format!("dependency {dep} {}", o.describe()),
                        Skip::DependencyFailed,
                    );
                }
                None => {}
            }
            if self.pending.contains(dep) {
                return Gate::Wait;
            }
            if self.left.contains(dep) {
                return Gate::Leave(format!("its dependency {dep} is left to another runner"));
            }
            match self.board.get(dep) {
                Some(Status::Done) => {}
                Some(Status::InProgress) if held(dep) => {
                    return Gate::Leave(format!(
                        "its dependency {dep} is running in another runner, which runs it next"
                    ));
                }
                Some(s) => {
                    return Gate::Skip(
                        format!("waiting on {dep}: it is {s}, not done"),
                        Skip::DependencyNotDone,
                    );
                }
                None => {
                    return Gate::Skip(
                        format!("waiting on {dep}: no such story"),
                        Skip::DependencyMissing,
                    );
                }
            }
        }
        Gate::Go
    }

    /// The next move at `now` (ms since the epoch), when a worker is free
    /// (`None`: nothing can move now).
    pub fn next(&mut self, held: &dyn Fn(&str) -> bool, now: u64) -> Option<Move> {
        if self.halted.is_some() || self.started >= self.max {
            return None;
        }
        if self.later.is_some_and(|t| now >= t) {
            // A parked story's time came: look again from the top.
            (self.cursor, self.later) = (0, None);
        }
        while self.cursor < self.waiting.len() {
            let i = self.cursor;
            match self.gate(&self.waiting[i], held, now) {
                Gate::Wait => self.cursor += 1,
                Gate::Later(t) => {
                    self.later = Some(self.later.map_or(t, |l| l.min(t)));
                    self.cursor += 1;
                }
                Gate::Go => {
                    self.started += 1;
                    return Some(Move::Start(self.waiting.remove(i)));
                }
                Gate::Skip(why, code) => {
                    let s = self.waiting.remove(i);
                    self.pending.remove(&s.id);
                    self.finished.insert(s.id.clone(), Outcome::Skipped);
                    // A skip can release others' gates: look again from the start.
                    self.cursor = 0;
                    return Some(Move::Skip(s, why, code));
                }
                Gate::Leave(why) => {
                    let s = self.waiting.remove(i);
                    self.pending.remove(&s.id);
                    self.left.insert(s.id.clone());
                    self.cursor = 0;
                    return Some(Move::Leave(s, why));
                }
            }
        }
        None
    }

    /// When a story parked until later may start (ms since the epoch).
    pub fn wakes_at(&self) -> Option<u64> {
        self.later
    }

    /// Is any story still waiting to start?
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// A started story was parked at a usage cap: it waits again, in its
    /// place in the queue, until its `not_before`; it does not count
    /// against `--max` twice.
    pub fn park(&mut self, story: Story) {
        let at = self.place.get(&story.id).copied().unwrap_or(usize::MAX);
        let i = self
            .waiting
            .iter()
            .position(|s| self.place.get(&s.id).copied().unwrap_or(usize::MAX) > at)
            .unwrap_or(self.waiting.len());
        self.waiting.insert(i, story);
        self.started = self.started.saturating_sub(1);
        self.cursor = 0;
    }

    /// A started story ended (`None`: it was not ours to run after all).
    /// `account_wide`: its agent failed in a way every story would.
    pub fn ended(&mut self, id: &str, outcome: Option<Outcome>, account_wide: Option<String>) {
        self.pending.remove(id);
        if let Some(o) = outcome {
            self.finished.insert(id.to_string(), o);
        }
        if let Some(why) = account_wide
            && self.halted.is_none()
        {
            self.halted = Some(format!(
                "not started: the agent failed in {id} ({why}), which would fail every story; fix that and run again"
            ));
        }
        self.cursor = 0;
    }

    /// The stories that never started, and what each gets: interrupted
    /// (`cancelled`), held back by an account-wide failure, the usage cap
    /// (`--no-wait`), the run's budget or a dependency that did not
    /// succeed (`skipped`), parked until later (`parked`). Those beyond
    /// `--max` get nothing.
    pub fn never_started(
        self,
        stopping: bool,
        now: u64,
        hold: Option<&Hold>,
    ) -> Vec<(Story, Option<Skip>, String)> {
        let mut out = Vec::new();
        // Of the waiting, only those --max left room for would have started.
        let mut room = self.max.saturating_sub(self.started);
        for s in self.waiting {
            let parked = s.not_before.filter(|t| *t > now && !self.force);
            if let Some(why) = &self.halted {
                out.push((s, Some(Skip::Halted), why.clone()));
            } else if self.started >= self.max || stopping && room == 0 {
                // Beyond --max: not reported.
            } else if stopping {
                room -= 1;
                out.push((s, None, INTERRUPTED.to_string()));
            } else if let Some(t) = parked {
                let why = format!(
                    "not started: parked at the usage cap until {}",
                    crate::time::local_clock(t, now)
                );
                out.push((s, Some(Skip::Parked), why));
            } else if let Some(Hold::Paused { until, why }) = hold {
                let why = format!(
                    "not started: {why} until {}; run again then",
                    crate::time::local_clock(*until, now)
                );
                out.push((s, Some(Skip::Paused), why));
            } else if let Some(Hold::Budget(why)) = hold {
                out.push((s, Some(Skip::RunBudget), format!("not started: {why}")));
            } else {
                let (why, code) = if s.dependencies.is_empty() {
                    (
                        "not started: no worker thread could be started (see the warnings above)"
                            .to_string(),
                        Skip::NoWorker,
                    )
                } else {
                    (
                        format!(
                            "dependencies {} did not succeed in this run",
                            s.dependencies.join(", ")
                        ),
                        Skip::DependencyFailed,
                    )
                };
                out.push((s, Some(code), why));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Story;
    use std::path::PathBuf;

    fn story(id: &str, deps: &[&str]) -> Story {
        let text = format!(
            "---\nid: {id}\ntitle: T\nstatus: ready\ndependencies: [{}]\n---\n",
            deps.join(", ")
        );
        crate::board::parse_story(&text, &PathBuf::from("/b").join(id), id).unwrap()
    }

    fn ids(moves: &[Move]) -> Vec<String> {
        moves
            .iter()
            .map(|m| match m {
                Move::Start(s) => format!("start {}", s.id),
                Move::Skip(s, why, _) => format!("skip {}: {why}", s.id),
                Move::Leave(s, why) => format!("leave {}: {why}", s.id),
            })
            .collect()
    }

    fn drain(q: &mut Queue, held: &dyn Fn(&str) -> bool) -> Vec<Move> {
        std::iter::from_fn(|| q.next(held, 0)).collect()
    }

    const NOBODY: &dyn Fn(&str) -> bool = &|_| false;

    #[test]
    fn a_dependent_waits_for_its_dependency_in_this_run() {
        let mut q = Queue::new(
            vec![story("S-2", &["S-1"]), story("S-1", &[]), story("S-3", &[])],
            HashMap::new(),
            HashMap::new(),
            None,
        );
        assert_eq!(ids(&drain(&mut q, NOBODY)), ["start S-1", "start S-3"]);
        q.ended("S-1", Some(Outcome::Succeeded), None);
        assert_eq!(ids(&drain(&mut q, NOBODY)), ["start S-2"]);
    }

    #[test]
    fn a_failed_or_missing_dependency_skips_and_one_held_elsewhere_leaves() {
        let board = HashMap::from([
            ("S-8".to_string(), Status::Blocked),
            ("S-9".to_string(), Status::InProgress),
        ]);
        let mut q = Queue::new(
            vec![
                story("S-1", &[]),
                story("S-2", &["S-1"]),
                story("S-3", &["S-8"]),
                story("S-4", &["S-9"]),
                story("S-5", &["S-7"]),
            ],
            board,
            HashMap::new(),
            None,
        );
        let held: &dyn Fn(&str) -> bool = &|id| id == "S-9";
        assert_eq!(
            ids(&drain(&mut q, held)),
            [
                "start S-1",
                "skip S-3: waiting on S-8: it is blocked, not done",
                "leave S-4: its dependency S-9 is running in another runner, which runs it next",
                "skip S-5: waiting on S-7: no such story",
            ]
        );
        q.ended("S-1", Some(Outcome::Failed), None);
        assert_eq!(
            ids(&drain(&mut q, held)),
            ["skip S-2: dependency S-1 failed"]
        );
    }

    #[test]
    fn max_an_account_wide_failure_and_a_stop_decide_what_never_starts() {
        let three = || vec![story("S-1", &[]), story("S-2", &[]), story("S-3", &[])];
        let mut q = Queue::new(three(), HashMap::new(), HashMap::new(), Some(1));
        assert_eq!(ids(&drain(&mut q, NOBODY)), ["start S-1"]);
        // Beyond --max: not reported at all.
        assert!(q.never_started(false, 0, None).is_empty());

        let mut q = Queue::new(three(), HashMap::new(), HashMap::new(), None);
        assert!(matches!(q.next(NOBODY, 0), Some(Move::Start(_))));
        q.ended(
            "S-1",
            Some(Outcome::Failed),
            Some("usage limit reached".into()),
        );
        assert!(q.next(NOBODY, 0).is_none());
        let rest = q.never_started(false, 0, None);
        assert_eq!(rest.len(), 2);
        assert!(rest.iter().all(|(_, o, why)| *o == Some(Skip::Halted)
            && why.contains("the agent failed in S-1 (usage limit reached)")));

        let mut q = Queue::new(three(), HashMap::new(), HashMap::new(), None);
        assert!(matches!(q.next(NOBODY, 0), Some(Move::Start(_))));
        let rest = q.never_started(true, 0, None);
        assert!(
            rest.iter()
                .all(|(_, o, why)| o.is_none() && why == INTERRUPTED)
        );
        // Stopped with --max 2 and one started: one more would have run.
        let mut q = Queue::new(three(), HashMap::new(), HashMap::new(), Some(2));
        assert!(matches!(q.next(NOBODY, 0), Some(Move::Start(_))));
        assert_eq!(q.never_started(true, 0, None).len(), 1);
    }

    #[test]
    fn a_story_without_a_worktree_name_is_skipped_before_it_starts() {
        let bad = HashMap::from([("S-1".to_string(), "no name".to_string())]);
        let mut q = Queue::new(vec![story("S-1", &[])], HashMap::new(), bad, None);
        assert_eq!(ids(&drain(&mut q, NOBODY)), ["skip S-1: no name"]);
    }
}
