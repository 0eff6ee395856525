//! What the walk over a binary's debug information finds, whatever the source
//! (DWARF in `dwarf`, the pclntab's inline trees in `pcln`): the inlined copies of
//! lock methods, the out-of-line ones, the code of `sync` itself and the mutex
//! layouts. `resolve` turns findings into sites.

use std::collections::HashMap;
use std::rc::Rc;

use super::classify::Target;

/// Everything `resolve` needs.
pub(super) struct Findings {
    pub(super) sites: Vec<RawSite>,
    pub(super) ool: Vec<OolFunc>,
    /// Every out-of-line lock method (public and internal) by entry address.
    pub(super) target_funcs: HashMap<u64, Target>,
    /// Code that belongs to package sync / internal/sync.
    pub(super) sync_scopes: Vec<(u64, u64)>,
    pub(super) layout: Layout,
}

pub(super) type Nested = Vec<(Target, Vec<(u64, u64)>)>;

pub(super) struct RawSite {
    pub(super) target: Target,
    pub(super) ranges: Vec<(u64, u64)>,
    pub(super) nested: Nested,
    pub(super) caller: Rc<str>,
    pub(super) file: String,
    pub(super) line: u32,
    pub(super) phys: (u64, u64),
}

pub(super) struct OolFunc {
    pub(super) target: Target,
    pub(super) name: Rc<str>,
    pub(super) ranges: Vec<(u64, u64)>,
    pub(super) low: u64,
    pub(super) nested: Nested,
    pub(super) file: String,
    pub(super) line: u32,
}

/// Byte offsets inside the mutex types (defaults are the layouts of Go 1.21
/// to 1.26).
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    /// `sync.Mutex.mu` (Go 1.24+; 0 before).
    pub(super) mutex_mu: i64,
    /// `state` inside the mutex that has it (`sync.Mutex` before 1.24,
    /// `internal/sync.Mutex` after).
    pub(super) mutex_state: i64,
    pub(super) rw_w: i64,
    pub(super) rw_reader_count: i64,
    pub(super) atomic_int32_v: i64,
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            mutex_mu: 0,
            mutex_state: 0,
            rw_w: 0,
            rw_reader_count: 16,
            atomic_int32_v: 0,
        }
    }
}

impl Layout {
    /// Offset of the state word from the start of a `sync.Mutex`.
    pub(super) fn state_in_mutex(&self) -> i64 {
        self.mutex_mu + self.mutex_state
    }
    pub(super) fn reader_count(&self) -> i64 {
        self.rw_reader_count + self.atomic_int32_v
    }
}

impl Layout {
    /// The layout the table of Go versions gives (for a binary without DWARF).
    pub(super) fn from_table(t: &crate::layouts::GoLayout) -> Layout {
        let get = |n: &str| t.offset(n).map(|v| v as i64);
        let d = Layout::default();
        Layout {
            mutex_mu: get("sync.Mutex.mu").unwrap_or(d.mutex_mu),
            mutex_state: get("sync.Mutex.state")
                .or_else(|| get("internal/sync.Mutex.state"))
                .unwrap_or(d.mutex_state),
            rw_w: get("sync.RWMutex.w").unwrap_or(d.rw_w),
            rw_reader_count: get("sync.RWMutex.readerCount").unwrap_or(d.rw_reader_count),
            atomic_int32_v: get("sync/atomic.Int32.v").unwrap_or(d.atomic_int32_v),
        }
    }
}
