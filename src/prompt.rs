//! Prompts (SPEC §9): a template per phase (built in, or
//! `.ai-sdlc/prompts/<phase>.md`), filled with the story (its body without
//! the frontmatter) and what earlier phases of this run produced; and the
//! one placeholder filler that agent command lines use too.
//!
//! Filling is one pass over the template: a value is never scanned again,
//! so a story title that contains `{prompt}` stays text.

use crate::paths::{self, ReadError};
use std::path::Path;

/// A prompt template is read only up to this size.
const MAX_TEMPLATE: u64 = 256 * 1024;

/// `s` quoted for a POSIX shell: `'it'\''s'`.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Replace each `{name}` (and `{name:sh}`, shell-quoted) for which `lookup`
/// has a value, in one pass; anything else stays as written. Returns the
/// text and the names used.
pub fn fill(template: &str, lookup: &dyn Fn(&str) -> Option<String>) -> (String, Vec<String>) {
    let mut out = String::with_capacity(template.len());
    let mut used = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').filter(|&c| {
            let inner = &after[..c];
            !inner.is_empty()
                && inner
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch == '_' || ch == ':')
        });
        let Some(close) = close else {
            out.push('{');
            rest = after;
            continue;
        };
        let inner = &after[..close];
        let (name, quoted) = match inner.strip_suffix(":sh") {
            Some(n) => (n, true),
            None => (inner, false),
        };
        match lookup(name) {
            Some(v) => {
                out.push_str(&if quoted { sh_quote(&v) } else { v });
                used.push(name.to_string());
            }
            None => {
                out.push('{');
                out.push_str(inner);
                out.push('}');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    (out, used)
}

/// The script of a shell command line (`sh -c SCRIPT ...`, also through
/// `env`, and with other one-letter flags beside `c`): its index in `argv`.
pub fn shell_script(argv: &[String]) -> Option<usize> {
    let base = |a: &str| a.rsplit('/').next().unwrap_or(a).to_string();
    let mut i = 0;
    if base(argv.first()?) == "env" {
        i = 1;
        while argv
            .get(i)
            .is_some_and(|a| a.starts_with('-') || a.contains('='))
        {
            i += 1;
        }
    }
    let shell = base(argv.get(i)?);
    if !["sh", "bash", "dash", "zsh", "ksh", "ash", "mksh"].contains(&shell.as_str()) {
        return None;
    }
    let flag = argv[i + 1..].iter().position(|a| {
        a.len() > 1
            && a.starts_with('-')
            && !a.starts_with("--")
            && a[1..].chars().all(|c| c.is_ascii_alphabetic())
            && a.contains('c')
    })?;
    let at = i + 1 + flag + 1;
    (at < argv.len()).then_some(at)
}

/// The variable that holds a placeholder's value for a shell script (the
/// agent's `AI_SDLC_*` environment, SPEC §5).
pub fn placeholder_var(name: &str) -> Option<&'static str> {
    Some(match name {
        "id" => "AI_SDLC_STORY_ID",
        "title" => "AI_SDLC_STORY_TITLE",
        "slug" => "AI_SDLC_STORY_SLUG",
        "phase" => "AI_SDLC_PHASE",
        "story_file" => "AI_SDLC_STORY_FILE",
        "worktree" => "AI_SDLC_WORKTREE",
        "branch" => "AI_SDLC_BRANCH",
        "prompt" => "AI_SDLC_PROMPT",
        _ => return None,
    })
}

/// Where a shell script is when a placeholder comes.
#[derive(Clone, Copy, PartialEq)]
enum Quote {
    None,
    Single,
    Double,
    /// bash's `$'...'`.
    AnsiC,
}

/// Fill the placeholders of a shell script so that no value is ever code:
/// each becomes a reference to the variable that `var` names for it,
/// written for where it stands (`"${V}"` unquoted, `${V}` inside double
/// quotes, `'"${V}"'` inside single quotes). The shell expands it once,
/// as a value. Returns the script and the placeholders used. A script
/// with placeholders and `eval` is refused: eval would read the value as
/// code again.
pub fn fill_script(
    script: &str,
    var: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(script.len());
    let mut used = Vec::new();
    let mut quote = Quote::None;
    let chars: Vec<char> = script.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{'
            && let Some((name, len)) = placeholder_at(&chars[i..])
            && let Some(v) = var(name.strip_suffix(":sh").unwrap_or(&name))
        {
            out.push_str(&match quote {
                Quote::None => format!("\"${{{v}}}\""),
                Quote::Double => format!("${{{v}}}"),
                Quote::Single => format!("'\"${{{v}}}\"'"),
                Quote::AnsiC => format!("'\"${{{v}}}\"$'"),
            });
            used.push(name.strip_suffix(":sh").unwrap_or(&name).to_string());
            i += len;
            continue;
        }
        out.push(c);
        i += 1;
        match (quote, c) {
            (Quote::None | Quote::Double | Quote::AnsiC, '\\') => {
                if let Some(&n) = chars.get(i) {
                    out.push(n);
                    i += 1;
                }
            }
            (Quote::None, '$') if chars.get(i) == Some(&'\'') => {
                out.push('\'');
                i += 1;
                quote = Quote::AnsiC;
            }
            (Quote::None, '\'') => quote = Quote::Single,
            (Quote::None, '"') => quote = Quote::Double,
            (Quote::Single | Quote::AnsiC, '\'') | (Quote::Double, '"') => quote = Quote::None,
            _ => {}
        }
    }
    let evals = script
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|w| w == "eval");
    if evals && !used.is_empty() {
        return Err(
            "the shell script uses eval, which would run a story's text (a placeholder's value) as code; pass the value as a variable it does not eval".to_string(),
        );
    }
    Ok((out, used))
}

/// A `{name}` or `{name:sh}` at the start of `chars`: the name, and its
/// length in characters.
fn placeholder_at(chars: &[char]) -> Option<(String, usize)> {
    let close = chars.iter().position(|c| *c == '}')?;
    let inner: String = chars[1..close].iter().collect();
    let ok = !inner.is_empty()
        && inner
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch == '_' || ch == ':');
    ok.then_some((inner, close + 1))
}

/// A story's description: its body without the title heading and the
/// template's comments; empty when the story says no more than its title.
pub fn description(story_text: &str) -> String {
    let body = body_of(story_text);
    let body: String = body
        .lines()
        .skip_while(|l| l.trim().is_empty() || l.trim_start().starts_with("# "))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments(&body)
}

/// `text` without HTML comments (`<!-- ... -->`: a new story's template
/// note), and without the blank lines they leave.
fn without_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find("<!--") {
        out.push_str(&rest[..open]);
        rest = match rest[open..].find("-->") {
            Some(close) => &rest[open + close + 3..],
            None => "",
        };
    }
    out.push_str(rest);
    let mut lines: Vec<&str> = Vec::new();
    for l in out.lines() {
        if l.trim().is_empty() && lines.last().is_none_or(|p| p.trim().is_empty()) {
            continue;
        }
        lines.push(l);
    }
    lines.join("\n").trim().to_string()
}

/// The story's body: everything after the frontmatter's closing line.
pub fn body_of(text: &str) -> String {
    let mut lines = text.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_start_matches('\u{feff}').trim_end() != "---" {
        return text.trim().to_string();
    }
    let mut seen_close = false;
    let mut body = String::new();
    for line in lines {
        if seen_close {
            body.push_str(line);
        } else if matches!(line.trim_end(), "---" | "...") {
            seen_close = true;
        }
    }
    body.trim().to_string()
}

/// The `## Acceptance criteria` section of a body (any heading level, any
/// case), up to the next heading of the same or a higher level.
pub fn acceptance_criteria(body: &str) -> Option<String> {
    let level = |l: &str| l.chars().take_while(|c| *c == '#').count();
    let mut lines = body.lines();
    let start_level = loop {
        let l = lines.next()?;
        let n = level(l);
        if n > 0
            && l[n..]
                .trim()
                .to_lowercase()
                .starts_with("acceptance criteria")
        {
            break n;
        }
    };
    let section: Vec<&str> = lines
        .take_while(|l| {
            let n = level(l);
            n == 0 || n > start_level
        })
        .collect();
    let text = section.join("\n").trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// What a prompt is filled with.
#[derive(Debug, Clone, Default)]
pub struct StoryFacts {
    pub id: String,
    pub title: String,
    pub body: String,
    pub branch: String,
    pub base_branch: String,
    pub worktree: String,
    pub story_file: String,
    /// For a review: the story's diff stat and diff against its base.
    pub diff_stat: String,
    pub diff: String,
}

impl StoryFacts {
    /// A placeholder's value for phase `phase`, with `outputs` of earlier phases.
    fn value(&self, name: &str, phase: &str, outputs: &str) -> Option<String> {
        Some(match name {
            "id" => self.id.clone(),
            "title" => self.title.clone(),
            "body" => self.body.clone(),
            "acceptance_criteria" => acceptance_criteria(&self.body)
                .unwrap_or_else(|| "(the story lists none; use its description)".into()),
            "branch" => self.branch.clone(),
            "base_branch" => self.base_branch.clone(),
            "worktree" => self.worktree.clone(),
            "story_file" => self.story_file.clone(),
            "phase" => phase.to_string(),
            "outputs" => outputs.to_string(),
            "diff_stat" => self.diff_stat.clone(),
            "diff" => self.diff.clone(),
            _ => return None,
        })
    }
}

/// The text earlier phases produced, as a prompt section ("" for none).
pub fn outputs_section(outputs: &[(String, String)]) -> String {
    if outputs.is_empty() {
        return String::new();
    }
    let mut s = String::from("## What earlier phases produced\n");
    for (phase, text) in outputs {
        s.push_str(&format!("\n### {phase}\n\n{}\n", text.trim()));
    }
    s
}

/// Fill `template` for `phase`.
pub fn render(
    template: &str,
    facts: &StoryFacts,
    phase: &str,
    outputs: &[(String, String)],
) -> String {
    let section = outputs_section(outputs);
    let (text, _) = fill(template, &|name| facts.value(name, phase, &section));
    // An empty section leaves blank lines behind: keep at most one.
    let mut out = String::with_capacity(text.len());
    let mut blanks = 0;
    for line in text.trim().lines() {
        blanks = if line.trim().is_empty() {
            blanks + 1
        } else {
            0
        };
        if blanks < 2 {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

const IMPLEMENT: &str = r#"You are an autonomous coding agent working on story {id}: "{title}".

You are in your own git worktree, {worktree}, on branch {branch} (branched from {base_branch}). Other stories are being worked on at the same time in other worktrees: stay in this one.

## The story

{body}

{outputs}

## What to do

- Implement the story completely: the code, and tests for it where the repository has tests. Where a plan is given above, follow it; where a review above asked for changes, address every point.
- Follow this repository's conventions: its layout, its style, and any notes for contributors or agents (CONTRIBUTING, AGENTS.md, CLAUDE.md, README).
- Run the repository's tests and linters, and fix what fails.
- When you are done, reply with a short summary: what you changed, and how you checked it.

## What not to do

- Do not change anything under .ai-sdlc/: the story board is managed by ai-sdlc.
- Do not switch, create or delete branches, rebase, or push, and do not touch other worktrees.
- You do not need to commit: ai-sdlc commits your changes on {branch} when you finish.
- Nobody is watching to answer questions. Where something is unclear, make the most reasonable choice and say so in your summary.
"#;

const ANY_PHASE: &str = r#"You are an autonomous coding agent working on story {id}: "{title}", phase "{phase}".

You are in your own git worktree, {worktree}, on branch {branch} (branched from {base_branch}). Stay in it.

## The story

{body}

{outputs}

## What to do

Do the "{phase}" step of this story in this repository, then reply with what you did and found. Do not change anything under .ai-sdlc/, do not switch branches or push, and do not ask questions: nobody is watching to answer them.
"#;

const RESEARCH: &str = r#"You are an autonomous coding agent researching story {id}: "{title}", before anyone plans or writes code for it.

You are in a git worktree of the repository, {worktree}, on branch {branch}. Read; do not change any file.

## The story

{body}

## What to do

Find out what the story touches in this repository: the relevant files, modules and functions, how they work today, the tests that cover them, the conventions to follow, and the risks and open questions. Nobody is watching to answer questions: where something is unclear, say what you assume.

Reply with your findings as Markdown (they are kept as the story's research.md and given to the phases that follow).
"#;

const PLAN: &str = r#"You are an autonomous coding agent planning story {id}: "{title}".

You are in a git worktree of the repository, {worktree}, on branch {branch}. Read; do not change any file.

## The story

{body}

{outputs}

## What to do

Write the implementation plan: the steps in order, the files each one changes, the tests that prove the acceptance criteria, and how to check the result. Keep it to what the story asks.

Reply with the plan as Markdown (it is kept as the story's plan.md and given to the implement phase).
"#;

const REVIEW: &str = r#"You are an autonomous code reviewer reviewing story {id}: "{title}", implemented on branch {branch} (from {base_branch}) in {worktree}.

## The story

{body}

{outputs}

## The changes

```
{diff_stat}
```

```diff
{diff}
```

## What to do

Check that the changes do what the story asks (each acceptance criterion), are correct, are tested, and follow the repository's conventions. You may read files and run the tests; do not change any file.

End your reply with a line that is exactly one of:

APPROVED

or

CHANGES REQUESTED

followed by the reasons, one per line: what must change, and where. Only ask for changes the story needs.
"#;

const RESOLVE: &str = r#"You are an autonomous coding agent finishing story {id}: "{title}". Its work is done on branch {branch}, but it no longer lands on {base_branch} as it is: the two conflict, or the checks fail on the result.

You are in the story's git worktree, {worktree}. It now holds {base_branch} merged into {branch}, not yet committed: files where both changed the same lines hold conflict markers (<<<<<<<, =======, >>>>>>>).

## The story

{body}

{outputs}

## What to do

- Resolve every conflict: keep what the story needs and what {base_branch} gained (other stories' work), so that both are there and work together. Remove every conflict marker.
- Where the checks failed, make them pass on this merged result.
- Run the repository's tests.
- Do not commit, switch branches, rebase or push: ai-sdlc commits the merge and lands it. Do not change anything under .ai-sdlc/.
- Reply with a short summary of how you resolved it.
"#;

const JUDGE: &str = r#"You are the judge of story {id}: "{title}". Several agents each implemented it, independently, in their own worktrees; each attempt that passed the repository's checks is shown below, numbered, with its diff, what the checks printed, and the agent's final message.

## The story

{body}

{outputs}

## What to do

- Compare the attempts on what the story asks: correctness first, then tests, then clarity and the size of the change. Read the diffs; do not trust a final message that the diff does not bear out.
- Do not change any file: you are only choosing.
- End your answer with a line `CHOSEN: <number>` naming the best attempt, followed by your reasons in a few lines.
"#;

/// The built-in template of a phase.
pub fn builtin(phase: &str) -> &'static str {
    match phase {
        "research" => RESEARCH,
        "plan" => PLAN,
        "implement" => IMPLEMENT,
        "review" => REVIEW,
        "resolve" => RESOLVE,
        "judge" => JUDGE,
        _ => ANY_PHASE,
    }
}

/// The template of `phase`: `<sdlc_dir>/prompts/<phase>.md` when the repo
/// has one (read without following a symlink out of the repo), else the
/// built-in one. The error names the file and what is wrong.
pub fn template(root: &Path, sdlc_dir: &Path, phase: &str) -> Result<String, String> {
    let builtin = || Ok(builtin(phase).to_string());
    let prompts = sdlc_dir.join("prompts");
    if !paths::is_plain_name(phase) || !prompts.starts_with(root) {
        return builtin();
    }
    let dir = match paths::open_beneath(root, &prompts, false) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return builtin(),
        Err(e) => return Err(format!("cannot read prompt templates: {e}")),
    };
    let name = format!("{phase}.md");
    let shown = paths::rel(root, &prompts.join(&name));
    match dir.read(&name, MAX_TEMPLATE) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8 text")),
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => builtin(),
        Err(e) => Err(format!("cannot use the prompt template {shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placeholder_in_a_shell_script_is_a_variable_wherever_it_stands() {
        let var = |n: &str| (n == "title").then_some("T");
        let (s, used) = fill_script(
            "echo {title} '{title}' \"{title}\" $'{title}' {other}",
            &var,
        )
        .unwrap();
        assert_eq!(
            s,
            "echo \"${T}\" ''\"${T}\"'' \"${T}\" $''\"${T}\"$'' {other}"
        );
        assert_eq!(used, ["title"; 4]);
        // An escaped quote does not open a quoted part.
        let (s, _) = fill_script("echo \\'{title:sh}", &var).unwrap();
        assert_eq!(s, "echo \\'\"${T}\"");
        assert!(fill_script("eval \"echo {title}\"", &var).is_err());
        assert!(fill_script("eval echo hi", &var).is_ok());
        let argv = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shell_script(&argv(&["sh", "-c", "x"])), Some(2));
        assert_eq!(
            shell_script(&argv(&["/bin/bash", "-lc", "x", "a"])),
            Some(2)
        );
        assert_eq!(
            shell_script(&argv(&["env", "A=1", "sh", "-ec", "x"])),
            Some(4)
        );
        assert_eq!(shell_script(&argv(&["python3", "-c", "x"])), None);
        assert_eq!(shell_script(&argv(&["sh", "script.sh"])), None);
    }

    #[test]
    fn one_pass_never_expands_a_value_again() {
        let look = |n: &str| match n {
            "title" => Some("use {prompt} and {id}".to_string()),
            "prompt" => Some("SECRET".to_string()),
            "id" => Some("S-1".to_string()),
            _ => None,
        };
        let (s, used) = fill("{id}: {title} {unknown} {title:sh} {", &look);
        assert_eq!(
            s,
            "S-1: use {prompt} and {id} {unknown} 'use {prompt} and {id}' {"
        );
        assert_eq!(used, ["id", "title", "title"]);
        assert_eq!(sh_quote("it's $(x)"), "'it'\\''s $(x)'");
    }

    #[test]
    fn the_body_comes_without_frontmatter_and_criteria_are_found() {
        let text = "---\nid: S-1\ntitle: t\n---\n# T\n\nDo it.\n\n## Acceptance Criteria\n- a\n- b\n### detail\nx\n## Notes\nn\n";
        let body = body_of(text);
        assert!(
            body.starts_with("# T") && !body.contains("id: S-1"),
            "{body}"
        );
        assert_eq!(
            acceptance_criteria(&body).as_deref(),
            Some("- a\n- b\n### detail\nx")
        );
        assert_eq!(acceptance_criteria("no criteria"), None);
    }

    #[test]
    fn the_implement_prompt_says_where_what_and_what_not() {
        let facts = StoryFacts {
            id: "S-1".into(),
            title: "Fix login".into(),
            body: "Make login work.".into(),
            branch: "ai-sdlc/S-1-fix-login".into(),
            base_branch: "main".into(),
            worktree: "/r/.ai-sdlc/worktrees/S-1-fix-login".into(),
            story_file: "/r/.ai-sdlc/stories/S-1/story.md".into(),
            ..StoryFacts::default()
        };
        let p = render(builtin("implement"), &facts, "implement", &[]);
        for want in [
            "S-1",
            "Fix login",
            "Make login work.",
            "/r/.ai-sdlc/worktrees/S-1-fix-login",
            "ai-sdlc/S-1-fix-login",
            "from main",
            ".ai-sdlc/",
            "push",
        ] {
            assert!(p.contains(want), "{want} missing:\n{p}");
        }
        assert!(!p.contains("\n\n\n"), "{p}");
        let p = render(
            builtin("implement"),
            &facts,
            "implement",
            &[("plan".into(), "1. do x".into())],
        );
        assert!(p.contains("### plan\n\n1. do x"), "{p}");
    }
}
