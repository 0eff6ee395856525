//! `tracer run`: start the program held before `exec`, attach to it, then let it go,
//! so not one event of its start-up is missed. The PID survives `exec`, and the
//! uprobes are bound to the executable's path and that PID.
//!
//! `std::process::Command` cannot do this: `spawn` waits for the child's `exec`, which
//! is exactly what the child is held back from. So fork and exec by hand.
use crate::cli::TraceOpts;
use anyhow::{bail, Context as _, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

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
    // SAFETY: the child only calls async-signal-safe functions (close, read, execv,
    // _exit) before exec.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above; everything the child touches was prepared before fork.
        unsafe {
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
    let pid = pid as u32;
    let release = Box::new(move || -> Result<()> {
        // SAFETY: write_fd is ours; one byte lets the child exec.
        let n = unsafe { libc::write(write_fd, b"g".as_ptr().cast(), 1) };
        // SAFETY: closing our fd.
        unsafe { libc::close(write_fd) };
        if n != 1 {
            bail!("releasing the child: {}", std::io::Error::last_os_error());
        }
        Ok(())
    });
    let result = crate::trace(&target, pid, opts, Some(release));
    if result.is_err() {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    } else if !exited(pid) {
        // The trace ended (--duration, Ctrl-C) with the program still running: the
        // run is over, as with `timeout`; a CI gate must not wait for a server.
        eprintln!("tracer: stopping PID {pid} (SIGTERM; SIGKILL after {STOP_GRACE:?})");
        stop(pid);
    }
    let mut status = 0;
    // SAFETY: reaping our own child.
    unsafe { libc::waitpid(pid as i32, &mut status, 0) };
    result
}

/// How long the program has to exit after SIGTERM.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The child has exited (it stays a zombie for the final `waitpid`).
fn exited(pid: u32) -> bool {
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
    // SAFETY: si_pid is set by waitid when a child changed state.
    r != 0 || unsafe { info.si_pid() } != 0
}

/// SIGTERM, then SIGKILL if the program is still there after `STOP_GRACE`.
fn stop(pid: u32) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + STOP_GRACE;
    while std::time::Instant::now() < deadline {
        if exited(pid) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
}

fn resolve(prog: &str) -> Result<PathBuf> {
    let p = PathBuf::from(prog);
    if p.components().count() > 1 {
        if !p.exists() {
            bail!("{prog}: no such file");
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|c| c.is_file())
        .with_context(|| format!("{prog}: not found in PATH"))
}
