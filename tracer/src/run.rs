//! `tracer run`: start the program held before `exec`, attach to it, then let it go,
//! so not one event of its start-up is missed. The PID survives `exec`, and the
//! uprobes are bound to the executable's path and that PID.
//!
//! `std::process::Command` cannot do this: `spawn` waits for the child's `exec`, which
//! is exactly what the child is held back from. So fork and exec by hand.
use crate::cli::TraceOpts;
use crate::session::Stop;
use anyhow::{bail, Context as _, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;
use tracer_analysis::ProgramEnd;

pub fn run(command: &[String], opts: TraceOpts) -> Result<u8> {
    let program = resolve(&command[0])?;
    let target = tracer_inspect::TargetInfo::from_path(&program)?;
    let path = CString::new(program.as_os_str().as_bytes()).context("program path")?;
    let argv: Vec<CString> = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .context("argument with a NUL byte")?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());

    let mut fds = [0i32; 2];
    // SAFETY: valid out-array of two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!(
            "creating the start pipe: {}",
            std::io::Error::last_os_error()
        );
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    // SAFETY: getpid has no preconditions.
    let tracer_pid = unsafe { libc::getpid() };
    // SAFETY: the child only calls async-signal-safe functions (prctl, getppid,
    // close, read, execv, _exit) before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; everything the child touches was prepared before fork.
        unsafe {
            // The program never outlives a tracer that dies (SIGKILL, OOM kill):
            // nobody would be left to stop it, or to report on it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The tracer's ambient capabilities (setpriv, a systemd unit) are not
            // the program's to have.
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            );
            if libc::getppid() != tracer_pid {
                libc::_exit(127);
            }
            libc::close(write_fd);
            let mut b = [0u8; 1];
            if libc::read(read_fd, b.as_mut_ptr().cast(), 1) == 1 {
                libc::execv(path.as_ptr(), argv_ptrs.as_ptr());
            }
            libc::_exit(127);
        }
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(read_fd) };
    // Where a PIE is loaded is known once the child has exec'd it.
    let target = target.with_pid(pid as u32);
    let mut child = Child {
        pid: pid as u32,
        start: Some(write_fd),
    };
    let result = crate::trace::trace(&target, child.pid, opts, Some(&mut child), None);
    let code = match &result {
        Err(_) => {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            0
        }
        // Precedence: the reader went away; a finding matched --fail-on; the
        // program's own status; success.
        Ok(t) if t.output_closed => crate::EXIT_CLOSED_OUTPUT,
        Ok(t) if t.fail => 1,
        Ok(t) => t.program.as_ref().and_then(ProgramEnd::status).unwrap_or(0),
    };
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    result.map(|_| code)
}

/// How long the program has to exit after SIGTERM when tracing ends first.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a program seen exiting may take to be gone (its exit was held, or it
/// is flushing): then it is killed.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The held child.
struct Child {
    pid: u32,
    /// The pipe's write end: one byte lets the child exec.
    start: Option<i32>,
}

impl crate::trace::Program for Child {
    fn release(&mut self) -> Result<()> {
        let Some(fd) = self.start.take() else {
            return Ok(());
        };
        // SAFETY: fd is ours; one byte lets the child exec.
        let n = unsafe { libc::write(fd, b"g".as_ptr().cast(), 1) };
        // SAFETY: closing our fd.
        unsafe { libc::close(fd) };
        if n != 1 {
            bail!("releasing the child: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn end(&mut self, stop: Stop) -> ProgramEnd {
        if let Some(fd) = self.start.take() {
            // Never released: closing the pipe makes the child exit.
            // SAFETY: closing our fd.
            unsafe { libc::close(fd) };
        }
        if stop == Stop::TargetExited {
            if let Some(end) = wait_exit(self.pid, EXIT_GRACE) {
                return end;
            }
        } else if let Some(end) = exit_status(self.pid) {
            // It ended by itself as tracing stopped: its own status stands.
            return end;
        }
        // The trace ended (--duration, Ctrl-C, a closed output) with the program
        // still running: the run is over, as with `timeout`; a CI gate must not
        // wait for a server.
        say!(
            "tracer: stopping PID {} (SIGTERM; SIGKILL after {STOP_GRACE:?})",
            self.pid
        );
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let mut signal = libc::SIGTERM;
        if wait_exit(self.pid, STOP_GRACE).is_none() {
            say!(
                "tracer: PID {} did not exit within {STOP_GRACE:?} of SIGTERM: SIGKILL",
                self.pid
            );
            // SAFETY: signalling our own child.
            unsafe { libc::kill(self.pid as i32, libc::SIGKILL) };
            signal = libc::SIGKILL;
            let _ = wait_exit(self.pid, EXIT_GRACE);
        }
        ProgramEnd::StoppedByTracer {
            signal,
            signal_name: signal_name(signal),
        }
    }
}

/// Waits up to `limit` for the child to exit; its end if it did.
fn wait_exit(pid: u32, limit: std::time::Duration) -> Option<ProgramEnd> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(end) = exit_status(pid) {
            return Some(end);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How the child ended, if it has (it stays a zombie for the final `waitpid`).
fn exit_status(pid: u32) -> Option<ProgramEnd> {
    // SAFETY: a zeroed siginfo_t is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waiting on our own child, without reaping it.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: si_pid and si_status are set by waitid when a child changed state.
    let (si_pid, si_status) = unsafe { (info.si_pid(), info.si_status()) };
    if r != 0 || si_pid == 0 {
        return None;
    }
    Some(if info.si_code == libc::CLD_EXITED {
        ProgramEnd::Exited {
            exit_code: si_status,
        }
    } else {
        ProgramEnd::Killed {
            signal: si_status,
            signal_name: signal_name(si_status),
        }
    })
}

fn signal_name(sig: i32) -> String {
    let abbrev = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {sig}"),
    };
    abbrev.to_string()
}

/// The program to run, found the way `execvp` finds it (a name with a `/` as is,
/// otherwise the first executable regular file of that name in `PATH`), and checked
/// up front: a directory or a file without an execute bit is refused here, with a
/// message, rather than failing `exec` in the child after the probes went in.
fn resolve(prog: &str) -> Result<PathBuf> {
    /// A regular file this process may execute, or why not (`shown` names it).
    fn runnable(shown: &str, path: &std::path::Path, meta: &std::fs::Metadata) -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.is_dir() {
            bail!("{shown} is a directory, not a program");
        }
        if !meta.is_file() {
            bail!("{shown} is not a regular file, not a program");
        }
        if meta.permissions().mode() & 0o111 == 0 {
            bail!("{shown} is not executable (chmod +x {shown})");
        }
        let c_path =
            CString::new(path.as_os_str().as_bytes()).context("program path with a NUL byte")?;
        // SAFETY: a valid NUL-terminated path; faccessat only reads it.
        let r = unsafe {
            libc::faccessat(
                libc::AT_FDCWD,
                c_path.as_ptr(),
                libc::X_OK,
                libc::AT_EACCESS,
            )
        };
        if r != 0 {
            bail!(
                "{shown} is not executable by this user: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(())
    }

    if prog.is_empty() {
        bail!("the program to run is an empty string");
    }
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        let meta = match std::fs::metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("{prog}: no such file"),
            Err(e) => return Err(e).with_context(|| prog.to_string()),
        };
        runnable(prog, &p, &meta)?;
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut skipped = None;
    for dir in std::env::split_paths(&path) {
        let c = dir.join(prog);
        let Ok(meta) = std::fs::metadata(&c) else {
            continue;
        };
        match runnable(&c.to_string_lossy(), &c, &meta) {
            Ok(()) => return Ok(c),
            Err(e) if skipped.is_none() && meta.is_file() => skipped = Some(e),
            Err(_) => {}
        }
    }
    if let Some(e) = skipped {
        bail!("{prog}: not found in PATH ({e})");
    }
    let here = PathBuf::from(".").join(prog);
    if let Ok(meta) = std::fs::metadata(&here) {
        match runnable(&here.to_string_lossy(), &here, &meta) {
            Ok(()) => bail!("{prog}: not found in PATH (to run the one here, write ./{prog})"),
            Err(e) => bail!("{prog}: not found in PATH ({e})"),
        }
    }
    bail!("{prog}: not found in PATH")
}
