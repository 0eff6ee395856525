//! PCs and stack ids to source frames, cached: the kernel hashes identical stacks to
//! one id and most parks happen at a few places, so each is symbolized once. It
//! reads the target's line tables only, never the kernel's maps (the decoder hands
//! it the PCs).
use std::collections::HashMap;
use std::sync::Arc;
use tracer_inspect::lines::SourceFrame;
use tracer_inspect::TargetInfo;

/// A map for the per-record caches: their keys are PCs and stack ids from our own
/// probes, so the DoS-resistant default hasher only costs time.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

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
    /// Where the entry probe of gopark stands (link-time address; 0 if unknown).
    gopark_probe: u64,
    /// Where every parked goroutine stopped: the return address of gopark's call
    /// to `runtime.mcall` (link-time), its saved PC; 0 if not found.
    park_pc: u64,
    cache: FastMap<(i64, u64), Vec<SourceFrame>>,
    /// Single PCs (`created by`, start functions): a handful of distinct ones,
    /// looked up for every park record.
    pcs: std::cell::RefCell<FastMap<(u64, bool), Option<SourceFrame>>>,
}

impl<'t> Symbolizer<'t> {
    pub fn new(target: &'t TargetInfo) -> Self {
        Self {
            target,
            gopark_probe: target
                .funcs
                .get("gopark")
                .map_or(0, |f| f.vaddr + f.probe_offset),
            park_pc: target.funcs.get("gopark").map_or(0, |f| {
                match tracer_inspect::callsites::returns_from_calls(
                    target.binary(),
                    f.vaddr,
                    "runtime.mcall",
                )[..]
                {
                    [one] => one,
                    _ => 0,
                }
            }),
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
        // The PCs are run-time addresses: a PIE's cannot be looked up before its
        // load bias is known (no record comes before its program runs).
        let Some(bias) = self.target.load_bias() else {
            return Vec::new();
        };
        // Link-time PCs, and whether each is a return address (it points after
        // its call: the call itself is looked up, as Go's traceback does).
        let mut pcs: Vec<(u64, bool)> = Vec::with_capacity(ips.len() + 1);
        let mut it = ips.iter();
        if let Some(&first) = it.next() {
            // A probe on a call to gopark walks from the call itself: gopark goes on
            // top, and the call (`caller`) after it, as from the probe at its entry.
            let at_call = caller != 0
                && self.gopark_probe != 0
                && first == caller.wrapping_sub(tracer_inspect::callsites::CALL_REL32_LEN);
            let first = first.wrapping_sub(bias);
            pcs.push(if at_call || (first == self.gopark_probe && first != 0) {
                // The park as Go shows it: gopark where it stops, at its call to
                // mcall, not where the probe caught it on the way.
                match self.park_pc {
                    0 => (self.gopark_probe, false),
                    pc => (pc, true),
                }
            } else {
                (first, false)
            });
        }
        let rest: Vec<u64> = it.map(|pc| pc.wrapping_sub(bias)).collect();
        // Kernels since 6.14 add the return address themselves for a probe at a
        // function's entry; older ones miss it.
        let ret = caller.wrapping_sub(bias);
        if caller != 0 && rest.first() != Some(&ret) {
            pcs.push((ret, true));
        }
        pcs.extend(rest.into_iter().map(|pc| (pc, true)));
        let mut frames = Vec::new();
        for (pc, ret) in pcs {
            let lookup = if ret { pc.wrapping_sub(1) } else { pc };
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
        let bias = self.target.load_bias()?;
        let rel = pc.wrapping_sub(bias);
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

    /// Frames of a stack read from the target's memory: run-time PCs, each a
    /// return address (the first is where gopark's call to mcall returns), so
    /// each is looked up at its call, as Go's traceback does.
    pub fn pcs(&mut self, pcs: &[u64]) -> Vec<SourceFrame> {
        let key = pcs_key(pcs);
        if let Some(f) = self.cache.get(&(-2, key)) {
            return f.clone();
        }
        let Some(bias) = self.target.load_bias() else {
            return Vec::new();
        };
        let mut frames = Vec::new();
        for pc in pcs {
            frames.extend(self.target.frames(pc.wrapping_sub(bias).wrapping_sub(1)));
        }
        self.cache.insert((-2, key), frames.clone());
        frames
    }
}
