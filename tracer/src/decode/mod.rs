//! Kernel records and memory reads in, `tracer-analysis` inputs out: symbolized
//! frames, the object a park waits on, its wait reason, when it began. The
//! decoder keeps only caches (stacks, PCs); it never reads a map itself (the
//! session hands it a stack lookup) and never decides what a record means for the
//! model beyond translating it.
mod live;
mod objects;
mod symbols;

pub use live::{event_name, site, EventFilter, LiveEvent};
pub use symbols::FastMap;

use objects::{object_of, ObjectOffsets};
use std::sync::Arc;
use symbols::{pcs_key, Symbolizer};
use tracer_analysis::input::Frames;
use tracer_analysis::lockgraph::LockEdge;
use tracer_analysis::{Frame, Input, Object, Parked};
use tracer_common::{kind, Event, ParkState, SEQ_UNKNOWN};
use tracer_inspect::goroutines::RawGoroutine;
use tracer_inspect::lines::SourceFrame;
use tracer_inspect::TargetInfo;

/// How often the target's goroutines are read in live modes, at most.
pub const SNAPSHOT_INTERVAL_NS: u64 = 1_000_000_000;

/// Waits that are how a healthy program idles, not how it leaks: a server blocked in
/// accept/read, a goroutine in `time.Sleep`. They are left out of the model.
pub fn is_idle_wait(reason: &str) -> bool {
    matches!(reason, "IO wait" | "sleep")
}

/// A kernel record, translated.
pub enum Record {
    /// Input for the goroutine model.
    Model(Input),
    /// A first-seen lock-order edge.
    Edge { ts_ns: u64, edge: LockEdge },
    /// A goroutine acquired a lock it already holds.
    SelfAcquire {
        ts_ns: u64,
        goid: u64,
        lock: u64,
        read: bool,
        site: Frame,
        stack: Vec<Frame>,
    },
    /// Nothing for the model (an idle park, a notice read elsewhere).
    Skip,
}

/// Looks up the user stack behind a stack id (the kernel's stack map).
pub type StackLookup<'a> = &'a dyn Fn(i64) -> Vec<u64>;

pub struct Decoder<'t> {
    target: &'t TargetInfo,
    symbolizer: Symbolizer<'t>,
    /// One shared copy of each stack for the model (see `Parked::frames`).
    frames: FastMap<(i64, u64), Frames>,
    offsets: ObjectOffsets,
    /// Source position of each lock site, by site index (locks mode).
    lock_sites: Vec<Frame>,
    /// Each lock site's class (its mutex's place in a type), when known.
    lock_classes: Vec<Option<std::sync::Arc<str>>>,
    /// Site indexes of `TryLock`/`TryRLock` calls: one never blocks, so taking a
    /// lock again with it is no self-deadlock (it fails, or succeeds harmlessly).
    try_sites: std::collections::HashSet<u64>,
}

impl<'t> Decoder<'t> {
    pub fn new(target: &'t TargetInfo, lock_sites: Vec<Frame>) -> Self {
        Self {
            target,
            symbolizer: Symbolizer::new(target),
            frames: FastMap::default(),
            offsets: ObjectOffsets::new(target),
            lock_sites,
            lock_classes: Vec::new(),
            try_sites: Default::default(),
        }
    }

    /// Each lock site's class, by site index.
    pub fn with_lock_classes(mut self, classes: Vec<Option<std::sync::Arc<str>>>) -> Self {
        self.lock_classes = classes;
        self
    }

    pub fn lock_classes(&self) -> &[Option<std::sync::Arc<str>>] {
        &self.lock_classes
    }

    fn site_class(&self, index: u64) -> Option<std::sync::Arc<str>> {
        self.lock_classes.get(index as usize).cloned().flatten()
    }

    /// Which site indexes are `TryLock`/`TryRLock` calls.
    pub fn with_try_sites(mut self, sites: impl IntoIterator<Item = u64>) -> Self {
        self.try_sites = sites.into_iter().collect();
        self
    }

    pub fn lock_sites(&self) -> &[Frame] {
        &self.lock_sites
    }

    fn site_frame(&self, index: u64) -> Frame {
        self.lock_sites
            .get(index as usize)
            .cloned()
            .unwrap_or_else(|| Frame::new("?", "?", 0))
    }

    /// Translates one record.
    pub fn record(&mut self, ev: &Event, stack: StackLookup<'_>) -> Record {
        match ev.kind {
            kind::LOCK_EDGE => {
                let frames = self.park_frames(ev, stack).iter().map(to_frame).collect();
                Record::Edge {
                    ts_ns: ev.ts_ns,
                    edge: LockEdge {
                        from: ev.obj,
                        to: ev.obj2,
                        held_at: self.site_frame(ev.arg >> 32),
                        acquired_at: self.site_frame(ev.arg & 0xffff_ffff),
                        goid: ev.goid,
                        stack: frames,
                        from_read: ev.peer_goid & 1 != 0,
                        to_read: ev.peer_goid & 2 != 0,
                        held_class: self.site_class(ev.arg >> 32),
                        acquired_class: self.site_class(ev.arg & 0xffff_ffff),
                    },
                }
            }
            kind::LOCK_SELF if self.try_sites.contains(&ev.arg) => Record::Skip,
            kind::LOCK_SELF => Record::SelfAcquire {
                ts_ns: ev.ts_ns,
                goid: ev.goid,
                lock: ev.obj,
                read: ev.obj2 != 0,
                site: self.site_frame(ev.arg),
                stack: self.park_frames(ev, stack).iter().map(to_frame).collect(),
            },
            kind::PARK => {
                let reason = self.target.wait_reason(ev.arg);
                if is_idle_wait(&reason) {
                    return Record::Skip;
                }
                // The model's shared copy first: most parks happen at known places,
                // and a fresh Vec<SourceFrame> per park was most of a record's cost.
                let key = (ev.stack_id, ev.pc);
                let shared = match self.frames.get(&key).filter(|_| ev.stack_id != -1) {
                    Some(f) => f.clone(),
                    None => {
                        let frames = self.park_frames(ev, stack);
                        shared_frames(&mut self.frames, key, &frames)
                    }
                };
                Record::Model(Input::Park {
                    ts_ns: ev.ts_ns,
                    parked: Parked {
                        goid: ev.goid,
                        object: object_of(&self.offsets, &reason, ev.obj, ev.obj2),
                        wait_reason: reason,
                        since_ns: ev.ts_ns,
                        exact: true,
                        frames: shared,
                        start_function: self.symbolizer.function(ev.startpc),
                        created_by: self.symbolizer.pc(ev.gopc, true).as_ref().map(to_frame),
                        parent_goid: (ev.peer_goid != 0).then_some(ev.peer_goid),
                        // The next memory read says whether a timer ends it.
                        wake_at_ns: None,
                    },
                })
            }
            kind::READY => Record::Model(Input::Ready {
                ts_ns: ev.ts_ns,
                goid: ev.goid,
                waker_goid: (ev.peer_goid != 0).then_some(ev.peer_goid),
                parked_ns: (ev.arg != 0).then_some(ev.arg),
            }),
            kind::EXIT => Record::Model(Input::Exit {
                ts_ns: ev.ts_ns,
                goid: ev.goid,
            }),
            // Whether the kernel stopped the target is read from EXIT_HOLD.
            _ => Record::Skip,
        }
    }

    fn park_frames(&mut self, ev: &Event, stack: StackLookup<'_>) -> Vec<SourceFrame> {
        // Stack ids are stable (no BPF_F_REUSE_STACKID): read the map once per id.
        if let Some(frames) = self.symbolizer.cached(ev.stack_id, ev.pc) {
            return frames;
        }
        let ips = stack(ev.stack_id);
        self.symbolizer.stack(ev.stack_id, &ips, ev.pc)
    }

    /// The record as the `--events` view prints it.
    pub fn live(&mut self, ev: &Event, stack: StackLookup<'_>) -> LiveEvent {
        let mut live = LiveEvent::new(event_name(ev.kind), ev.ts_ns, ev.goid);
        match ev.kind {
            kind::PARK => {
                let reason = self.target.wait_reason(ev.arg);
                live.object = Some(object_of(&self.offsets, &reason, ev.obj, ev.obj2));
                live.wait_reason = Some(reason);
                live.frames = self.park_frames(ev, stack);
                live.site = site(&live.frames);
                live.start_function = self.symbolizer.function(ev.startpc);
                live.created_by = self.symbolizer.pc(ev.gopc, true);
            }
            kind::READY => {
                live.parked_ns = (ev.arg != 0).then_some(ev.arg);
                live.waker_goid = (ev.peer_goid != 0).then_some(ev.peer_goid);
                if ev.arg != 0 {
                    live.wait_reason = Some(self.target.wait_reason(ev.obj));
                }
            }
            kind::CHAN_SEND | kind::CHAN_RECV => {
                live.object = Some(if ev.obj == 0 {
                    Object::NilChannel
                } else {
                    Object::Channel {
                        addr: ev.obj,
                        elem_type: None,
                    }
                });
                live.may_block = Some(ev.arg != 0);
                live.site = self.caller_site(ev.pc);
            }
            kind::LOCK_SLOW => {
                live.object = Some(Object::Mutex { addr: ev.obj });
                live.site = self.caller_site(ev.pc);
            }
            kind::SEMACQUIRE => {
                live.object = Some(Object::Semaphore { addr: ev.obj });
            }
            kind::SELECT => {
                live.site = self.caller_site(ev.pc);
            }
            _ => {}
        }
        live
    }

    /// The user-code frame that called a runtime function, from its return address.
    fn caller_site(&self, pc: u64) -> Option<SourceFrame> {
        // For chansend1/chanrecv1 this names the runtime wrapper: the user frame is
        // one further up, which only a stack (taken at parks) has.
        self.symbolizer.pc(pc, true)
    }

    pub fn wait_reason(&self, code: u64) -> Arc<str> {
        self.target.wait_reason(code)
    }

    /// A goroutine a memory read found parked (not idle, not in the same park as
    /// at the last read), as model input, with its frames for the `--events` view.
    /// `chan_types` names the element type of each channel it waits on.
    pub fn parked(
        &mut self,
        g: &RawGoroutine,
        reason: Arc<str>,
        at: ParkDating,
        chan_types: &[(u64, Option<Arc<str>>)],
    ) -> ParkedRead {
        let frames = self.symbolizer.pcs(&g.pcs);
        let shared = shared_frames(&mut self.frames, (-2, pcs_key(&g.pcs)), &frames);
        let mut object = object_of(&self.offsets, &reason, 0, at.sema);
        if let Object::None = object {
            object = waited_channel(g, &reason, chan_types);
        }
        let (since_ns, exact) = at.since(g);
        let created_by = self.symbolizer.pc(g.gopc, true);
        let parked = Parked {
            goid: g.goid,
            wait_reason: reason,
            since_ns,
            exact,
            object,
            frames: shared,
            start_function: self.symbolizer.function(g.startpc),
            created_by: created_by.as_ref().map(to_frame),
            parent_goid: (g.parent_goid != 0).then_some(g.parent_goid),
            wake_at_ns: g.timer_when.map(|w| w as u64),
        };
        ParkedRead {
            created_by,
            parked,
            frames,
        }
    }
}

/// The channel a park found by a memory read waits on: the one of a send or
/// receive, or, for a select, a case that waits for a signal (a select that
/// does is how a program waits to be told to stop).
fn waited_channel(
    g: &RawGoroutine,
    reason: &str,
    chan_types: &[(u64, Option<Arc<str>>)],
) -> Object {
    let named = |addr: u64| {
        chan_types
            .iter()
            .find(|(c, _)| *c == addr)
            .and_then(|(_, n)| n.as_deref().map(str::to_string))
    };
    if g.waiting_chan != 0 && reason.starts_with("chan") {
        return Object::Channel {
            addr: g.waiting_chan,
            elem_type: named(g.waiting_chan),
        };
    }
    if reason == "select" {
        let signal = chan_types
            .iter()
            .find(|(_, n)| n.as_deref() == Some(tracer_analysis::SIGNAL_TYPE));
        if let Some((addr, _)) = signal {
            return Object::Channel {
                addr: *addr,
                elem_type: Some(tracer_analysis::SIGNAL_TYPE.to_string()),
            };
        }
    }
    Object::None
}

/// What dates a park found by a memory read.
pub struct ParkDating {
    /// When the read began (monotonic ns).
    pub now: u64,
    /// When the read before it was (None: this is the first).
    pub last_read: Option<u64>,
    /// The park as the kernel's park probe saw it begin, if it did.
    pub kernel: Option<ParkState>,
    /// The semaphore announced before a sync wait (0 if none).
    pub sema: u64,
    /// `runtime.work.tstart` at the read (see [`ParkDating::since`]).
    pub gc_tstart: Option<i64>,
}

impl ParkDating {
    /// When the park began, and whether that is exact. An age is never overstated.
    ///
    /// `g.waitsince` is not the park time: the GC's stack scan stamps it, on the
    /// first scan that finds the goroutine waiting, with `work.tstart`, which at
    /// that point still holds the start of the *previous* cycle's mark
    /// termination (`gcMark` sets it then). After an idle stretch without a GC
    /// that is long before the park. What the stamp does prove: the goroutine was
    /// parked (and has not run since: `execute` clears it) when the cycle that
    /// stamped it ended, so at every later mark termination too. So a park known
    /// only from the stamp is dated at the latest mark termination, when that is
    /// later than the stamp; else (the stamping cycle is still running, or no
    /// `tstart` to compare with) at the read.
    fn since(&self, g: &RawGoroutine) -> (u64, bool) {
        match (self.kernel, self.last_read) {
            (Some(k), _)
                if k.reason == u64::from(g.wait_reason)
                    && k.since_ns <= self.now
                    && (k.seq == SEQ_UNKNOWN || g.tracking_seq.map(u64::from) == Some(k.seq)) =>
            {
                (k.since_ns, true)
            }
            // Not in this park at the last read: it parked in between, maybe just
            // now. Counted from now, so an age is never overstated (and understated
            // by at most the interval).
            (_, Some(last)) if self.now - last <= 2 * SNAPSHOT_INTERVAL_NS => (self.now, true),
            _ => match self.gc_tstart {
                Some(t) if g.wait_since > 0 && t > g.wait_since && (t as u64) <= self.now => {
                    (t as u64, false)
                }
                _ => (self.now, false),
            },
        }
    }
}

/// A parked goroutine from a memory read.
pub struct ParkedRead {
    pub parked: Parked,
    pub frames: Vec<SourceFrame>,
    pub created_by: Option<SourceFrame>,
}

impl ParkedRead {
    /// The `--events` view's line for a goroutine already parked at attach.
    pub fn live(&self, now: u64) -> LiveEvent {
        let p = &self.parked;
        let mut live = LiveEvent::new("parked", now, p.goid);
        live.wait_reason = Some(p.wait_reason.clone());
        live.object = Some(p.object.clone());
        live.site = site(&self.frames);
        live.frames = self.frames.clone();
        live.start_function = p.start_function.clone();
        live.created_by = self.created_by.clone();
        live
    }
}

/// The model's copy of a stack, shared by every goroutine parked with it. Stacks
/// without an id (-1) are not cached.
fn shared_frames(
    cache: &mut FastMap<(i64, u64), Frames>,
    key: (i64, u64),
    frames: &[SourceFrame],
) -> Frames {
    if key.0 == -1 {
        return frames.iter().map(to_frame).collect();
    }
    cache
        .entry(key)
        .or_insert_with(|| frames.iter().map(to_frame).collect())
        .clone()
}

fn to_frame(f: &SourceFrame) -> Frame {
    Frame::new(f.function.clone(), f.file.clone(), f.line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn g(wait_since: i64) -> RawGoroutine {
        RawGoroutine {
            goid: 7,
            status: 4,
            wait_reason: 3,
            wait_since,
            gopc: 0,
            startpc: 0,
            parent_goid: 0,
            pcs: Vec::new(),
            waiting_chan: 0,
            tracking_seq: Some(1),
            sched_pc: 0,
            timer_when: None,
            waiting_chans: Vec::new(),
        }
    }

    fn first_read(now: u64, gc_tstart: Option<i64>) -> ParkDating {
        ParkDating {
            now,
            last_read: None,
            kernel: None,
            sema: 0,
            gc_tstart,
        }
    }

    #[test]
    fn a_gc_stamp_dates_a_park_no_earlier_than_the_last_mark_termination() {
        // Idle from 40 s to 100 s, then a GC burst: the first cycle's scan
        // stamped the stale tstart of 40 s; its mark termination was at 100 s.
        let at = first_read(101 * S, Some(100 * S as i64));
        assert_eq!(at.since(&g(40 * S as i64)), (100 * S, false));
        // The stamping cycle still runs (tstart is what it stamped): dated now.
        let at = first_read(101 * S, Some(40 * S as i64));
        assert_eq!(at.since(&g(40 * S as i64)), (101 * S, false));
        // No stamp, or no tstart to check it against: dated now.
        assert_eq!(at.since(&g(0)), (101 * S, false));
        let at = first_read(101 * S, None);
        assert_eq!(at.since(&g(40 * S as i64)), (101 * S, false));
    }

    #[test]
    fn parks_between_reads_are_dated_at_the_read() {
        let at = ParkDating {
            last_read: Some(100 * S),
            ..first_read(101 * S, Some(90 * S as i64))
        };
        assert_eq!(at.since(&g(10 * S as i64)), (101 * S, true));
    }
}
