//! The target's life as the session sees it: the exit hold (heartbeat, resume
//! through the pidfd, the slot cleared only after), and an `exec` that replaces
//! the program. See "The exit hold" in docs/architecture.md; the guardian is
//! `crate::guard`.
use super::Session;
use crate::clock::monotonic_ns;
use crate::guard::Guardian;
use std::os::fd::{FromRawFd as _, OwnedFd};
use tracer_analysis::Input;

impl Session<'_> {
    /// Tells the kernel the agent is alive, so it may hold the target at exit:
    /// only while the guardian runs, which ends a hold the agent cannot.
    pub fn beat(&mut self) {
        let guarded = self.guardian.as_mut().is_some_and(Guardian::alive);
        if let Some(p) = self.probes.as_mut() {
            p.beat(if guarded { monotonic_ns() } else { 0 });
        }
    }

    /// Resumes a target the kernel stopped at exit, then clears the hold: a
    /// guardian that finds it set after the agent died resumes the target.
    pub(super) fn resume_target(&mut self) {
        if std::mem::take(&mut self.stopped_pending) {
            if let Some(fd) = &self.signal_fd {
                crate::guard::resume(fd);
            }
            if let Some(p) = self.probes.as_mut() {
                p.clear_exit_hold();
            }
        }
    }

    /// Whether the target replaced its program since the last call: its
    /// executable is no longer the one traced (nor, in run mode, the tracer's own
    /// image, which the held child has until it execs).
    pub(super) fn check_exec(&mut self) {
        if self.execed.is_some() {
            return;
        }
        let proc_exe = format!("/proc/{}/exe", self.pid);
        let Some(now) = file_id(std::path::Path::new(&proc_exe)) else {
            return;
        };
        let Some(was) = self.exe_id else {
            return;
        };
        if now == was
            || (self.run_mode && file_id(std::path::Path::new("/proc/self/exe")) == Some(now))
        {
            return;
        }
        let new = std::fs::read_link(&proc_exe).unwrap_or_default();
        say!(
            "tracer: PID {} exec'd {}: the goroutines traced so far are gone{}",
            self.pid,
            new.display(),
            if self.run_mode {
                "; waiting for the program to end"
            } else {
                "; stopping (attach again to trace the new program)"
            }
        );
        // The old image's goroutines ended with it: none is parked any more.
        self.analyzer.apply(Input::Snapshot {
            ts_ns: monotonic_ns(),
            parked: Vec::new(),
            total_goroutines: 0,
            alive: Some(Vec::new()),
            still_parked: Vec::new(),
        });
        self.execed = Some(new);
    }
}

/// (device, inode) of a file, following links.
pub(super) fn file_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether a pidfd says its process has exited, without waiting.
pub(super) fn readable_now(fd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd as _;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no wait.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

/// Opened when the session is created, before anyone is told the tracer is
/// attached: a target that dies after that point is still seen to exit (a pidfd
/// becomes readable when its process exits: no polling of /proc). `Err` means the
/// process is already gone.
pub(super) fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is owned below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
