//! What a git call may run, decided from the config git will read for it.
//!
//! A repo's own config (`.git/config`, the `config.worktree` files, and
//! every file they include) is shared by every worktree, so an agent can
//! write it, and a repo can arrive with it planted. Any key there that
//! names a program git runs, or a path git executes or writes (a filter
//! or merge driver, `core.sshCommand`, `gpg.ssh.defaultKeyCommand`, a
//! credential helper, a trace target...: `names_a_program`), is reset for
//! each git call to what the user's own global and system config say, or
//! to nothing. Includes are followed, and every conditional include
//! (`includeIf "onbranch:..."`) counts as taken: git evaluates them per
//! call (on a story's branch, not the main checkout's), so all of them
//! are neutralised. Some settings are fixed for every call whatever the
//! config says (`FORCED`). The values go to git as command-scope config
//! in the environment (`GIT_CONFIG_COUNT`), which beats every file and,
//! unlike `-c`, takes any subsection name, `=` included; git passes it
//! on to the git processes it starts itself.
//!
//! The user's own global and system config are trusted: a filter driver
//! they define (git-lfs, installed globally) runs when a repo's
//! `.gitattributes` names it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Settings every git call gets, whatever the config says: no fsmonitor,
/// no hooks, no submodule recursion, no transport but git's own (no
/// `ext::`, no remote helper, no `git://` with its `core.gitProxy`), no
/// signature checks that would run gpg.
pub const FORCED: [(&str, &str); 10] = [
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("submodule.recurse", "false"),
    ("log.showSignature", "false"),
    ("protocol.allow", "never"),
    ("protocol.file.allow", "always"),
    ("protocol.https.allow", "always"),
    ("protocol.http.allow", "always"),
    ("protocol.ssh.allow", "always"),
    ("core.alternateRefsCommand", ""),
];

/// A file is read up to this size; a config file is never bigger.
const MAX_FILE: u64 = 1 << 20;
/// git's own limit on nested includes.
const MAX_DEPTH: usize = 10;

/// `section.subsection.name` split: section and name lower case, the
/// subsection as written.
fn split(key: &str) -> (&str, Option<&str>, &str) {
    let (section, rest) = key.split_once('.').unwrap_or((key, ""));
    match rest.rsplit_once('.') {
        Some((sub, name)) => (section, Some(sub), name),
        None => (section, None, rest),
    }
}

/// Does git run a program, or execute, read to send, or write a path,
/// that this key names? From git-config(1): every key whose value is a
/// command, a helper, a driver, a hook, a transport rewrite or a trace
/// target. `key` as git canonicalises it (section and name lower case).
pub fn names_a_program(key: &str) -> bool {
    let (section, sub, name) = split(key);
    let has_sub = sub.is_some();
    matches!(
        (section, has_sub, name),
        (
            "core",
            false,
            "editor"
                | "pager"
                | "sshcommand"
                | "askpass"
                | "gitproxy"
                | "fsmonitor"
                | "hookspath"
                | "alternaterefscommand"
        ) | ("sequence", false, "editor")
            | ("diff", false, "external" | "tool" | "guitool")
            | ("diff", true, "command" | "textconv")
            | ("difftool" | "mergetool", true, "cmd" | "path")
            | ("merge", false, "tool" | "guitool")
            | ("merge", true, "driver")
            | ("filter", true, "clean" | "smudge" | "process")
            | ("gpg", _, "program")
            | ("gpg", true, "defaultkeycommand")
            | ("credential", _, "helper")
            | ("uploadpack", false, "packobjectshook")
            | ("remote", true, "uploadpack" | "receivepack" | "vcs")
            | ("url", true, "insteadof" | "pushinsteadof")
            | ("protocol", _, "allow")
            | ("submodule", true, "update")
            | ("help" | "web", false, "browser")
            | ("browser" | "man", true, "cmd" | "path")
            | ("interactive", false, "difffilter")
            | ("imap", false, "tunnel")
            | (
                "sendemail",
                _,
                "smtpserver" | "tocmd" | "cccmd" | "headercmd" | "sendmailcmd"
            )
            | ("tar", true, "command")
            | ("guitool", true, "cmd")
            | (
                "trace2",
                false,
                "normaltarget" | "perftarget" | "eventtarget"
            )
            | ("http", _, "cookiefile")
    )
}

/// The value that makes a key run nothing where nothing else is known:
/// git's own default where an empty value would be an error.
fn neutral(key: &str) -> &'static str {
    match key {
        "core.sshcommand" => "ssh",
        "core.fsmonitor" => "false",
        "core.hookspath" => "/dev/null",
        _ => "",
    }
}

/// One `key = value` of a config file (`value: None` for a bare `key`).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// As git canonicalises it: section and name lower case.
    pub key: String,
    pub value: Option<String>,
}

/// Read a git config text as git does (git-config(1), "Syntax"): sections
/// `[s]`, `[s "sub"]` and `[s.sub]`, a variable after a header on the
/// same line, quoted values with escapes, continued lines, comments. An
/// error names the line, as git's own "bad config line" does.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
        line: 1,
        section: None,
        out: Vec::new(),
    };
    p.file()?;
    Ok(p.out)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
    line: usize,
    section: Option<String>,
    out: Vec<Entry>,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn bad(&self, why: &str) -> String {
        format!("bad config line {}: {why}", self.line)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn file(&mut self) -> Result<(), String> {
        // A byte order mark is allowed at the start.
        if self.peek() == Some('\u{feff}') {
            self.bump();
        }
        loop {
            self.skip_blanks();
            match self.peek() {
                None => return Ok(()),
                Some('\n') => {
                    self.bump();
                }
                Some('#' | ';') => self.skip_line(),
                Some('[') => {
                    self.bump();
                    self.header()?;
                }
                Some(c) if c.is_ascii_alphabetic() => self.variable()?,
                Some(_) => return Err(self.bad("expected a section or a variable")),
            }
        }
    }

    fn header(&mut self) -> Result<(), String> {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                name.push(c.to_ascii_lowercase());
                self.bump();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return Err(self.bad("a section without a name"));
        }
        self.skip_blanks();
        match self.bump() {
            Some(']') => {}
            Some('"') => {
                let mut sub = String::new();
                loop {
                    match self.bump() {
                        Some('"') => break,
                        Some('\\') => match self.bump() {
                            Some('\n') | None => return Err(self.bad("a cut subsection")),
                            Some(c) => sub.push(c),
                        },
                        Some('\n') | None => return Err(self.bad("a cut subsection")),
                        Some(c) => sub.push(c),
                    }
                }
                if self.bump() != Some(']') {
                    return Err(self.bad("no ] after the subsection"));
                }
                name = format!("{name}.{sub}");
            }
            _ => return Err(self.bad("a section header without ]")),
        }
        self.section = Some(name);
        Ok(())
    }

    fn variable(&mut self) -> Result<(), String> {
        let Some(section) = self.section.clone() else {
            return Err(self.bad("a variable before any section"));
        };
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '-' {
                name.push(c.to_ascii_lowercase());
                self.bump();
            } else {
                break;
            }
        }
        self.skip_blanks();
        let value = match self.peek() {
            Some('=') => {
                self.bump();
                Some(self.value()?)
            }
            None | Some('\n') => None,
            Some('#' | ';') => {
                self.skip_line();
                None
            }
            Some(_) => return Err(self.bad("expected = after a variable name")),
        };
        self.out.push(Entry {
            key: format!("{section}.{name}"),
            value,
        });
        Ok(())
    }

    /// A value up to the end of its line: quotes, escapes, continued lines
    /// and comments as git reads them; unquoted blanks at its ends dropped.
    fn value(&mut self) -> Result<String, String> {
        let mut out = String::new();
        let mut quoted = false;
        // Length of `out` up to the last character that is not an unquoted blank.
        let mut keep = 0;
        self.skip_blanks();
        while let Some(c) = self.bump() {
            match c {
                '\n' if quoted => return Err(self.bad("a quote is not closed")),
                '\n' => break,
                '"' => quoted = !quoted,
                '#' | ';' if !quoted => {
                    self.skip_line();
                    break;
                }
                '\\' => match self.bump() {
                    Some('\n') => continue,
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('b') => {
                        out.pop();
                    }
                    Some(c @ ('\\' | '"')) => out.push(c),
                    _ => return Err(self.bad("an unknown escape")),
                },
                c => out.push(c),
            }
            if quoted || !matches!(c, ' ' | '\t' | '\r') {
                keep = out.len();
            }
        }
        if quoted {
            return Err(self.bad("a quote is not closed"));
        }
        out.truncate(keep);
        Ok(out)
    }
}

/// Where a checkout's git metadata is: its git dir and the common dir.
pub fn git_dirs(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    // The checkout's top, as git finds it: the nearest folder with `.git`.
    let top = dir
        .ancestors()
        .find(|d| d.join(".git").symlink_metadata().is_ok())?;
    let dotgit = top.join(".git");
    let meta = dotgit.symlink_metadata().ok()?;
    let gitdir = if meta.is_dir() {
        dotgit
    } else {
        let text = read_small(&dotgit).ok()??;
        let p = PathBuf::from(text.trim().strip_prefix("gitdir:")?.trim());
        if p.is_absolute() { p } else { top.join(p) }
    };
    let common = match read_small(&gitdir.join("commondir")) {
        Ok(Some(c)) => {
            let c = PathBuf::from(c.trim());
            if c.is_absolute() { c } else { gitdir.join(c) }
        }
        _ => gitdir.clone(),
    };
    Some((gitdir, common))
}

/// A small text file: `None` when it does not exist; an error when it is
/// not a regular file (a FIFO would hang the reader) or too big.
fn read_small(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
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
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.len() > MAX_FILE {
        return Err(format!("{} is over 1 MiB", path.display()));
    }
    let mut text = String::new();
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Some(text))
}

/// The entries of the config file `path` and of every file it includes
/// (conditional includes counted as taken), in the order git reads them.
fn read_with_includes(path: &Path, depth: usize, out: &mut Vec<Entry>) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: includes nested more than {MAX_DEPTH} deep",
            path.display()
        ));
    }
    let Some(text) = read_small(path)? else {
        return Ok(());
    };
    let entries = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for e in entries {
        let (section, _, name) = split(&e.key);
        let include = name == "path" && (section == "include" || section == "includeif");
        out.push(e.clone());
        if let (true, Some(target)) = (include, &e.value) {
            read_with_includes(&include_path(path, target), depth + 1, out)?;
        }
    }
    Ok(())
}

/// An include's path as git resolves it: `~/` from HOME, a relative one
/// from the including file's folder.
fn include_path(from: &Path, target: &str) -> PathBuf {
    if let Some(rest) = target.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    let p = PathBuf::from(target);
    if p.is_absolute() {
        p
    } else {
        from.parent().unwrap_or(Path::new("/")).join(p)
    }
}

/// Every entry of the repo's own config that git may read for a call in
/// `dir`: the common config, the `config.worktree` files, what they
/// include. Empty outside a repo.
pub fn repo_entries(dir: &Path) -> Result<Vec<Entry>, String> {
    let Some((gitdir, common)) = git_dirs(dir) else {
        return Ok(Vec::new());
    };
    let mut files = vec![common.join("config"), common.join("config.worktree")];
    if gitdir != common {
        files.push(gitdir.join("config.worktree"));
    }
    let mut out = Vec::new();
    for f in files {
        read_with_includes(&f, 0, &mut out)?;
    }
    Ok(out)
}

/// The user's own global and system config, as `git config --list` shows
/// it outside any repo: key and value, in order. Read once per process.
fn trusted() -> &'static [(String, String)] {
    static TRUSTED: OnceLock<Vec<(String, String)>> = OnceLock::new();
    TRUSTED.get_or_init(|| {
        let out = std::process::Command::new("git")
            .args(["config", "--list", "-z", "--includes"])
            .current_dir("/")
            .env("GIT_CEILING_DIRECTORIES", "/")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_COMMON_DIR")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output();
        let Ok(out) = out else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter_map(|item| {
                let (k, v) = item.split_once('\n').unwrap_or((item, ""));
                (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
            })
            .collect()
    })
}

/// The command-scope settings for a git call in `dir`: `FORCED`, then
/// each program-valued key of the repo's config reset to nothing and set
/// again to what the user's own config says, if anything.
pub fn settings(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = FORCED
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let planted: BTreeSet<String> = repo_entries(dir)?
        .into_iter()
        .map(|e| e.key)
        .filter(|k| names_a_program(k))
        .collect();
    for key in planted {
        let forced = FORCED.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key));
        if forced {
            continue;
        }
        out.push((key.clone(), neutral(&key).to_string()));
        out.extend(
            trusted()
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(&key))
                .cloned(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        parse(text).unwrap().into_iter().map(|e| e.key).collect()
    }

    #[test]
    fn config_text_is_read_as_git_reads_it() {
        let text = "[core]\n\tbare = false\n\tsshCommand = x\n[filter \"LFS2\"]\n\tclean = y\n[Credential]\n\thelper\n[diff.x]\n\ttextconv = z\n";
        assert_eq!(
            keys(text),
            [
                "core.bare",
                "core.sshcommand",
                "filter.LFS2.clean",
                "credential.helper",
                "diff.x.textconv"
            ]
        );
        // A variable after the header; a subsection with `=`, quotes and escapes.
        let e = parse("[core] pager = less # comment\n[filter \"a=b \\\"q\\\"\"]\n\tsmudge = \"sh -c 'x; y'\" ; c\n").unwrap();
        assert_eq!(e[0].key, "core.pager");
        assert_eq!(e[0].value.as_deref(), Some("less"));
        assert_eq!(e[1].key, "filter.a=b \"q\".smudge");
        assert_eq!(e[1].value.as_deref(), Some("sh -c 'x; y'"));
        // A continued line.
        let e = parse("[core]\n\teditor = vi \\\n -n\n").unwrap();
        assert_eq!(e[0].value.as_deref(), Some("vi  -n"));
        // What git itself refuses is refused.
        assert!(parse("[core\n").is_err());
        assert!(parse("[core]\n\tx = \"open\n").is_err());
        assert!(parse("x = 1\n").is_err());
    }

    #[test]
    fn every_key_that_names_a_program_is_known() {
        for key in [
            "core.editor",
            "core.pager",
            "core.sshcommand",
            "core.askpass",
            "core.gitproxy",
            "core.fsmonitor",
            "core.hookspath",
            "core.alternaterefscommand",
            "sequence.editor",
            "diff.external",
            "diff.tool",
            "diff.x.command",
            "diff.x.textconv",
            "difftool.x.cmd",
            "difftool.x.path",
            "merge.tool",
            "merge.x.driver",
            "mergetool.x.cmd",
            "mergetool.x.path",
            "filter.x.clean",
            "filter.x.smudge",
            "filter.x.process",
            "gpg.program",
            "gpg.ssh.program",
            "gpg.x509.program",
            "gpg.ssh.defaultkeycommand",
            "credential.helper",
            "credential.https://x.helper",
            "uploadpack.packobjectshook",
            "remote.origin.uploadpack",
            "remote.origin.receivepack",
            "remote.origin.vcs",
            "url.ext::sh -c evil.insteadof",
            "url.x.pushinsteadof",
            "protocol.allow",
            "protocol.ext.allow",
            "submodule.x.update",
            "help.browser",
            "web.browser",
            "browser.x.cmd",
            "man.x.cmd",
            "interactive.difffilter",
            "imap.tunnel",
            "sendemail.smtpserver",
            "sendemail.tocmd",
            "tar.tgz.command",
            "guitool.x.cmd",
            "trace2.normaltarget",
            "trace2.eventtarget",
            "http.cookiefile",
            "http.https://x.cookiefile",
        ] {
            assert!(names_a_program(key), "{key}");
        }
        for key in [
            "core.bare",
            "user.name",
            "remote.origin.url",
            "filter.x.required",
            "diff.x.xfuncname",
        ] {
            assert!(!names_a_program(key), "{key}");
        }
    }

    #[test]
    fn includes_are_followed_and_every_condition_counts_as_taken() {
        let dir = std::env::temp_dir().join(format!("ai-sdlc-harden-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        std::fs::write(
            dir.join(".git/config"),
            "[include]\n\tpath = a.cfg\n[includeIf \"onbranch:ai-sdlc/**\"]\n\tpath = b.cfg\n",
        )
        .unwrap();
        std::fs::write(dir.join(".git/a.cfg"), "[filter \"x\"]\n\tclean = a\n").unwrap();
        std::fs::write(dir.join(".git/b.cfg"), "[include]\n\tpath = c.cfg\n").unwrap();
        std::fs::write(dir.join(".git/c.cfg"), "[core]\n\tpager = c\n").unwrap();
        let set = settings(&dir).unwrap();
        let got: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
        assert!(got.contains(&"filter.x.clean"), "{got:?}");
        assert!(got.contains(&"core.pager"), "{got:?}");
        // An include loop is refused, not followed forever.
        std::fs::write(dir.join(".git/c.cfg"), "[include]\n\tpath = b.cfg\n").unwrap();
        assert!(settings(&dir).unwrap_err().contains("nested"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
