//! A story file (everything after the first line) and a new `status`
//! value (the first line): parsing never panics, an accepted patch parses
//! and is a fixed point.
#![no_main]
use libfuzzer_sys::{Corpus, fuzz_target};

fuzz_target!(|data: &[u8]| -> Corpus {
    let Ok(text) = std::str::from_utf8(data) else {
        return Corpus::Reject;
    };
    let (value, file) = text.split_once('\n').unwrap_or(("done", text));
    ai_sdlc::fuzzing::frontmatter(file, value);
    Corpus::Keep
});
