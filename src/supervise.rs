//! The staged stop of a process group, as a state machine: running, then
//! terminating (asked to stop, with a deadline), then killed. `next` is
//! pure: the runner's loop over its executor child and the executor's
//! loop over its agent both feed it what they see and carry out the
//! action it returns, so the rules (SPEC §6: SIGTERM, the grace period,
//! SIGKILL; a second Ctrl-C kills at once) live here once, tested without
//! processes.

use crate::shutdown;
use std::time::{Duration, Instant};

/// Why a process is being stopped; the story's outcome follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The run is shutting down (Ctrl-C, SIGTERM, the runner's message).
    Shutdown,
    /// The story's time limit passed.
    TimeLimit,
    /// The agent printed nothing for its idle limit.
    Idle,
    /// The executor cannot work where it runs (another node's filesystem).
    Misplaced,
    /// The story spent its budget.
    OverBudget,
    /// The agent's CLI met a failure its own retries will not mend.
    Hopeless,
}

impl Why {
    /// For the log: "time limit reached".
    pub fn describe(self) -> &'static str {
        match self {
            Why::Shutdown => "shutting down",
            Why::TimeLimit => "time limit reached",
            Why::Idle => "printed nothing for too long",
            Why::Misplaced => "it cannot work where it runs",
            Why::OverBudget => "over budget",
            Why::Hopeless => "its CLI failed for good",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Running,
    /// Asked to stop; killed at `kill_at` if still there.
    Terminating {
        why: Why,
        kill_at: Instant,
    },
    Killed {
        why: Why,
    },
}

impl Stage {
    /// Why it is being stopped, once it is.
    pub fn why(self) -> Option<Why> {
        match self {
            Stage::Running => None,
            Stage::Terminating { why, .. } | Stage::Killed { why } => Some(why),
        }
    }

    /// When the next step is due, if one is.
    pub fn due(self) -> Option<Instant> {
        match self {
            Stage::Terminating { kill_at, .. } => Some(kill_at),
            _ => None,
        }
    }
}

/// What the loop sees at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub now: Instant,
    pub shutdown: shutdown::State,
    /// A reason of its own to stop the process (its time limit passed, it
    /// hangs), if any.
    pub fault: Option<Why>,
}

/// What the loop must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ask it to stop (SIGTERM to its group, or a shutdown message).
    Terminate,
    /// SIGKILL to its group.
    Kill,
}

/// The next stage, and what to do to get there. `grace` is how long a
/// process asked to stop gets before it is killed.
pub fn next(stage: Stage, seen: Seen, grace: Duration) -> (Stage, Option<Action>) {
    use shutdown::State;
    match stage {
        Stage::Running => {
            let why = match (seen.shutdown, seen.fault) {
                (State::Running, None) => return (stage, None),
                (State::Running, Some(f)) => f,
                _ => Why::Shutdown,
            };
            if seen.shutdown == State::Forced {
                return (Stage::Killed { why }, Some(Action::Kill));
            }
            let kill_at = seen.now + grace;
            (Stage::Terminating { why, kill_at }, Some(Action::Terminate))
        }
        Stage::Terminating { why, kill_at }
            if seen.shutdown == State::Forced || seen.now >= kill_at =>
        {
            (Stage::Killed { why }, Some(Action::Kill))
        }
        other => (other, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::State;

    const GRACE: Duration = Duration::from_secs(10);

    fn seen(now: Instant, shutdown: State, fault: Option<Why>) -> Seen {
        Seen {
            now,
            shutdown,
            fault,
        }
    }

    #[test]
    fn a_running_process_is_left_alone_until_something_asks_it_to_stop() {
        let t = Instant::now();
        assert_eq!(
            next(Stage::Running, seen(t, State::Running, None), GRACE),
            (Stage::Running, None)
        );
    }

    #[test]
    fn a_stop_terminates_then_kills_after_the_grace_period() {
        let t = Instant::now();
        let (s, a) = next(Stage::Running, seen(t, State::Stopping, None), GRACE);
        assert_eq!(a, Some(Action::Terminate));
        assert_eq!(
            s,
            Stage::Terminating {
                why: Why::Shutdown,
                kill_at: t + GRACE
            }
        );
        // Before the grace period is over: nothing more.
        let almost = t + GRACE - Duration::from_millis(1);
        assert_eq!(
            next(s, seen(almost, State::Stopping, None), GRACE),
            (s, None)
        );
        let (s, a) = next(s, seen(t + GRACE, State::Stopping, None), GRACE);
        assert_eq!(
            (s, a),
            (Stage::Killed { why: Why::Shutdown }, Some(Action::Kill))
        );
        // Killed is final: no second kill.
        assert_eq!(
            next(s, seen(t + GRACE * 2, State::Forced, None), GRACE),
            (s, None)
        );
    }

    #[test]
    fn a_second_ctrl_c_kills_at_once_from_any_stage() {
        let t = Instant::now();
        let (s, a) = next(Stage::Running, seen(t, State::Forced, None), GRACE);
        assert_eq!(
            (s, a),
            (Stage::Killed { why: Why::Shutdown }, Some(Action::Kill))
        );
        let terminating = Stage::Terminating {
            why: Why::TimeLimit,
            kill_at: t + GRACE,
        };
        let (s, a) = next(terminating, seen(t, State::Forced, None), GRACE);
        assert_eq!(a, Some(Action::Kill));
        // It keeps the reason it was stopped for.
        assert_eq!(s.why(), Some(Why::TimeLimit));
    }

    #[test]
    fn a_fault_stops_with_its_own_reason_and_a_shutdown_outranks_it() {
        let t = Instant::now();
        for why in [Why::TimeLimit, Why::Idle, Why::Misplaced, Why::OverBudget] {
            let (s, a) = next(Stage::Running, seen(t, State::Running, Some(why)), GRACE);
            assert_eq!((s.why(), a), (Some(why), Some(Action::Terminate)));
            assert_eq!(s.due(), Some(t + GRACE));
        }
        let (s, _) = next(
            Stage::Running,
            seen(t, State::Stopping, Some(Why::TimeLimit)),
            GRACE,
        );
        assert_eq!(s.why(), Some(Why::Shutdown));
    }

    #[test]
    fn zero_grace_kills_on_the_next_look() {
        let t = Instant::now();
        let (s, a) = next(
            Stage::Running,
            seen(t, State::Stopping, None),
            Duration::ZERO,
        );
        assert_eq!(a, Some(Action::Terminate));
        let (_, a) = next(s, seen(t, State::Stopping, None), Duration::ZERO);
        assert_eq!(a, Some(Action::Kill));
    }
}
