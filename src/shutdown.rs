//! Shutdown: SIGINT, SIGTERM, SIGHUP and SIGQUIT become a process-wide
//! state that both run modes and the executor poll (SPEC §6).
//!
//! The `ctrlc` crate (feature `termination`) delivers the signals to a
//! thread. It does not say which signal came, and the exit code must (130
//! for SIGINT, 143 for SIGTERM, 131 for SIGQUIT), so a small addition sits
//! in front of it: a handler that records the signal number in an atomic
//! and then calls ctrlc's own handler. The same handler takes SIGQUIT, which
//! ctrlc does not cover, so it stops a run gracefully like SIGTERM.

use crossbeam_channel::{Receiver, Sender, bounded};
use std::io;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const FORCED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(RUNNING);
static FIRST_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Stop signals seen so far.
static SIGNALS_SEEN: AtomicU8 = AtomicU8::new(0);
static LAST_SIGNAL: AtomicI32 = AtomicI32::new(libc::SIGINT);
/// ctrlc's handler, which wakes its thread.
static CTRLC_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// The stop signals, in the order they are installed.
const SIGNALS: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

extern "C" fn on_signal(sig: libc::c_int) {
    // Atomics and a call of ctrlc's handler (a semaphore post): all
    // async-signal-safe, and none touches errno.
    let _ = FIRST_SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    LAST_SIGNAL.store(sig, Ordering::SeqCst);
    let handler = CTRLC_HANDLER.load(Ordering::SeqCst);
    if handler != 0 {
        // SAFETY: the address was read from the SIGINT action ctrlc
        // installed, a plain `extern "C" fn(c_int)` handler (no SA_SIGINFO).
        let forward: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        forward(sig);
    }
}

/// Channels that close when the state moves on, so a waiting thread can
/// `select!` on them instead of polling the state.
struct Wake {
    stop: Mutex<Option<Sender<()>>>,
    force: Mutex<Option<Sender<()>>>,
    on_stop: Receiver<()>,
    on_force: Receiver<()>,
}

static WAKE: OnceLock<Wake> = OnceLock::new();

fn wake() -> &'static Wake {
    WAKE.get_or_init(|| {
        let (stop, on_stop) = bounded(0);
        let (force, on_force) = bounded(0);
        Wake {
            stop: Mutex::new(Some(stop)),
            force: Mutex::new(Some(force)),
            on_stop,
            on_force,
        }
    })
}

/// Ready (disconnected) once a stop is requested.
pub fn on_stop() -> Receiver<()> {
    wake().on_stop.clone()
}

/// Ready (disconnected) once a forced stop is requested.
pub fn on_force() -> Receiver<()> {
    wake().on_force.clone()
}

fn announce(state: State) {
    let w = wake();
    if state != State::Running {
        w.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
    if state == State::Forced {
        w.force.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// What the process has been asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    /// Stop: no new work; SIGTERM, then SIGKILL after the grace period.
    Stopping,
    /// Stop now: SIGKILL.
    Forced,
}

pub fn state() -> State {
    match STATE.load(Ordering::SeqCst) {
        RUNNING => State::Running,
        STOPPING => State::Stopping,
        _ => State::Forced,
    }
}

pub fn stopping() -> bool {
    state() != State::Running
}

/// A stop signal came (the handler thread calls this once per signal):
/// the first one stops, the second forces. Soft requests do not count, so
/// a `shutdown` message followed by the runner's SIGTERM is one stop, in
/// whichever order they arrive.
pub fn request(sig: libc::c_int) -> State {
    let _ = FIRST_SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    if SIGNALS_SEEN.fetch_add(1, Ordering::SeqCst) == 0 {
        let _ = STATE.compare_exchange(RUNNING, STOPPING, Ordering::SeqCst, Ordering::SeqCst);
    } else {
        STATE.store(FORCED, Ordering::SeqCst);
    }
    let st = state();
    announce(st);
    st
}

/// Stop without counting toward "force": for soft causes like stdin EOF,
/// or the runner's `shutdown` message.
pub fn request_soft() {
    let _ = STATE.compare_exchange(RUNNING, STOPPING, Ordering::SeqCst, Ordering::SeqCst);
    announce(state());
}

/// The exit code of an interrupted run: 128 + the first signal (130, 143, 129, 131).
pub fn exit_code() -> Option<i32> {
    match FIRST_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(128 + sig),
    }
}

/// What runs on ctrlc's thread after each signal: the latest `install`'s.
type Notify = Box<dyn Fn(libc::c_int, State) + Send>;
static NOTIFY: Mutex<Option<Notify>> = Mutex::new(None);
static INSTALLED: OnceLock<io::Result<()>> = OnceLock::new();

/// Install the handlers (once per process; a later call only replaces
/// `notify`). `notify` runs on ctrlc's thread after each signal, with the
/// signal and the new state.
pub fn install(notify: impl Fn(libc::c_int, State) + Send + 'static) -> io::Result<()> {
    *NOTIFY.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(notify));
    match INSTALLED.get_or_init(install_handlers) {
        Ok(()) => Ok(()),
        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
    }
}

fn install_handlers() -> io::Result<()> {
    ctrlc::set_handler(move || {
        let sig = LAST_SIGNAL.load(Ordering::SeqCst);
        let st = request(sig);
        if let Some(n) = NOTIFY.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            n(sig, st);
        }
    })
    .map_err(io::Error::other)?;
    // SAFETY: read the SIGINT action that ctrlc just installed.
    let ctrlc_handler = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old) != 0 {
            return Err(io::Error::last_os_error());
        }
        old.sa_sigaction
    };
    if ctrlc_handler == libc::SIG_DFL || ctrlc_handler == libc::SIG_IGN {
        return Err(io::Error::other("ctrlc installed no SIGINT handler"));
    }
    CTRLC_HANDLER.store(ctrlc_handler, Ordering::SeqCst);
    for sig in SIGNALS {
        // SAFETY: a zeroed sigaction with our handler; SA_RESTART keeps other
        // threads' blocking reads from failing with EINTR, as ctrlc's does.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
