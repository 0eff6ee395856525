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

    /// Number of kinds, for counter tables (kinds are `1..COUNT`).
    pub const COUNT: u32 = 10;
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
}

/// Indexes of the per-CPU counter array (`COUNTERS`). Indexes below
/// [`kind::COUNT`] count probe hits per event kind.
pub mod counter {
    /// Records written to the ring buffer.
    pub const RECORDS: u32 = 16;
    /// Records lost because the ring buffer was full.
    pub const DROPS: u32 = 17;
    /// User stacks that could not be taken.
    pub const STACK_ERRORS: u32 = 18;
    /// Reads of target memory (g fields, return address) that failed.
    pub const READ_ERRORS: u32 = 19;
    /// Size of the array.
    pub const COUNT: u32 = 24;
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
    /// Non-zero: emit every channel operation, select and execute (the `--events`
    /// view). Zero: only what the model needs (parks, wakes, exits).
    pub const VERBOSE: &str = "VERBOSE";
    /// Non-zero: take a user stack at every park.
    pub const STACKS: &str = "WANT_STACKS";
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain-old-data, `#[repr(C)]`, integers only.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ParkState {}
}
