//! What `/proc` says about a live process.
use crate::InspectError;
use std::path::PathBuf;

/// A mapping of the executable in the target's address space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub file_offset: u64,
    pub path: String,
}

/// Checks that `pid` is a live user process and returns the path through which its
/// executable can be opened. `/proc/PID/exe` works even when the file was deleted or
/// replaced, and from outside the target's mount namespace.
pub fn exe_path(pid: u32) -> Result<PathBuf, InspectError> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    if pid == 0 || !dir.exists() {
        return Err(InspectError::NoSuchProcess(pid));
    }
    let exe = dir.join("exe");
    match std::fs::read_link(&exe) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Kernel threads have no executable; a vanished process has no /proc dir.
            if !dir.exists() {
                return Err(InspectError::NoSuchProcess(pid));
            }
            return Err(InspectError::KernelThread(pid));
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(InspectError::NoAccess { pid, source: e });
        }
        Err(e) => return Err(InspectError::NoAccess { pid, source: e }),
    }
    if is_kernel_thread(pid) {
        return Err(InspectError::KernelThread(pid));
    }
    Ok(exe)
}

/// Kernel threads carry PF_KTHREAD (0x00200000) in the flags field of `stat`.
fn is_kernel_thread(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // Field 9 (flags) comes after the parenthesised command name.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return false;
    };
    rest.split_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & 0x0020_0000 != 0)
}

/// The mappings of the main executable, to compute the load bias of a PIE binary.
pub fn exe_mappings(pid: u32) -> Result<Vec<Mapping>, InspectError> {
    let path = PathBuf::from(format!("/proc/{pid}/maps"));
    let maps = std::fs::read_to_string(&path).map_err(|source| InspectError::Io {
        path: path.clone(),
        source,
    })?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(parse_maps(&maps)
        .into_iter()
        .filter(|m| m.path == exe || m.path == format!("{exe} (deleted)"))
        .collect())
}

pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let _perms = f.next()?;
            let off = u64::from_str_radix(f.next()?, 16).ok()?;
            let _dev = f.next()?;
            let _inode = f.next()?;
            let path = f.collect::<Vec<_>>().join(" ");
            let (s, e) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(s, 16).ok()?,
                end: u64::from_str_radix(e, 16).ok()?,
                file_offset: off,
                path,
            })
        })
        .collect()
}

/// Whether the process still exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let m = parse_maps(
            "00400000-0047f000 r-xp 00000000 fd:00 123 /usr/bin/app\n\
             7ffd0000-7ffd1000 rw-p 00000000 00:00 0 [stack]\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].start, 0x400000);
        assert_eq!(m[0].path, "/usr/bin/app");
        assert_eq!(m[1].path, "[stack]");
    }

    #[test]
    fn rejects_missing_pid() {
        assert!(matches!(exe_path(0), Err(InspectError::NoSuchProcess(0))));
        assert!(matches!(
            exe_path(4_000_000_000),
            Err(InspectError::NoSuchProcess(_))
        ));
    }

    #[test]
    fn kernel_thread_is_refused() {
        // kthreadd is PID 2 on Linux.
        if std::path::Path::new("/proc/2").exists() {
            assert!(matches!(exe_path(2), Err(InspectError::KernelThread(2))));
        }
    }

    #[test]
    fn self_is_alive() {
        assert!(alive(std::process::id()));
        assert!(exe_path(std::process::id()).is_ok());
    }
}
