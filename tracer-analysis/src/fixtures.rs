//! Builders for synthetic inputs shared by the unit tests.

use crate::input::{Frame, Input, Object, Parked};

pub const SECOND: u64 = 1_000_000_000;

/// A user goroutine blocked sending on a channel at `main.go:<line>`, created by
/// `main.main` at `main.go:17`.
pub fn parked(goid: u64, since_ns: u64, line: u32) -> Parked {
    Parked {
        goid,
        wait_reason: "chan send".into(),
        since_ns,
        exact: true,
        object: Object::Channel {
            addr: 0xc000010000 + goid,
            elem_type: Some("int".into()),
        },
        frames: vec![
            Frame::new("runtime.gopark", "/go/src/runtime/proc.go", 460),
            Frame::new("runtime.chansend", "/go/src/runtime/chan.go", 283),
            Frame::new("runtime.chansend1", "/go/src/runtime/chan.go", 161),
            Frame::new("main.send", "/src/app/main.go", line),
            Frame::new("runtime.goexit", "/go/src/runtime/asm_amd64.s", 1700),
        ]
        .into(),
        start_function: Some("main.send".into()),
        created_by: Some(Frame::new("main.main", "/src/app/main.go", 17)),
        parent_goid: Some(1),
        wake_at_ns: None,
    }
}

/// A runtime goroutine started at `start`, parked the way they idle.
pub fn system(goid: u64, since_ns: u64, start: &str) -> Parked {
    Parked {
        goid,
        wait_reason: "GC worker (idle)".into(),
        since_ns,
        exact: true,
        object: Object::None,
        frames: vec![
            Frame::new("runtime.gopark", "/go/src/runtime/proc.go", 460),
            Frame::new(start, "/go/src/runtime/mgc.go", 1400),
            Frame::new("runtime.goexit", "/go/src/runtime/asm_amd64.s", 1700),
        ]
        .into(),
        start_function: Some(start.into()),
        created_by: Some(Frame::new(
            "runtime.gcenable",
            "/go/src/runtime/mgc.go",
            214,
        )),
        parent_goid: Some(1),
        wake_at_ns: None,
    }
}

pub fn park(p: Parked) -> Input {
    Input::Park {
        ts_ns: p.since_ns,
        parked: p,
    }
}

pub fn ready(ts_ns: u64, goid: u64, parked_ns: Option<u64>) -> Input {
    Input::Ready {
        ts_ns,
        goid,
        waker_goid: Some(1),
        parked_ns,
    }
}

pub fn exit(ts_ns: u64, goid: u64) -> Input {
    Input::Exit { ts_ns, goid }
}
