//! Up-front checks that turn "operation not permitted" deep inside a BPF syscall (or a
//! target left stopped at exit) into one line naming the capabilities that are missing.
//!
//! What each mode needs, as measured on Linux 6.18 (uid 65534 with ambient capabilities):
//!
//! - every mode but snapshot: `CAP_BPF` + `CAP_PERFMON` to create the maps and load
//!   the programs, and `CAP_SYS_ADMIN` for the single uprobes (`runtime.exit`,
//!   `semacquire1`, the `--events` probes): the kernel's uprobe PMU refuses
//!   `perf_event_open` without it since Linux 6.16 (ba677dbe77af, backported to the
//!   stable kernels in July 2025; `CAP_PERFMON` was enough before). `CAP_SYS_ADMIN`
//!   implies the other two. Multi-uprobe links (park call sites, `ready`, lock sites)
//!   need only `CAP_BPF` + `CAP_PERFMON`.
//! - a process of another user (attach): `CAP_SYS_PTRACE` to read `/proc/PID/exe`,
//!   `/proc/PID/maps` and its memory (`process_vm_readv`); `CAP_DAC_READ_SEARCH` when
//!   its executable is not readable by this user; and, in the live modes, `CAP_KILL`
//!   to resume it with SIGCONT after the exit probe stopped it (else it stays
//!   stopped), unless it is in the tracer's session.
//! - `tracer run`: its child is the tracer's own, so nothing beyond the probes'.
//!
//! `RLIMIT_MEMLOCK` does not matter (BPF memory is charged to the memory cgroup since
//! Linux 5.11), nor does `perf_event_paranoid` once `CAP_PERFMON` is held.
use crate::cli::Mode;
use anyhow::{bail, Result};

/// What is traced: a running process, or the program `tracer run` starts (the
/// tracer's own child: nothing to check about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Pid(u32),
    Child,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    DacReadSearch = 2,
    Kill = 5,
    SysPtrace = 19,
    SysAdmin = 21,
    Perfmon = 38,
    Bpf = 39,
}

impl Cap {
    fn name(self) -> &'static str {
        match self {
            Cap::DacReadSearch => "CAP_DAC_READ_SEARCH",
            Cap::Kill => "CAP_KILL",
            Cap::SysPtrace => "CAP_SYS_PTRACE",
            Cap::SysAdmin => "CAP_SYS_ADMIN",
            Cap::Perfmon => "CAP_PERFMON",
            Cap::Bpf => "CAP_BPF",
        }
    }
}

/// Whether this process may trace `target` in `mode`; the error names every missing
/// capability and what it is for, on one line.
pub fn check_for(mode: Mode, target: Target) -> Result<()> {
    check_with(mode, target, true)
}

fn check_with(mode: Mode, target: Target, show_mode: bool) -> Result<()> {
    let probes = mode != Mode::Snapshot;
    if probes && !std::path::Path::new(UPROBE_TYPE).exists() {
        bail!(
            "this kernel has no uprobe support (CONFIG_UPROBES / CONFIG_UPROBE_EVENTS); tracer cannot work here"
        );
    }
    let caps = effective_caps().unwrap_or(0);
    let has = |c: Cap| caps & (1u64 << c as u32) != 0;
    let mut missing: Vec<(Cap, String)> = Vec::new();
    if probes {
        if !uprobes_allowed() {
            // CAP_SYS_ADMIN also stands for CAP_BPF and CAP_PERFMON.
            missing.push((Cap::SysAdmin, "to place uprobes".into()));
        } else {
            for (cap, why) in [
                (Cap::Bpf, "to load the eBPF programs"),
                (Cap::Perfmon, "to load tracing programs"),
            ] {
                if !has(cap) && !has(Cap::SysAdmin) {
                    missing.push((cap, why.into()));
                }
            }
        }
    }
    if let Target::Pid(pid) = target {
        for (cap, why) in target_needs(pid, probes) {
            if !has(cap) {
                missing.push((cap, why));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    bail!("{}", message(show_mode.then_some(mode), target, &missing))
}

fn message(mode: Option<Mode>, target: Target, missing: &[(Cap, String)]) -> String {
    let mut what = String::new();
    if let Some(mode) = mode {
        what = format!(" for --mode {}", format!("{mode:?}").to_lowercase());
    }
    if let Target::Pid(pid) = target {
        what += &format!(" on PID {pid}");
    }
    let list: Vec<String> = missing
        .iter()
        .map(|(cap, why)| format!("{} ({why})", cap.name()))
        .collect();
    format!(
        "needs root{what}, or these capabilities it lacks: {}; run it with sudo",
        list.join(", ")
    )
}

const UPROBE_TYPE: &str = "/sys/bus/event_source/devices/uprobe/type";

/// Asks the kernel: `perf_event_open` on the uprobe PMU checks the caller's
/// capability before it looks at the path, so a directory as the path gets EINVAL
/// when uprobes are allowed and EACCES when not, and creates nothing either way.
fn uprobes_allowed() -> bool {
    let Some(ty) = std::fs::read_to_string(UPROBE_TYPE)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return false;
    };
    let path = c"/";
    // SAFETY: an all-zero perf_event_attr is valid (the kernel's own default).
    let mut attr: PerfEventAttr = unsafe { std::mem::zeroed() };
    attr.type_ = ty;
    attr.size = std::mem::size_of::<PerfEventAttr>() as u32;
    attr.config1 = path.as_ptr() as u64;
    // SAFETY: attr and the path it points to outlive the call; pid 0 and cpu -1 is
    // this process on any CPU (as the probes are: exclude_kernel unset).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            0,
            -1,
            -1,
            libc::c_ulong::from(0u8),
        )
    };
    if fd >= 0 {
        // SAFETY: closing the fd just opened (no kernel accepts "/", but still).
        unsafe { libc::close(fd as i32) };
        return true;
    }
    let err = std::io::Error::last_os_error().raw_os_error();
    !matches!(err, Some(libc::EACCES) | Some(libc::EPERM))
}

/// The leading fields of `struct perf_event_attr` (PERF_ATTR_SIZE_VER0, 64 bytes):
/// the kernel takes `size` as the version and zero-fills the rest.
#[repr(C)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

/// What reading `pid` (and holding it at exit, `hold`) asks of this process, found by
/// trying: each access the tracer will make, once. A process that is gone (or has no
/// executable) asks for nothing here; the target's own checks say what it is.
fn target_needs(pid: u32, hold: bool) -> Vec<(Cap, String)> {
    let mut needs = Vec::new();
    let exe = format!("/proc/{pid}/exe");
    let denied =
        |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM));
    match std::fs::read_link(&exe) {
        Err(e) if denied(&e) => {
            needs.push((
                Cap::SysPtrace,
                format!("to read PID {pid}, another user's process"),
            ));
        }
        Err(_) => return needs,
        Ok(_) => {
            if matches!(std::fs::File::open(&exe), Err(e) if denied(&e)) {
                needs.push((
                    Cap::DacReadSearch,
                    format!("to read the executable of PID {pid}, which this user may not read"),
                ));
            }
            if memory_denied(pid) {
                needs.push((Cap::SysPtrace, format!("to read the memory of PID {pid}")));
            }
        }
    }
    if hold && !may_signal(pid) {
        needs.push((
            Cap::Kill,
            format!("to resume PID {pid}, another user's process, after holding it at exit"),
        ));
    }
    needs
}

/// `process_vm_readv` of one byte at the start of the first mapping says EPERM when
/// the memory reads will be refused (other user, Yama, a more privileged target).
fn memory_denied(pid: u32) -> bool {
    let Some(start) = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .ok()
        .and_then(|m| {
            let first = m.lines().next()?.split('-').next()?.to_string();
            u64::from_str_radix(&first, 16).ok()
        })
    else {
        return false;
    };
    let mut byte = 0u8;
    let local = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: start as *mut libc::c_void,
        iov_len: 1,
    };
    // SAFETY: one byte into a local variable; the remote address is only read.
    let n = unsafe { libc::process_vm_readv(pid as i32, &local, 1, &remote, 1, 0) };
    n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether the SIGCONT that ends the exit hold will be delivered: signal 0 checks the
/// same permission, and SIGCONT may also go to any process of the caller's session.
fn may_signal(pid: u32) -> bool {
    // SAFETY: signal 0 sends nothing; getsid has no preconditions.
    unsafe {
        if libc::kill(pid as i32, 0) == 0 {
            return true;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
            return true;
        }
        let theirs = libc::getsid(pid as i32);
        theirs >= 0 && theirs == libc::getsid(0)
    }
}

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_each_missing_capability_on_one_line() {
        let m = message(
            Some(Mode::Parks),
            Target::Pid(42),
            &[
                (Cap::SysAdmin, "to place uprobes".into()),
                (Cap::Kill, "to resume PID 42".into()),
            ],
        );
        assert!(
            m.starts_with("needs root for --mode parks on PID 42"),
            "{m}"
        );
        assert!(m.contains("CAP_SYS_ADMIN (to place uprobes)"), "{m}");
        assert!(m.contains("CAP_KILL (to resume PID 42)"), "{m}");
        assert!(!m.contains('\n'), "{m}");
        let m = message(None, Target::Child, &[(Cap::Bpf, "to load".into())]);
        assert_eq!(
            m,
            "needs root, or these capabilities it lacks: CAP_BPF (to load); run it with sudo"
        );
    }

    #[test]
    fn the_attr_prefix_is_the_kernels_first_version() {
        assert_eq!(std::mem::size_of::<PerfEventAttr>(), 64);
    }

    #[test]
    fn own_process_needs_nothing_of_the_target_kind() {
        assert!(target_needs(std::process::id(), true).is_empty());
        assert!(!memory_denied(std::process::id()));
        assert!(may_signal(std::process::id()));
    }

    #[test]
    fn a_process_that_is_gone_is_left_to_the_target_checks() {
        assert!(target_needs(u32::MAX >> 2, true).is_empty());
    }
}
