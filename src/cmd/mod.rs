//! The command layer: one file per command, each a thin `run` that reads
//! its arguments, calls the domain modules, and prints what they return.
//! Only these files (and `lib.rs`) print to stdout; the exit status comes
//! from `Error::code` in `lib.rs`.

use crate::error::Error;

pub mod add;
pub mod cost;
pub mod demo;
pub mod doctor;
pub mod init;
pub mod land;
pub mod logs;
pub mod merge;
pub mod pick;
pub mod pr;
pub mod prompt;
pub mod review;
pub mod run;
pub mod status;
pub mod trust;
pub mod worktrees;

/// What a command that works through stories says (`merge`, `pr`): a line
/// per story for people, or, with `--json`, one value on stdout at the end.
pub struct Said {
    json: bool,
    stories: Vec<serde_json::Value>,
}

impl Said {
    pub fn new(json: bool) -> Said {
        Said {
            json,
            stories: Vec::new(),
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// A story's line, or its entry in the JSON.
    pub fn story(&mut self, text: String, entry: serde_json::Value) {
        if self.json {
            self.stories.push(entry);
        } else {
            outln!("{text}");
        }
    }

    /// An entry for the JSON only (what people read goes to stderr).
    pub fn record(&mut self, entry: serde_json::Value) {
        if self.json {
            self.stories.push(entry);
        }
    }

    /// With `--json`, `doc` with its `stories` printed; then `r`.
    pub fn end(self, mut doc: serde_json::Value, r: Result<(), Error>) -> Result<(), Error> {
        if self.json {
            doc["stories"] = self.stories.into();
            outln!("{doc}");
        }
        r
    }
}
