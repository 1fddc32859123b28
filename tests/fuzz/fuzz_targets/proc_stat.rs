//! Any text as a /proc/<pid>/stat line: no panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        ai_sdlc::fuzzing::proc_stat(line);
    }
});
