//! The SDLC workflow (SPEC §10): which phases a workflow has, what each
//! phase means on the board the TS tool shares (its completion flag, its
//! section file, the body section older boards keep instead), and the
//! review's verdict.
//!
//! The four phase names `research`, `plan`, `implement` and `review` carry
//! this meaning in any workflow, the built-in `sdlc` one or a list of
//! phases the config names; other phases just run.

/// A phase of a workflow, as the config names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    /// `None` runs `agent.command`.
    pub command: Option<Vec<String>>,
}

/// The built-in workflows `run --workflow` and `workflow.preset` name.
pub const WORKFLOWS: [&str; 2] = ["sdlc", "implement"];

/// The phases of a built-in workflow.
pub fn preset(name: &str) -> Option<Vec<Phase>> {
    let names: &[&str] = match name {
        "sdlc" => &["research", "plan", "implement", "review"],
        "implement" => &["implement"],
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
    Some(match phase {
        "research" => "research_complete",
        "plan" => "plan_complete",
        "implement" => "implementation_complete",
        "review" => "reviews_complete",
        _ => return None,
    })
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
    pub phase: Option<&'static str>,
    pub headings: &'static [&'static str],
}

/// In the order a later phase's prompt shows them.
pub const SECTIONS: [Section; 4] = [
    Section {
        file: "research.md",
        label: "Research",
        phase: Some("research"),
        headings: &["research"],
    },
    Section {
        file: "plan.md",
        label: "Implementation plan",
        phase: Some("plan"),
        headings: &["implementation plan", "plan"],
    },
    Section {
        file: "plan_review.md",
        label: "Plan review",
        phase: None,
        headings: &["plan review"],
    },
    Section {
        file: "review.md",
        label: "Review",
        phase: Some("review"),
        headings: &["review notes", "review"],
    },
];

/// The section file a phase writes.
pub fn section_of(phase: &str) -> Option<&'static Section> {
    SECTIONS.iter().find(|s| s.phase == Some(phase))
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
    let order = ["research", "plan", "implement", "review"];
    let Some(at) = order.iter().position(|p| *p == phase) else {
        // A phase of its own: it sees everything but a review.
        return SECTIONS.iter().filter(|s| s.file != "review.md").collect();
    };
    SECTIONS
        .iter()
        .filter(|s| match s.phase {
            Some("review") => phase == "implement",
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
