//! The low-level process rules in one place: process groups, PDEATHSIG,
//! signalling a group, and finding a group's members in /proc.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;
use wait_timeout::ChildExt;

/// The variable that carries the runner's pid to the executor.
pub const RUNNER_PID_VAR: &str = "AI_SDLC_RUNNER_PID";

/// For a process started without a pre_exec hook (so std can posix_spawn
/// it): ask for `death_signal` when the parent thread dies, then make sure
/// the parent named in `RUNNER_PID_VAR` is still the parent. False when it
/// is already gone: the caller should exit at once.
pub fn die_with_parent(death_signal: libc::c_int) -> bool {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            death_signal as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    match std::env::var(RUNNER_PID_VAR)
        .ok()
        .and_then(|p| p.parse::<libc::pid_t>().ok())
    {
        // SAFETY: trivial getter.
        Some(parent) => (unsafe { libc::getppid() }) == parent,
        None => true,
    }
}

/// Send `sig` to process group `pgid`. False when the group is gone.
pub fn signal_group(pgid: u32, sig: libc::c_int) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill has no memory effects; a negative pid addresses the group.
    unsafe { libc::kill(-(pgid as libc::pid_t), sig) == 0 }
}

/// The pids of the live processes in process group `pgid` (from /proc).
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| stat_field(&stat, 5))
                .is_some_and(|g| g == pgid as u64)
        })
        .collect()
}

/// Field `n` (1-based, as in proc(5)) of a /proc/<pid>/stat line. The
/// command name may hold spaces and parentheses, so count from its last `)`.
pub fn stat_field(stat: &str, n: usize) -> Option<u64> {
    let after = stat.get(stat.rfind(')')? + 2..)?;
    // Field 3 (state) is the first after the name.
    after.split(' ').nth(n - 3)?.parse().ok()
}

/// Signal every process of this process's own group except this process:
/// how the executor stops the agents that share its group.
pub fn signal_own_group_except_self(sig: libc::c_int) -> usize {
    // SAFETY: trivial getters.
    let (me, group) = unsafe { (libc::getpid() as u32, libc::getpgrp() as u32) };
    let mut n = 0;
    for pid in group_members(group) {
        // SAFETY: kill has no memory effects.
        if pid != me && unsafe { libc::kill(pid as libc::pid_t, sig) } == 0 {
            n += 1;
        }
    }
    n
}

/// Give up the controlling terminal (this process is not a session
/// leader, so nothing else is affected): agents started from here cannot
/// open /dev/tty to ask a question nobody would answer.
pub fn drop_controlling_terminal() {
    // SAFETY: open, ioctl and close on a descriptor we own.
    unsafe {
        let fd = libc::open(
            c"/dev/tty".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            libc::ioctl(fd, libc::TIOCNOTTY);
            libc::close(fd);
        }
    }
}

/// Adopt this process's orphaned descendants (an agent's `sleep 300 &`
/// after the agent exits), so `descendants` still finds them.
pub fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Every live descendant of this process, walking
/// `/proc/<pid>/task/<tid>/children`; `None` when the kernel lacks them.
pub fn descendants() -> Option<Vec<u32>> {
    let me = std::process::id();
    // The kernel has the files (CONFIG_PROC_CHILDREN) if the main thread's is there.
    std::fs::metadata(format!("/proc/{me}/task/{me}/children")).ok()?;
    let mut found = Vec::new();
    let mut stack = vec![me];
    while let Some(pid) = stack.pop() {
        // A process or thread that ended meanwhile has nothing below it.
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for child in children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
            {
                found.push(child);
                stack.push(child);
            }
        }
    }
    Some(found)
}

/// Signal every descendant of this process (or, without
/// `/proc/.../children`, every other member of its group). With `reap`,
/// also reaps those that are its own children (adopted orphans), so no
/// zombie stays behind: only when no `Child` handle still waits for them.
pub fn signal_descendants(sig: libc::c_int, reap: bool) -> usize {
    let Some(pids) = descendants() else {
        return signal_own_group_except_self(sig);
    };
    for &pid in &pids {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }
    if reap {
        for &pid in &pids {
            // Only our own (adopted) children can be reaped; others give ECHILD at once.
            for _ in 0..100 {
                // SAFETY: waitpid on one pid, status not needed.
                let r = unsafe {
                    libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG)
                };
                if r != 0 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }
    pids.len()
}

/// Live processes whose working directory is `dir` or below it (from
/// /proc): an agent still at work in a story's worktree.
pub fn working_in(dir: &Path) -> Vec<u32> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir))
        })
        .collect()
}

/// Read a pipe to its end on a thread (a child that prints more than a
/// pipe holds must not block while it is waited for), keeping at most its
/// last `ASK_KEEP` bytes.
fn drain(pipe: impl std::io::Read + Send + 'static) -> Option<JoinHandle<Vec<u8>>> {
    std::thread::Builder::new()
        .name("drain".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut pipe = pipe;
            let mut kept: Vec<u8> = Vec::new();
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        kept.extend_from_slice(&buf[..n]);
                        if kept.len() > 2 * ASK_KEEP {
                            kept.drain(..kept.len() - ASK_KEEP);
                        }
                    }
                }
            }
            if kept.len() > ASK_KEEP {
                kept.drain(..kept.len() - ASK_KEEP);
            }
            kept
        })
        .ok()
}

/// What `ask` keeps of each of a command's streams: its end.
const ASK_KEEP: usize = 256 << 10;

/// What a command said: its exit code (`None`: killed by a signal) and its
/// stdout followed by its stderr.
pub struct Answer {
    pub code: Option<i32>,
    pub text: String,
}

/// Run `argv` in `dir` (stdin closed, its own process group) for at most
/// `limit`, or until a stop (Ctrl-C), and collect what it said (the end of
/// each stream): for asking a CLI a question (its version, whether it is
/// logged in), or a short check.
pub fn ask(argv: &[&str], dir: &Path, limit: Duration) -> Result<Answer, String> {
    let shown = argv.join(" ");
    let mut child = Command::new(argv.first().ok_or("nothing to run")?)
        .args(&argv[1..])
        .current_dir(dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let (out, err) = (
        child.stdout.take().and_then(drain),
        child.stderr.take().and_then(drain),
    );
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.wait_timeout(Duration::from_millis(100)) {
            Ok(Some(st)) => break st,
            Ok(None) if std::time::Instant::now() < deadline && !crate::shutdown::stopping() => {}
            other => {
                signal_group(child.id(), libc::SIGKILL);
                let _ = child.wait();
                return Err(match other {
                    Ok(None) if crate::shutdown::stopping() => format!("{shown}: stopped"),
                    _ => format!("{shown} did not answer within {} s", limit.as_secs()),
                });
            }
        }
    };
    let text = [out, err]
        .into_iter()
        .map(|h| {
            let bytes = h.and_then(|h| h.join().ok()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Answer {
        code: status.code(),
        text,
    })
}

/// The last line of a CLI's answer that says something (warnings come first).
pub fn last_word(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("WARNING"))
        .unwrap_or("")
}

/// This process's resident set size in KiB.
pub fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

/// How a process ended, for people: "exited with code 3", "was killed by SIGKILL".
pub fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(sig)) => format!("was killed by {}", signal_name(sig)),
        _ => format!("ended: {status}"),
    }
}

/// Is `program` an executable file in a folder of PATH?
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            dir.join(program).metadata().is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

/// Is `program` something we can start? (On PATH, or a path that exists.)
pub fn findable(program: &str, root: &Path) -> bool {
    if program.contains('/') {
        return root.join(program).exists();
    }
    on_path(program)
}

/// A signal's name for people: `SIGKILL`.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

/// This machine's host name (for people: where a story runs).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let stat = "1234 (a b) c)) S 1 1234 1234 0 -1";
        assert_eq!(stat_field(stat, 4), Some(1));
        assert_eq!(stat_field(stat, 5), Some(1234));
        assert_eq!(stat_field("1 (x)", 4), None);
        assert_eq!(stat_field("1 (x", 4), None);
    }

    #[test]
    fn finds_this_process_in_its_group() {
        let me = std::process::id();
        let group = unsafe { libc::getpgrp() } as u32;
        assert!(group_members(group).contains(&me));
        assert!(rss_kb() > 0);
    }
}
