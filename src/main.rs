//! The `ai-sdlc` binary: everything lives in the library.

fn main() {
    ai_sdlc::main()
}
