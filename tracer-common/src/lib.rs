//! Layouts shared by the kernel programs and the agent.
//!
//! One definition of every record that crosses the ring buffer and every map value
//! the agent reads, so the two sides cannot drift apart. Everything is `#[repr(C)]`,
//! fixed-size and made only of integers: the agent reinterprets ring-buffer bytes
//! as these types.
#![no_std]

/// What a ring-buffer [`Event`] reports. Stored in [`Event::kind`].
pub mod kind {
    /// A goroutine parks (`runtime.gopark`): `arg` = wait reason, `obj` = the lock
    /// argument of gopark (`&hchan.lock` for channels), `obj2` = the semaphore address
    /// the goroutine announced just before (mutexes, wait groups), or 0.
    pub const PARK: u32 = 1;
    /// A parked goroutine is made runnable (`runtime.ready`): `peer_goid` = waker,
    /// `arg` = nanoseconds it was parked (0 when the park predates the attach),
    /// `obj` = wait reason of that park.
    pub const READY: u32 = 2;
    /// A goroutine starts running on an M (`runtime.execute`).
    pub const EXECUTE: u32 = 3;
    /// A goroutine finished (`runtime.goexit0`).
    pub const EXIT: u32 = 4;
    /// `runtime.chansend`: `obj` = channel (0 = nil channel), `arg` = may block.
    pub const CHAN_SEND: u32 = 5;
    /// `runtime.chanrecv`: `obj` = channel (0 = nil channel), `arg` = may block.
    pub const CHAN_RECV: u32 = 6;
    /// `runtime.selectgo`: `arg` = number of cases, `obj` = block flag.
    pub const SELECT: u32 = 7;
    /// The mutex slow path (`lockSlow`): `obj` = the mutex.
    pub const LOCK_SLOW: u32 = 8;
    /// `runtime.semacquire1`: `obj` = semaphore address.
    pub const SEMACQUIRE: u32 = 9;

    /// A new lock-order edge: `obj` (held) was held while `obj2` was acquired.
    /// `arg` = site index of the held acquisition << 32 | site index of the new one.
    pub const LOCK_EDGE: u32 = 10;
    /// A goroutine acquires a mutex it already holds: `obj` = mutex, `arg` = site
    /// index, `obj2` = 1 when both the held and the new acquisition are read locks.
    pub const LOCK_SELF: u32 = 11;
    /// Any lock operation (the `--events` view in locks mode): `obj` = mutex,
    /// `arg` = site index.
    pub const LOCK_OP: u32 = 12;
    /// The target is exiting (`runtime.exit`) and has been stopped (SIGSTOP) so
    /// the agent can read its final state; the agent resumes it (SIGCONT).
    pub const EXITING: u32 = 13;
    /// The lock sites' allowance of hits on this CPU is spent (`LOCK_ALLOWANCE`):
    /// the one record written with a wakeup, so that the agent detaches the
    /// sites at once rather than at its next tick.
    pub const BUDGET_SPENT: u32 = 14;

    /// Number of kinds, for counter tables (kinds are `1..COUNT`).
    pub const COUNT: u32 = 15;
}

/// One ring-buffer record. Which fields are meaningful depends on [`kind`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// One of [`kind`].
    pub kind: u32,
    /// CPU the probe ran on.
    pub cpu: u32,
    /// `CLOCK_MONOTONIC` nanoseconds, the clock Go's `nanotime` uses too.
    pub ts_ns: u64,
    /// The goroutine the event is about (0 when it could not be read).
    pub goid: u64,
    /// The other goroutine involved: the waker of a READY, the parent of a PARK.
    pub peer_goid: u64,
    /// Return address of the probed runtime function: the caller that frame-pointer
    /// stacks miss at function entry.
    pub pc: u64,
    pub obj: u64,
    pub obj2: u64,
    pub arg: u64,
    /// `g.gopc`: the `go` statement that created the goroutine (PARK only).
    pub gopc: u64,
    /// `g.startpc`: the goroutine's entry function (PARK only).
    pub startpc: u64,
    /// Id in the user-stack map, negative when no stack was taken.
    pub stack_id: i64,
}

/// Size in bytes of an [`Event`] as it sits in the ring buffer.
pub const EVENT_SIZE: usize = core::mem::size_of::<Event>();

/// Value of the kernel's parked-goroutine map, keyed by goid.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParkState {
    pub since_ns: u64,
    pub reason: u64,
    pub obj: u64,
    /// `g.trackingSeq` once parked ([`SEQ_UNKNOWN`] when the offset is not known).
    /// The runtime bumps it whenever the goroutine stops running, so an entry whose
    /// seq differs from the goroutine's is a park that ended unseen (probes off).
    pub seq: u64,
}

/// [`ParkState::seq`] when the target's `g.trackingSeq` cannot be read.
pub const SEQ_UNKNOWN: u64 = u64::MAX;

/// How many locks one goroutine can hold at once and still be tracked in the kernel.
pub const MAX_HELD: usize = 8;
/// [`LockCaller`] value: the call comes from inside `sync` itself (RWMutex.Lock
/// calling w.Lock) and is not a user operation; the hit is dropped.
pub const CALLER_IGNORED: u32 = u32::MAX;

/// Lock operations, in [`LockSiteInfo::op`].
pub mod lockop {
    pub const LOCK: u32 = 0;
    pub const UNLOCK: u32 = 1;
    pub const TRY_LOCK: u32 = 2;
    pub const RLOCK: u32 = 3;
    pub const RUNLOCK: u32 = 4;
    pub const TRY_RLOCK: u32 = 5;
}

/// Per-site facts the lock probe needs, indexed by the attach cookie.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockSiteInfo {
    /// Index of the register holding the mutex pointer in `pt_regs`.
    pub reg: u32,
    /// One of [`lockop`].
    pub op: u32,
    /// Added to the register to get the mutex address.
    pub adjust: i64,
    /// 1: count the hit only when ZF is set (TryLock succeeded).
    pub if_zf: u32,
    /// 1: a method entry, whose hits are named by their caller: the return
    /// address is looked up in `LOCK_CALLERS` ([`LockCaller`]).
    pub by_caller: u32,
}

/// Key of `LOCK_CALLERS`: an entry-probed lock site and a return address at its
/// probe, minus the probed instruction's address (the same at run time as at
/// link time, PIE or not). The value is the site index that names the hit (the
/// user's call), or [`CALLER_IGNORED`]; a return address not listed keeps the
/// entry's own site (an indirect call).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LockCaller {
    pub site: u64,
    pub ret: u64,
}

/// Locks a goroutine holds, as the kernel tracks them. Only the goroutine's own
/// probes edit the set (one goroutine runs on one thread at a time, so they never
/// race); a release by another goroutine is counted in `RELEASED`
/// ([`ReleaseKey`]) and `released` bumped atomically, and the owner applies it
/// at its next lock. Two writers editing the arrays at once had lost updates: a
/// hold taken off came back, and was reported as a missing Unlock.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldLocks {
    pub n: u32,
    /// Bit i set: lock i is held for reading.
    pub read: u32,
    /// Releases by other goroutines counted for this set (only ever added to,
    /// atomically, by them).
    pub released: u64,
    /// The value of `released` the owner last applied.
    pub applied: u64,
    pub locks: [u64; MAX_HELD],
    pub sites: [u32; MAX_HELD],
    /// When each lock was acquired (`CLOCK_MONOTONIC` ns), for hold times.
    pub since: [u64; MAX_HELD],
}

impl HeldLocks {
    /// Whether lock i is held for reading.
    #[inline(always)]
    pub fn is_read(&self, i: usize) -> bool {
        (self.read >> i) & 1 != 0
    }

    /// Whether `m` is held, of the given kind.
    #[inline(always)]
    pub fn holds(&self, m: u64, read: bool) -> bool {
        let n = (self.n as usize).min(MAX_HELD);
        let mut found = false;
        for i in 0..MAX_HELD {
            if i < n && self.locks[i] == m && self.is_read(i) == read {
                found = true;
            }
        }
        found
    }

    /// The holds that are gone, as a mask (bit i: lock i): those taken at or
    /// before `purged` (the last switch), and those another goroutine released
    /// (`take`: whether a count for the key is left, and takes it). Latest hold
    /// first, so a release takes the most recent hold of its lock and kind. The
    /// agent's reads; the kernel's `tidy` applies the same rule in a loop of its
    /// own (calling this with a closure that looks the counts up took the lock
    /// program past the verifier's million instructions).
    #[inline(always)]
    pub fn gone(&self, goid: u64, purged: u64, mut take: impl FnMut(&ReleaseKey) -> bool) -> u32 {
        let n = (self.n as usize).min(MAX_HELD);
        let mut gone = 0;
        for j in 0..MAX_HELD {
            let i = MAX_HELD - 1 - j;
            if i >= n {
                continue;
            }
            if self.since[i] <= purged {
                gone |= 1 << i;
            }
            // A void hold takes its count too, so the count cannot cancel a
            // later hold of the same lock.
            let key = ReleaseKey {
                goid,
                lock: self.locks[i] | u64::from(self.is_read(i)),
            };
            if take(&key) {
                gone |= 1 << i;
            }
        }
        gone
    }
}

/// Key of `RELEASED`: holds of `lock` by goroutine `goid` that other goroutines
/// released and the owner has not yet taken off its set. Bit 0 of `lock` (a
/// mutex is at least 4-aligned) is set for a read hold.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReleaseKey {
    pub goid: u64,
    pub lock: u64,
}

/// Hold-time histograms: log2 buckets per acquisition site, for the first
/// [`HOLD_HIST_SITES`] sites. Bucket b counts holds of `[2^(b-1), 2^b)` ns.
pub const HOLD_HIST_BUCKETS: u32 = 48;
pub const HOLD_HIST_SITES: u32 = 4096;

/// Key of the edge map: `from` was held while `to` was acquired.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EdgeKey {
    pub from: u64,
    pub to: u64,
}

/// Indexes of the per-CPU counter array (`COUNTERS`). Indexes below
/// [`kind::COUNT`] count probe hits per event kind.
pub mod counter {
    /// Records written to the ring buffer.
    pub const RECORDS: u32 = 24;
    /// Records lost because the ring buffer was full.
    pub const DROPS: u32 = 25;
    /// User stacks that could not be taken.
    pub const STACK_ERRORS: u32 = 26;
    /// Reads of target memory (g fields, return address) that failed.
    pub const READ_ERRORS: u32 = 27;
    /// Locks not tracked because a goroutine already held [`super::MAX_HELD`].
    pub const HELD_OVERFLOW: u32 = 28;
    /// Instance lock-order edges not sent: their site pair had sent enough.
    pub const EDGES_CAPPED: u32 = 29;
    /// Hits of the lock sites, all together (what the budget charges).
    pub const LOCK_SITE_HITS: u32 = 30;
    /// Size of the array.
    pub const COUNT: u32 = 32;
}

/// The exit hold (`EXIT_HOLD` map): the `runtime.exit` probe stops the target only
/// while the agent has shown itself alive recently, and a guardian process that
/// outlives the agent resumes a hold that lasts too long. Times are
/// `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_ns` in the kernel).
pub mod exit_hold {
    /// When the probe stopped the target (0: no hold pending).
    pub const HELD_SINCE: u32 = 0;
    /// The agent's last heartbeat, written on every turn of its loop while its
    /// guardian is alive.
    pub const HEARTBEAT: u32 = 1;
    /// Slots in the map.
    pub const SLOTS: u32 = 2;
    /// The probe holds the target only if the heartbeat is at most this old: an
    /// agent that is stopped, stalled or dead holds nothing.
    pub const HEARTBEAT_MAX_NS: u64 = 500_000_000;
    /// The guardian resumes a hold older than this, whatever the agent is doing.
    pub const MAX_HOLD_NS: u64 = 1_000_000_000;
}

/// Offsets and switches the agent patches into the kernel programs before load.
/// Names are the symbols of the globals in `tracer-ebpf`.
pub mod globals {
    pub const G_GOID: &str = "G_GOID";
    pub const G_GOPC: &str = "G_GOPC";
    pub const G_STARTPC: &str = "G_STARTPC";
    pub const G_PARENT_GOID: &str = "G_PARENT_GOID";
    pub const G_M: &str = "G_M";
    pub const M_CURG: &str = "M_CURG";
    pub const G_TRACKING_SEQ: &str = "G_TRACKING_SEQ";
    /// Non-zero: emit every channel operation, select and execute (the `--events`
    /// view). Zero: only what the model needs (parks, wakes, exits).
    pub const VERBOSE: &str = "VERBOSE";
    /// Non-zero: take a user stack at every park.
    pub const STACKS: &str = "WANT_STACKS";
    /// Non-zero: stop the target at `runtime.exit` until the agent has read it.
    pub const STOP_AT_EXIT: &str = "STOP_AT_EXIT";
    /// Benchmarks only: each park record is written this many times (max 16).
    pub const BENCH_COPIES: &str = "BENCH_COPIES";
    /// Benchmarks only: non-zero, the probes count their hits and do nothing else.
    pub const BENCH_TRAP_ONLY: &str = "BENCH_TRAP_ONLY";
    /// Bitmap of wait reasons that are idling, not blocking (no record, no stack).
    pub const IDLE_REASONS: &str = "IDLE_REASONS";
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, `#[repr(C)]`, integers only.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ParkState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LockSiteInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::HeldLocks {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::EdgeKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ReleaseKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LockCaller {}
}
