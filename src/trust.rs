//! Trust (SPEC §13): the commands a repo's `.ai-sdlc.json` can make the
//! tool run, and the user's record of having trusted them, kept outside
//! the repo (`$XDG_CONFIG_HOME/ai-sdlc/trust.json`), as `direnv allow` and
//! `mise trust` do. The config arrives with a clone, a pull request or a
//! merged story branch: a command in it runs only once the user said so.
//!
//! Only the command-bearing part counts: the agent (its preset and extra
//! arguments, or its command line) and each phase's command. Other keys
//! (concurrency, timeouts, ...) change freely. A command is trusted when
//! its key and value are in the record; dropping one needs no new trust.

use crate::agent::Preset;
use crate::config::Config;
use crate::error::Error;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// `AI_SDLC_TRUST=1`: trust the repo's commands for this run (CI).
pub const TRUST_VAR: &str = "AI_SDLC_TRUST";

/// One command the config can make the tool run.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Where it comes from: `agent.command`, `workflow.phases.verify.command`...
    pub key: String,
    /// Its canonical form (JSON), which is what is trusted.
    pub value: String,
    /// The command line, for people.
    pub shown: String,
}

impl Command {
    fn sha(&self) -> String {
        crate::sha256::hex(format!("{}\0{}", self.key, self.value).as_bytes())
    }
}

fn words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
                crate::prompt::sh_quote(a)
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every command the config can make the tool run, in a canonical form.
pub fn commands(config: &Config) -> Vec<Command> {
    let mut out = Vec::new();
    let a = &config.agent;
    if let Some(phase) = config.phases.iter().find(|p| p.command.is_none()) {
        let shown = config
            .command_of(phase)
            .map(|(_, argv)| words(&argv))
            .unwrap_or_default();
        match a.preset() {
            Some(Preset::Command) => {
                let mut argv = a.command.clone().unwrap_or_default();
                argv.extend(a.args.iter().cloned());
                out.push(Command {
                    key: "agent.command".into(),
                    value: json!(argv).to_string(),
                    shown,
                });
            }
            // A preset's flags are ours (they may change with an upgrade);
            // what the config chooses is the preset and the extra arguments.
            Some(p) => out.push(Command {
                key: "agent.preset".into(),
                value: json!({"preset": p.name(), "args": a.args}).to_string(),
                shown,
            }),
            None => {}
        }
    }
    // An agent's environment can run programs (LD_PRELOAD, a PATH of the
    // repo's) and pass it the user's keys (SSH_AUTH_SOCK): trusted too.
    if !a.env_pass.is_empty() || !a.env_set.is_empty() {
        let set: Vec<String> = a.env_set.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push(Command {
            key: "agent.env".into(),
            value: json!({"pass": a.env_pass, "set": a.env_set}).to_string(),
            shown: format!("pass {}; set {}", a.env_pass.join(" "), set.join(" ")),
        });
    }
    // Turning the sandbox off, or opening more of the disk to agents, is
    // the user's call, like a command.
    if !a.sandbox.is_default() {
        let s = &a.sandbox;
        out.push(Command {
            key: "agent.sandbox".into(),
            value: json!({"enabled": s.enabled, "write": s.write, "hide": s.hide}).to_string(),
            shown: if s.enabled {
                format!("write {}; hide {}", s.write.join(" "), s.hide.join(" "))
            } else {
                "off".into()
            },
        });
    }
    // srun options can run programs (`--prolog`): what `run --launcher
    // slurm` would add is trusted even when the config names no launcher.
    if !config.launcher.args.is_empty() {
        out.push(Command {
            key: "orchestrator.launcherArgs".into(),
            value: json!(config.launcher.args).to_string(),
            shown: words(&config.launcher.args),
        });
    }
    if let Some(argv) = crate::launch::Launch::resolve(config, None)
        .ok()
        .as_ref()
        .and_then(|l| l.prefix())
    {
        out.push(Command {
            key: "orchestrator.launcher".into(),
            value: json!(argv).to_string(),
            shown: words(argv),
        });
    }
    if let Some(v) = &config.worktree.setup {
        out.push(Command {
            key: "worktree.setup".into(),
            value: json!(v).to_string(),
            shown: words(v),
        });
    }
    if let Some(v) = &config.land.verify {
        out.push(Command {
            key: "merge.verify".into(),
            value: json!(v).to_string(),
            shown: words(v),
        });
    }
    if let Some(v) = &config.attempts.verify {
        out.push(Command {
            key: "attempts.verify".into(),
            value: json!(v).to_string(),
            shown: words(v),
        });
    }
    // Other agents than the configured one, run on this repo.
    if !config.attempts.agents.is_empty() {
        let names: Vec<&str> = config.attempts.agents.iter().map(|p| p.name()).collect();
        out.push(Command {
            key: "agent.attemptAgents".into(),
            value: json!(names).to_string(),
            shown: names.join(" "),
        });
    }
    for p in &config.phases {
        if let Some(c) = &p.command {
            out.push(Command {
                key: format!("workflow.phases.{}.command", p.name),
                value: json!(c).to_string(),
                shown: words(c),
            });
        }
    }
    out
}

/// One hash of them all: the executor checks that the config it loads
/// names what the runner checked.
pub fn fingerprint(cmds: &[Command]) -> String {
    let mut shas: Vec<String> = cmds.iter().map(Command::sha).collect();
    shas.sort();
    crate::sha256::hex(shas.join("\n").as_bytes())
}

/// The trust record: `$XDG_CONFIG_HOME/ai-sdlc/trust.json`, else
/// `~/.config/ai-sdlc/trust.json`.
pub fn record_path() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|h| h.join(".config"))
    })?;
    Some(base.join("ai-sdlc").join("trust.json"))
}

/// The repo's key in the record.
fn repo_key(root: &Path) -> String {
    root.canonicalize()
        .unwrap_or_else(|_| root.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// The trust record is read up to this size.
const MAX_RECORD: u64 = 16 << 20;

/// Why a file or folder of the trust record is not one to trust: owned by
/// another user (root aside), or writable by others (as ssh and direnv
/// refuse such files).
fn unsafe_owner(path: &Path, meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: trivial getter.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!(
            "{} is owned by user {}, not by you (user {me}); anyone who owns it can choose what ai-sdlc runs. Check it, then `chown {me} {}` (or delete it and trust your repos again)",
            path.display(),
            meta.uid(),
            path.display()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "{} is writable by others (mode {:o}); anyone who can write it can choose what ai-sdlc runs. Check it, then `chmod go-w {}`",
            path.display(),
            meta.mode() & 0o777,
            path.display()
        ));
    }
    None
}

/// The record's text: `None` when there is none. Refused when it is not a
/// regular file (a FIFO would hang the reader), too big, or owned or
/// writable by others, and so is its folder.
fn read_record(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent()
        && let Ok(meta) = std::fs::metadata(dir)
        && let Some(why) = unsafe_owner(dir, &meta)
    {
        return Err(why);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!(
            "{} is not a regular file (a FIFO, a device or a folder); remove it, then trust your repos again with `ai-sdlc trust`",
            path.display()
        ));
    }
    if let Some(why) = unsafe_owner(path, &meta) {
        return Err(why);
    }
    let mut text = String::new();
    file.take(MAX_RECORD + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_RECORD {
        return Err(format!(
            "{} is over 16 MiB; it is not a trust record",
            path.display()
        ));
    }
    Ok(Some(text))
}

/// A trust record's text, checked for its shape: an object whose `repos`
/// (if any) maps each repo to an object whose `commands` (if any) is a
/// list of `{key, value}` strings. The error says what is wrong.
pub fn parse_record(text: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    match obj.get("repos") {
        None => {}
        Some(Value::Object(repos)) => {
            for (repo, entry) in repos {
                let cmds = match entry {
                    Value::Object(e) => e.get("commands"),
                    _ => return Err(format!("the entry of {repo:?} is not an object")),
                };
                match cmds {
                    None => {}
                    Some(Value::Array(list)) => {
                        let ok = list
                            .iter()
                            .all(|c| c["key"].is_string() && c["value"].is_string());
                        if !ok {
                            return Err(format!(
                                "a command of {repo:?} has no string key and value"
                            ));
                        }
                    }
                    Some(_) => return Err(format!("the commands of {repo:?} are not a list")),
                }
            }
        }
        Some(_) => return Err("`repos` is not an object".into()),
    }
    Ok(v)
}

fn load(path: &Path) -> Result<Value, String> {
    match read_record(path)? {
        Some(t) => parse_record(&t).map_err(|e| {
            format!(
                "{}: {e}; fix it, or delete it (then trust your repos again with `ai-sdlc trust`)",
                path.display()
            )
        }),
        None => Ok(json!({"version": 1, "repos": {}})),
    }
}

/// What the record says this repo may run.
fn recorded(root: &Path) -> Result<Vec<Command>, String> {
    let Some(path) = record_path() else {
        return Ok(Vec::new());
    };
    let record = load(&path)?;
    let list = record["repos"][repo_key(root)]["commands"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(list
        .iter()
        .filter_map(|c| {
            Some(Command {
                key: c["key"].as_str()?.to_string(),
                value: c["value"].as_str()?.to_string(),
                shown: c["shown"].as_str().unwrap_or("").to_string(),
            })
        })
        .collect())
}

/// Change the record (read, change, atomic replace).
fn update(change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Result<PathBuf, String> {
    let path = record_path().ok_or(
        "cannot tell where the trust record goes: set HOME (or XDG_CONFIG_HOME) to an absolute path",
    )?;
    let mut record = load(&path)?;
    if let Some(obj) = record.as_object_mut() {
        let repos = obj.entry("repos").or_insert_with(|| json!({}));
        if let Some(repos) = repos.as_object_mut() {
            change(repos);
        }
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(fail)?;
        // Only its owner may change what is trusted.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(fail)?;
    }
    let text = serde_json::to_string_pretty(&record).map_err(|e| e.to_string())? + "\n";
    crate::paths::Dir::open(dir)
        .and_then(|d| d.replace_as("trust.json", text.as_bytes(), None, 0o600))
        .map_err(fail)?;
    Ok(path)
}

/// Record `cmds` as trusted for the repo at `root`.
pub fn record(root: &Path, cmds: &[Command]) -> Result<PathBuf, String> {
    let entry = json!({
        "trusted_at": crate::time::iso_seconds(crate::time::now_ms()),
        "commands": cmds.iter().map(|c| json!({
            "key": c.key, "value": c.value, "shown": c.shown, "sha256": c.sha()
        })).collect::<Vec<_>>(),
    });
    let key = repo_key(root);
    update(|repos| {
        repos.insert(key, entry);
    })
}

/// Forget what was trusted for the repo at `root`; whether there was anything.
pub fn forget(root: &Path) -> Result<bool, String> {
    let key = repo_key(root);
    let mut had = false;
    update(|repos| had = repos.remove(&key).is_some())?;
    Ok(had)
}

/// What of `cmds` the record does not cover: each with what was trusted
/// under its key before, if anything.
pub fn untrusted(root: &Path, cmds: &[Command]) -> Result<Vec<(Command, Option<Command>)>, String> {
    let known = recorded(root)?;
    Ok(cmds
        .iter()
        .filter(|c| !known.iter().any(|k| k.sha() == c.sha()))
        .map(|c| (c.clone(), known.iter().find(|k| k.key == c.key).cloned()))
        .collect())
}

/// How many of the config's commands are not trusted.
pub fn untrusted_count(config: &Config) -> Result<usize, String> {
    Ok(untrusted(&config.root, &commands(config))?.len())
}

/// The trust wanted for this run: `AI_SDLC_TRUST=1` or `--trust` trust for
/// this run only, with a warning.
pub fn forced(flag: bool) -> bool {
    flag || std::env::var(TRUST_VAR).is_ok_and(|v| v == "1")
}

/// Refuse (exit 2) when the config names a command that was not trusted;
/// nothing has started yet. The message lists the new and changed
/// commands (old -> new) and the one line that trusts them. With
/// `AI_SDLC_TRUST=1` or `force`, what to warn about instead.
pub fn check(config: &Config, force: bool) -> Result<Option<String>, Error> {
    let cmds = commands(config);
    if cmds.is_empty() {
        return Ok(None);
    }
    // Forced, a record that cannot be read is no reason to stop.
    let missing = match untrusted(&config.root, &cmds) {
        Ok(m) => m,
        Err(_) if forced(force) => cmds.iter().map(|c| (c.clone(), None)).collect(),
        Err(e) => return Err(Error::usage(e)),
    };
    if missing.is_empty() {
        return Ok(None);
    }
    if forced(force) {
        // Only what is not trusted already is worth a warning.
        let list: Vec<String> = missing
            .iter()
            .map(|(c, _)| format!("{}: {}", c.key, c.shown))
            .collect();
        return Ok(Some(format!(
            "running commands this repo's trust record does not hold ({TRUST_VAR}=1 or --trust): {}",
            list.join("; ")
        )));
    }
    let mut msg = format!(
        "{} names commands that ai-sdlc has not been trusted to run in this repo:\n",
        config.file_name()
    );
    for (c, old) in &missing {
        match old {
            Some(o) => msg.push_str(&format!(
                "  changed  {}: {} -> {}\n",
                c.key, o.shown, c.shown
            )),
            None => msg.push_str(&format!("  new      {}: {}\n", c.key, c.shown)),
        }
    }
    msg.push_str(&format!(
        "Nothing was started. A repo's config can come from anyone who can push to it; check these commands, then trust them with:\n  ai-sdlc -C {} trust\n(for a single run, as in CI: {TRUST_VAR}=1 or run --trust)",
        crate::prompt::sh_quote(&config.root.to_string_lossy())
    ));
    Err(Error::usage(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_record_of_the_wrong_shape_is_a_reason() {
        for bad in [
            "[]",
            "\"x\"",
            "7",
            "{\"repos\": []}",
            "{\"repos\": {\"/r\": 3}}",
            "{\"repos\": {\"/r\": {\"commands\": {}}}}",
            "{\"repos\": {\"/r\": {\"commands\": [{\"key\": 1}]}}}",
        ] {
            assert!(parse_record(bad).is_err(), "{bad}");
        }
        assert!(
            parse_record(
                "{\"repos\": {\"/r\": {\"commands\": [{\"key\": \"a\", \"value\": \"b\"}]}}}"
            )
            .is_ok()
        );
        assert!(parse_record("{}").is_ok());
    }

    proptest! {
        #[test]
        fn any_text_is_a_record_or_a_reason(text in "\\PC{0,200}|[\\[\\]{}\",:a-z0-9 ]{0,80}") {
            let _ = parse_record(&text);
            let _ = crate::git::harden::parse(&text);
        }
    }
}
