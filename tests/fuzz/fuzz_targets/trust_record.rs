//! Any text as a trust record (and as git config, which the git boundary
//! reads the same way): a checked value or a reason, never a panic; a
//! record accepted is one whose every command has a string key and value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        ai_sdlc::fuzzing::trust_record(text);
        ai_sdlc::fuzzing::git_config(text);
    }
});
