//! A hostile repo, story or agent (issue "Hardening"): nothing escapes the
//! board and the worktree base, nothing an agent made is lost, no story runs
//! twice, no story file is corrupted, nothing grows without bound or hangs.

//!
//! One file per area.

mod claims;
mod files;
mod git;
mod input;
mod processes;
mod trust;
