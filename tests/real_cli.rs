//! The real-CLI tier: the agent CLIs themselves (installed by
//! `scripts/real-clis` at pinned versions, outside the repo), with the
//! model replaced by `tests/agents/servers/model.py` on 127.0.0.1. Each
//! preset does a story end to end under the filesystem sandbox, and fails
//! on 401, 429 and a usage cap with the right kind. Without the CLIs
//! (`AI_SDLC_REAL_CLIS` names the folder of their programs) these tests are
//! skipped and listed in `target/real-cli-tests.txt`, never passed
//! silently.

use crate::support::*;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/agents/servers/model.py");

/// The folder with the real CLIs' programs, when they are installed.
fn clis(need: &[&str]) -> Result<PathBuf, String> {
    let dir = std::env::var_os("AI_SDLC_REAL_CLIS")
        .map(PathBuf::from)
        .ok_or(
            "AI_SDLC_REAL_CLIS is not set; scripts/real-clis installs them and says what to set",
        )?;
    if Command::new("python3").arg("--version").output().is_err() {
        return Err("no python3 for the model stand-in".into());
    }
    for cli in need {
        if !dir.join(cli).exists() {
            return Err(format!("no {cli} in {}", dir.display()));
        }
    }
    Ok(dir)
}

macro_rules! need_clis {
    ($name:expr, $($cli:expr),+) => {
        match clis(&[$($cli),+]) {
            Ok(dir) => dir,
            Err(why) => {
                let line = format!("SKIPPED real-CLI test {}: {why}\n", $name);
                eprint!("{line}");
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(concat!(env!("CARGO_MANIFEST_DIR"), "/target/real-cli-tests.txt"))
                    .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
                return;
            }
        }
    };
}

/// The model stand-in, on a port of its own; stopped with the test.
struct Model {
    child: Child,
    port: u16,
}

impl Model {
    fn start() -> Model {
        let mut child = Command::new("python3")
            .args([MODEL, "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs the model stand-in");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the model stand-in said {line:?}"));
        Model { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repo whose agent is `preset`, with one ready story per mode (`ok`,
/// `401`, ...): the story's text tells the stand-in how to answer.
fn repo_of(preset: &str, modes: &[&str]) -> TestRepo {
    let repo = TestRepo::new();
    repo.config(serde_json::json!({"agent": {"preset": preset}}));
    for (i, mode) in modes.iter().enumerate() {
        let id = format!("S-{:04}", i + 1);
        repo.story(
            &id,
            &format!("Write notes ({mode})"),
            i as i64 + 1,
            "ready",
            "",
        );
        let path = repo.story_path(&id);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{text}\nstand-in: {mode}\n")).unwrap();
    }
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-qm", "stories"]);
    repo
}

fn path_with(dir: &std::path::Path) -> String {
    format!("{}:{}", dir.display(), std::env::var("PATH").unwrap())
}

/// The story branch's notes.txt, as the runner committed it.
fn committed_notes(repo: &TestRepo, id: &str) -> String {
    let branch = git(
        &repo.root,
        &[
            "for-each-ref",
            "--format=%(refname)",
            &format!("refs/heads/ai-sdlc/{id}-*"),
        ],
    );
    git(
        &repo.root,
        &["show", &format!("{}:notes.txt", branch.trim())],
    )
}

/// S-0001 (mode `ok`) is done, its notes.txt committed by the runner on
/// its branch; its line in the ledger.
fn did_the_story(repo: &TestRepo, out: &std::process::Output) -> serde_json::Value {
    assert_eq!(repo.status("S-0001"), "done", "{}", stderr(out));
    assert_eq!(
        committed_notes(repo, "S-0001"),
        "hello from the stand-in model\n"
    );
    spent(repo, "S-0001")
}

/// The ledger's line for a story.
fn spent(repo: &TestRepo, id: &str) -> serde_json::Value {
    let ledger = repo.ledger();
    ledger
        .iter()
        .find(|v| v["story"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no spend line for {id}: {ledger:?}"))
}

#[test]
fn claude_code_does_a_story_and_fails_clearly_on_401_and_429() {
    let dir = need_clis!(
        "claude_code_does_a_story_and_fails_clearly_on_401_and_429",
        "claude"
    );
    let model = Model::start();
    let repo = repo_of("claude", &["ok", "401", "429"]);
    let url = model.url();
    let path = path_with(&dir);
    let out = repo.run_env(
        &["run", "--concurrent", "3"],
        &[
            ("PATH", &path),
            ("ANTHROPIC_BASE_URL", &url),
            ("ANTHROPIC_API_KEY", "sk-stand-in"),
            // Its own retries of a 429 would take minutes.
            ("CLAUDE_CODE_MAX_RETRIES", "1"),
            ("IS_SANDBOX", "1"),
        ],
    );
    expect_code(&out, 1);
    let s = did_the_story(&repo, &out);
    assert!(s["cost_usd"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["input_tokens"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["cost_from"], "cli");
    assert_eq!(repo.status("S-0002"), "blocked");
    let r = repo.blocked_reason("S-0002");
    assert!(r.contains("claude: authentication failed"), "{r}");
    assert_eq!(repo.status("S-0003"), "blocked");
    let r = repo.blocked_reason("S-0003");
    assert!(
        r.contains("claude: rate limited") && r.contains("429"),
        "{r}"
    );
    // Its state went where the sandbox lets it.
    assert!(repo.home().join(".claude").is_dir());
}

#[test]
fn claude_code_at_its_usage_cap_parks_the_story_until_the_reset() {
    let dir = need_clis!(
        "claude_code_at_its_usage_cap_parks_the_story_until_the_reset",
        "claude"
    );
    let model = Model::start();
    let repo = repo_of("claude", &["cap"]);
    let url = model.url();
    let path = path_with(&dir);
    let out = repo.run_env(
        &["run", "--no-wait"],
        &[
            ("PATH", &path),
            ("ANTHROPIC_BASE_URL", &url),
            // A plan's usage cap is a subscription's: an OAuth token.
            ("CLAUDE_CODE_OAUTH_TOKEN", "stand-in"),
            ("IS_SANDBOX", "1"),
        ],
    );
    expect_code(&out, 75);
    assert_eq!(repo.status("S-0001"), "ready");
    assert!(
        repo.field("S-0001", "not_before").is_some(),
        "{}",
        repo.read_story("S-0001")
    );
    assert!(
        stderr(&out).contains("usage limit reached"),
        "{}",
        stderr(&out)
    );
}

/// Codex reads its base URL from its config, in the test's HOME.
fn codex_config(repo: &TestRepo, model: &Model) {
    let dir = repo.home().join(".codex");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.toml"),
        format!("openai_base_url = \"{}/v1\"\n", model.url()),
    )
    .unwrap();
}

#[test]
fn codex_does_a_story_and_fails_clearly_on_401_429_and_its_usage_cap() {
    let dir = need_clis!(
        "codex_does_a_story_and_fails_clearly_on_401_429_and_its_usage_cap",
        "codex"
    );
    let model = Model::start();
    let repo = repo_of("codex", &["ok", "401", "429", "cap"]);
    codex_config(&repo, &model);
    let path = path_with(&dir);
    let out = repo.run_env(
        &["run", "--concurrent", "4", "--no-wait"],
        &[("PATH", &path), ("OPENAI_API_KEY", "sk-stand-in")],
    );
    // Two failed: 1 (75 is for a run where nothing failed).
    expect_code(&out, 1);
    let s = did_the_story(&repo, &out);
    assert!(s["input_tokens"].as_u64().unwrap() > 0, "{s}");
    // Codex reports no cost, and none is made up.
    assert!(s.get("cost_usd").is_none_or(|c| c.is_null()), "{s}");
    assert_eq!(repo.status("S-0002"), "blocked");
    let r = repo.blocked_reason("S-0002");
    assert!(
        r.contains("401") && r.contains("codex: authentication failed"),
        "{r}"
    );
    assert_eq!(repo.status("S-0003"), "blocked");
    let r = repo.blocked_reason("S-0003");
    assert!(r.contains("codex: rate limited"), "{r}");
    assert_eq!(repo.status("S-0004"), "ready");
    assert!(repo.field("S-0004", "not_before").is_some());
}

#[test]
fn gemini_cli_does_a_story_and_fails_clearly_on_401_and_its_quota() {
    let dir = need_clis!(
        "gemini_cli_does_a_story_and_fails_clearly_on_401_and_its_quota",
        "gemini"
    );
    let model = Model::start();
    let repo = repo_of("gemini", &["ok", "401", "cap"]);
    // Its base URL from the environment, its auth left to that endpoint.
    let settings = repo.home().join(".gemini");
    std::fs::create_dir_all(&settings).unwrap();
    std::fs::write(
        settings.join("settings.json"),
        r#"{"security":{"auth":{"useExternal":true}}}"#,
    )
    .unwrap();
    let (url, path) = (model.url(), path_with(&dir));
    let out = repo.run_env(
        &["run", "--concurrent", "3", "--no-wait"],
        &[("PATH", &path), ("GOOGLE_GEMINI_BASE_URL", &url)],
    );
    expect_code(&out, 1);
    let s = did_the_story(&repo, &out);
    assert!(s["input_tokens"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(repo.status("S-0002"), "blocked");
    let r = repo.blocked_reason("S-0002");
    assert!(
        r.contains("401") && r.contains("gemini: authentication failed"),
        "{r}"
    );
    // A quota of `limit: 0` is not retried: the story waits for it.
    let s3 = repo.read_story("S-0003");
    assert!(
        repo.status("S-0003") == "ready" && s3.contains("not_before"),
        "{s3}\n{}",
        stderr(&out)
    );
}

#[test]
fn opencode_does_a_story_and_fails_clearly_on_401() {
    let dir = need_clis!("opencode_does_a_story_and_fails_clearly_on_401", "opencode");
    let model = Model::start();
    let repo = repo_of("opencode", &["ok", "401"]);
    // Two opencode runs starting at once on a fresh install can find its
    // database locked: a retry is what a user sets (agent.retries).
    repo.config(serde_json::json!({"agent": {
        "preset": "opencode", "model": "opencode/big-pickle", "retries": 2, "retryDelay": 1000
    }}));
    // Its config under XDG_CONFIG_HOME (the test's own).
    let conf = repo.xdg().join("opencode");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("opencode.json"),
        format!(
            r#"{{"provider":{{"opencode":{{"options":{{"baseURL":"{}/v1"}}}}}}}}"#,
            model.url()
        ),
    )
    .unwrap();
    let path = path_with(&dir);
    let out = repo.run_env(&["run", "--concurrent", "2"], &[("PATH", &path)]);
    expect_code(&out, 1);
    let s = did_the_story(&repo, &out);
    assert!(s["input_tokens"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(repo.status("S-0002"), "blocked");
    let r = repo.blocked_reason("S-0002");
    assert!(
        r.contains("opencode: authentication failed"),
        "{r}\n{}",
        repo.logs("S-0002").join("")
    );
}

#[test]
fn aider_does_a_story_and_fails_clearly_on_401() {
    let dir = need_clis!("aider_does_a_story_and_fails_clearly_on_401", "aider");
    let model = Model::start();
    let repo = repo_of("aider", &["ok", "401"]);
    repo.config(serde_json::json!({"agent": {"preset": "aider", "model": "openai/standin"}}));
    let (base, path) = (format!("{}/v1", model.url()), path_with(&dir));
    let out = repo.run_env(
        &["run", "--concurrent", "2"],
        &[
            ("PATH", &path),
            ("OPENAI_API_BASE", &base),
            ("OPENAI_API_KEY", "sk-stand-in"),
        ],
    );
    expect_code(&out, 1);
    let s = did_the_story(&repo, &out);
    assert_eq!(
        (s["input_tokens"].as_u64(), s["output_tokens"].as_u64()),
        (Some(1500), Some(70)),
        "{s}"
    );
    // Its final message is the reply's words.
    assert!(stderr(&out).contains("STANDIN FINAL"), "{}", stderr(&out));
    assert_eq!(repo.status("S-0002"), "blocked");
    let r = repo.blocked_reason("S-0002");
    assert!(r.contains("aider: authentication failed"), "{r}");
}

#[test]
fn claude_code_makes_three_attempts_and_judges_them() {
    let dir = need_clis!("claude_code_makes_three_attempts_and_judges_them", "claude");
    let model = Model::start();
    let repo = repo_of("claude", &["ok"]);
    repo.config(serde_json::json!({
        "agent": {"preset": "claude", "attempts": 3},
        "attempts": {"pick": "judge", "verify": ["test", "-s", "notes.txt"]}
    }));
    let url = model.url();
    let path = path_with(&dir);
    let out = repo.run_env(
        &["run", "--concurrent", "2", "--json"],
        &[
            ("PATH", &path),
            ("ANTHROPIC_BASE_URL", &url),
            ("ANTHROPIC_API_KEY", "sk-stand-in"),
            ("IS_SANDBOX", "1"),
        ],
    );
    expect_code(&out, 0);
    assert_eq!(repo.status("S-0001"), "done", "{}", stderr(&out));
    assert_eq!(
        committed_notes(&repo, "S-0001"),
        "hello from the stand-in model\n"
    );
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo.story_path("S-0001").with_file_name("attempts.json"))
            .unwrap(),
    )
    .unwrap();
    // The real CLI's answer was read for its CHOSEN line and reasons.
    assert_eq!(rec["chosen"], 1, "{rec}");
    assert_eq!(
        rec["why"], "It writes notes.txt as the story asks.",
        "{rec}"
    );
    for k in 0..3 {
        assert_eq!(rec["attempts"][k]["verify"], "passed", "{rec}");
        assert!(
            rec["attempts"][k]["cost_usd"].as_f64().unwrap() > 0.0,
            "{rec}"
        );
    }
    // Three attempts and the judge: four phases of the CLI's, all priced.
    let v = json(&out);
    let cost = v["results"][0]["cost_usd"].as_f64().unwrap();
    let each: f64 = (0..3)
        .map(|k| rec["attempts"][k]["cost_usd"].as_f64().unwrap())
        .sum();
    assert!(
        cost > each,
        "the judge's cost is counted too: {cost} vs {each}"
    );
}
