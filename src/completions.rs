//! `ai-sdlc completions bash|zsh|fish`: shell completion scripts, made
//! from the commands' own help (argh's), so they cannot drift from the
//! flags: commands, each command's flags and sub-commands, and story ids
//! (the folders of `.ai-sdlc/stories` in the repo the shell is in).

/// A command's flags and sub-commands, from its help text.
pub struct Spec {
    pub name: &'static str,
    pub flags: Vec<String>,
    pub subcommands: Vec<String>,
}

/// The lines under `heading` in an argh help, up to the blank line.
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.split(&format!("\n{heading}:\n"))
        .nth(1)
        .map(|rest| rest.lines().take_while(|l| !l.trim().is_empty()).collect())
        .unwrap_or_default()
}

/// The flags of `help`'s `Options:` (`--name`, as each line begins), and the
/// names under its `Commands:` heading.
pub fn spec(name: &'static str, help: &str) -> Spec {
    let mut flags: Vec<String> = section(help, "Options")
        .iter()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| {
            l.split_whitespace()
                .take_while(|w| w.starts_with('-'))
                .map(|w| w.trim_end_matches(','))
                .filter(|w| w.starts_with("--"))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    flags.sort();
    flags.dedup();
    let subcommands = section(help, "Commands")
        .iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    Spec {
        name,
        flags,
        subcommands,
    }
}

/// Commands that take story ids as their words.
const TAKES_IDS: [&str; 8] = [
    "run",
    "logs",
    "prompt",
    "review",
    "merge",
    "land",
    "pr",
    "worktrees",
];

/// The bash script (zsh loads it through bashcompinit). Story ids come
/// from the repo's folder names, which are not ours: they are matched as
/// plain strings, never given to `compgen -W` (which would expand
/// `$(...)` in them: a cloned repo could run code on a Tab).
fn bash(commands: &[Spec], global: &[String]) -> String {
    let names: Vec<&str> = commands.iter().map(|c| c.name).collect();
    let mut cases = String::new();
    for c in commands {
        let mut words = c.flags.clone();
        words.extend(c.subcommands.iter().cloned());
        let ids = if TAKES_IDS.contains(&c.name) {
            "; ids=1"
        } else {
            ""
        };
        cases.push_str(&format!(
            "    {}) words=({}){ids} ;;\n",
            c.name,
            words.join(" ")
        ));
    }
    format!(
        r#"# ai-sdlc completions for bash: eval "$(ai-sdlc completions bash)"
_ai_sdlc_ids() {{
  local root
  root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
  ls "$root/.ai-sdlc/stories" 2>/dev/null
}}
_ai_sdlc() {{
  local cur cmd="" i=1 ids="" w
  local -a words more
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  while [ "$i" -lt "$COMP_CWORD" ]; do
    case "${{COMP_WORDS[i]}}" in
      -C|--dir) i=$((i + 1)) ;;
      -*) ;;
      *) cmd="${{COMP_WORDS[i]}}"; break ;;
    esac
    i=$((i + 1))
  done
  case "${{COMP_WORDS[COMP_CWORD-1]}}" in
    -C|--dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
  esac
  case "$cmd" in
    "") words=({names} {global}) ;;
{cases}    *) words=() ;;
  esac
  if [ -n "$ids" ]; then
    mapfile -t more < <(_ai_sdlc_ids)
    words+=("${{more[@]}}")
  fi
  COMPREPLY=()
  for w in "${{words[@]}}"; do
    [[ "$w" == "$cur"* ]] && COMPREPLY+=("$w")
  done
}}
complete -F _ai_sdlc ai-sdlc
"#,
        names = names.join(" "),
        global = global.join(" "),
    )
}

fn fish(commands: &[Spec], global: &[String]) -> String {
    let names: Vec<&str> = commands.iter().map(|c| c.name).collect();
    let mut out = String::from(
        "# ai-sdlc completions for fish: ai-sdlc completions fish | source\n\
         complete -c ai-sdlc -f\n\
         function __ai_sdlc_ids\n    \
         ls (git rev-parse --show-toplevel 2>/dev/null; or pwd)/.ai-sdlc/stories 2>/dev/null\n\
         end\n",
    );
    out.push_str(&format!(
        "complete -c ai-sdlc -n __fish_use_subcommand -a '{}'\n",
        names.join(" ")
    ));
    for g in global {
        out.push_str(&format!(
            "complete -c ai-sdlc -n __fish_use_subcommand -l {}\n",
            g.trim_start_matches('-')
        ));
    }
    for c in commands {
        let when = format!("__fish_seen_subcommand_from {}", c.name);
        for f in &c.flags {
            out.push_str(&format!(
                "complete -c ai-sdlc -n '{when}' -l {}\n",
                f.trim_start_matches('-')
            ));
        }
        if !c.subcommands.is_empty() {
            out.push_str(&format!(
                "complete -c ai-sdlc -n '{when}' -a '{}'\n",
                c.subcommands.join(" ")
            ));
        }
        if TAKES_IDS.contains(&c.name) {
            out.push_str(&format!(
                "complete -c ai-sdlc -n '{when}' -a '(__ai_sdlc_ids)'\n"
            ));
        }
    }
    out
}

/// The script for `shell`, or why not.
pub fn script(shell: &str, commands: &[Spec], global: &[String]) -> Result<String, String> {
    match shell {
        "bash" => Ok(bash(commands, global)),
        "zsh" => Ok(format!(
            "# ai-sdlc completions for zsh: eval \"$(ai-sdlc completions zsh)\"\n\
             autoload -U +X bashcompinit && bashcompinit\n{}",
            bash(commands, global)
        )),
        "fish" => Ok(fish(commands, global)),
        other => Err(format!(
            "completions {other:?}: choose bash, zsh or fish, as in `eval \"$(ai-sdlc completions bash)\"`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_subcommands_come_from_the_help() {
        let help = "Usage: ai-sdlc worktrees [--json] [<command>] [<args>]\n\n\
            List.\n\nOptions:\n  --json            the list as JSON (as `worktrees --json`)\n  --help, help      display usage information\n\n\
            Commands:\n  list              List worktrees with story, status,\n                    branch.\n  remove            Remove one.\n  prune             Remove the clean ones.\n";
        let s = spec("worktrees", help);
        assert_eq!(s.flags, ["--help", "--json"]);
        assert_eq!(s.subcommands, ["list", "remove", "prune"]);
    }
}
