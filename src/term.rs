//! The terminal: what may be shown on it (`printable`), whether stderr or
//! stdout is one, its width, and the print macros every command uses.
//!
//! Printing never panics: a reader that went away (`ai-sdlc run 2>&1 |
//! head -1`) is not a reason to abort a run with stories in flight. The
//! std macros panic on EPIPE; `lib.rs` denies them, and these ignore a
//! closed stream. What they print is made printable first: a story title
//! or an agent's line may hold terminal escape sequences.

/// `println!` that ignores a closed stdout.
macro_rules! outln {
    () => {
        outln!("")
    };
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = $crate::term::printable(&format!($($arg)*)).into_owned();
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }};
}

/// `eprintln!` that ignores a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = $crate::term::printable(&format!($($arg)*)).into_owned();
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }};
}

/// `eprint!` that ignores a closed stderr.
macro_rules! errput {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = $crate::term::printable(&format!($($arg)*)).into_owned();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        let _ = err.flush();
    }};
}

/// `s` safe to show on a terminal: control characters (the escape that
/// starts a terminal sequence among them, and the bidi overrides that make
/// text read other than it is) become `?`; newlines and tabs stay.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if s.chars().any(bad) {
        std::borrow::Cow::Owned(s.chars().map(|c| if bad(c) { '?' } else { c }).collect())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

/// Is stdout a terminal?
pub fn stdout_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(libc::STDOUT_FILENO) == 1 }
}

/// Is stderr a terminal that can show the dashboard?
pub fn stderr_is_terminal() -> bool {
    // SAFETY: isatty only inspects the descriptor.
    let tty = unsafe { libc::isatty(libc::STDERR_FILENO) } == 1;
    tty && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// The terminal's width in columns, when stderr is a terminal.
pub fn terminal_width() -> Option<usize> {
    if !stderr_is_terminal() {
        return None;
    }
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    Some(if ok && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    })
}
