//! Any bytes from a child, read as IPC lines with a small limit (the first
//! byte): no panic, no line over the limit, every line decoded or refused.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (max, input) = data.split_first().map_or((16, data), |(m, rest)| (*m as usize, rest));
    ai_sdlc::fuzzing::ipc_lines(input, max);
});
