//! Agents that hold no keys (SPEC §16): an agent's environment is built
//! from an allowlist, and each running story has ports of its own.

use crate::support::*;

#[test]
fn an_agent_gets_the_basics_and_what_the_config_passes_never_the_users_keys() {
    let repo = TestRepo::new();
    let agent = repo.agent(
        "names",
        "env | cut -d= -f1 | sort > \"$REC/$id.names\"; echo \"$AI_SDLC_PORT $PORT\" > \"$REC/$id.port\"; sleep 1",
    );
    repo.config(serde_json::json!({
        "agent": {
            "command": [agent.to_string_lossy()],
            "env": {"pass": ["MY_TOOL_*"], "set": {"FROM_CONFIG": "1"}}
        }
    }));
    repo.ready_stories(2);
    let secrets = [
        ("GH_TOKEN", "ghp_secret"),
        ("GITHUB_TOKEN", "secret"),
        ("SSH_AUTH_SOCK", "/tmp/agent.sock"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("NPM_TOKEN", "secret"),
        ("ANTHROPIC_API_KEY", "sk-ant"),
        ("MY_TOOL_HOME", "/opt/tool"),
    ];
    let out = repo.run_env(&["run", "--concurrent", "2"], &secrets);
    expect_code(&out, 0);
    for id in ["S-0001", "S-0002"] {
        let names = repo.rec_file(&format!("{id}.names")).unwrap();
        let has = |n: &str| names.lines().any(|l| l == n);
        for (k, _) in &secrets[..6] {
            assert!(!has(k), "{id} got {k}:\n{names}");
        }
        for k in [
            "PATH",
            "HOME",
            "AI_SDLC_STORY_ID",
            "AI_SDLC_PORT",
            "PORT",
            "MY_TOOL_HOME",
            "FROM_CONFIG",
        ] {
            assert!(has(k), "{id} lacks {k}:\n{names}");
        }
    }
    // Two stories running at once have distinct blocks of ports.
    let port = |id: &str| -> u16 {
        let t = repo.rec_file(&format!("{id}.port")).unwrap();
        let mut w = t.split_whitespace();
        let (a, p) = (w.next().unwrap(), w.next().unwrap());
        assert_eq!(a, p, "PORT is AI_SDLC_PORT");
        a.parse().unwrap()
    };
    let (a, b) = (port("S-0001"), port("S-0002"));
    assert!(a.abs_diff(b) >= 10, "{a} and {b} overlap");
    // doctor names what an agent gets and what it does not, never values.
    let doc = stdout(&repo.run_env(&["doctor"], &secrets));
    assert!(
        doc.contains("agent environment: gets") && doc.contains("GH_TOKEN"),
        "{doc}"
    );
    assert!(!doc.contains("ghp_secret"), "{doc}");
    // The config's env settings are trusted like its commands.
    let shown = stdout(&repo.run(&["trust", "--show"]));
    assert!(
        shown.contains("agent.env") && shown.contains("MY_TOOL_*"),
        "{shown}"
    );
}
