//! The command layer: one file per command, each a thin `run` that reads
//! its arguments, calls the domain modules, and prints what they return.
//! Only these files (and `lib.rs`) print to stdout; the exit status comes
//! from `Error::code` in `lib.rs`.

pub mod add;
pub mod cost;
pub mod demo;
pub mod doctor;
pub mod init;
pub mod land;
pub mod logs;
pub mod merge;
pub mod pr;
pub mod prompt;
pub mod review;
pub mod run;
pub mod status;
pub mod trust;
pub mod worktrees;
