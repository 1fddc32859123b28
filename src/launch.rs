//! How an executor is started (SPEC §12): here, or through a launcher, an
//! argv prefix before the executor's own command line (`ssh host`, `srun
//! ...`). The preset `slurm` runs each story's executor as a Slurm step.
//!
//! Under a launcher the executor's parent is the launcher's (slurmstepd),
//! not the runner: the executor takes EOF on its IPC stdin as "the runner
//! is gone", and the graceful part of a shutdown goes over IPC, since
//! signalling `srun` cancels the step at once (its task dies by SIGKILL).

use crate::config::Config;

/// A launcher, resolved from the config and `run --launcher`.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The prefix, with placeholders (`{id}`, `{slug}`, ...).
    pub argv: Vec<String>,
}

use crate::config::LAUNCHER_PRESETS as PRESETS;

fn slurm(config: &Config) -> Launcher {
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
    Launcher { argv }
}

/// The launcher of this run: `--launcher <preset>` beats the config.
pub fn resolve(config: &Config, flag: Option<&str>) -> Result<Option<Launcher>, String> {
    let named = flag
        .map(str::to_string)
        .or_else(|| config.launcher.preset.clone());
    match named.as_deref() {
        Some("slurm") => return Ok(Some(slurm(config))),
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(format!(
                "launcher {other:?}: no such preset; use one of {} (or orchestrator.launcher as a command line)",
                PRESETS.join(", ")
            ));
        }
        None => {}
    }
    Ok(config.launcher.command.as_ref().map(|c| {
        let mut argv = c.clone();
        argv.extend(config.launcher.args.iter().cloned());
        Launcher { argv }
    }))
}

/// The step a Slurm executor runs in, from its environment.
pub fn slurm_step() -> Option<(String, String)> {
    let job = std::env::var("SLURM_JOB_ID").ok()?;
    let step = std::env::var("SLURM_STEP_ID").unwrap_or_else(|_| "0".into());
    Some((job, step))
}

/// Cancel a Slurm step (the runner gave up on it).
pub fn scancel(job: &str, step: &str) {
    let target = format!("{job}.{step}");
    let _ = crate::process::ask(
        &["scancel", "--quiet", &target],
        std::path::Path::new("/"),
        std::time::Duration::from_secs(10),
    );
}

/// Slurm's words about a step it ended (cancelled, time limit, node
/// failure), from the end of the story's log, where `srun` writes them.
pub fn slurm_reason(log_tail: &str) -> Option<String> {
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
    }
}
