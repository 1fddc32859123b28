//! The SDLC workflow (SPEC §10): which phases a workflow has, what each
//! phase means on the board the TS tool shares (its completion flag, its
//! section file, the body section older boards keep instead), and the
//! review's verdict.
//!
//! The four phase names `research`, `plan`, `implement` and `review` carry
//! this meaning in any workflow, the built-in `sdlc` one or a list of
//! phases the config names (`Kind`); other phases just run. `next` is the
//! workflow as a pure function: after a phase ends, what runs next.

/// A phase of a workflow, as the config names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    /// `None` runs `agent.command`.
    pub command: Option<Vec<String>>,
}

impl Phase {
    pub fn kind(&self) -> Kind {
        Kind::of(&self.name)
    }
}

/// What a phase means on the board, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Research,
    Plan,
    Implement,
    /// Ends with a verdict; changes requested send the story back to
    /// the implement phase before it.
    Review,
    /// `worktree.setup`, run first in a new worktree (gets no prompt).
    Setup,
    /// `land`'s: the story goes back to its agent to resolve a conflict with
    /// its base, or checks that fail on the merged result (SPEC §14).
    Resolve,
    /// A phase of the config's own: it just runs.
    Other,
}

/// The name of the phase that runs `worktree.setup`.
pub const SETUP: &str = "setup";

impl Kind {
    pub fn of(name: &str) -> Kind {
        match name {
            "research" => Kind::Research,
            "plan" => Kind::Plan,
            "implement" => Kind::Implement,
            "review" => Kind::Review,
            SETUP => Kind::Setup,
            "resolve" => Kind::Resolve,
            _ => Kind::Other,
        }
    }

    /// The story field that says the phase is complete, as TS names it.
    pub fn flag(self) -> Option<&'static str> {
        Some(match self {
            Kind::Research => "research_complete",
            Kind::Plan => "plan_complete",
            Kind::Implement => "implementation_complete",
            Kind::Review => "reviews_complete",
            Kind::Setup | Kind::Resolve | Kind::Other => return None,
        })
    }

    /// The section file the phase writes.
    pub fn section(self) -> Option<&'static Section> {
        SECTIONS.iter().find(|s| s.phase == Some(self))
    }
}

/// The review's own section file: its notes, and the reasons a review
/// asked for changes, which the next implement round gets.
pub const REVIEW_FILE: &str = "review.md";

/// What `land` tells a resolve phase: the base it must build on, the
/// files in conflict, the checks' output.
pub const LAND_FILE: &str = "land.md";

/// What a story's judge compares (SPEC §17): each attempt's diff, verify
/// output and final message, numbered 1..N.
pub const ATTEMPTS_FILE: &str = "attempts.md";

/// The phase that picks among a story's attempts (`attempts.pick: judge`).
pub const JUDGE: &str = "judge";

/// How a phase ended, as the workflow sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Succeeded,
    /// A review that did not approve.
    ChangesRequested,
    Failed,
}

/// What runs after a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The phase at this index.
    Run(usize),
    /// Changes requested: implement again from `to`, as round `round`.
    Back {
        to: usize,
        round: u32,
    },
    Done,
    /// The phase failed.
    Fail,
    /// The review still requests changes after `max_rounds` rounds.
    OutOfRounds,
}

/// After phase `index` of `kinds` ended with `end` in round `round`, what
/// runs next. A review that requests changes goes back to the implement
/// phase before it, up to `max_rounds` rounds in all.
pub fn next(kinds: &[Kind], max_rounds: u32, index: usize, round: u32, end: End) -> Step {
    match end {
        End::Failed => Step::Fail,
        End::Succeeded if index + 1 >= kinds.len() => Step::Done,
        End::Succeeded => Step::Run(index + 1),
        End::ChangesRequested => {
            let back = kinds[..index.min(kinds.len())]
                .iter()
                .rposition(|k| *k == Kind::Implement);
            match back {
                Some(to) if round < max_rounds => Step::Back {
                    to,
                    round: round + 1,
                },
                _ => Step::OutOfRounds,
            }
        }
    }
}

/// The built-in workflows `run --workflow` and `workflow.preset` name.
pub const WORKFLOWS: [&str; 2] = ["sdlc", "implement"];

/// The phases of a built-in workflow.
pub fn preset(name: &str) -> Option<Vec<Phase>> {
    let names: &[&str] = match name {
        "sdlc" => &["research", "plan", "implement", "review"],
        "implement" => &["implement"],
        // `land`'s own, not offered to `run --workflow`.
        "resolve" => &["resolve"],
        // The judge of a story's attempts, likewise.
        JUDGE => &[JUDGE],
        _ => return None,
    };
    Some(
        names
            .iter()
            .map(|n| Phase {
                name: n.to_string(),
                command: None,
            })
            .collect(),
    )
}

/// The story field that says a phase is complete, as TS names it.
pub fn flag(phase: &str) -> Option<&'static str> {
    Kind::of(phase).flag()
}

/// Every completion flag, in workflow order.
pub const FLAGS: [&str; 4] = [
    "research_complete",
    "plan_complete",
    "implementation_complete",
    "reviews_complete",
];

/// A section of a story: the file in its folder where a phase's output
/// lives (TS's `SECTION_FILES`), and the body headings older boards use.
pub struct Section {
    pub file: &'static str,
    /// What the section is, in a prompt.
    pub label: &'static str,
    /// The phase that writes it (`None`: only TS writes it).
    pub phase: Option<Kind>,
    pub headings: &'static [&'static str],
}

/// In the order a later phase's prompt shows them.
pub const SECTIONS: [Section; 6] = [
    Section {
        file: "research.md",
        label: "Research",
        phase: Some(Kind::Research),
        headings: &["research"],
    },
    Section {
        file: "plan.md",
        label: "Implementation plan",
        phase: Some(Kind::Plan),
        headings: &["implementation plan", "plan"],
    },
    Section {
        file: "plan_review.md",
        label: "Plan review",
        phase: None,
        headings: &["plan review"],
    },
    Section {
        file: REVIEW_FILE,
        label: "Review",
        phase: Some(Kind::Review),
        headings: &["review notes", "review"],
    },
    Section {
        file: LAND_FILE,
        label: "Landing",
        phase: None,
        headings: &[],
    },
    Section {
        file: ATTEMPTS_FILE,
        label: "The attempts",
        phase: None,
        headings: &[],
    },
];

/// The section file a phase writes.
pub fn section_of(phase: &str) -> Option<&'static Section> {
    Kind::of(phase).section()
}

/// A phase's output is kept (in its section file, and for later phases'
/// prompts) up to this many bytes: its last ones.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// The last `MAX_OUTPUT` bytes of `text`, cut at a character boundary.
pub fn bounded(text: &str) -> &str {
    let text = text.trim();
    if text.len() <= MAX_OUTPUT {
        return text;
    }
    let mut start = text.len() - MAX_OUTPUT;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The sections that go into phase `phase`'s prompt: those of the phases
/// before it. The review's own notes go to `implement` only (the reasons
/// a previous review asked for changes).
pub fn sections_for(phase: &str) -> Vec<&'static Section> {
    let order = [Kind::Research, Kind::Plan, Kind::Implement, Kind::Review];
    let kind = Kind::of(phase);
    if kind == Kind::Resolve {
        // The story's research and plan, and what it must resolve.
        return SECTIONS
            .iter()
            .filter(|s| ![REVIEW_FILE, "plan_review.md", ATTEMPTS_FILE].contains(&s.file))
            .collect();
    }
    let Some(at) = order.iter().position(|k| *k == kind) else {
        // A phase of its own: it sees everything but a review.
        return SECTIONS
            .iter()
            .filter(|s| s.file != REVIEW_FILE && s.file != LAND_FILE)
            .collect();
    };
    SECTIONS
        .iter()
        .filter(|s| s.file != LAND_FILE && s.file != ATTEMPTS_FILE)
        .filter(|s| match s.phase {
            Some(Kind::Review) => kind == Kind::Implement,
            Some(p) => order.iter().position(|o| *o == p).is_some_and(|i| i < at),
            // The plan review counts as part of the plan.
            None => at > 1,
        })
        .collect()
}

/// The `## <heading>` section of a body (any level, any case), up to the
/// next heading of the same or a higher level; for `headings` in order.
pub fn body_section(body: &str, headings: &[&str]) -> Option<String> {
    let level = |l: &str| l.chars().take_while(|c| *c == '#').count();
    for want in headings {
        let mut lines = body.lines();
        let start_level = loop {
            let Some(l) = lines.next() else { break None };
            let n = level(l);
            if n > 0 && l[n..].trim().eq_ignore_ascii_case(want) {
                break Some(n);
            }
        };
        let Some(start_level) = start_level else {
            continue;
        };
        let text: Vec<&str> = lines
            .take_while(|l| {
                let n = level(l);
                n == 0 || n > start_level
            })
            .collect();
        let text = text.join("\n").trim().to_string();
        if !text.is_empty() {
            return Some(text);
        }
    }
    None
}

/// What a review decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    /// The reasons (what came after the `CHANGES REQUESTED` line).
    ChangesRequested(String),
    /// Neither line: counts as changes requested, with this said.
    Missing,
}

impl Verdict {
    /// For the IPC message and `last_run.phases`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Approved => "approved",
            Verdict::ChangesRequested(_) => "changes_requested",
            Verdict::Missing => "no_verdict",
        }
    }

    /// The reasons to hand to the next implement round.
    pub fn reasons(&self, review: &str) -> String {
        match self {
            Verdict::Approved => String::new(),
            Verdict::ChangesRequested(r) if !r.trim().is_empty() => r.trim().to_string(),
            Verdict::ChangesRequested(_) => {
                "the review asked for changes but gave no reasons".to_string()
            }
            Verdict::Missing => format!(
                "the review ended with neither a line APPROVED nor a line CHANGES REQUESTED, so it counts as changes requested. Its message:\n\n{}",
                review.trim()
            ),
        }
    }
}

/// A line as a verdict word sees it: no Markdown emphasis, heading marks or
/// quotes around it, upper case.
fn bare(line: &str) -> String {
    line.trim()
        .trim_start_matches(['#', '>', ' '])
        .trim_matches(['*', '_', '`', ' ', '.', '!'])
        .to_ascii_uppercase()
}

/// The judge's choice among `n` attempts: its last line `CHOSEN: <k>`
/// (Markdown emphasis and a `#` allowed), with the lines after it as its
/// reasons (else the text before it). `None` when no such line names one
/// of 1..=n.
pub fn chosen(answer: &str, n: u32) -> Option<(u32, String)> {
    let lines: Vec<&str> = answer.lines().collect();
    for (i, line) in lines.iter().enumerate().rev() {
        let b = bare(line);
        let Some(rest) = b.strip_prefix("CHOSEN") else {
            continue;
        };
        let rest = rest.trim_start_matches([':', ' ', '*', '_', '#']);
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let k = digits.parse::<u32>().ok().filter(|k| (1..=n).contains(k))?;
        let after = lines[i + 1..].join("\n");
        let reasons = match after.trim() {
            "" => lines[..i].join("\n"),
            t => t.to_string(),
        };
        return Some((k, reasons.trim().to_string()));
    }
    None
}

/// The review's verdict: its last line that is `APPROVED`, or that starts
/// with `CHANGES REQUESTED` (the reasons follow: on that line after a
/// colon, and on the lines after it).
pub fn verdict(review: &str) -> Verdict {
    let lines: Vec<&str> = review.lines().collect();
    for (i, line) in lines.iter().enumerate().rev() {
        let b = bare(line);
        if b == "APPROVED" {
            return Verdict::Approved;
        }
        if let Some(rest) = b.strip_prefix("CHANGES REQUESTED") {
            let mut reasons = String::new();
            let own = rest.trim_start_matches([':', ' ', '-', '*', '_']);
            if !own.is_empty() {
                // The line's own words, in the case they were written in.
                let start = line.len() - line.trim_start().len();
                let text = &line[start..];
                let at = text.to_ascii_uppercase().find(own).unwrap_or(0);
                reasons.push_str(text[at..].trim_end_matches(['*', '_', '`', ' ']));
                reasons.push('\n');
            }
            reasons.push_str(&lines[i + 1..].join("\n"));
            return Verdict::ChangesRequested(reasons.trim().to_string());
        }
    }
    Verdict::Missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workflow_goes_on_back_to_implement_or_stops() {
        use Kind::*;
        let sdlc = [Research, Plan, Implement, Review];
        assert_eq!(next(&sdlc, 2, 0, 1, End::Succeeded), Step::Run(1));
        assert_eq!(next(&sdlc, 2, 3, 1, End::Succeeded), Step::Done);
        assert_eq!(next(&sdlc, 2, 1, 1, End::Failed), Step::Fail);
        assert_eq!(
            next(&sdlc, 2, 3, 1, End::ChangesRequested),
            Step::Back { to: 2, round: 2 }
        );
        assert_eq!(
            next(&sdlc, 2, 3, 2, End::ChangesRequested),
            Step::OutOfRounds
        );
        // A review with no implement before it cannot go back.
        assert_eq!(
            next(&[Review, Implement], 5, 0, 1, End::ChangesRequested),
            Step::OutOfRounds
        );
        // The nearest implement before the review.
        let twice = [Implement, Other, Implement, Other, Review];
        assert_eq!(
            next(&twice, 3, 4, 1, End::ChangesRequested),
            Step::Back { to: 2, round: 2 }
        );
    }

    #[test]
    fn a_phase_kind_comes_from_its_name() {
        assert_eq!(Kind::of("review"), Kind::Review);
        assert_eq!(Kind::of("setup"), Kind::Setup);
        assert_eq!(Kind::of("lint"), Kind::Other);
        assert_eq!(Kind::Implement.flag(), Some("implementation_complete"));
        assert_eq!(Kind::Review.section().unwrap().file, REVIEW_FILE);
        assert!(Kind::Implement.section().is_none());
    }

    #[test]
    fn the_judges_last_chosen_line_names_an_attempt_and_its_reasons() {
        assert_eq!(
            chosen("Both work; 2 is simpler.\nCHOSEN: 2\nIt keeps the API.", 3),
            Some((2, "It keeps the API.".into()))
        );
        assert_eq!(
            chosen("**Chosen: 3**", 3).map(|c| c.0),
            Some(3),
            "emphasis and case"
        );
        assert_eq!(
            chosen("Shorter and tested.\n## CHOSEN 1", 2),
            Some((1, "Shorter and tested.".into()))
        );
        assert_eq!(
            chosen("CHOSEN: 1\nOn second thought:\nCHOSEN: 2", 2).map(|c| c.0),
            Some(2)
        );
        assert_eq!(chosen("CHOSEN: 4", 3), None, "out of range");
        assert_eq!(chosen("CHOSEN: two", 3), None);
        assert_eq!(chosen("I like the first one", 3), None);
    }

    #[test]
    fn only_the_judge_sees_the_attempts() {
        let sees = |p: &str| sections_for(p).iter().any(|s| s.file == ATTEMPTS_FILE);
        assert!(sees(JUDGE));
        for p in ["research", "plan", "implement", "review", "resolve"] {
            assert!(!sees(p), "{p}");
        }
    }

    #[test]
    fn the_last_verdict_line_decides() {
        assert_eq!(verdict("Looks good.\n\nAPPROVED\n"), Verdict::Approved);
        assert_eq!(verdict("fine\n**Approved.**"), Verdict::Approved);
        assert_eq!(
            verdict("Checked it.\nCHANGES REQUESTED\n- add a test\n- fix the typo\n"),
            Verdict::ChangesRequested("- add a test\n- fix the typo".into())
        );
        assert_eq!(
            verdict("## Changes requested: the tests fail\nsee above"),
            Verdict::ChangesRequested("the tests fail\nsee above".into())
        );
        // An earlier approval does not outweigh a later request.
        assert_eq!(
            verdict("APPROVED\nwait, no\nCHANGES REQUESTED\nbroken"),
            Verdict::ChangesRequested("broken".into())
        );
        assert_eq!(verdict("I approved of it, mostly"), Verdict::Missing);
        assert_eq!(verdict(""), Verdict::Missing);
        assert!(Verdict::Missing.reasons("meh").contains("meh"));
    }

    #[test]
    fn body_sections_are_found_by_heading() {
        let body = "# T\n\n## Research\nfound x\n### detail\ny\n## Implementation Plan\n1. do\n## Review Notes\n\n## Other\n";
        assert_eq!(
            body_section(body, &["research"]).as_deref(),
            Some("found x\n### detail\ny")
        );
        assert_eq!(
            body_section(body, &["implementation plan", "plan"]).as_deref(),
            Some("1. do")
        );
        assert_eq!(body_section(body, &["review notes"]), None);
    }

    #[test]
    fn each_phase_sees_the_sections_before_it() {
        let files = |p: &str| -> Vec<&str> { sections_for(p).iter().map(|s| s.file).collect() };
        assert!(files("research").is_empty());
        assert_eq!(files("plan"), ["research.md"]);
        assert_eq!(
            files("implement"),
            ["research.md", "plan.md", "plan_review.md", "review.md"]
        );
        assert_eq!(
            files("review"),
            ["research.md", "plan.md", "plan_review.md"]
        );
    }

    #[test]
    fn outputs_keep_their_last_bytes() {
        let long = format!("{}é{}", "a".repeat(MAX_OUTPUT), "z".repeat(10));
        let b = bounded(&long);
        assert!(b.len() <= MAX_OUTPUT && b.ends_with("zzz"), "{}", b.len());
    }
}
