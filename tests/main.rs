//! The black-box tests: the real binary against real git repos, scripted
//! agents, real signals. One test binary; one module per area.

mod support;

mod architecture;
mod attempts;

mod dashboard;
mod demo;
mod executor;
mod first_hour;
mod hardening;
mod isolation;
mod land;
mod limits;
mod manage;
mod orchestrator;
mod presets;
mod real_cli;
mod run_single;
mod slurm;
mod trust;
mod ts_board;
mod workflow;
mod worktree_env;
