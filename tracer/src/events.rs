//! Ring-buffer records -> typed, symbolized events.
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

use tracer_analysis::Object;
use tracer_common::{kind, Event, EVENT_SIZE};
use tracer_inspect::lines::SourceFrame;
use tracer_inspect::TargetInfo;

/// A map for the per-record caches: their keys are PCs and stack ids from our own
/// probes, so the DoS-resistant default hasher only costs time.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Reinterprets one ring-buffer record. Short records (should not happen) are refused.
pub fn decode(bytes: &[u8]) -> Option<Event> {
    if bytes.len() < EVENT_SIZE {
        return None;
    }
    // SAFETY: `Event` is `#[repr(C)]` integers only; any bit pattern is valid, and the
    // read is unaligned-safe.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Event>()) })
}

/// The struct offsets [`object_of`] needs, looked up once rather than by name for
/// every park record.
#[derive(Debug, Clone, Copy)]
pub struct ObjectOffsets {
    hchan_lock: Option<u64>,
    rw_reader_sem: Option<u64>,
    rw_writer_sem: Option<u64>,
    wg_sema: Option<u64>,
}

impl ObjectOffsets {
    pub fn new(target: &TargetInfo) -> Self {
        let off = |n: &str| target.offsets.get(n);
        ObjectOffsets {
            hchan_lock: off("runtime.hchan.lock"),
            rw_reader_sem: off("sync.RWMutex.readerSem"),
            rw_writer_sem: off("sync.RWMutex.writerSem"),
            wg_sema: off("sync.WaitGroup.sema"),
        }
    }
}

/// Names the object of a park from its wait reason. `lock` is gopark's lock argument
/// (`&hchan.lock` for channel waits), `sema` the semaphore announced before it.
pub fn object_of(offs: &ObjectOffsets, reason: &str, lock: u64, sema: u64) -> Object {
    if reason.contains("nil chan") {
        return Object::NilChannel;
    }
    if reason.starts_with("chan send") || reason.starts_with("chan receive") {
        let lock_off = offs.hchan_lock.unwrap_or(0);
        return if lock == 0 {
            Object::None
        } else {
            Object::Channel {
                addr: lock - lock_off,
                elem_type: None,
            }
        };
    }
    if reason.starts_with("select") {
        // The number of cases of a live select is not known at park time.
        return if reason.contains("no cases") {
            Object::Select { cases: 0 }
        } else {
            Object::None
        };
    }
    if sema == 0 {
        return Object::None;
    }
    match reason {
        // Mutex{state int32; sema uint32} in every supported version.
        "sync.Mutex.Lock" => Object::Mutex { addr: sema - 4 },
        "sync.RWMutex.RLock" => match offs.rw_reader_sem {
            Some(o) => Object::RwMutex { addr: sema - o },
            None => Object::Semaphore { addr: sema },
        },
        "sync.RWMutex.Lock" => match offs.rw_writer_sem {
            Some(o) => Object::RwMutex { addr: sema - o },
            None => Object::Semaphore { addr: sema },
        },
        "sync.WaitGroup.Wait" => match offs.wg_sema {
            Some(o) => Object::WaitGroup { addr: sema - o },
            None => Object::Semaphore { addr: sema },
        },
        _ => Object::Semaphore { addr: sema },
    }
}

/// Whether a frame belongs to the runtime or the sync machinery rather than to the
/// code that blocked.
pub fn is_runtime_frame(function: &str) -> bool {
    function.starts_with("runtime.")
        || function.starts_with("internal/")
        || function.starts_with("sync.")
        || function.starts_with("sync/atomic.")
}

/// The cache key of a stack read from memory: a hash of its PCs (FNV-1a).
pub fn pcs_key(pcs: &[u64]) -> u64 {
    pcs.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, pc| {
        (h ^ pc).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Turns PCs and stack ids into source frames, caching per stack id (the kernel's
/// stack map hashes identical stacks to one id, so a site is symbolized once).
pub struct Symbolizer<'t> {
    target: &'t TargetInfo,
    bias: u64,
    /// Where the entry probe of gopark stands (run-time address; 0 if unknown).
    gopark_probe: u64,
    cache: FastMap<(i64, u64), Vec<SourceFrame>>,
    /// Single PCs (`created by`, start functions): a handful of distinct ones,
    /// looked up for every park record.
    pcs: std::cell::RefCell<FastMap<(u64, bool), Option<SourceFrame>>>,
}

impl<'t> Symbolizer<'t> {
    pub fn new(target: &'t TargetInfo) -> Self {
        let bias = target.load_bias();
        Self {
            target,
            bias,
            gopark_probe: target
                .funcs
                .get("gopark")
                .map_or(0, |f| f.vaddr + f.probe_offset + bias),
            cache: FastMap::default(),
            pcs: Default::default(),
        }
    }

    /// Frames of a parked goroutine: the probed function, the caller the kernel's
    /// frame-pointer walk misses (`caller`), then the rest of the stack.
    pub fn cached(&self, stack_id: i64, caller: u64) -> Option<Vec<SourceFrame>> {
        (stack_id >= 0)
            .then(|| self.cache.get(&(stack_id, caller)).cloned())
            .flatten()
    }

    pub fn stack(&mut self, stack_id: i64, ips: &[u64], caller: u64) -> Vec<SourceFrame> {
        if let Some(f) = self.cache.get(&(stack_id, caller)) {
            return f.clone();
        }
        let mut pcs: Vec<u64> = Vec::with_capacity(ips.len() + 1);
        let mut it = ips.iter();
        if let Some(&first) = it.next() {
            // A probe on a call to gopark walks from the call itself: gopark goes on
            // top, and the call (`caller`) after it, as from the probe at its entry.
            let at_call = caller != 0
                && self.gopark_probe != 0
                && first == caller.wrapping_sub(tracer_inspect::callsites::CALL_REL32_LEN);
            pcs.push(if at_call { self.gopark_probe } else { first });
        }
        let rest: Vec<u64> = it.copied().collect();
        // Kernels since 6.14 add the return address themselves for a probe at a
        // function's entry; older ones miss it.
        if caller != 0 && rest.first() != Some(&caller) {
            pcs.push(caller);
        }
        pcs.extend(rest);
        let mut frames = Vec::new();
        for (i, pc) in pcs.iter().enumerate() {
            let pc = pc.wrapping_sub(self.bias);
            // Return addresses point after the call: look up the call itself.
            let lookup = if i == 0 { pc } else { pc.wrapping_sub(1) };
            frames.extend(self.target.frames(lookup));
        }
        if stack_id >= 0 {
            self.cache.insert((stack_id, caller), frames.clone());
        }
        frames
    }

    /// The source frame of a single PC (outermost function, for `created by`).
    pub fn pc(&self, pc: u64, is_return_address: bool) -> Option<SourceFrame> {
        if pc == 0 {
            return None;
        }
        if let Some(f) = self.pcs.borrow().get(&(pc, is_return_address)) {
            return f.clone();
        }
        let rel = pc.wrapping_sub(self.bias);
        let lookup = if is_return_address { rel - 1 } else { rel };
        let frame = self.target.frames(lookup).pop();
        let mut cache = self.pcs.borrow_mut();
        if cache.len() < 100_000 {
            cache.insert((pc, is_return_address), frame.clone());
        }
        frame
    }

    pub fn function(&self, pc: u64) -> Option<Arc<str>> {
        self.pc(pc, false).map(|f| f.function)
    }

    /// Frames of a stack read from the target's memory (run-time PCs, return
    /// addresses after the first).
    pub fn pcs(&mut self, pcs: &[u64]) -> Vec<SourceFrame> {
        let key = pcs_key(pcs);
        if let Some(f) = self.cache.get(&(-2, key)) {
            return f.clone();
        }
        let mut frames = Vec::new();
        for (i, pc) in pcs.iter().enumerate() {
            let pc = pc.wrapping_sub(self.bias);
            let lookup = if i == 0 { pc } else { pc.wrapping_sub(1) };
            frames.extend(self.target.frames(lookup));
        }
        self.cache.insert((-2, key), frames.clone());
        frames
    }
}

/// A decoded event in the form the `--events` view prints.
#[derive(Debug, Clone, Serialize)]
pub struct LiveEvent {
    pub kind: &'static str,
    pub event: &'static str,
    pub ts_ns: u64,
    pub goid: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_reason: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Object>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<SourceFrame>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub frames: Vec<SourceFrame>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parked_ns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waker_goid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub may_block: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_function: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<SourceFrame>,
}

pub fn event_name(k: u32) -> &'static str {
    match k {
        kind::PARK => "park",
        kind::READY => "resume",
        kind::EXECUTE => "execute",
        kind::EXIT => "exit",
        kind::CHAN_SEND => "chan_send",
        kind::CHAN_RECV => "chan_recv",
        kind::SELECT => "select",
        kind::LOCK_SLOW => "lock_slow",
        kind::SEMACQUIRE => "semacquire",
        kind::EXITING => "exiting",
        _ => "unknown",
    }
}

/// First frame of user code: where the goroutine blocked, in the words of its source.
pub fn site(frames: &[SourceFrame]) -> Option<SourceFrame> {
    frames
        .iter()
        .find(|f| !is_runtime_frame(&f.function))
        .cloned()
}

impl LiveEvent {
    pub fn text(&self, t0: u64) -> String {
        let t = self.ts_ns.saturating_sub(t0) as f64 / 1e9;
        let mut s = format!("{t:>10.6} goroutine {} {}", self.goid, self.event);
        if let Some(r) = &self.wait_reason {
            s.push_str(&format!(" [{r}]"));
        }
        if let Some(line) = self
            .object
            .as_ref()
            .and_then(tracer_analysis::report::text::object_line)
        {
            s.push_str(&format!(" ({line})"));
        }
        if let Some(b) = self.may_block {
            s.push_str(if b { " (may block)" } else { " (non-blocking)" });
        }
        if let Some(p) = self.parked_ns {
            s.push_str(&format!(" after {}", crate::report_fmt::human_ns(p)));
        }
        if let Some(w) = self.waker_goid {
            s.push_str(&format!(" woken by goroutine {w}"));
        }
        if let Some(f) = &self.site {
            s.push_str(&format!(" at {} ({}:{})", f.function, f.file, f.line));
        }
        s
    }
}
