//! How an executor is started (SPEC §12): here, as the runner's own child;
//! as a Slurm step (`srun ...` before the executor's command line); or
//! through any other argv prefix (`ssh host`). What differs between them
//! lives here: the command line, how a stop is asked for and enforced,
//! whether time spent waiting counts, and what the launcher itself said.
//!
//! Under a launcher the executor's parent is the launcher's (slurmstepd),
//! not the runner: the executor takes EOF on its IPC stdin as "the runner
//! is gone", and the graceful part of a shutdown goes over IPC, since
//! signalling `srun` cancels the step at once (its task dies by SIGKILL).

use crate::config::{Config, LAUNCHER_PRESETS as PRESETS};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A launcher, resolved from the config and `run --launcher`.
#[derive(Debug, Clone, PartialEq)]
pub enum Launch {
    /// The executor is the runner's own child.
    Local,
    /// `srun ...`: each story's executor is a Slurm step.
    Slurm { argv: Vec<String> },
    /// Any other command line before the executor's.
    Prefix { argv: Vec<String> },
}

/// A launcher gets this long beyond the grace period to stop its
/// executor after the shutdown message, before it is killed.
const LAUNCHER_SLACK: Duration = Duration::from_secs(3);

impl Launch {
    /// The launcher of this run: `--launcher <preset>` beats the config.
    pub fn resolve(config: &Config, flag: Option<&str>) -> Result<Launch, String> {
        let named = flag
            .map(str::to_string)
            .or_else(|| config.launcher.preset.clone());
        match named.as_deref() {
            Some("slurm") => return Ok(slurm(config)),
            Some("none") => return Ok(Launch::Local),
            Some(other) => {
                return Err(format!(
                    "launcher {other:?}: no such preset; use one of {} (or orchestrator.launcher as a command line)",
                    PRESETS.join(", ")
                ));
            }
            None => {}
        }
        Ok(match &config.launcher.command {
            Some(c) => {
                let mut argv = c.clone();
                argv.extend(config.launcher.args.iter().cloned());
                Launch::Prefix { argv }
            }
            None => Launch::Local,
        })
    }

    /// The argv before the executor's command line (with placeholders).
    pub fn prefix(&self) -> Option<&[String]> {
        match self {
            Launch::Local => None,
            Launch::Slurm { argv } | Launch::Prefix { argv } => Some(argv),
        }
    }

    pub fn is_local(&self) -> bool {
        *self == Launch::Local
    }

    /// The command that starts the executor `exe` with `args`, after the
    /// launcher's argv with its placeholders filled (`prefix`).
    pub fn command(
        &self,
        exe: &Path,
        args: &[std::ffi::OsString],
        prefix: Option<&[String]>,
    ) -> Command {
        let mut cmd = match prefix.filter(|p| !p.is_empty() && !self.is_local()) {
            Some(argv) => {
                let mut c = Command::new(&argv[0]);
                c.args(&argv[1..]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(args);
        cmd
    }

    /// Whether asking the executor to stop means signalling its process
    /// group. Under a launcher it does not: signalling `srun` would kill
    /// the executor at once, so the shutdown message alone asks.
    pub fn signals_to_stop(&self) -> bool {
        self.is_local()
    }

    /// How long an executor asked to stop gets before it is killed.
    pub fn grace(&self, grace: Duration) -> Duration {
        if self.is_local() {
            grace
        } else {
            grace + LAUNCHER_SLACK
        }
    }

    /// Kill the executor's group; a Slurm step (`job.step`, from the
    /// executor's `started` message) is cancelled too.
    pub fn kill(&self, pgid: u32, step: Option<&(String, String)>) {
        crate::process::signal_group(pgid, libc::SIGKILL);
        if let (Launch::Slurm { .. }, Some((job, step))) = (self, step) {
            scancel(job, step);
        }
    }

    /// Does an executor wait (in a queue) before it starts? Then the story's
    /// time limit runs from its `started` message, not from the spawn.
    pub fn queues(&self) -> bool {
        !self.is_local()
    }

    /// The launcher's own words about a failure it caused, from the end of
    /// the story's log (where `srun` writes them).
    pub fn failure_words(&self, log_tail: &str) -> Option<String> {
        match self {
            Launch::Local => None,
            _ => slurm_reason(log_tail),
        }
    }

    /// For `run --dry-run`: how each executor is started, and whether the
    /// launcher's program is missing here.
    pub fn explain(&self, root: &Path) -> Option<String> {
        let argv = self.prefix()?;
        let missing = self.missing(root);
        Some(format!(
            "Each story's executor starts through: {}{}",
            argv.join(" "),
            if missing {
                format!(" ({} is not on PATH here)", argv[0])
            } else {
                String::new()
            }
        ))
    }

    /// Is the launcher's program not to be found here? (A placeholder in
    /// it is filled per story: then it cannot be told.)
    pub fn missing(&self, root: &Path) -> bool {
        self.prefix()
            .is_some_and(|argv| !argv[0].contains('{') && !crate::process::findable(&argv[0], root))
    }
}

fn slurm(config: &Config) -> Launch {
    let mut argv: Vec<String> = [
        "srun",
        "--quiet",
        "--nodes=1",
        "--ntasks=1",
        &format!("--cpus-per-task={}", config.launcher.cpus_per_story),
        "--job-name=ai-sdlc-{id}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(config.launcher.args.iter().cloned());
    Launch::Slurm { argv }
}

/// The step a Slurm executor runs in, from its environment.
pub fn slurm_step() -> Option<(String, String)> {
    let job = std::env::var("SLURM_JOB_ID").ok()?;
    let step = std::env::var("SLURM_STEP_ID").unwrap_or_else(|_| "0".into());
    Some((job, step))
}

/// Cancel a Slurm step (the runner gave up on it).
fn scancel(job: &str, step: &str) {
    let target = format!("{job}.{step}");
    let _ = crate::process::ask(
        &["scancel", "--quiet", &target],
        std::path::Path::new("/"),
        std::time::Duration::from_secs(10),
    );
}

/// Slurm's words about a step it ended (cancelled, time limit, node
/// failure), from the end of the story's log, where `srun` writes them.
fn slurm_reason(log_tail: &str) -> Option<String> {
    let decisive = |l: &&&str| {
        [
            "CANCELLED",
            "DUE TO TIME LIMIT",
            "NODE FAIL",
            "PREEMPTED",
            "OUT_OF_MEMORY",
        ]
        .iter()
        .any(|w| l.contains(w))
    };
    let any_error = |l: &&&str| l.contains("srun: error") || l.contains("slurmstepd");
    let lines: Vec<&str> = log_tail.lines().collect();
    let line = lines
        .iter()
        .rev()
        .find(decisive)
        .or_else(|| lines.iter().rev().find(any_error))?;
    let l = line.trim();
    // Drop our log's own timestamp and tag, and Slurm's asterisks.
    let l = if l.starts_with("20") {
        l.split_once("] ").map_or(l, |(_, rest)| rest)
    } else {
        l
    };
    Some(
        l.trim_matches(|c: char| c == '*' || c.is_whitespace())
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurms_own_words_are_found_in_the_log() {
        let tail = "2026-11-26T10:00:00.000Z [runner] executor started, pid 7\nslurmstepd-localhost: error: *** STEP 12.0 ON localhost CANCELLED AT 2026-11-26T10:00:03 ***\n2026-11-26T10:00:03.000Z [runner] phase 1/1 implement: was killed by SIGTERM\nsrun: error: localhost: task 0: Exited with exit code 1\n";
        assert_eq!(
            slurm_reason(tail).as_deref(),
            Some(
                "slurmstepd-localhost: error: *** STEP 12.0 ON localhost CANCELLED AT 2026-11-26T10:00:03"
            )
        );
        assert_eq!(
            slurm_reason("srun: error: localhost: task 0: Exited with exit code 1\n").as_deref(),
            Some("srun: error: localhost: task 0: Exited with exit code 1")
        );
        assert_eq!(slurm_reason("all fine\n"), None);
        assert_eq!(Launch::Local.failure_words(tail), None);
    }

    #[test]
    fn each_launcher_says_how_it_starts_and_stops() {
        let mut config = Config::defaults("/r".into());
        assert_eq!(Launch::resolve(&config, None).unwrap(), Launch::Local);
        config.launcher.args = vec!["--partition=x".into()];
        let slurm = Launch::resolve(&config, Some("slurm")).unwrap();
        let argv = slurm.prefix().unwrap();
        assert_eq!(argv[0], "srun");
        assert_eq!(argv.last().unwrap(), "--partition=x");
        assert!(!slurm.signals_to_stop() && slurm.queues());
        let g = Duration::from_secs(10);
        assert_eq!(slurm.grace(g), g + LAUNCHER_SLACK);
        assert_eq!(Launch::Local.grace(g), g);
        config.launcher.command = Some(vec!["ssh".into(), "host".into()]);
        let ssh = Launch::resolve(&config, None).unwrap();
        assert_eq!(
            ssh.prefix().unwrap(),
            ["ssh", "host", "--partition=x"].map(String::from)
        );
        assert_eq!(
            Launch::resolve(&config, Some("none")).unwrap(),
            Launch::Local
        );
        assert!(Launch::resolve(&config, Some("k8s")).is_err());
    }
}
