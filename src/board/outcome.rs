//! A story run's outcome and what it writes on the board: SPEC §5's table
//! as a pure function.

use super::frontmatter::{Change, Value};
use super::{Status, text};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Skipped,
    /// Stopped at a usage cap: `ready` again, not before the cap lifts.
    Parked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
            Outcome::Skipped => "skipped",
            Outcome::Parked => "parked",
        }
    }

    /// The outcome in words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::TimedOut => "timed out",
            other => other.as_str(),
        }
    }
}

/// The fields a run's outcome writes (SPEC §5): `status`, the time
/// stamps, `blocked_reason` for a failure, and `last_run`; a parked
/// story's `not_before` (SPEC §15). A skipped story is left as it is.
pub fn outcome_patch(
    outcome: Outcome,
    now: &str,
    reason: &str,
    last_run: Value,
    not_before: Option<&str>,
) -> Vec<Change<'static>> {
    match outcome {
        Outcome::Parked => vec![
            ("status", text(Status::Ready.as_str())),
            ("not_before", not_before.and_then(text)),
            ("updated", text(now)),
            ("last_run", Some(last_run)),
        ],
        Outcome::Succeeded => vec![
            ("status", text(Status::Done.as_str())),
            ("finished_at", text(now)),
            ("updated", text(now)),
            ("last_run", Some(last_run)),
            ("blocked_reason", None),
            ("blocked_at", None),
        ],
        Outcome::Failed | Outcome::TimedOut => vec![
            ("status", text(Status::Blocked.as_str())),
            ("blocked_reason", text(reason)),
            ("blocked_at", text(now)),
            ("updated", text(now)),
            ("last_run", Some(last_run)),
        ],
        Outcome::Cancelled => vec![
            ("status", text(Status::Ready.as_str())),
            ("updated", text(now)),
            ("last_run", Some(last_run)),
        ],
        Outcome::Skipped => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `field=value` of each change, `field-` for a removal.
    fn shown(changes: &[Change]) -> Vec<String> {
        changes
            .iter()
            .map(|(k, v)| match v {
                Some(Value::Str(s)) => format!("{k}={s}"),
                Some(Value::Map(_)) => format!("{k}={{..}}"),
                Some(other) => format!("{k}={other:?}"),
                None => format!("{k}-"),
            })
            .collect()
    }

    #[test]
    fn each_outcome_writes_what_the_spec_table_says() {
        let now = "2026-12-06T00:00:00Z";
        let table: [(Outcome, &[&str]); 6] = [
            (
                Outcome::Succeeded,
                &[
                    "status=done",
                    "finished_at=2026-12-06T00:00:00Z",
                    "updated=2026-12-06T00:00:00Z",
                    "last_run={..}",
                    "blocked_reason-",
                    "blocked_at-",
                ],
            ),
            (
                Outcome::Failed,
                &[
                    "status=blocked",
                    "blocked_reason=phase implement exited with code 1",
                    "blocked_at=2026-12-06T00:00:00Z",
                    "updated=2026-12-06T00:00:00Z",
                    "last_run={..}",
                ],
            ),
            (
                Outcome::TimedOut,
                &[
                    "status=blocked",
                    "blocked_reason=phase implement exited with code 1",
                    "blocked_at=2026-12-06T00:00:00Z",
                    "updated=2026-12-06T00:00:00Z",
                    "last_run={..}",
                ],
            ),
            (
                Outcome::Cancelled,
                &[
                    "status=ready",
                    "updated=2026-12-06T00:00:00Z",
                    "last_run={..}",
                ],
            ),
            (Outcome::Skipped, &[]),
            (
                Outcome::Parked,
                &[
                    "status=ready",
                    "not_before=2026-12-06T03:00:00Z",
                    "updated=2026-12-06T00:00:00Z",
                    "last_run={..}",
                ],
            ),
        ];
        for (outcome, want) in table {
            let got = outcome_patch(
                outcome,
                now,
                "phase implement exited with code 1",
                Value::Map(Vec::new()),
                Some("2026-12-06T03:00:00Z"),
            );
            assert_eq!(shown(&got), want, "{outcome:?}");
        }
    }
}
