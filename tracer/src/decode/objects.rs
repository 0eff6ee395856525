//! What a park waits on, from its wait reason and the pointers the probes caught:
//! a channel from gopark's lock argument, a mutex, RWMutex or WaitGroup from the
//! semaphore announced before the park. Struct offsets come from the target, once;
//! nothing here reads memory.
use tracer_analysis::Object;
use tracer_inspect::TargetInfo;

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
