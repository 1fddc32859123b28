//! Shutdown: SIGINT, SIGTERM and SIGHUP become a process-wide state that
//! both run modes and the executor poll (SPEC §6).
//!
//! Own self-pipe handler rather than the ctrlc crate: the exit code must say
//! which signal came (130 for SIGINT, 143 for SIGTERM), and ctrlc's handler
//! is not told. The handler only writes one byte; a thread does the rest.

use crossbeam_channel::{Receiver, Sender, bounded};
use std::io;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const FORCED: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(RUNNING);
static FIRST_SIGNAL: AtomicI32 = AtomicI32::new(0);
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; a full pipe drops the byte,
        // which is fine: the thread already has one to read.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
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

/// Ask for a stop from inside the program (the executor's stdin closed, or
/// the runner sent `shutdown`). A second request forces.
pub fn request(sig: libc::c_int) -> State {
    let _ = FIRST_SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    if STATE
        .compare_exchange(RUNNING, STOPPING, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        STATE.store(FORCED, Ordering::SeqCst);
    }
    let st = state();
    announce(st);
    st
}

/// Stop without counting toward "force": for soft causes like stdin EOF.
pub fn request_soft() {
    let _ = STATE.compare_exchange(RUNNING, STOPPING, Ordering::SeqCst, Ordering::SeqCst);
    announce(state());
}

/// The exit code of an interrupted run: 128 + the first signal (130, 143, 129).
pub fn exit_code() -> Option<i32> {
    match FIRST_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(128 + sig),
    }
}

/// Install the handlers. `notify` runs on the signal thread after each
/// signal, with the signal and the new state.
pub fn install(notify: impl Fn(libc::c_int, State) + Send + 'static) -> io::Result<()> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // SAFETY: set the write end non-blocking so the handler never blocks.
    unsafe {
        let flags = libc::fcntl(write_fd, libc::F_GETFL);
        libc::fcntl(write_fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    PIPE_WRITE.store(write_fd, Ordering::SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with our handler; SA_RESTART keeps other
        // threads' blocking reads from failing with EINTR.
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
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                let mut byte = 0u8;
                // SAFETY: read one byte into a local.
                let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
                if n == 1 {
                    let sig = libc::c_int::from(byte);
                    let st = request(sig);
                    notify(sig, st);
                } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                } else {
                    return;
                }
            }
        })?;
    Ok(())
}
