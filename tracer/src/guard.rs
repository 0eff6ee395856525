//! The exit hold's guardian: a small process that outlives the agent and resumes a
//! target the `runtime.exit` probe stopped, when the agent cannot.
//!
//! The hold is bounded three ways, so that no failure of the tracer leaves a
//! service stopped:
//! - the probe holds only while the agent's heartbeat (written every turn of its
//!   loop, and only while this guardian is alive) is fresh: a dead, stopped or
//!   stalled agent gets no hold at all;
//! - a hold older than `MAX_HOLD_NS` is ended here, whatever the agent is doing;
//! - when the agent dies (the pipe it holds closes: SIGKILL, OOM kill, crash) a
//!   pending hold is ended at once, and the guardian stays until the heartbeat has
//!   gone stale, then exits.
//!
//! SIGCONT goes through a pidfd, never a PID that may have been reused. The
//! guardian runs in a session of its own (Ctrl-Z and a terminal's hangup do not
//! reach it), is spared by the OOM killer, holds no probe (so an agent's death
//! still detaches everything), and never touches the target otherwise. It is the
//! tracer's own executable, started with [`GUARD_ARG`], so it is a clean
//! single-threaded process with exactly the three descriptors it needs.
use anyhow::{bail, Context as _, Result};
use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use tracer_common::exit_hold::{HEARTBEAT_MAX_NS, HELD_SINCE, MAX_HOLD_NS};

/// `argv[1]` of the guardian process.
pub const GUARD_ARG: &str = "--exit-hold-guardian";

/// Descriptor numbers in the guardian: the target's pidfd, the `EXIT_HOLD` map,
/// the read end of the agent's pipe.
const FD_TARGET: i32 = 3;
const FD_MAP: i32 = 4;
const FD_AGENT: i32 = 5;

/// What the agent writes into its pipe when it is done and no hold is pending.
const DONE: u8 = b'q';

/// The agent's side: the running guardian and the pipe whose closing tells it
/// the agent is gone.
pub struct Guardian {
    child: Child,
    pipe: Option<OwnedFd>,
}

impl Guardian {
    /// Starts the guardian for the target behind `pidfd`, watching `map` (the
    /// `EXIT_HOLD` map).
    pub fn start(
        pidfd: std::os::fd::BorrowedFd<'_>,
        map: std::os::fd::BorrowedFd<'_>,
        pid: u32,
    ) -> Result<Guardian> {
        let (read, write) = pipe()?;
        let fds = [
            dup(pidfd)?,
            dup(map)?,
            read, // moved into the child below
        ];
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmd = Command::new("/proc/self/exe");
        cmd.arg(GUARD_ARG)
            .arg(pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: only async-signal-safe calls (dup2, fcntl, setsid) between fork
        // and exec.
        unsafe {
            cmd.pre_exec(move || {
                // First to free numbers (F_DUPFD never overwrites one in use), then
                // onto 3, 4, 5, which may have been among the sources.
                let mut high = [0i32; 3];
                for (h, fd) in high.iter_mut().zip(&raw) {
                    *h = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                    if *h < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for (i, h) in high.iter().enumerate() {
                    // dup2 clears close-on-exec on the new descriptor.
                    if libc::dup2(*h, FD_TARGET + i as i32) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn().context("starting the exit-hold guardian")?;
        drop(fds);
        Ok(Guardian {
            child,
            pipe: Some(write),
        })
    }

    /// Whether the guardian still runs (the agent beats its heartbeat only then).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The agent is done: probes detached, target resumed. The guardian exits now
    /// instead of waiting out the heartbeat, and is reaped.
    pub fn finish(mut self) {
        if let Some(pipe) = self.pipe.take() {
            // SAFETY: writing one byte to our own pipe.
            unsafe { libc::write(pipe.as_raw_fd(), [DONE].as_ptr().cast(), 1) };
        }
        let _ = self.child.wait();
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: valid out-array of two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors we own.
    Ok(unsafe {
        use std::os::fd::FromRawFd as _;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    })
}

fn dup(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned().context("dup")
}

/// Sends SIGCONT through a pidfd: a PID could name another process by now.
pub fn resume(pidfd: impl AsFd) -> bool {
    // SAFETY: plain syscall on a descriptor we hold.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_fd().as_raw_fd(),
            libc::SIGCONT,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        ) == 0
    }
}

/// The guardian process's main: returns its exit code.
pub fn main(pid: &str) -> u8 {
    // Spared by the OOM killer (it is a few hundred kB): the agent may not be.
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    // SAFETY: prctl with a static NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"tracer-guard".as_ptr()) };
    let mut agent_gone: Option<u64> = None;
    let mut released = 0u64;
    loop {
        let now = crate::clock::monotonic_ns();
        let held = lookup(FD_MAP, HELD_SINCE).unwrap_or(0);
        let pending = held != 0 && held != released;
        if pending && (agent_gone.is_some() || now.saturating_sub(held) >= MAX_HOLD_NS) {
            // SAFETY: FD_TARGET is the pidfd the agent passed.
            let target = unsafe { std::os::fd::BorrowedFd::borrow_raw(FD_TARGET) };
            if resume(target) {
                released = held;
                let why = if agent_gone.is_some() {
                    "the tracer ended"
                } else {
                    "the tracer did not resume it in time"
                };
                // Not eprintln!: a closed stderr must not end the guardian.
                let _ = writeln!(
                    std::io::stderr(),
                    "tracer-guard: resumed PID {pid}, held at exit for {} ms ({why})",
                    now.saturating_sub(held) / 1_000_000
                );
            }
        }
        if let Some(gone) = agent_gone {
            // No new hold can start once the heartbeat is stale.
            if now.saturating_sub(gone) > HEARTBEAT_MAX_NS + 100_000_000 {
                return 0;
            }
        }
        // Wake for the agent's pipe, the target's exit, or the hold's deadline.
        let timeout_ms = if pending {
            (MAX_HOLD_NS.saturating_sub(now.saturating_sub(held)) / 1_000_000).clamp(1, 100)
        } else {
            100
        };
        let mut fds = [
            libc::pollfd {
                fd: FD_TARGET,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if agent_gone.is_some() { -1 } else { FD_AGENT },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: valid array of two pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms as i32) };
        if n <= 0 {
            continue;
        }
        if fds[0].revents != 0 {
            // The target is gone: nothing left to hold or resume.
            return 0;
        }
        if fds[1].revents != 0 {
            let mut b = [0u8; 1];
            // SAFETY: reading one byte from our pipe.
            let r = unsafe { libc::read(FD_AGENT, b.as_mut_ptr().cast(), 1) };
            if r == 1 && b[0] == DONE {
                return 0;
            }
            if r <= 0 {
                agent_gone = Some(crate::clock::monotonic_ns());
            }
        }
    }
}

/// One `u64` slot of an array map, by raw `bpf(BPF_MAP_LOOKUP_ELEM)`: the guardian
/// has the map's descriptor and nothing else of the loaded object.
fn lookup(map_fd: i32, index: u32) -> Option<u64> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let key = index;
    let mut value = 0u64;
    let attr = Attr {
        map_fd: map_fd as u32,
        _pad: 0,
        key: std::ptr::addr_of!(key) as u64,
        value: std::ptr::addr_of_mut!(value) as u64,
        flags: 0,
    };
    const BPF_MAP_LOOKUP_ELEM: i64 = 1;
    // SAFETY: a valid bpf_attr for MAP_LOOKUP_ELEM, pointers live for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_ELEM,
            std::ptr::addr_of!(attr),
            std::mem::size_of::<Attr>() as u32,
        )
    };
    (r == 0).then_some(value)
}
