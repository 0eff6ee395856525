use std::path::PathBuf;

/// Everything that can make a target unusable, each with a message that says what
/// to do about it.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("no process with PID {0} (is it still running?)")]
    NoSuchProcess(u32),
    #[error("PID {0} is a kernel thread, not a Go program")]
    KernelThread(u32),
    #[error("cannot read /proc/{pid}/exe: {source} (run as root, or with CAP_SYS_PTRACE)")]
    NoAccess {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an ELF executable this tracer can read: {reason}")]
    NotElf { path: PathBuf, reason: String },
    #[error("{0} is not an x86-64 binary; tracer supports linux/amd64 Go programs only")]
    NotAmd64(PathBuf),
    #[error("{0} is not a Go program (no Go build information or runtime symbols)")]
    NotGo(PathBuf),
    #[error(
        "{path} was built with {version}; tracer needs Go 1.21 or later (register-based calling convention)"
    )]
    GoTooOld { path: PathBuf, version: String },
    #[error(
        "{path} has no symbol table (.symtab) and no Go function table (.gopclntab): cannot find {symbol}"
    )]
    NoSymbols { path: PathBuf, symbol: String },
    #[error(
        "{0} has no symbol table (built with -ldflags=-s) and runtime.allgs is not where this tracer looks for it; rebuild without -s to trace it (-ldflags=-w alone works)"
    )]
    Stripped(PathBuf),
    #[error(
        "{path}: Go {version} is newer than this tracer knows (up to {newest}); rebuild with DWARF (without -ldflags=-w) or update tracer"
    )]
    GoTooNew {
        path: PathBuf,
        version: String,
        newest: String,
    },
    #[error(
        "{path}: {what}; rebuild without -ldflags=-w, or use a Go version tracer knows ({known})"
    )]
    NoOffsets {
        path: PathBuf,
        what: String,
        known: String,
    },
    #[error("DWARF in {path} is unreadable: {reason}")]
    Dwarf { path: PathBuf, reason: String },
    #[error("reading target memory at {addr:#x}: {source}")]
    Memory {
        addr: u64,
        #[source]
        source: std::io::Error,
    },
}
