//! What a Go function name stands for: one of the lock methods (and which
//! operation on which mutex type), other code of `sync`/`internal/sync`, a
//! forwarding wrapper, or anything else.  It looks at names only, never at
//! DWARF or code: the same name must get the same class wherever it is met
//! (a concrete subprogram, an inlined copy's origin, an ELF symbol in the
//! tests), and the rules about `sync`'s own code stay in one place.

use super::{LockOp, MutexKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) op: LockOp,
    pub(super) kind: MutexKind,
    /// `internal/sync.(*Mutex).*`, reached only through `sync.(*Mutex).*`.
    pub(super) internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    Target(Target),
    /// Anything else in package sync / internal/sync.
    SyncImpl,
    /// Thin forwarding wrappers whose lock calls belong to their caller.
    Wrapper,
    Other,
}

impl Class {
    pub(super) fn is_sync_scope(self) -> bool {
        matches!(self, Class::Target(_) | Class::SyncImpl)
    }
}

pub(super) fn classify(name: &str) -> Class {
    use LockOp::*;
    use MutexKind::*;
    let t = |op, kind, internal| Class::Target(Target { op, kind, internal });
    match name {
        "sync.(*Mutex).Lock" => t(Lock, Mutex, false),
        "sync.(*Mutex).Unlock" => t(Unlock, Mutex, false),
        "sync.(*Mutex).TryLock" => t(TryLock, Mutex, false),
        "internal/sync.(*Mutex).Lock" => t(Lock, Mutex, true),
        "internal/sync.(*Mutex).Unlock" => t(Unlock, Mutex, true),
        "internal/sync.(*Mutex).TryLock" => t(TryLock, Mutex, true),
        "sync.(*RWMutex).Lock" => t(Lock, RwMutex, false),
        "sync.(*RWMutex).Unlock" => t(Unlock, RwMutex, false),
        "sync.(*RWMutex).TryLock" => t(TryLock, RwMutex, false),
        "sync.(*RWMutex).RLock" => t(RLock, RwMutex, false),
        "sync.(*RWMutex).RUnlock" => t(RUnlock, RwMutex, false),
        "sync.(*RWMutex).TryRLock" => t(TryRLock, RwMutex, false),
        "sync.(*rlocker).Lock" | "sync.(*rlocker).Unlock" => Class::Wrapper,
        _ if name.ends_with("-fm") => Class::Wrapper,
        _ => match package_of(name) {
            "sync" | "internal/sync" => Class::SyncImpl,
            _ => Class::Other,
        },
    }
}

/// Package path of a Go symbol name: `internal/sync.(*Mutex).Lock` ->
/// `internal/sync`, `main.f[go.shape.*a/b.T]` -> `main`.
fn package_of(name: &str) -> &str {
    let head = &name[..name.find('[').unwrap_or(name.len())];
    let start = head.rfind('/').map_or(0, |i| i + 1);
    match head[start..].find('.') {
        Some(d) => &name[..start + d],
        None => head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        assert_eq!(package_of("internal/sync.(*Mutex).Lock"), "internal/sync");
        assert_eq!(package_of("sync.(*Mutex).Lock"), "sync");
        assert_eq!(package_of("main.f[go.shape.*a/b.T]"), "main");
        assert_eq!(package_of("sync.OnceValue[go.shape.int].func1"), "sync");
        assert_eq!(package_of("net/http.(*Server).Close"), "net/http");
        assert_eq!(classify("sync.(*Mutex).Lock-fm"), Class::Wrapper);
        assert_eq!(classify("sync.(*Once).doSlow"), Class::SyncImpl);
        assert_eq!(classify("syncx.Foo"), Class::Other);
    }
}
