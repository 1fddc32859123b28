//! `ai-sdlc trust [--show]` and `ai-sdlc untrust`: record, show or forget
//! the commands this repo's config may run (SPEC §13).

use crate::config::Config;
use crate::error::Error;
use crate::trust::{commands, forget, record, untrusted};
use std::path::Path;

/// `ai-sdlc trust [--show]`.
pub fn run(config: &Config, show_only: bool, json: bool) -> Result<(), Error> {
    if json && !show_only {
        return Err(Error::usage(
            "trust --json goes with --show: `ai-sdlc trust --show --json`",
        ));
    }
    let cmds = commands(config);
    if json {
        let missing = untrusted(&config.root, &cmds).map_err(Error::usage)?;
        let list: Vec<serde_json::Value> = cmds
            .iter()
            .map(|c| {
                serde_json::json!({
                    "key": c.key,
                    "command": c.shown,
                    "trusted": !missing.iter().any(|(m, _)| m == c),
                })
            })
            .collect();
        outln!("{}", serde_json::Value::from(list));
        return Ok(());
    }
    if cmds.is_empty() {
        outln!(
            "{} names no command ai-sdlc would run (no agent, no phase command): nothing to trust",
            config.file_name()
        );
        return Ok(());
    }
    let mut missing = untrusted(&config.root, &cmds).map_err(Error::usage)?;
    let recorded_in = if show_only {
        None
    } else {
        missing.clear();
        Some(record(&config.root, &cmds).map_err(Error::failed)?)
    };
    for c in &cmds {
        let state = if missing.iter().any(|(m, _)| m == c) {
            "untrusted"
        } else {
            "trusted  "
        };
        outln!("{state}  {}: {}", c.key, c.shown);
    }
    match recorded_in {
        None if !missing.is_empty() => {
            errln!("ai-sdlc: `ai-sdlc trust` records them as trusted for this repo")
        }
        None => {}
        Some(path) => errln!(
            "ai-sdlc: trusted {} for {} (recorded in {})",
            if cmds.len() == 1 {
                "this command".to_string()
            } else {
                format!("these {} commands", cmds.len())
            },
            config.root.display(),
            path.display()
        ),
    }
    Ok(())
}

/// `ai-sdlc untrust`.
pub fn untrust(root: &Path) -> Result<(), Error> {
    if forget(root).map_err(Error::failed)? {
        errln!("ai-sdlc: forgot the trusted commands of {}", root.display());
    } else {
        errln!("ai-sdlc: nothing was trusted for {}", root.display());
    }
    Ok(())
}
