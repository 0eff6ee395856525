//! What DWARF tells about the Go runtime, per Go minor, for binaries without DWARF
//! (built with `-ldflags=-w`): struct field offsets, goroutine status values and
//! wait-reason names. `cargo xtask layouts` builds [`REFERENCE_PROGRAM`] with each
//! Go minor, reads it with this crate's own DWARF reader ([`extract`]) and writes
//! `layouts.txt`, which is compiled in. A test builds the reference program again
//! with every Go in the build tree and compares. A binary's own DWARF, when it has
//! some, always comes first; the table is never used to guess a Go minor it does
//! not list.
use crate::binary::Binary;
use crate::buildinfo::GoVersion;
use crate::{dwarf, target, waitreasons};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The checked-in table (see [`render`] for its format).
const TABLE: &str = include_str!("layouts.txt");

/// Fields read from DWARF other than [`target::FIELDS`]: the mutex layouts lock
/// sites need (`locksites`) and where the module data keeps `go:func.*` (the
/// inline trees of a binary without a symbol table).
pub const EXTRA_FIELDS: &[(&str, &[&str])] = &[
    ("sync.Mutex", &["mu", "state", "sema"]),
    ("internal/sync.Mutex", &["state", "sema"]),
    ("sync.RWMutex", &["readerCount", "readerWait"]),
    ("sync/atomic.Int32", &["v"]),
    ("runtime.moduledata", &["text", "gofunc"]),
];

/// Goroutine statuses (`runtime._G*` constants) are recorded by this prefix.
pub const STATUS_PREFIX: &str = "runtime._G";

/// `runtime._Gwaiting`, `runtime._Gscan`, ... but not `runtime._GCoff` (a GC
/// phase) or `runtime._GoidCacheBatch`.
fn is_status(name: &str) -> bool {
    name.strip_prefix(STATUS_PREFIX)
        .is_some_and(|s| s.starts_with(|c: char| c.is_ascii_lowercase()) && !s.starts_with("oid"))
}

/// A Go program that uses every type whose fields are in [`target::FIELDS`] and
/// [`EXTRA_FIELDS`], so that its DWARF describes them all. It is built, never run.
pub const REFERENCE_PROGRAM: &str = r#"package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type state struct {
	mu sync.Mutex
	rw sync.RWMutex
	wg sync.WaitGroup
	n  atomic.Int32
}

func main() {
	s := &state{}
	ch := make(chan int, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.mu.Lock()
		s.rw.RLock()
		ch <- int(s.n.Add(1))
		s.rw.RUnlock()
		s.mu.Unlock()
		s.rw.Lock()
		s.rw.Unlock()
	}()
	select {
	case v := <-ch:
		fmt.Fprintln(os.Stdout, v)
	case <-time.After(time.Second):
	}
	s.wg.Wait()
}
"#;

/// One Go minor's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoLayout {
    /// `1.N`: the minor this entry is for.
    pub minor: u32,
    /// The exact Go the reference program was built with (`go1.26.6`).
    pub built_with: String,
    /// `type.field` (nested fields dotted, as in [`target::FIELDS`]) -> byte offset.
    pub offsets: BTreeMap<String, u64>,
    /// `runtime._G*` constants.
    pub statuses: BTreeMap<String, i64>,
    /// `runtime.waitReasonStrings`, by reason number.
    pub wait_reasons: Vec<String>,
}

impl GoLayout {
    pub fn offset(&self, name: &str) -> Option<u64> {
        self.offsets.get(name).copied()
    }

    pub fn status(&self, name: &str) -> Option<i64> {
        self.statuses.get(name).copied()
    }
}

/// Why a binary's Go minor has no entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// Newer than the newest entry (its minor is given).
    TooNew { newest: u32 },
    /// Inside the table's range but not in it (not expected: the table has every
    /// supported minor).
    Missing,
}

/// Every entry of the checked-in table, oldest first.
pub fn all() -> &'static [GoLayout] {
    static PARSED: OnceLock<Vec<GoLayout>> = OnceLock::new();
    PARSED.get_or_init(|| match parse(TABLE) {
        Ok(v) => v,
        // The table is checked in and tested; a broken one is a build defect.
        Err(e) => panic!("layouts.txt: {e}"),
    })
}

/// The newest Go minor the table knows.
pub fn newest() -> u32 {
    all().iter().map(|l| l.minor).max().unwrap_or(0)
}

/// The entry for a binary built by `version`.
pub fn for_version(version: &GoVersion) -> Result<&'static GoLayout, Unknown> {
    if version.major != 1 {
        return Err(Unknown::TooNew { newest: newest() });
    }
    if let Some(l) = all().iter().find(|l| l.minor == version.minor) {
        return Ok(l);
    }
    if version.minor > newest() {
        Err(Unknown::TooNew { newest: newest() })
    } else {
        Err(Unknown::Missing)
    }
}

/// Builds [`REFERENCE_PROGRAM`] with the `go` command given, in `dir`; returns the
/// binary. Offline and without cgo; `GOCACHE` and `GOPATH` are the caller's, or
/// under the temp dir.
pub fn build_reference(go: &Path, dir: &Path) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{}: {e}", dir.display()))
    };
    write("main.go", REFERENCE_PROGRAM)?;
    write("go.mod", "module layoutref\n\ngo 1.21\n")?;
    let bin = dir.join("ref");
    let mut cmd = std::process::Command::new(go);
    cmd.args(["build", "-o"])
        .arg(&bin)
        .arg(".")
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("CGO_ENABLED", "0");
    let tmp = std::env::temp_dir().join("tracer-inspect-go");
    for (var, sub) in [("GOCACHE", "cache"), ("GOPATH", "gopath")] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, tmp.join(sub));
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running {}: {e}", go.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} build of the reference program: {}",
            go.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

/// Reads an entry from a binary with DWARF (the reference program).
pub fn extract(path: &Path) -> Result<GoLayout, String> {
    let bin = Binary::open(path).map_err(|e| e.to_string())?;
    let obj = bin.object().map_err(|e| e.to_string())?;
    let info = crate::buildinfo::read(&obj).map_err(|e| e.to_string())?;
    let d = dwarf::load(&bin)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} has no DWARF", path.display()))?;
    let wanted: Vec<(&str, &[&str])> = target::FIELDS.iter().chain(EXTRA_FIELDS).copied().collect();
    let found = dwarf::member_offsets(&d, &wanted).map_err(|e| e.to_string())?;
    let mut statuses = dwarf::int_constants(&d, STATUS_PREFIX).map_err(|e| e.to_string())?;
    statuses.retain(|name, _| is_status(name));
    let syms = bin
        .symbols(&["runtime.waitReasonStrings"])
        .map_err(|e| e.to_string())?;
    let sym = syms
        .get("runtime.waitReasonStrings")
        .ok_or("no runtime.waitReasonStrings symbol")?;
    Ok(GoLayout {
        minor: info.version.minor,
        built_with: info.version.to_string(),
        offsets: found.offsets.into_iter().collect(),
        statuses,
        wait_reasons: waitreasons::read(&bin, *sym, None),
    })
}

/// The table's text: a comment header, then per entry a `go 1.N goX.Y.Z` line
/// followed by `offset NAME N`, `status NAME N` and `wait N "STRING"` lines.
pub fn render(entries: &[GoLayout]) -> String {
    use std::fmt::Write as _;
    let mut s = String::from(
        "# Written by `cargo xtask layouts` from a reference program built by each Go\n\
         # minor (tracer-inspect/src/layouts.rs); do not edit. Used only for binaries\n\
         # without DWARF.\n",
    );
    for l in entries {
        let _ = writeln!(s, "\ngo 1.{} {}", l.minor, l.built_with);
        for (k, v) in &l.offsets {
            let _ = writeln!(s, "offset {k} {v}");
        }
        for (k, v) in &l.statuses {
            let _ = writeln!(s, "status {k} {v}");
        }
        for (i, w) in l.wait_reasons.iter().enumerate() {
            let _ = writeln!(s, "wait {i} {}", quote(w));
        }
    }
    s
}

fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                'n' => out.push('\n'),
                c => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Parses [`render`]'s format.
pub fn parse(text: &str) -> Result<Vec<GoLayout>, String> {
    let mut out: Vec<GoLayout> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = || format!("line {}: {line:?}", n + 1);
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, rest) = line.split_once(' ').ok_or_else(bad)?;
        if kind == "go" {
            let (ver, built) = rest.split_once(' ').ok_or_else(bad)?;
            let minor = ver
                .strip_prefix("1.")
                .and_then(|m| m.parse().ok())
                .ok_or_else(bad)?;
            out.push(GoLayout {
                minor,
                built_with: built.to_string(),
                offsets: BTreeMap::new(),
                statuses: BTreeMap::new(),
                wait_reasons: Vec::new(),
            });
            continue;
        }
        let entry = out.last_mut().ok_or_else(bad)?;
        let (name, value) = rest.split_once(' ').ok_or_else(bad)?;
        match kind {
            "offset" => {
                entry
                    .offsets
                    .insert(name.to_string(), value.parse().map_err(|_| bad())?);
            }
            "status" => {
                entry
                    .statuses
                    .insert(name.to_string(), value.parse().map_err(|_| bad())?);
            }
            "wait" => {
                let i: usize = name.parse().map_err(|_| bad())?;
                if i != entry.wait_reasons.len() {
                    return Err(bad());
                }
                entry.wait_reasons.push(unquote(value).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgo::{go_paths, scratch_dir};

    fn build_ref(go: &Path) -> PathBuf {
        build_reference(go, &scratch_dir("layouts-ref")).unwrap()
    }

    /// Every Go of the build tree (`build/go-*/bin/go`), and the test toolchains.
    fn gos() -> Vec<PathBuf> {
        let mut v = go_paths();
        let build = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build");
        if let Ok(rd) = std::fs::read_dir(&build) {
            for e in rd.flatten() {
                let go = e.path().join("bin/go");
                let is_go = e.file_name().to_string_lossy().starts_with("go-");
                if is_go && go.exists() && !v.contains(&go) {
                    v.push(go);
                }
            }
        }
        v.retain(|g| g.exists());
        v
    }

    #[test]
    fn table_parses_and_round_trips() {
        let t = all();
        assert!(!t.is_empty());
        assert_eq!(parse(&render(t)).unwrap(), t);
        // Every minor from the oldest supported to the newest, once.
        let minors: Vec<u32> = t.iter().map(|l| l.minor).collect();
        let want: Vec<u32> = (21..=newest()).collect();
        assert_eq!(minors, want);
        for l in t {
            for (ty, fields) in target::FIELDS {
                for f in *fields {
                    let name = format!("{ty}.{f}");
                    if target::optional_field(&name) && l.minor < 23 {
                        continue;
                    }
                    assert!(l.offset(&name).is_some(), "1.{}: no {ty}.{f}", l.minor);
                }
            }
            assert!(l.wait_reasons.len() > 30, "1.{}", l.minor);
            assert_eq!(l.wait_reasons[0], "", "1.{}", l.minor);
        }
    }

    /// The status values the goroutine reader relies on are the same in every
    /// Go minor the table knows.
    #[test]
    fn goroutine_statuses_are_stable() {
        for l in all() {
            assert_eq!(l.status("runtime._Gwaiting"), Some(4), "1.{}", l.minor);
            assert_eq!(l.status("runtime._Gdead"), Some(6), "1.{}", l.minor);
            assert_eq!(l.status("runtime._Gscan"), Some(0x1000), "1.{}", l.minor);
        }
    }

    #[test]
    fn newer_minors_are_refused() {
        let n = newest();
        assert!(for_version(&GoVersion::new(1, n, 0)).is_ok());
        assert_eq!(
            for_version(&GoVersion::new(1, n + 1, 0)),
            Err(Unknown::TooNew { newest: n })
        );
        assert_eq!(
            for_version(&GoVersion::new(2, 0, 0)),
            Err(Unknown::TooNew { newest: n })
        );
    }

    /// The checked-in entries are what the reference program's DWARF says, for
    /// every Go in the build tree.
    #[test]
    fn table_matches_the_reference_program_of_each_go() {
        let gos = gos();
        assert!(!gos.is_empty(), "no Go toolchain in the build tree");
        for go in gos {
            let bin = build_ref(&go);
            let got = extract(&bin).unwrap();
            let want = for_version(&GoVersion::new(1, got.minor, 0))
                .unwrap_or_else(|e| panic!("{}: {e:?}: run `cargo xtask layouts`", got.built_with));
            eprintln!(
                "{}: {} offsets, {} statuses, {} wait reasons",
                got.built_with,
                got.offsets.len(),
                got.statuses.len(),
                got.wait_reasons.len()
            );
            assert_eq!(got.offsets, want.offsets, "{}", got.built_with);
            assert_eq!(got.statuses, want.statuses, "{}", got.built_with);
            assert_eq!(got.wait_reasons, want.wait_reasons, "{}", got.built_with);
        }
    }
}
