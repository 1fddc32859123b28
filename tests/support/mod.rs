//! Test harness: a temporary git repo with a board, scripted agents that
//! record what they saw, the real binary, and liveness checks from /proc.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ai-sdlc");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A temporary folder, removed on drop (set AI_SDLC_KEEP_TEST_DIRS to keep it).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "ai-sdlc-t-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(fs::canonicalize(&p).unwrap())
    }
}

impl TempDir {
    /// A folder beside this one, for this test only: never the user's own.
    fn beside(&self, suffix: &str) -> PathBuf {
        let mut p = self.0.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }

    /// This test's `XDG_CONFIG_HOME` (the trust record goes there).
    pub fn xdg(&self) -> PathBuf {
        self.beside(".xdg")
    }

    /// This test's `HOME`.
    pub fn home(&self) -> PathBuf {
        self.beside(".home")
    }

    /// The binary, in this test's own environment (see `hermetic`).
    pub fn bin(&self) -> Command {
        let mut c = Command::new(BIN);
        hermetic(&mut c, &self.home(), &self.xdg());
        c
    }
}

/// Variables a test's commands keep from the developer's environment.
const KEPT: [&str; 4] = ["PATH", "TERM", "USER", "LOGNAME"];

/// Make `cmd` independent of the machine it runs on (jj's
/// TestEnvironment): an empty environment but for `KEPT`, a `HOME` and
/// XDG folders of the test's own, no system or global git config, and
/// git's messages in English.
pub fn hermetic(cmd: &mut Command, home: &Path, xdg: &Path) {
    fs::create_dir_all(home).unwrap();
    cmd.env_clear();
    for k in KEPT {
        if let Some(v) = std::env::var_os(k) {
            cmd.env(k, v);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", xdg)
        .env("XDG_STATE_HOME", xdg.join("state"))
        .env("XDG_CACHE_HOME", xdg.join("cache"))
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LANG", "C.UTF-8");
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("AI_SDLC_KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.0);
            let _ = fs::remove_dir_all(self.xdg());
            let _ = fs::remove_dir_all(self.home());
        }
    }
}

/// git, as a test runs it: without the developer's system or global config.
pub fn git_cmd(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    c
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A git repo with one commit, a board and a place for agents to record.
pub struct TestRepo {
    /// Runners this test started: killed when the test ends, even by a panic.
    spawned: std::cell::RefCell<Vec<u32>>,
    _tmp: TempDir,
    pub root: PathBuf,
    /// Agents write what they saw here: `<ID>.start`, `<ID>.env`, ...
    pub rec: PathBuf,
    pub agents: PathBuf,
}

impl TestRepo {
    pub fn new() -> TestRepo {
        let tmp = TempDir::new("repo");
        let root = tmp.0.join("repo");
        let rec = tmp.0.join("rec");
        let agents = tmp.0.join("agents");
        for d in [&root, &rec, &agents] {
            fs::create_dir_all(d).unwrap();
        }
        git(&root, &["init", "-q"]);
        git(&root, &["symbolic-ref", "HEAD", "refs/heads/main"]);
        git(&root, &["config", "user.name", "Test"]);
        git(&root, &["config", "user.email", "test@example.invalid"]);
        git(&root, &["config", "commit.gpgsign", "false"]);
        fs::write(
            root.join(".gitignore"),
            ".ai-sdlc/worktrees/\n.ai-sdlc/stories/*/logs/\n",
        )
        .unwrap();
        fs::write(root.join("README.md"), "test repo\n").unwrap();
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-q", "-m", "init"]);
        fs::create_dir_all(root.join(".ai-sdlc/stories")).unwrap();
        // The stand-in CLIs record here even when a config passes them no
        // STANDIN_REC (never in a /tmp that other tests share).
        fs::create_dir_all(tmp.home()).unwrap();
        fs::write(
            tmp.home().join(".standin-rec"),
            rec.to_string_lossy().as_bytes(),
        )
        .unwrap();
        TestRepo {
            spawned: Default::default(),
            _tmp: tmp,
            root,
            rec,
            agents,
        }
    }

    /// Write an agent script; it starts by recording start time, pid, parent,
    /// cwd, env and stdin (unless `RECORD_STDIN=0`), and records its end on exit.
    pub fn agent(&self, name: &str, body: &str) -> PathBuf {
        let path = self.agents.join(name);
        let script = format!(
            "#!/bin/sh\nREC={rec}\nid=$AI_SDLC_STORY_ID\nrec() {{ printf '%s\\n' \"$2\" > \"$REC/$id.$1.tmp\" && mv \"$REC/$id.$1.tmp\" \"$REC/$id.$1\"; }}\nrec start \"$(date +%s%N)\"\nrec pid $$\nrec ppid $PPID\nrec cwd \"$(pwd)\"\nrec env \"$(env | grep '^AI_SDLC_' | sort)\"\necho \"$AI_SDLC_PHASE\" >> \"$REC/$id.phases\"\nif [ \"${{RECORD_STDIN:-1}}\" = 1 ]; then cat > \"$REC/$id.stdin\"; fi\ntrap 'rec end \"$(date +%s%N)\"' EXIT\n{body}\n",
            rec = self.rec.display()
        );
        fs::write(&path, script).unwrap();
        let mut perm = fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        fs::set_permissions(&path, perm).unwrap();
        path
    }

    /// Write an agent script (see `agent`) and make it agent.command.
    /// An agent that runs git to write (`git add`, `git commit`) needs the
    /// filesystem sandbox off: the shared `.git` is read-only to agents.
    pub fn with_agent(&self, name: &str, body: &str) -> PathBuf {
        let path = self.agent(name, body);
        if writes_git(body) {
            self.config(serde_json::json!({
                "agent": {"command": [path.to_string_lossy()], "sandbox": false},
                "orchestrator": {"healthCheckInterval": 200}
            }));
        } else {
            self.use_agent(&path);
        }
        path
    }

    /// Stories S-0001..S-000n, titled S1..Sn, priority i, all ready.
    pub fn ready_stories(&self, n: i64) {
        for i in 1..=n {
            self.story(&format!("S-000{i}"), &format!("S{i}"), i, "ready", "");
        }
    }

    pub fn blocked_reason(&self, id: &str) -> String {
        self.field(id, "blocked_reason")
            .unwrap_or_else(|| panic!("{id} has no blocked_reason:\n{}", self.read_story(id)))
    }

    /// Wait (up to 20 s) until an agent has recorded `name`, e.g. "S-0001.ppid".
    pub fn wait_rec(&self, name: &str) {
        assert!(
            wait_for(20, || self.rec_file(name).is_some()),
            "the agent never recorded {name}"
        );
    }

    /// The text of each of a story's run logs.
    pub fn logs(&self, id: &str) -> Vec<String> {
        let dir = self.root.join(".ai-sdlc/stories").join(id).join("logs");
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }

    /// Write `.ai-sdlc.json` and trust its commands, as its author would.
    pub fn config(&self, v: serde_json::Value) {
        self.config_untrusted(v);
        self.run(&["trust"]);
    }

    /// Write `.ai-sdlc.json` as a clone or a pull request brings it: untrusted.
    /// Most scripted agents here change no file: unless the test says
    /// otherwise, an empty result may be done (`workflow.allowEmpty`; the
    /// rule itself is `presets::an_implement_phase_that_changes_nothing_…`).
    pub fn config_untrusted(&self, mut v: serde_json::Value) {
        if let Some(o) = v.as_object_mut() {
            let w = o.entry("workflow").or_insert_with(|| serde_json::json!({}));
            if let Some(w) = w.as_object_mut() {
                w.entry("allowEmpty")
                    .or_insert(serde_json::Value::Bool(true));
            }
            // The stand-in CLIs take their test settings from STANDIN_*,
            // which an agent's environment drops unless passed.
            if let Some(a) = o.get_mut("agent").and_then(|a| a.as_object_mut()) {
                a.entry("env")
                    .or_insert_with(|| serde_json::json!({"pass": ["STANDIN_*"]}));
                // Agents here record what they saw in the test's folder,
                // outside their worktree: the sandbox lets them.
                a.entry("sandbox")
                    .or_insert_with(|| serde_json::json!({"write": [self.rec.to_string_lossy()]}));
            }
        }
        fs::write(self.root.join(".ai-sdlc.json"), v.to_string()).unwrap();
    }

    /// Change `.ai-sdlc.json` with `f` and trust it again.
    pub fn edit_config(&self, f: impl FnOnce(&mut serde_json::Value)) {
        let text = fs::read_to_string(self.root.join(".ai-sdlc.json")).unwrap();
        let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
        f(&mut cfg);
        self.config(cfg);
    }

    /// The spend ledger's entries (`.ai-sdlc/spend.jsonl`), oldest first.
    pub fn ledger(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(self.root.join(".ai-sdlc/spend.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Use `agent` as agent.command, with extra config merged in.
    pub fn use_agent(&self, agent: &Path) {
        self.config(serde_json::json!({
            "agent": {"command": [agent.to_string_lossy()]},
            "orchestrator": {"healthCheckInterval": 200}
        }));
    }

    pub fn story_path(&self, id: &str) -> PathBuf {
        self.root.join(".ai-sdlc/stories").join(id).join("story.md")
    }

    /// Add a story file; `extra` is more frontmatter lines.
    pub fn story(&self, id: &str, title: &str, priority: i64, status: &str, extra: &str) {
        let p = self.story_path(id);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(
            &p,
            format!(
                "---\nid: {id}\ntitle: {title}\n# a comment the tool must keep\npriority: {priority}\nstatus: {status}\ncreated: '2024-01-0{}'\n{extra}---\n# {title}\n\nBody of {id}.\n---\nnot frontmatter\n",
                1 + priority.rem_euclid(9)
            ),
        )
        .unwrap();
    }

    pub fn read_story(&self, id: &str) -> String {
        fs::read_to_string(self.story_path(id)).unwrap()
    }

    /// A top-level frontmatter field's raw value.
    pub fn field(&self, id: &str, name: &str) -> Option<String> {
        let text = self.read_story(id);
        let fm = text.split("\n---\n").next().unwrap_or("").to_string();
        fm.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(|v| v.trim_matches('\'').to_string())
    }

    pub fn status(&self, id: &str) -> String {
        self.field(id, "status").unwrap_or_default()
    }

    /// This test's `XDG_CONFIG_HOME`, for commands built by hand.
    pub fn xdg(&self) -> PathBuf {
        self._tmp.xdg()
    }

    /// The binary with this test's environment, no `-C`.
    pub fn bin(&self) -> Command {
        self._tmp.bin()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self._tmp.bin();
        c.arg("-C").arg(&self.root).args(args);
        c
    }

    /// This test's `HOME`.
    pub fn home(&self) -> PathBuf {
        self._tmp.home()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).stdin(Stdio::null()).output().unwrap()
    }

    /// `run`, with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(Stdio::null()).output().unwrap()
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.spawned.borrow_mut().push(child.id());
        child
    }

    pub fn rec_file(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.rec.join(name)).ok()
    }

    pub fn started(&self, id: &str) -> bool {
        self.rec.join(format!("{id}.start")).exists()
    }

    /// The start and end times (ns) an agent recorded.
    pub fn span(&self, id: &str) -> (u128, u128) {
        let read = |s: &str| {
            self.rec_file(&format!("{id}.{s}"))
                .unwrap_or_else(|| panic!("{id} recorded no {s}"))
                .trim()
                .parse::<u128>()
                .unwrap()
        };
        (read("start"), read("end"))
    }

    pub fn pid(&self, id: &str, which: &str) -> i32 {
        self.rec_file(&format!("{id}.{which}"))
            .unwrap_or_else(|| panic!("{id} recorded no {which}"))
            .trim()
            .parse()
            .unwrap()
    }

    pub fn worktree(&self, key: &str) -> PathBuf {
        self.root.join(".ai-sdlc/worktrees").join(key)
    }
}

impl Drop for TestRepo {
    fn drop(&mut self) {
        // A failed test must not leave its runner (and so its agents) behind.
        for &pid in self.spawned.borrow().iter() {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if alive(pid as i32) && String::from_utf8_lossy(&cmdline).contains(BIN) {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

/// Does an agent script run git to write to the repo?
pub fn writes_git(body: &str) -> bool {
    [
        "git add",
        "git commit",
        "git config",
        "git checkout",
        "git init",
        "git -C",
        "commondir",
    ]
    .iter()
    .any(|w| body.contains(w))
        || body.contains(".git/")
}

/// Is `pid` a live process (not gone, not a zombie)?
pub fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some(Some('Z')) | Some(Some('X')))
        }
        Err(_) => false,
    }
}

/// Fail unless process `pid` is gone within `secs`; `what` says what it was.
pub fn assert_dies(pid: i32, secs: u64, what: &str) {
    assert!(
        wait_for(secs, || !alive(pid)),
        "{what} (pid {pid}) is still running"
    );
}

/// Poll `f` every 20 ms until it holds or `secs` pass.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait for a child with a deadline; kill it and panic if it hangs.
pub fn finish(mut child: Child, secs: u64) -> (i32, String, String) {
    let ok = wait_for(secs, || child.try_wait().unwrap().is_some());
    if !ok {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "ai-sdlc did not exit within {secs}s\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Fail unless the command exited with `want`; show what it printed.
#[track_caller]
pub fn expect_code(out: &Output, want: i32) {
    let got = code(out);
    assert!(
        got == want,
        "exit code {got}, expected {want}\n--- stdout:\n{}\n--- stderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn signal(pid: u32, sig: i32) {
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
            stdout(out),
            stderr(out)
        )
    })
}

/// Is Landlock on in this kernel? (Asked as the runner asks.)
pub fn landlock_here() -> bool {
    // SAFETY: the version query: no attribute, no side effect.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        ) > 0
    }
}
