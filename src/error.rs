//! `Failure`: an error for the user, with the exit code it maps to (SPEC §7).

use std::fmt;

#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;

impl Failure {
    /// Usage or configuration error: exit 2.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// The work failed: exit 1.
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILED,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::config::ConfigError> for Failure {
    fn from(e: crate::config::ConfigError) -> Failure {
        Failure::usage(e.0)
    }
}

/// What a command returns: its exit code, or a failure to report.
pub type Outcome = Result<i32, Failure>;
