//! Builds a Go fixture with known call sites using each toolchain and
//! build mode, checks the scan against the source markers and against an
//! independent disassembly of the fixture's functions, then runs the
//! fixture under gdb with a breakpoint on every site and compares
//! `reg + adjust` with the mutex addresses the fixture prints.
//!
//! Toolchains: `TRACER_GO` (default: the repository's build/go-1.26.6)
//! and `TRACER_GO_OLDEST` (default: the build tree's Go 1.21).  A missing
//! toolchain or gdb skips that part with a message on stderr.
//!
//! It checks the scan from outside: the line table, the disassembly and the
//! register reads here are its own, not the scan's, so a mistake shared by
//! both cannot hide (only the name classification is shared).

use super::classify::{classify, Class, Target};
use super::{scan, Gpr, LockOp, LockSite, MutexKind, Outcome, EFLAGS_ZF};
use gimli::{EndianSlice, LittleEndian};
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FIXTURE: &str = r#"package main

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Every line with a mutex call starts with mark(p) or markOff(p, off), which
// record the line and the mutex address. The trailing comment says what the line does:
//   op:OP [ok|fail]  a direct call (inlined unless built with -l)
//   dyn:OP           a call through an interface or a func value
//   wait             sync.Cond.Wait (unlocks and relocks L)
// A lock (not unlock) with class:NAME must be found to lock field NAME; a
// lock without one must have no class (its mutex's owner is not known).
// OP: Lock Unlock TryLock (sync.Mutex), RLock RUnlock TryRLock RwLock RwUnlock
// RwTryLock (sync.RWMutex).

var gmu sync.Mutex
var grw sync.RWMutex

type S struct {
	a  int64
	b  int32
	mu sync.Mutex
	n  int
	rw sync.RWMutex
	pm *sync.Mutex
}

type Emb struct {
	x int64
	sync.Mutex
}

type EmbRW struct {
	pad [3]int64
	sync.RWMutex
}

type Shard struct {
	mu sync.Mutex
	m  map[int]int
}

type Srv struct {
	name   string
	n      int
	mu     sync.Mutex
	closed bool
	conns  map[int]bool
}

type common struct {
	x    int
	tmpl map[string]int
	rw   sync.RWMutex
}

type Tmpl struct {
	name string
	c    *common
}

type mk struct {
	line int
	p    unsafe.Pointer
}

var marks []mk
var markSem = make(chan struct{}, 1)

//go:noinline
func mark(p unsafe.Pointer) {
	_, _, line, _ := runtime.Caller(1)
	markSem <- struct{}{}
	marks = append(marks, mk{line, p})
	<-markSem
}

// markOff records p+off: the mutex address is not computed in the caller, as
// when a method locks a field of its receiver.
//
//go:noinline
func markOff(p unsafe.Pointer, off uintptr) {
	_, _, line, _ := runtime.Caller(1)
	markSem <- struct{}{}
	marks = append(marks, mk{line, unsafe.Add(p, off)})
	<-markSem
}

//go:noinline
func globals() {
	mark(unsafe.Pointer(&gmu)); gmu.Lock() // op:Lock
	mark(unsafe.Pointer(&gmu)); gmu.Unlock() // op:Unlock
	mark(unsafe.Pointer(&grw)); grw.RLock() // op:RLock
	mark(unsafe.Pointer(&grw)); grw.RUnlock() // op:RUnlock
	mark(unsafe.Pointer(&grw)); grw.Lock() // op:RwLock
	mark(unsafe.Pointer(&grw)); grw.Unlock() // op:RwUnlock
	mark(unsafe.Pointer(&gmu)); if gmu.TryLock() { // op:TryLock ok
		mark(unsafe.Pointer(&gmu)); gmu.Unlock() // op:Unlock
	}
	mark(unsafe.Pointer(&grw)); if grw.TryRLock() { // op:TryRLock ok
		mark(unsafe.Pointer(&grw)); grw.RUnlock() // op:RUnlock
	}
	mark(unsafe.Pointer(&grw)); if grw.TryLock() { // op:RwTryLock ok
		mark(unsafe.Pointer(&grw)); grw.Unlock() // op:RwUnlock
	}
}

//go:noinline
func fields(s *S) {
	mark(unsafe.Pointer(&s.mu)); s.mu.Lock() // op:Lock class:main.S.mu
	s.n++
	mark(unsafe.Pointer(&s.mu)); s.mu.Unlock() // op:Unlock
	mark(unsafe.Pointer(&s.rw)); s.rw.RLock() // op:RLock class:main.S.rw
	mark(unsafe.Pointer(&s.rw)); s.rw.RUnlock() // op:RUnlock
	mark(unsafe.Pointer(&s.rw)); s.rw.Lock() // op:RwLock class:main.S.rw
	mark(unsafe.Pointer(&s.rw)); s.rw.Unlock() // op:RwUnlock
	mark(unsafe.Pointer(s.pm)); s.pm.Lock() // op:Lock
	mark(unsafe.Pointer(s.pm)); s.pm.Unlock() // op:Unlock
}

//go:noinline
func embedded(e *Emb, r *EmbRW) {
	mark(unsafe.Pointer(&e.Mutex)); e.Lock() // op:Lock class:main.Emb.Mutex
	mark(unsafe.Pointer(&e.Mutex)); e.Unlock() // op:Unlock
	mark(unsafe.Pointer(&r.RWMutex)); r.RLock() // op:RLock class:main.EmbRW.RWMutex
	mark(unsafe.Pointer(&r.RWMutex)); r.RUnlock() // op:RUnlock
	mark(unsafe.Pointer(&r.RWMutex)); r.Lock() // op:RwLock class:main.EmbRW.RWMutex
	mark(unsafe.Pointer(&r.RWMutex)); r.Unlock() // op:RwUnlock
}

//go:noinline
func heap() *sync.Mutex {
	m := new(sync.Mutex)
	mark(unsafe.Pointer(m)); m.Lock() // op:Lock
	mark(unsafe.Pointer(m)); if m.TryLock() { // op:TryLock fail
		panic("trylock of held mutex succeeded")
	}
	mark(unsafe.Pointer(m)); m.Unlock() // op:Unlock
	return m
}

//go:noinline
func shards(sh []Shard, i int) {
	mark(unsafe.Pointer(&sh[i].mu)); sh[i].mu.Lock() // op:Lock
	sh[i].m[i]++
	mark(unsafe.Pointer(&sh[i].mu)); sh[i].mu.Unlock() // op:Unlock
}

//go:noinline
func withDefer(m *sync.Mutex) int {
	mark(unsafe.Pointer(m)); m.Lock() // op:Lock
	mark(unsafe.Pointer(m)); defer m.Unlock() // op:Unlock
	return 42
}

//go:noinline
func viaLocker(l sync.Locker, p unsafe.Pointer) {
	mark(p); l.Lock() // dyn:Lock
	mark(p); l.Unlock() // dyn:Unlock
}

//go:noinline
func methodValue(m *sync.Mutex) {
	f := m.Lock
	g := m.Unlock
	mark(unsafe.Pointer(m)); f() // dyn:Lock
	mark(unsafe.Pointer(m)); g() // dyn:Unlock
}

func generic[T any](m *sync.Mutex, v T) T {
	mark(unsafe.Pointer(m)); m.Lock() // op:Lock
	mark(unsafe.Pointer(m)); m.Unlock() // op:Unlock
	return v
}

//go:noinline
func condWait() {
	var mu sync.Mutex
	c := sync.NewCond(&mu)
	ready := false
	mark(unsafe.Pointer(&mu)); mu.Lock() // op:Lock
	go func() {
		mark(unsafe.Pointer(&mu)); mu.Lock() // op:Lock
		ready = true
		c.Signal()
		mark(unsafe.Pointer(&mu)); mu.Unlock() // op:Unlock
	}()
	for !ready {
		c.Wait() // wait
	}
	mark(unsafe.Pointer(&mu)); mu.Unlock() // op:Unlock
}

//go:noinline
func contended() {
	var mu sync.Mutex
	held := make(chan bool)
	done := make(chan bool)
	go func() {
		mark(unsafe.Pointer(&mu)); mu.Lock() // op:Lock
		held <- true
		time.Sleep(20 * time.Millisecond)
		mark(unsafe.Pointer(&mu)); mu.Unlock() // op:Unlock
		done <- true
	}()
	<-held
	mark(unsafe.Pointer(&mu)); mu.Lock() // op:Lock
	mark(unsafe.Pointer(&mu)); mu.Unlock() // op:Unlock
	<-done
}

//go:noinline
func (s *Srv) Close() {
	markOff(unsafe.Pointer(s), unsafe.Offsetof(s.mu)); s.mu.Lock() // op:Lock class:main.Srv.mu
	if !s.closed {
		s.closed = true
		s.conns = nil
	}
	markOff(unsafe.Pointer(s), unsafe.Offsetof(s.mu)); s.mu.Unlock() // op:Unlock
}

//go:noinline
func (t *Tmpl) Lookup(name string) int {
	if t.c == nil {
		return 0
	}
	markOff(unsafe.Pointer(t.c), unsafe.Offsetof(t.c.rw)); t.c.rw.RLock() // op:RLock class:main.common.rw
	markOff(unsafe.Pointer(t.c), unsafe.Offsetof(t.c.rw)); defer t.c.rw.RUnlock() // op:RUnlock
	return t.c.tmpl[name]
}

//go:noinline
func rlocker(rw *sync.RWMutex) {
	l := rw.RLocker()
	mark(unsafe.Pointer(rw)); l.Lock() // dyn:RLock
	mark(unsafe.Pointer(rw)); l.Unlock() // dyn:RUnlock
}

func main() {
	globals()
	s := &S{pm: new(sync.Mutex)}
	fields(s)
	embedded(&Emb{}, &EmbRW{})
	heap()
	sh := make([]Shard, 4)
	for i := range sh {
		sh[i].m = map[int]int{}
	}
	shards(sh, 2)
	withDefer(new(sync.Mutex))
	var lm sync.Mutex
	viaLocker(&lm, unsafe.Pointer(&lm))
	methodValue(new(sync.Mutex))
	generic(new(sync.Mutex), 1)
	generic(new(sync.Mutex), "x")
	condWait()
	contended()
	rlocker(new(sync.RWMutex))
	(&Srv{conns: map[int]bool{}}).Close()
	(&Tmpl{c: &common{tmpl: map[string]int{"a": 1}}}).Lookup("a")
	for _, m := range marks {
		fmt.Fprintf(os.Stdout, "M %d %p\n", m.line, m.p)
	}
}
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    /// Direct call.
    Op,
    /// Through an interface or func value.
    Dyn,
}

#[derive(Debug, Clone, Copy)]
struct Marker {
    op: LockOp,
    kind: MutexKind,
    tag: Tag,
    /// For Try ops: whether the fixture expects success.
    ok: Option<bool>,
    /// The mutex's place in its type (`main.S.mu`), when the scan must find it.
    class: Option<&'static str>,
}

fn parse_op(s: &str) -> (LockOp, MutexKind) {
    use LockOp::*;
    use MutexKind::*;
    match s {
        "Lock" => (Lock, Mutex),
        "Unlock" => (Unlock, Mutex),
        "TryLock" => (TryLock, Mutex),
        "RLock" => (RLock, RwMutex),
        "RUnlock" => (RUnlock, RwMutex),
        "TryRLock" => (TryRLock, RwMutex),
        "RwLock" => (Lock, RwMutex),
        "RwUnlock" => (Unlock, RwMutex),
        "RwTryLock" => (TryLock, RwMutex),
        _ => panic!("bad fixture marker {s}"),
    }
}

/// Marked lines and the lines that call sync.Cond.Wait.
fn markers() -> (BTreeMap<u32, Marker>, BTreeSet<u32>) {
    let mut m = BTreeMap::new();
    let mut waits = BTreeSet::new();
    for (i, text) in FIXTURE.lines().enumerate() {
        let line = i as u32 + 1;
        let Some(pos) = text.find("// ") else {
            continue;
        };
        if !text[..pos].contains("mark") && !text[..pos].contains("c.Wait()") {
            continue;
        }
        let c = text[pos + 3..].trim();
        if c == "wait" {
            waits.insert(line);
            continue;
        }
        let mut words = c.split_whitespace();
        let Some(first) = words.next() else { continue };
        let (tag, op) = if let Some(op) = first.strip_prefix("op:") {
            (Tag::Op, op)
        } else if let Some(op) = first.strip_prefix("dyn:") {
            (Tag::Dyn, op)
        } else {
            continue;
        };
        let (op, kind) = parse_op(op);
        let (mut ok, mut class) = (None, None);
        for w in words {
            match w {
                "ok" => ok = Some(true),
                "fail" => ok = Some(false),
                w => class = w.strip_prefix("class:"),
            }
        }
        m.insert(
            line,
            Marker {
                op,
                kind,
                tag,
                ok,
                class,
            },
        );
    }
    (m, waits)
}

fn go126() -> Option<PathBuf> {
    Some(crate::testgo::default_go()).filter(|p| p.exists())
}

fn go121() -> Option<PathBuf> {
    Some(crate::testgo::oldest_go()).filter(|p| p.exists())
}

struct Built {
    dir: PathBuf,
    bin: PathBuf,
    source: String,
}

fn build(go: &Path, tag: &str, gcflags: Option<&str>) -> Built {
    let dir = std::env::temp_dir().join(format!("locksites-fixture-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    std::fs::write(dir.join("main.go"), FIXTURE).unwrap();
    std::fs::write(dir.join("go.mod"), "module fixture\n\ngo 1.21\n").unwrap();
    let tmp = std::env::temp_dir();
    let gocache = std::env::var_os("GOCACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.join("locksites-gocache"));
    let gopath = std::env::var_os("GOPATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.join("locksites-gopath"));
    let bin = dir.join("fixture");
    let mut cmd = Command::new(go);
    cmd.arg("build").arg("-o").arg(&bin);
    if let Some(g) = gcflags {
        cmd.arg(format!("-gcflags={g}"));
    }
    cmd.arg(".")
        .current_dir(&dir)
        .env("PWD", &dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", gocache)
        .env("GOPATH", gopath)
        .env("CGO_ENABLED", "0");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", go.display()));
    assert!(
        out.status.success(),
        "go build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Built {
        source: dir.join("main.go").to_string_lossy().into_owned(),
        dir,
        bin,
    }
}

/// Address -> (file, line) from the DWARF line tables.
struct Lines {
    rows: Vec<(u64, u64, String, u32)>,
}

impl Lines {
    fn new(file: &object::File<'_>) -> Lines {
        let sections = gimli::DwarfSections::load(|id| -> Result<Cow<'_, [u8]>, object::Error> {
            match file.section_by_name(id.name()) {
                Some(s) => s.uncompressed_data(),
                None => Ok(Cow::Borrowed(&[][..])),
            }
        })
        .unwrap();
        let dwarf = sections.borrow(|s| EndianSlice::new(s.as_ref(), LittleEndian));
        let mut rows = Vec::new();
        let mut units = dwarf.units();
        while let Some(h) = units.next().unwrap() {
            let unit = dwarf.unit(h).unwrap();
            let Some(lp) = unit.line_program.clone() else {
                continue;
            };
            let mut it = lp.rows();
            let mut prev: Option<(u64, String, u32)> = None;
            while let Some((header, row)) = it.next_row().unwrap() {
                if let Some((a, f, l)) = prev.take() {
                    if row.address() > a {
                        rows.push((a, row.address(), f, l));
                    }
                }
                if row.end_sequence() {
                    continue;
                }
                let name = row
                    .file(header)
                    .map(|fe| {
                        let p = dwarf
                            .attr_string(&unit, fe.path_name())
                            .unwrap()
                            .to_string_lossy()
                            .into_owned();
                        if p.starts_with('/') {
                            return p;
                        }
                        let d = fe
                            .directory(header)
                            .and_then(|d| dwarf.attr_string(&unit, d).ok())
                            .map(|d| d.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if d.is_empty() {
                            p
                        } else {
                            format!("{d}/{p}")
                        }
                    })
                    .unwrap_or_default();
                prev = Some((
                    row.address(),
                    name,
                    row.line().map_or(0, |l| l.get() as u32),
                ));
            }
        }
        rows.sort_by_key(|r| r.0);
        Lines { rows }
    }

    fn at(&self, addr: u64) -> Option<(&str, u32)> {
        let i = self.rows.partition_point(|r| r.0 <= addr);
        let r = self.rows.get(i.checked_sub(1)?)?;
        (addr < r.1).then_some((r.2.as_str(), r.3))
    }
}

fn decode_fn(text: &[(u64, Vec<u8>)], lo: u64, hi: u64) -> Vec<Instruction> {
    for (a, d) in text {
        if lo >= *a && hi <= a + d.len() as u64 {
            let b = &d[(lo - a) as usize..(hi - a) as usize];
            return Decoder::with_ip(64, b, lo, DecoderOptions::NONE)
                .iter()
                .collect();
        }
    }
    panic!("function {lo:#x} outside .text");
}

/// `lock cmpxchg [m], r32` with eax = 0 and r32 = 1 set shortly before:
/// the CAS(0 -> locked) of a Mutex.Lock fast path.
fn is_lock_fast_path(code: &[Instruction], i: usize) -> bool {
    let ins = &code[i];
    if !(ins.has_lock_prefix()
        && ins.mnemonic() == Mnemonic::Cmpxchg
        && ins.op1_kind() == OpKind::Register)
    {
        return false;
    }
    let window = &code[i.saturating_sub(16)..i];
    let val = |r: Register| -> Option<i64> {
        for p in window.iter().rev() {
            if matches!(
                p.flow_control(),
                FlowControl::Call
                    | FlowControl::Return
                    | FlowControl::UnconditionalBranch
                    | FlowControl::IndirectBranch
            ) {
                return None;
            }
            if p.op_count() > 0
                && p.op0_kind() == OpKind::Register
                && p.op0_register().full_register() == r.full_register()
            {
                return match p.mnemonic() {
                    Mnemonic::Mov if p.op1_kind() == OpKind::Immediate32 => {
                        Some(p.immediate32() as i64)
                    }
                    Mnemonic::Xor
                        if p.op1_kind() == OpKind::Register
                            && p.op1_register() == p.op0_register() =>
                    {
                        Some(0)
                    }
                    _ => None,
                };
            }
        }
        None
    };
    val(Register::EAX) == Some(0) && val(ins.op1_register()) == Some(1)
}

fn gdb_usable() -> bool {
    Command::new("gdb")
        .args(["-nx", "-batch", "-ex", "python print('py-ok')"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("py-ok"))
        .unwrap_or(false)
}

const GDB_REGS: [&str; 18] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip", "eflags",
];

fn reg_slot(g: Gpr) -> usize {
    match g {
        Gpr::Rax => 0,
        Gpr::Rbx => 1,
        Gpr::Rcx => 2,
        Gpr::Rdx => 3,
        Gpr::Rsi => 4,
        Gpr::Rdi => 5,
        Gpr::Rbp => 6,
        Gpr::Rsp => 7,
        Gpr::R8 => 8,
        Gpr::R9 => 9,
        Gpr::R10 => 10,
        Gpr::R11 => 11,
        Gpr::R12 => 12,
        Gpr::R13 => 13,
        Gpr::R14 => 14,
        Gpr::R15 => 15,
        Gpr::Rip => 16,
    }
}

struct Hit {
    pc: u64,
    regs: Vec<u64>,
    rsp_word: u64,
    frames: Vec<(String, String, u32)>,
}

/// Run the fixture under gdb with a breakpoint on every site.
fn run_under_gdb(b: &Built, sites: &[LockSite]) -> (Vec<Hit>, Vec<(u32, u64)>) {
    let hits_path = b.dir.join("hits.txt");
    let out_path = b.dir.join("stdout.txt");
    let script = b.dir.join("probe.py");
    let addrs: Vec<String> = sites
        .iter()
        .map(|s| format!("{:#x}", s.probe_vaddr))
        .collect();
    let regs: Vec<String> = GDB_REGS.iter().map(|r| format!("\"{r}\"")).collect();
    let py = format!(
        r#"
import gdb
REGS = [{regs}]
out = open({hits:?}, "w")
class P(gdb.Breakpoint):
    def stop(self):
        try:
            fr = gdb.newest_frame()
            raw = [int(fr.read_register(r)) & 0xffffffffffffffff for r in REGS]
            vals = ["%x" % v for v in raw]
            mem = gdb.selected_inferior().read_memory(raw[7], 8)
            word = int.from_bytes(bytes(mem), "little")
            frames = []
            f = gdb.newest_frame()
            while f is not None and len(frames) < 10:
                sal = f.find_sal()
                fn = sal.symtab.filename if sal.symtab is not None else "?"
                frames.append("%s\x1f%s\x1f%d" % (f.name() or "?", fn, sal.line))
                try:
                    f = f.older()
                except gdb.error:
                    break
            out.write("HIT %s %x %s\n" % (" ".join(vals), word, "\x1e".join(frames)))
            out.flush()
        except Exception as e:
            out.write("ERR %s\n" % e)
            out.flush()
        return False
for a in [{addrs}]:
    P("*" + a, internal=True)
gdb.execute("run > {stdout}")
"#,
        regs = regs.join(", "),
        hits = hits_path.to_string_lossy(),
        addrs = addrs
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", "),
        stdout = out_path.to_string_lossy(),
    );
    std::fs::write(&script, py).unwrap();
    let mut child = Command::new("gdb")
        .args([
            "-nx",
            "-batch",
            "-ex",
            "set pagination off",
            "-ex",
            "set confirm off",
            "-ex",
            "set auto-load off",
        ])
        .args([
            "-ex",
            "handle SIGURG nostop noprint pass",
            "-ex",
            "handle SIGPIPE nostop noprint pass",
        ])
        .arg("-x")
        .arg(&script)
        .arg(&b.bin)
        .current_dir(&b.dir)
        .env("GODEBUG", "asyncpreemptoff=1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gdb");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("gdb run timed out");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let hits_txt = std::fs::read_to_string(&hits_path).expect("gdb wrote no hits file");
    let mut hits = Vec::new();
    for l in hits_txt.lines() {
        assert!(!l.starts_with("ERR"), "gdb script error: {l}");
        let Some(rest) = l.strip_prefix("HIT ") else {
            continue;
        };
        let mut parts = rest.splitn(GDB_REGS.len() + 2, ' ');
        let regs: Vec<u64> = (0..GDB_REGS.len())
            .map(|_| u64::from_str_radix(parts.next().unwrap(), 16).unwrap())
            .collect();
        let rsp_word = u64::from_str_radix(parts.next().unwrap(), 16).unwrap();
        let frames = parts
            .next()
            .unwrap_or("")
            .split('\x1e')
            .filter(|f| !f.is_empty())
            .map(|f| {
                let mut p = f.split('\x1f');
                (
                    p.next().unwrap_or("").to_string(),
                    p.next().unwrap_or("").to_string(),
                    p.next().unwrap_or("0").parse().unwrap_or(0),
                )
            })
            .collect();
        hits.push(Hit {
            pc: regs[16],
            regs,
            rsp_word,
            frames,
        });
    }
    let stdout = std::fs::read_to_string(&out_path).expect("fixture wrote no output");
    let marks = stdout
        .lines()
        .filter_map(|l| {
            let mut p = l.strip_prefix("M ")?.split_whitespace();
            let line: u32 = p.next()?.parse().ok()?;
            let addr = u64::from_str_radix(p.next()?.trim_start_matches("0x"), 16).ok()?;
            Some((line, addr))
        })
        .collect();
    (hits, marks)
}

#[derive(Debug, Default)]
#[allow(dead_code)] // printed through Debug
struct Summary {
    sites: usize,
    /// Acquisitions in the fixture whose mutex's field was named.
    classes: usize,
    fixture_inlined: BTreeMap<String, usize>,
    entry_sites: usize,
    lock_sites_in_fixture: usize,
    lock_fast_paths: usize,
    lock_source_lines: usize,
    hits: usize,
    counted: usize,
    ignored: usize,
    /// Entry hits named by a listed caller.
    by_caller: usize,
    marks: usize,
}

fn check(go: &Path, tag: &str, gcflags: Option<&str>) {
    let built = build(go, tag, gcflags);
    let noinline = gcflags.is_some();
    let data = std::fs::read(&built.bin).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let res = scan(&file).unwrap();
    assert!(
        res.unresolved.is_empty(),
        "[{tag}] unresolved sites: {:#?}",
        res.unresolved
    );
    // Without DWARF (the pclntab's inline trees, the table's layouts): the same.
    let pcln = super::scan_without_dwarf(&file).unwrap();
    assert_eq!(pcln.unresolved, res.unresolved, "[{tag}] without DWARF");
    for (a, b) in res.sites.iter().zip(&pcln.sites) {
        // Only the DWARF names a mutex's owner type.
        let mut a = a.clone();
        a.class = None;
        for c in &mut a.callers {
            c.class = None;
        }
        assert_eq!(&a, b, "[{tag}] site from DWARF, then without");
    }
    assert_eq!(
        pcln.sites.len(),
        res.sites.len(),
        "[{tag}] sites without DWARF"
    );
    let (marks_src, waits) = markers();
    let lines = Lines::new(&file);
    let mut sum = Summary {
        sites: res.sites.len(),
        ..Default::default()
    };

    let text: Vec<(u64, Vec<u8>)> = file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text)
        .map(|s| (s.address(), s.uncompressed_data().unwrap().into_owned()))
        .collect();
    let mut main_fns = Vec::new();
    let mut public_targets: HashMap<u64, Target> = HashMap::new();
    for sym in file.symbols() {
        let Ok(name) = sym.name() else { continue };
        if sym.kind() != object::SymbolKind::Text || sym.size() == 0 {
            continue;
        }
        if name.starts_with("main.") {
            main_fns.push((name.to_string(), sym.address(), sym.address() + sym.size()));
        }
        if let Class::Target(t) = classify(name) {
            if !t.internal {
                public_targets.insert(sym.address(), t);
            }
        }
    }
    let in_main = |a: u64| main_fns.iter().any(|f| a >= f.1 && a < f.2);
    let by_probe: HashMap<u64, &LockSite> = res.sites.iter().map(|s| (s.probe_vaddr, s)).collect();

    // Every out-of-line public method in the binary has a site.
    for (&addr, t) in &public_targets {
        let s = res.sites.iter().find(|s| {
            !s.inlined
                && s.op == t.op
                && s.kind == t.kind
                && s.probe_vaddr >= addr
                && s.probe_vaddr < addr + 0x400
        });
        assert!(
            s.is_some(),
            "[{tag}] no site for out-of-line {:?} {:?} at {addr:#x}",
            t.kind,
            t.op
        );
    }
    sum.entry_sites = res.sites.iter().filter(|s| !s.inlined).count();

    // Each acquisition written in the fixture (an inlined site, or a direct
    // call into a method entry) names its mutex's field where marked, and no
    // field elsewhere.
    let acquisitions = res.sites.iter().flat_map(|s| {
        let inlined = (s.inlined && s.file == built.source).then_some((s.line, s.op, &s.class));
        let calls = s
            .callers
            .iter()
            .filter(|c| c.file == built.source)
            .map(move |c| (c.line, s.op, &c.class));
        inlined.into_iter().chain(calls)
    });
    for (line, op, class) in acquisitions {
        let Some(m) = marks_src.get(&line) else {
            continue;
        };
        if op.is_acquire() && !op.is_try() {
            assert_eq!(
                class.as_deref(),
                m.class,
                "[{tag}] class of the {op:?} at line {line}"
            );
            sum.classes += usize::from(class.is_some());
        }
    }

    // Sites written in the fixture are on marked lines with the same op.
    for s in res.sites.iter().filter(|s| s.file == built.source) {
        let m = marks_src
            .get(&s.line)
            .unwrap_or_else(|| panic!("[{tag}] site on unmarked line {}: {s:?}", s.line));
        assert_eq!(
            (m.op, m.kind),
            (s.op, s.kind),
            "[{tag}] wrong op at line {}: {s:?}",
            s.line
        );
        assert!(s.inlined, "[{tag}] {s:?}");
        assert!(!noinline, "[{tag}] inlined site in a -l build: {s:?}");
        *sum.fixture_inlined
            .entry(format!("{:?}/{:?}", s.kind, s.op))
            .or_default() += 1;
    }

    // Direct calls from the fixture's functions to out-of-line methods,
    // and all of their lock-prefixed instructions.
    let mut call_lines: BTreeMap<u32, Vec<Target>> = BTreeMap::new();
    // (return address, line) of each direct call to a Lock/Unlock/RLock/RUnlock.
    let mut direct_calls: BTreeSet<(u64, u32)> = BTreeSet::new();
    let mut fast_paths = BTreeSet::new();
    let mut locked = BTreeSet::new();
    for (name, lo, hi) in &main_fns {
        let code = decode_fn(&text, *lo, *hi);
        for (i, ins) in code.iter().enumerate() {
            if ins.flow_control() == FlowControl::Call && ins.op0_kind() == OpKind::NearBranch64 {
                if let Some(t) = public_targets.get(&ins.near_branch_target()) {
                    let (f, l) = lines.at(ins.ip()).unwrap_or(("", 0));
                    if f == built.source {
                        call_lines.entry(l).or_default().push(*t);
                        if !t.op.is_try() {
                            direct_calls.insert((ins.next_ip(), l));
                        }
                    } else {
                        assert!(name.contains("-fm"), "[{tag}] call from {name} at {f}:{l}");
                    }
                }
            }
            if ins.has_lock_prefix() {
                locked.insert((ins.ip(), ins.next_ip()));
            }
            if is_lock_fast_path(&code, i) {
                fast_paths.insert(ins.ip());
            }
        }
    }

    // Each of those calls names the entry's hits by its own line.
    let listed: BTreeSet<(u64, u32)> = res
        .sites
        .iter()
        .flat_map(|s| &s.callers)
        .filter(|c| c.file == built.source)
        .map(|c| (c.return_addr, c.line))
        .collect();
    assert_eq!(
        listed, direct_calls,
        "[{tag}] callers listed vs direct calls in main.*"
    );
    if noinline {
        assert!(!direct_calls.is_empty(), "[{tag}] no direct call");
    }

    // Each direct call line is covered exactly one way.
    for (&line, m) in marks_src.iter().filter(|(_, m)| m.tag == Tag::Op) {
        let inl = res
            .sites
            .iter()
            .filter(|s| s.file == built.source && s.line == line)
            .count();
        let calls = call_lines.get(&line).map_or(0, |v| {
            v.iter()
                .filter(|t| t.op == m.op && t.kind == m.kind)
                .count()
        });
        assert!(
            (inl > 0) != (calls > 0),
            "[{tag}] line {line} ({:?} {:?}): {inl} inlined sites, {calls} calls",
            m.kind,
            m.op
        );
    }
    for (&line, ts) in &call_lines {
        let m = marks_src
            .get(&line)
            .unwrap_or_else(|| panic!("[{tag}] call on unmarked line {line}"));
        for t in ts {
            assert_eq!(
                (t.op, t.kind),
                (m.op, m.kind),
                "[{tag}] call at line {line}"
            );
        }
    }

    // Lock: source call sites == sites found == CAS fast paths.
    let lock_src: BTreeSet<u32> = marks_src
        .iter()
        .filter(|(_, m)| m.tag == Tag::Op && m.op == LockOp::Lock && m.kind == MutexKind::Mutex)
        .map(|(l, _)| *l)
        .collect();
    let lock_sites: Vec<&LockSite> = res
        .sites
        .iter()
        .filter(|s| {
            s.op == LockOp::Lock
                && s.kind == MutexKind::Mutex
                && s.inlined
                && in_main(s.probe_vaddr)
        })
        .collect();
    let lock_site_addrs: BTreeSet<u64> = lock_sites.iter().map(|s| s.probe_vaddr).collect();
    let mut covered: BTreeSet<u32> = lock_sites.iter().map(|s| s.line).collect();
    covered.extend(
        call_lines
            .iter()
            .filter(|(_, ts)| {
                ts.iter()
                    .any(|t| t.op == LockOp::Lock && t.kind == MutexKind::Mutex)
            })
            .map(|(l, _)| *l),
    );
    assert_eq!(covered, lock_src, "[{tag}] Lock call lines");
    assert_eq!(
        lock_site_addrs, fast_paths,
        "[{tag}] Lock sites vs CAS fast paths in main.*"
    );
    sum.lock_sites_in_fixture = lock_sites.len();
    sum.lock_fast_paths = fast_paths.len();
    sum.lock_source_lines = lock_src.len();
    if noinline {
        assert!(fast_paths.is_empty());
    } else {
        assert!(!fast_paths.is_empty());
    }

    // Every atomic in the fixture's code is the anchor of a site, and
    // every site there is anchored on an atomic.
    let anchors: BTreeSet<u64> = res
        .sites
        .iter()
        .filter(|s| in_main(s.probe_vaddr))
        .map(|s| {
            let hit = locked.iter().find(|(ip, next)| {
                if s.outcome == Outcome::IfZf {
                    *next == s.probe_vaddr
                } else {
                    *ip == s.probe_vaddr
                }
            });
            hit.unwrap_or_else(|| panic!("[{tag}] site not on an atomic: {s:?}"))
                .0
        })
        .collect();
    let locked_ips: BTreeSet<u64> = locked.iter().map(|x| x.0).collect();
    assert_eq!(
        anchors, locked_ips,
        "[{tag}] atomics in main.* vs site anchors"
    );

    // Dynamic check.
    if !gdb_usable() {
        eprintln!("[{tag}] SKIPPED dynamic check: gdb with python not available");
    } else {
        let (hits, marks) = run_under_gdb(&built, &res.sites);
        assert!(!marks.is_empty(), "[{tag}] fixture printed no marks");
        sum.marks = marks.len();
        sum.hits = hits.len();
        let mut marks_by_line: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (l, a) in &marks {
            marks_by_line.entry(*l).or_default().push(*a);
        }
        let all_marked: BTreeSet<u64> = marks.iter().map(|m| m.1).collect();
        let mut got: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        let mut unknown_lines = BTreeSet::new();
        for h in &hits {
            let site = by_probe
                .get(&h.pc)
                .unwrap_or_else(|| panic!("[{tag}] hit at {:#x}: not a site", h.pc));
            let value = h.regs[reg_slot(site.reg)];
            let addr = site.mutex_addr(value);
            let zf = h.regs[17] & EFLAGS_ZF != 0;
            let ignored =
                !site.inlined && site.ignore_return_addrs.binary_search(&h.rsp_word).is_ok();
            let line = h.frames.iter().find(|f| f.1 == built.source).map(|f| f.2);
            if ignored {
                sum.ignored += 1;
                let caller = h.frames.get(1).map_or("", |f| f.0.as_str());
                assert!(
                    caller.starts_with("sync.") || caller.starts_with("internal/sync."),
                    "[{tag}] ignored a hit not called from sync: {:?}",
                    h.frames
                );
                continue;
            }
            let counted = match site.outcome {
                Outcome::Performed | Outcome::Unknown => true,
                Outcome::IfZf => zf,
            };
            // A direct call names the hit by its own line.
            let by_caller = site.callers.iter().find(|c| c.return_addr == h.rsp_word);
            if let Some(c) = by_caller.filter(|_| !site.inlined) {
                let call = h.frames.get(1).map(|f| (f.1.as_str(), f.2));
                assert_eq!(
                    Some((c.file.as_str(), c.line)),
                    call,
                    "[{tag}] hit at {:#x} named by {c:?}: {:?}",
                    h.pc,
                    h.frames
                );
                sum.by_caller += 1;
            }
            let Some(line) = line else { continue };
            if let Some(m) = marks_src.get(&line) {
                assert_eq!(
                    (m.op, m.kind),
                    (site.op, site.kind),
                    "[{tag}] hit at {:#x} attributed to line {line}: {:?}",
                    h.pc,
                    h.frames
                );
                if !counted {
                    assert!(m.op.is_try(), "[{tag}] {site:?}");
                    continue;
                }
                if site.outcome == Outcome::Unknown {
                    unknown_lines.insert(line);
                }
                sum.counted += 1;
                got.entry(line).or_default().push(addr);
            } else if waits.contains(&line) {
                assert_eq!(site.kind, MutexKind::Mutex);
                assert!(
                    all_marked.contains(&addr),
                    "[{tag}] Cond.Wait on unknown mutex {addr:#x}"
                );
                sum.counted += 1;
            } else {
                panic!(
                    "[{tag}] hit at {:#x} from unmarked line {line}: {:?}",
                    h.pc, h.frames
                );
            }
        }
        for (&line, m) in &marks_src {
            let mut want = marks_by_line.get(&line).cloned().unwrap_or_default();
            let mut have = got.get(&line).cloned().unwrap_or_default();
            if m.ok == Some(false) && !unknown_lines.contains(&line) {
                want.clear();
            }
            want.sort_unstable();
            have.sort_unstable();
            assert!(
                marks_by_line.get(&line).is_some_and(|v| !v.is_empty()),
                "[{tag}] line {line} never ran"
            );
            assert_eq!(
                have, want,
                "[{tag}] line {line} {:?} {:?}: mutex addresses seen vs printed",
                m.kind, m.op
            );
        }
    }
    eprintln!("[{tag}] {sum:?}");
    if std::env::var_os("LOCKSITES_KEEP_FIXTURE").is_none() {
        let _ = std::fs::remove_dir_all(&built.dir);
    }
}

fn run(go: Option<PathBuf>, what: &str, tag: &str, gcflags: Option<&str>) {
    match go {
        Some(g) if g.exists() => check(&g, tag, gcflags),
        _ => eprintln!("[{tag}] SKIPPED: no {what} toolchain"),
    }
}

#[test]
fn go126_inlined() {
    run(go126(), "Go 1.26 (TRACER_GO)", "go126", None);
}

#[test]
fn go126_noinline_main() {
    run(go126(), "Go 1.26 (TRACER_GO)", "go126-l", Some("-l"));
}

#[test]
fn go126_noinline_all() {
    run(
        go126(),
        "Go 1.26 (TRACER_GO)",
        "go126-all-l",
        Some("all=-N -l"),
    );
}

#[test]
fn go121_inlined() {
    run(go121(), "Go 1.21 (TRACER_GO121)", "go121", None);
}

#[test]
fn go121_noinline_main() {
    run(go121(), "Go 1.21 (TRACER_GO121)", "go121-l", Some("-l"));
}

#[test]
fn go121_noinline_all() {
    run(
        go121(),
        "Go 1.21 (TRACER_GO121)",
        "go121-all-l",
        Some("all=-N -l"),
    );
}
