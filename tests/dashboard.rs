//! The live dashboard in a real terminal: `run --concurrent 3` under tmux.
//! Needs tmux (CI installs it).

use crate::support::*;
use std::process::Command;

struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(cmd: &str, width: u32, height: u32) -> Tmux {
        let socket = format!("ai-sdlc-test-{}-{}", std::process::id(), width);
        let st = Command::new("tmux")
            .args([
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .arg(cmd)
            .env_remove("NO_COLOR")
            .status()
            .expect("tmux runs (apt-get install tmux)");
        assert!(st.success());
        Tmux { socket }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn the_dashboard_shows_running_stories_a_footer_and_the_summary() {
    let repo = TestRepo::new();
    repo.with_agent(
        "d.sh",
        "echo \"working on $AI_SDLC_STORY_ID\"\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done\necho finished",
    );
    for i in 1..=5 {
        repo.story(
            &format!("S-000{i}"),
            &format!("Story number {i}"),
            i,
            "ready",
            "",
        );
    }
    let cmd = format!(
        "XDG_CONFIG_HOME={} {BIN} -C {} run --concurrent 3; echo EXIT=$?; sleep 60",
        repo.xdg().display(),
        repo.root.display()
    );
    let tmux = Tmux::start(&cmd, 120, 30);
    let mut screen = String::new();
    let live = wait_for(30, || {
        screen = tmux.screen();
        screen.contains("running 3") && screen.matches("working on S-000").count() == 3
    });
    assert!(live, "no live dashboard with 3 running stories:\n{screen}");
    for id in ["S-0001", "S-0002", "S-0003"] {
        let line = screen
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no line for {id}:\n{screen}"));
        assert!(
            line.contains("implement 1/1") && line.contains(&format!("working on {id}")),
            "{line}"
        );
        assert!(line.chars().count() <= 120, "{line}");
    }
    assert!(screen.contains("queued 2 · running 3 · done 0"), "{screen}");
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let ended = wait_for(30, || {
        screen = tmux.screen();
        screen.contains("EXIT=")
    });
    assert!(ended, "the run did not end:\n{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("Summary: 5 succeeded, 0 failed"),
        "{screen}"
    );
    for i in 1..=5 {
        assert!(
            screen.contains(&format!("✓ S-000{i} succeeded")),
            "S-000{i} has no finished line:\n{screen}"
        );
    }
    assert!(screen.contains("queued 0 · running 0 · done 5"), "{screen}");
}

#[test]
fn at_60_columns_the_activity_keeps_its_room() {
    let repo = TestRepo::new();
    repo.with_agent(
        "d.sh",
        "echo \"working on $AI_SDLC_STORY_ID\"\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done",
    );
    repo.story("S-0001", "A story with a long title", 1, "ready", "");
    repo.story("S-0002", "Another", 2, "ready", "");
    let cmd = format!(
        "XDG_CONFIG_HOME={} {BIN} -C {} run --concurrent 2; echo EXIT=$?; sleep 60",
        repo.xdg().display(),
        repo.root.display()
    );
    let tmux = Tmux::start(&cmd, 60, 20);
    let mut screen = String::new();
    let live = wait_for(30, || {
        screen = tmux.screen();
        screen.matches("working on S-000").count() == 2
    });
    assert!(live, "the activity is cut at 60 columns:\n{screen}");
    for id in ["S-0001", "S-0002"] {
        let line = screen.lines().find(|l| l.starts_with(id)).unwrap();
        assert!(line.contains(&format!("working on {id}")), "{line}");
        assert!(line.chars().count() <= 60, "{line}");
    }
    std::fs::write(repo.rec.join("go"), "").unwrap();
    assert!(
        wait_for(30, || tmux.screen().contains("EXIT=0")),
        "{}",
        tmux.screen()
    );
}
