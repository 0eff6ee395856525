//! The one clock every part of the agent and the kernel programs agree on:
//! `CLOCK_MONOTONIC`, which is what `bpf_ktime_get_ns` reads; and the wall clock,
//! for the one timestamp that leaves the host (a pprof profile's).

/// Now, in monotonic nanoseconds.
pub fn monotonic_ns() -> u64 {
    read(libc::CLOCK_MONOTONIC)
}

/// Wall-clock time in Unix nanoseconds (a profile's timestamp), 0 if unknown.
pub fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The calling thread's CPU time, ns: what a system call cost in CPU, as opposed
/// to the time it waited (an RCU grace period in a uprobe detach).
pub fn thread_cpu_ns() -> u64 {
    read(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
