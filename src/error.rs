//! `Error`: why a command did not end well, for the user. `code()` is the
//! one place that turns it into an exit status (SPEC §7); modules say what
//! went wrong, never which number that is.

use std::fmt;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Error {
    /// A flag, an argument or a setting is wrong, or the config names
    /// something that cannot run: fix the command line or the config.
    Usage(String),
    /// The work was tried and failed.
    Failed(String),
    /// Some of the work failed and the command has already said what
    /// (a run's summary, doctor's list): nothing more to print.
    Reported,
    /// Stopped by a signal (SIGINT, SIGTERM, ...): nothing more to print.
    Interrupted(i32),
    /// Nothing failed, but the work is not done: try again later (a usage
    /// cap, `run --no-wait`); says when.
    TryLater(String),
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error::Failed(message.into())
    }

    /// The exit status (SPEC §7; `ai-sdlc help exit-codes`).
    pub fn code(&self) -> i32 {
        match self {
            Error::Failed(_) | Error::Reported => 1,
            Error::Usage(_) => 2,
            // EX_TEMPFAIL (sysexits.h).
            Error::TryLater(_) => 75,
            Error::Interrupted(sig) => 128 + sig,
        }
    }

    /// What to print, if anything is left to say.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Usage(m) | Error::Failed(m) | Error::TryLater(m) if !m.is_empty() => Some(m),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Interrupted(sig) => write!(f, "interrupted by signal {sig}"),
            Error::Reported => f.write_str("failed (see above)"),
            _ => f.write_str(self.message().unwrap_or("")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_error_has_its_exit_code() {
        assert_eq!(Error::failed("x").code(), 1);
        assert_eq!(Error::Reported.code(), 1);
        assert_eq!(Error::usage("x").code(), 2);
        assert_eq!(Error::TryLater("after 03:00".into()).code(), 75);
        assert_eq!(Error::Interrupted(libc::SIGINT).code(), 130);
        assert_eq!(Error::Interrupted(libc::SIGTERM).code(), 143);
        assert_eq!(Error::Reported.message(), None);
        assert_eq!(Error::usage("bad").message(), Some("bad"));
    }
}
