//! A run's limits (SPEC §15), as one state with pure transitions: the
//! dispatcher asks it whether a story may start now, and tells it what
//! happens. Times are passed in, so every rule is unit-tested without a
//! clock or a process.
//!
//! - **Usage cap**: the agent's account is out of its plan's usage; no
//!   story starts before the cap lifts (`pause`), running ones go on.
//! - **Rate limits**: a 429 or an overload from any story halves how many
//!   stories may run at once (not below 1), at most once per `hold`; after
//!   `quiet` without one, it climbs back by one per `quiet`.
//! - **Run budget**: no story starts once what was spent, with what the
//!   running ones may still spend (their story budget), would pass it.

pub mod ledger;

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Spend so far: US dollars where known, tokens (in and out).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    pub usd: f64,
    pub tokens: u64,
}

impl Spend {
    /// "$0.42" or "1234 tokens".
    pub fn text(&self, in_usd: bool) -> String {
        if in_usd {
            crate::agent::usd(self.usd)
        } else {
            format!("{} tokens", self.tokens)
        }
    }
}

impl Spend {
    /// What is left of it once `o` is taken out (never below nothing).
    pub fn less(self, o: Spend) -> Spend {
        Spend {
            usd: (self.usd - o.usd).max(0.0),
            tokens: self.tokens.saturating_sub(o.tokens),
        }
    }
}

impl std::ops::Add for Spend {
    type Output = Spend;
    fn add(self, o: Spend) -> Spend {
        Spend {
            usd: self.usd + o.usd,
            tokens: self.tokens + o.tokens,
        }
    }
}

/// What an agent's report says was spent: its cost in USD (or, when it
/// reports only tokens, their price at `pricing`; else nothing), and its
/// tokens. The second value says where the cost came from: `cli`,
/// `pricing`, or `None` when there is none.
pub fn spend_of(
    cost_usd: Option<f64>,
    input: Option<u64>,
    output: Option<u64>,
    pricing: Option<crate::config::Pricing>,
) -> (Spend, Option<&'static str>) {
    let (i, o) = (input.unwrap_or(0), output.unwrap_or(0));
    let (usd, from) = match (cost_usd, pricing) {
        (Some(c), _) => (c, Some("cli")),
        (None, Some(p)) if input.is_some() || output.is_some() => (
            (i as f64 * p.input + o as f64 * p.output) / 1_000_000.0,
            Some("pricing"),
        ),
        _ => (0.0, None),
    };
    (Spend { usd, tokens: i + o }, from)
}

/// A budget: USD and/or tokens; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Budget {
    pub usd: Option<f64>,
    pub tokens: Option<u64>,
}

impl Budget {
    pub fn is_set(&self) -> bool {
        self.usd.is_some() || self.tokens.is_some()
    }

    /// What is left of it after `spent`, shared equally among `ways`
    /// (a story's attempts, SPEC §17); never below nothing.
    pub fn share(&self, spent: Spend, ways: u32) -> Budget {
        let ways = ways.max(1);
        Budget {
            usd: self.usd.map(|b| (b - spent.usd).max(0.0) / f64::from(ways)),
            tokens: self
                .tokens
                .map(|b| b.saturating_sub(spent.tokens) / u64::from(ways)),
        }
    }

    /// Why `spent` is over this budget ("$0.52 of $0.50"), if it is.
    pub fn over(&self, spent: Spend) -> Option<String> {
        if let Some(max) = self.usd
            && spent.usd > max
        {
            return Some(format!(
                "{} of {}",
                crate::agent::usd(spent.usd),
                crate::agent::usd(max)
            ));
        }
        if let Some(max) = self.tokens
            && spent.tokens > max
        {
            return Some(format!("{} of {max} tokens", spent.tokens));
        }
        None
    }
}

/// Why nothing may start now.
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// The agent's usage cap, until this time (ms since the epoch).
    Paused { until: u64, why: String },
    /// The run's budget: what was spent and the budget, in words.
    Budget(String),
}

/// How long after one halving another may come: a burst of 429s from
/// stories that started together is one signal, not four.
fn hold(quiet: Duration) -> Duration {
    (quiet / 2).min(Duration::from_secs(10))
}

pub struct Governor {
    /// The concurrency asked for.
    max: usize,
    /// What is allowed now.
    limit: usize,
    quiet: Duration,
    last_limited: Option<Instant>,
    last_cut: Option<Instant>,
    last_raise: Option<Instant>,
    pause: Option<(u64, String)>,
    story_budget: Budget,
    run_budget: Budget,
    /// Spent by the stories that ended.
    ended: Spend,
    /// Spent so far by each running story.
    running: HashMap<String, Spend>,
}

impl Governor {
    pub fn new(max: usize, quiet: Duration, story_budget: Budget, run_budget: Budget) -> Governor {
        Governor {
            max: max.max(1),
            limit: max.max(1),
            quiet,
            last_limited: None,
            last_cut: None,
            last_raise: None,
            pause: None,
            story_budget,
            run_budget,
            ended: Spend::default(),
            running: HashMap::new(),
        }
    }

    /// How many stories may run at once now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A story was rate limited (or its service overloaded): the new
    /// limit, `(from, to)`, when this halved it.
    pub fn limited(&mut self, now: Instant) -> Option<(usize, usize)> {
        self.last_limited = Some(now);
        if self
            .last_cut
            .is_some_and(|t| now.saturating_duration_since(t) < hold(self.quiet))
            || self.limit == 1
        {
            return None;
        }
        let from = self.limit;
        self.limit = (from / 2).max(1);
        self.last_cut = Some(now);
        Some((from, self.limit))
    }

    /// Time passed: the new limit, `(from, to)`, when it climbed back.
    pub fn tick(&mut self, now: Instant) -> Option<(usize, usize)> {
        let since = self.last_limited?;
        if self.limit >= self.max {
            return None;
        }
        let calm = since.max(self.last_raise.unwrap_or(since));
        if now.saturating_duration_since(calm) < self.quiet {
            return None;
        }
        let from = self.limit;
        self.limit += 1;
        self.last_raise = Some(now);
        Some((from, self.limit))
    }

    /// When `tick` may next raise the limit.
    pub fn next_tick(&self) -> Option<Instant> {
        let since = self.last_limited?;
        (self.limit < self.max).then(|| since.max(self.last_raise.unwrap_or(since)) + self.quiet)
    }

    /// The agent is at its usage cap until `until` (ms since the epoch):
    /// the latest word on it stands (a story's own reset time replaces the
    /// `capWait` guess made when its cap was first heard of).
    pub fn pause(&mut self, until: u64, why: &str) {
        self.pause = Some((until, why.to_string()));
    }

    /// Why no story may start now (`now`: ms since the epoch), if none may.
    pub fn hold(&mut self, now: u64) -> Option<Hold> {
        if let Some((until, why)) = &self.pause {
            if *until > now {
                return Some(Hold::Paused {
                    until: *until,
                    why: why.clone(),
                });
            }
            self.pause = None;
        }
        self.over_run_budget().map(Hold::Budget)
    }

    /// What the run has spent: the stories that ended, and the running
    /// ones so far.
    pub fn spent(&self) -> Spend {
        self.running.values().fold(self.ended, |a, s| Spend {
            usd: a.usd + s.usd,
            tokens: a.tokens + s.tokens,
        })
    }

    /// Would one more story pass the run's budget? Each running story may
    /// still spend up to its story budget (what it spent, if more).
    fn over_run_budget(&self) -> Option<String> {
        let run = self.run_budget;
        if !run.is_set() {
            return None;
        }
        let reserve = |spent: f64, each: Option<f64>| spent.max(each.unwrap_or(0.0));
        let reserve_t = |spent: u64, each: Option<u64>| spent.max(each.unwrap_or(0));
        let mut committed = self.ended;
        for s in self.running.values() {
            committed.usd += reserve(s.usd, self.story_budget.usd);
            committed.tokens += reserve_t(s.tokens, self.story_budget.tokens);
        }
        let spent = self.spent();
        let say = |in_usd: bool| {
            let budget = match in_usd {
                true => crate::agent::usd(run.usd.unwrap_or(0.0)),
                false => format!("{} tokens", run.tokens.unwrap_or(0)),
            };
            format!(
                "the run's budget is spent: {} of {budget}{}",
                spent.text(in_usd),
                if self.running.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", with {} running that may spend up to {}",
                        self.running.len(),
                        Spend {
                            usd: committed.usd - spent.usd,
                            tokens: committed.tokens - spent.tokens
                        }
                        .text(in_usd)
                    )
                }
            )
        };
        if let Some(max) = run.usd {
            let next = self.story_budget.usd.unwrap_or(0.0);
            if committed.usd >= max || (next > 0.0 && committed.usd + next > max) {
                return Some(say(true));
            }
        }
        if let Some(max) = run.tokens {
            let next = self.story_budget.tokens.unwrap_or(0);
            if committed.tokens >= max || (next > 0 && committed.tokens + next > max) {
                return Some(say(false));
            }
        }
        None
    }

    /// The run's spend against its budget, for people ("$0.42 of
    /// $2.00"); `None` without a run budget.
    pub fn spent_text(&self) -> Option<String> {
        let spent = self.spent();
        match (self.run_budget.usd, self.run_budget.tokens) {
            (Some(max), _) => Some(format!(
                "{} of {}",
                crate::agent::usd(spent.usd),
                crate::agent::usd(max)
            )),
            (None, Some(max)) => Some(format!("{} of {max} tokens", spent.tokens)),
            (None, None) => None,
        }
    }

    /// A story started.
    pub fn started(&mut self, id: &str) {
        self.running.insert(id.to_string(), Spend::default());
    }

    /// What a running story has spent so far.
    pub fn spending(&mut self, id: &str, spent: Spend) {
        if let Some(s) = self.running.get_mut(id) {
            *s = spent;
        }
    }

    /// A story ended, having spent `spent` in all.
    pub fn ended(&mut self, id: &str, spent: Spend) {
        self.running.remove(id);
        self.ended.usd += spent.usd;
        self.ended.tokens += spent.tokens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_is_shared_among_attempts_after_what_was_spent() {
        let b = Budget {
            usd: Some(1.0),
            tokens: Some(1000),
        };
        let spent = Spend {
            usd: 0.4,
            tokens: 100,
        };
        let each = b.share(spent, 3);
        assert!((each.usd.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(each.tokens, Some(300));
        assert_eq!(
            b.share(
                Spend {
                    usd: 2.0,
                    tokens: 5000
                },
                2
            )
            .usd,
            Some(0.0)
        );
        assert_eq!(Budget::default().share(spent, 3), Budget::default());
    }

    fn gov(max: usize) -> Governor {
        Governor::new(
            max,
            Duration::from_secs(60),
            Budget::default(),
            Budget::default(),
        )
    }

    #[test]
    fn a_rate_limit_halves_concurrency_once_per_burst_and_it_climbs_back_when_quiet() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut g = gov(4);
        assert_eq!(g.tick(t), None);
        assert_eq!(g.limited(t), Some((4, 2)));
        // The same burst: no second halving.
        assert_eq!(g.limited(t + s(1)), None);
        assert_eq!(g.limit(), 2);
        // A later one halves again, never below 1.
        assert_eq!(g.limited(t + s(20)), Some((2, 1)));
        assert_eq!(g.limited(t + s(40)), None);
        assert_eq!(g.limit(), 1);
        // Quiet for a minute after the last one: up by one per minute.
        assert_eq!(g.tick(t + s(99)), None);
        assert_eq!(g.next_tick(), Some(t + s(100)));
        assert_eq!(g.tick(t + s(100)), Some((1, 2)));
        assert_eq!(g.tick(t + s(130)), None);
        assert_eq!(g.tick(t + s(160)), Some((2, 3)));
        // A new limit resets the calm.
        assert_eq!(g.limited(t + s(170)), Some((3, 1)));
        assert_eq!(g.tick(t + s(200)), None);
        assert_eq!(g.tick(t + s(230)), Some((1, 2)));
        assert_eq!(g.tick(t + s(290)), Some((2, 3)));
        assert_eq!(g.tick(t + s(350)), Some((3, 4)));
        assert_eq!(g.tick(t + s(999)), None);
        assert_eq!(g.next_tick(), None);
    }

    #[test]
    fn a_usage_cap_holds_every_start_until_it_lifts() {
        let mut g = gov(2);
        assert_eq!(g.hold(1_000), None);
        g.pause(9_000, "a first guess");
        g.pause(5_000, "claude usage limit");
        assert_eq!(
            g.hold(4_999),
            Some(Hold::Paused {
                until: 5_000,
                why: "claude usage limit".into()
            })
        );
        assert_eq!(g.hold(5_000), None);
    }

    #[test]
    fn a_run_budget_stops_starts_counting_what_running_stories_may_spend() {
        let usd = |d: f64| Budget {
            usd: Some(d),
            tokens: None,
        };
        let mut g = Governor::new(4, Duration::from_secs(60), usd(0.5), usd(1.2));
        assert_eq!(g.hold(0), None);
        g.started("S-1");
        // One running may spend 0.50; a second would reserve 1.00 <= 1.20.
        assert_eq!(g.hold(0), None);
        g.started("S-2");
        // A third would reserve 1.50 > 1.20.
        let held = g.hold(0).unwrap();
        assert!(
            matches!(&held, Hold::Budget(w) if w.contains("$0.00 of $1.20") && w.contains("2 running")),
            "{held:?}"
        );
        g.ended(
            "S-1",
            Spend {
                usd: 0.1,
                tokens: 0,
            },
        );
        // 0.10 spent + 0.50 for S-2 + 0.50 for the next: 1.10.
        assert_eq!(g.hold(0), None);
        g.spending(
            "S-2",
            Spend {
                usd: 0.7,
                tokens: 0,
            },
        );
        assert!(g.hold(0).is_some());
        assert!((g.spent().usd - 0.8).abs() < 1e-9);

        // Without a story budget, the run stops starting once it is spent.
        let mut g = Governor::new(4, Duration::from_secs(60), Budget::default(), usd(1.0));
        g.started("S-1");
        g.spending(
            "S-1",
            Spend {
                usd: 0.9,
                tokens: 0,
            },
        );
        assert_eq!(g.hold(0), None);
        g.ended(
            "S-1",
            Spend {
                usd: 1.0,
                tokens: 0,
            },
        );
        assert!(g.hold(0).is_some());

        // Tokens alike.
        let toks = Budget {
            usd: None,
            tokens: Some(1000),
        };
        let mut g = Governor::new(4, Duration::from_secs(60), Budget::default(), toks);
        g.ended(
            "S-1",
            Spend {
                usd: 0.0,
                tokens: 1001,
            },
        );
        assert!(
            matches!(g.hold(0), Some(Hold::Budget(w)) if w.contains("1001 tokens of 1000 tokens"))
        );
    }

    #[test]
    fn a_budget_says_by_how_much_it_is_over() {
        let b = Budget {
            usd: Some(0.5),
            tokens: Some(100),
        };
        assert_eq!(
            b.over(Spend {
                usd: 0.5,
                tokens: 100
            }),
            None
        );
        assert_eq!(
            b.over(Spend {
                usd: 0.52,
                tokens: 0
            })
            .as_deref(),
            Some("$0.52 of $0.50")
        );
        assert_eq!(
            b.over(Spend {
                usd: 0.0,
                tokens: 101
            })
            .as_deref(),
            Some("101 of 100 tokens")
        );
    }
}
