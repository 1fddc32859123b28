//! `ai-sdlc doctor`: check what a run needs (git, the repo, the config, the
//! board, the agent CLI: on PATH, its version, logged in where that can be
//! told without spending tokens) and say what to fix. Exit 1 when
//! something would stop a run.

use crate::agent::Preset;
use crate::board::Board;
use crate::config::Config;
use crate::error::Error;
use crate::paths::rel;
use crate::process;
use crate::process::findable;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// One finding.
enum Check {
    Ok(String),
    Warn(String, String),
    Fail(String, String),
}

/// Ask a CLI something, with a time limit: its exit code and what it said.
fn probe(argv: &[&str], dir: &Path) -> Option<(Option<i32>, String)> {
    match process::ask(argv, dir, Duration::from_secs(20)) {
        Ok(a) => Some((a.code, a.text)),
        Err(why) => Some((None, why)),
    }
}

fn env_set(vars: &[&str]) -> Option<String> {
    vars.iter()
        .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        .map(|v| v.to_string())
}

/// Is the agent logged in, as far as can be told without spending tokens?
fn auth(preset: Preset, config: &Config) -> Check {
    let root = &config.root;
    match preset {
        Preset::Claude => {
            if let Some(v) = env_set(&["ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN"]) {
                return Check::Ok(format!("claude: {v} is set"));
            }
            match probe(&["claude", "auth", "status"], root) {
                Some((Some(0), _)) => Check::Ok("claude: logged in (claude auth status)".into()),
                Some((_, text)) => Check::Fail(
                    format!("claude: not logged in (claude auth status: {})", one_line(&text)),
                    "run `claude` once and log in with /login, or set ANTHROPIC_API_KEY".into(),
                ),
                None => Check::Warn("claude: cannot run `claude auth status`".into(), String::new()),
            }
        }
        Preset::Codex => {
            // The same check a run makes before it starts codex.
            let Some((check, key_vars)) = preset.auth_check() else {
                return Check::Warn("codex: no login check known".into(), String::new());
            };
            if let Some(v) = env_set(key_vars) {
                return Check::Ok(format!("codex: {v} is set"));
            }
            match probe(check, root) {
                Some((Some(0), text)) => Check::Ok(format!("codex: {}", process::last_word(&text))),
                Some((_, text)) => Check::Fail(
                    format!("codex: {} ({})", process::last_word(&text), check.join(" ")),
                    format!("run `codex login`, or set {}", key_vars.join(" or ")),
                ),
                None => Check::Warn(format!("codex: cannot run `{}`", check.join(" ")), String::new()),
            }
        }
        Preset::Gemini => {
            let vars = [
                "GEMINI_API_KEY",
                "GOOGLE_API_KEY",
                "GOOGLE_GENAI_USE_VERTEXAI",
                "GOOGLE_GENAI_USE_GCA",
            ];
            if let Some(v) = env_set(&vars) {
                return Check::Ok(format!("gemini: {v} is set"));
            }
            let settings = std::env::var_os("HOME")
                .map(|h| Path::new(&h).join(".gemini/settings.json"))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .unwrap_or_default();
            if settings.contains("selectedType") || settings.contains("useExternal") {
                Check::Ok("gemini: ~/.gemini/settings.json names an auth method".into())
            } else {
                Check::Fail(
                    "gemini: no auth method (no key in the environment, none in ~/.gemini/settings.json)".into(),
                    format!("set GEMINI_API_KEY, or run `gemini` once and choose how to log in ({})", vars.join(", ")),
                )
            }
        }
        Preset::Opencode => Check::Ok(
            "opencode: its default models (opencode/*) need no key; other providers need `opencode auth login`".into(),
        ),
        Preset::Aider => {
            let Some(model) = &config.agent.model else {
                return Check::Fail(
                    "aider: no agent.model (without one aider waits for a browser login)".into(),
                    format!("set agent.model in {}, e.g. \"sonnet\" or \"gpt-4o\"", config.file_name()),
                );
            };
            let m = model.to_lowercase();
            let key = if m.contains("sonnet") || m.contains("claude") || m.contains("anthropic") {
                Some("ANTHROPIC_API_KEY")
            } else if m.contains("gpt") || m.starts_with('o') || m.contains("openai") {
                Some("OPENAI_API_KEY")
            } else if m.contains("gemini") {
                Some("GEMINI_API_KEY")
            } else if m.contains("deepseek") {
                Some("DEEPSEEK_API_KEY")
            } else if m.contains("openrouter") {
                Some("OPENROUTER_API_KEY")
            } else {
                None
            };
            match key {
                Some(k) if env_set(&[k]).is_some() => Check::Ok(format!("aider: model {model}, {k} is set")),
                Some(k) => Check::Fail(
                    format!("aider: model {model} needs {k}, which is not set"),
                    format!("export {k}=..."),
                ),
                None => Check::Warn(
                    format!("aider: cannot tell which key model {model} needs"),
                    "see `aider --help` and its docs on API keys".into(),
                ),
            }
        }
        Preset::Command => Check::Ok("agent.command: cannot tell whether it needs a login".into()),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks of the agent a config names.
fn agent_checks(config: &Config, out: &mut Vec<Check>) {
    let Some(preset) = config.agent.preset() else {
        out.push(Check::Fail(
            "no agent configured".into(),
            format!(
                "set \"agent\": {{\"preset\": \"claude\"}} (or codex, gemini, aider, opencode, or \"command\": [...]) in {}, or run `ai-sdlc init --agent <preset>`",
                config.file_name()
            ),
        ));
        return;
    };
    // Names only, never values.
    let (env, dropped) = crate::sandbox::agent_env(
        preset,
        &config.agent.env_pass,
        &config.agent.env_set,
        std::env::vars_os(),
    );
    let kept: Vec<String> = env
        .iter()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    out.push(Check::Ok(format!(
        "agent environment: gets {} ({}); not given {} ({}); agent.env.pass adds names",
        kept.len(),
        kept.join(" "),
        dropped.len(),
        if dropped.is_empty() {
            "none".to_string()
        } else {
            dropped.join(" ")
        }
    )));
    out.push(sandbox_check(config));
    let program = match preset.program() {
        Some(p) => p.to_string(),
        None => config
            .agent
            .command
            .as_ref()
            .and_then(|c| c.first().cloned())
            .unwrap_or_default(),
    };
    if !findable(&program, &config.root) {
        let fix = match preset {
            Preset::Command => format!(
                "install it, or change agent.command in {}",
                config.file_name()
            ),
            p => format!("install it: {}", p.install_hint()),
        };
        out.push(Check::Fail(
            format!("agent {program} ({preset} preset): not on PATH"),
            fix,
        ));
        return;
    }
    if preset != Preset::Command {
        let version = probe(&[&program, "--version"], &config.root)
            .map(|(_, t)| process::last_word(&t).to_string())
            .unwrap_or_default();
        out.push(Check::Ok(format!(
            "agent {preset}: {}",
            if version.is_empty() {
                "on PATH".into()
            } else {
                version
            }
        )));
    } else {
        out.push(Check::Ok(format!("agent.command: {program} is on PATH")));
    }
    if preset == Preset::Claude
        && let Some(why) = crate::runner::plan::claude_as_root_problem()
    {
        out.push(Check::Fail(
            "claude as root: unattended mode refused".into(),
            why,
        ));
    }
    out.push(auth(preset, config));
    for p in config.phases.iter().filter(|p| p.command.is_some()) {
        if let Some(cmd) = &p.command
            && !cmd[0].contains('{')
            && !findable(&cmd[0], &config.root)
        {
            out.push(Check::Fail(
                format!("phase {}: command {:?} not on PATH", p.name, cmd[0]),
                "install it or change the phase's command".into(),
            ));
        }
    }
}

pub fn run(dir: Option<&Path>, json: bool) -> Result<(), Error> {
    let mut checks = Vec::new();
    match probe(&["git", "--version"], Path::new(".")) {
        Some((Some(0), v)) => checks.push(Check::Ok(v.trim().to_string())),
        _ => checks.push(Check::Fail(
            "git: not found".into(),
            "install git (Debian: apt-get install git)".into(),
        )),
    }
    let root = crate::config::locate(dir);
    let config = match &root {
        Err(f) => {
            checks.push(Check::Fail("board: none found".into(), f.to_string()));
            None
        }
        Ok(root) => match Config::load(root) {
            Ok(c) => {
                for w in &c.warnings {
                    checks.push(Check::Fail(
                        format!("config: {w}"),
                        "fix the key's name; as it is, the setting does nothing".into(),
                    ));
                }
                Some(c)
            }
            Err(e) => {
                checks.push(Check::Fail("config: unusable".into(), e.0));
                None
            }
        },
    };
    if let Some(config) = &config {
        board_checks(config, &mut checks);
        agent_checks(config, &mut checks);
    }
    let mut out = std::io::stdout().lock();
    let fails = checks
        .iter()
        .filter(|c| matches!(c, Check::Fail(..)))
        .count();
    if json {
        let list: Vec<serde_json::Value> = checks
            .iter()
            .map(|c| {
                let (level, what, fix) = match c {
                    Check::Ok(w) => ("ok", w, ""),
                    Check::Warn(w, f) => ("warn", w, f.as_str()),
                    Check::Fail(w, f) => ("fail", w, f.as_str()),
                };
                serde_json::json!({"level": level, "what": what, "fix": fix})
            })
            .collect();
        let doc = serde_json::json!({
            "root": root.as_ref().ok().map(|r| r.display().to_string()),
            "checks": list,
            "problems": fails,
        });
        let _ = writeln!(out, "{doc}");
        return if fails > 0 {
            Err(Error::Reported)
        } else {
            Ok(())
        };
    }
    if let Ok(root) = &root {
        let _ = writeln!(out, "ai-sdlc doctor: {}", root.display());
    }
    for c in &checks {
        let _ = match c {
            Check::Ok(what) => writeln!(out, "  ok    {what}"),
            Check::Warn(what, fix) if fix.is_empty() => writeln!(out, "  warn  {what}"),
            Check::Warn(what, fix) => writeln!(out, "  warn  {what}\n        fix: {fix}"),
            Check::Fail(what, fix) => writeln!(out, "  FAIL  {what}\n        fix: {fix}"),
        };
    }
    let _ = match fails {
        0 => writeln!(out, "Everything a run needs is in place."),
        1 => writeln!(out, "1 problem to fix before `ai-sdlc run`."),
        n => writeln!(out, "{n} problems to fix before `ai-sdlc run`."),
    };
    if fails > 0 {
        return Err(Error::Reported);
    }
    Ok(())
}

/// The config's trust, the board, and whether worktrees can be made.
fn board_checks(config: &Config, checks: &mut Vec<Check>) {
    checks.push(match crate::trust::untrusted_count(config) {
        Ok(0) => Check::Ok("config commands: trusted".into()),
        Ok(n) => Check::Fail(
            format!("config commands: {n} not trusted; `run` refuses them"),
            "check them with `ai-sdlc trust --show`, then `ai-sdlc trust`".into(),
        ),
        Err(e) => Check::Fail("trust record: unusable".into(), e),
    });
    checks.push(Check::Ok(format!(
        "config: {}",
        config
            .file
            .as_ref()
            .map(|f| rel(&config.root, f))
            .unwrap_or_else(|| "defaults (no .ai-sdlc.json)".into())
    )));
    match Board::of(config).scan() {
        Ok(scan) => {
            let ready = scan
                .stories
                .iter()
                .filter(|s| s.status == crate::board::Status::Ready)
                .count();
            checks.push(Check::Ok(format!(
                "board: {} stories, {ready} ready",
                scan.stories.len()
            )));
            for s in &scan.stories {
                if let Some(k) = s.status.meant() {
                    checks.push(Check::Fail(
                        format!(
                            "{}: status `{}` is not one ai-sdlc runs; did you mean `{k}`?",
                            rel(&config.root, &s.path),
                            s.status
                        ),
                        format!(
                            "write `status: {k}` (ai-sdlc runs {})",
                            crate::board::STATUSES.join(", ")
                        ),
                    ));
                }
            }
            for st in scan.stories.iter().filter(|s| {
                matches!(
                    s.status,
                    crate::board::Status::Ready | crate::board::Status::Backlog
                )
            }) {
                if let Some(why) = crate::board::stuck(st, &scan) {
                    let line = format!("{}: cannot run: {why}", st.id);
                    let fix = "fix or drop the dependency (`dependencies:` in its story.md), or unblock the story it waits on".to_string();
                    checks.push(if why.contains("it is blocked") {
                        Check::Warn(line, fix)
                    } else {
                        Check::Fail(line, fix)
                    });
                }
            }
            for b in &scan.bad {
                checks.push(Check::Warn(
                    format!("{}: {}", rel(&config.root, &b.path), b.reason),
                    "fix the file; until then it is skipped".into(),
                ));
            }
        }
        Err(e) => checks.push(Check::Fail(
            format!(
                "board: cannot read {}: {e}",
                rel(&config.root, &config.stories_dir())
            ),
            "fix or remove it".into(),
        )),
    }
    if config.worktree.enabled {
        match crate::worktree::check_repo(&config.root) {
            Ok(()) => checks.push(Check::Ok("git repository with a commit".into())),
            Err(e) => checks.push(Check::Fail("worktrees: not possible here".into(), e)),
        }
    }
}

/// The protections an agent runs under on this machine.
fn sandbox_check(config: &Config) -> Check {
    let s = &config.agent.sandbox;
    if !s.enabled {
        return Check::Warn(
            "filesystem sandbox: off (agent.sandbox: false): agents can write anywhere you can"
                .into(),
            String::new(),
        );
    }
    match crate::sandbox::landlock::abi() {
        Some(abi) => Check::Ok(format!(
            "filesystem sandbox: Landlock ABI {abi}: agents write only their worktree, their TMPDIR, their CLI's state{}; {} and agent.sandbox.hide are unreadable",
            if s.write.is_empty() { String::new() } else { format!(" and {}", s.write.join(" ")) },
            crate::sandbox::landlock::SECRETS.map(|p| format!("~/{p}")).join(" ")
        )),
        None => Check::Warn(
            "filesystem sandbox: unavailable: this kernel has no Landlock (Linux 5.13+); agents can write anywhere you can".into(),
            "run on a newer kernel, or in a container per story".into(),
        ),
    }
}
