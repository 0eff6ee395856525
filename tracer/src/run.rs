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
