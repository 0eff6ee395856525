//! Go build information (`.go.buildinfo`) reader.
//!
//! Every Go executable since Go 1.13 embeds a small header that starts with the
//! magic `"\xff Go buildinf:"` (16-byte aligned) followed by the pointer size,
//! a flags byte and either
//!
//! * (Go 1.18+, flag `0x2`) the Go version string and the module info string,
//!   each encoded inline right after the 32-byte header as a uvarint length
//!   followed by the bytes, or
//! * (older releases) two pointers to Go string headers (`{ptr, len}`) that
//!   point at the version and module info strings elsewhere in the image.
//!
//! The header normally lives in the `.go.buildinfo` section; when section
//! headers are missing the magic is searched in the writable, non-executable
//! `PT_LOAD` segments, like `debug/buildinfo` does.
//!
//! Nothing here depends on symbols or DWARF, so stripped binaries work.

use std::fmt;

use object::{Object, ObjectSection, ObjectSegment};

/// A Go release version such as `go1.26.6`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl GoVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        GoVersion {
            major,
            minor,
            patch,
        }
    }

    /// True when this version is `major.minor` or newer (patch ignored).
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "go{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What `.go.buildinfo` says about a Go executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// Parsed toolchain version.
    pub version: GoVersion,
    /// The version string exactly as embedded, e.g. `go1.26.6` or
    /// `go1.22.0 X:nocoverageredesign` or `devel go1.27-abcdef ...`.
    pub raw_version: String,
    /// Main module path (the `mod` line of the module info), if present.
    pub main_path: Option<String>,
    /// Main module version (`v1.2.3`, or `(devel)` for a local build), if present.
    pub main_version: Option<String>,
    /// Main package path (the `path` line of the module info), if present.
    /// For `go build` of a module root this equals `main_path`; for
    /// `go run file.go` it is `command-line-arguments`.
    pub package_path: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildInfoError {
    /// No Go build info header was found: not a Go executable.
    #[error("not a Go executable (no Go build info found)")]
    NotGo,
    /// The header was found but could not be decoded.
    #[error("malformed Go build info: {0}")]
    Malformed(String),
}

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const ALIGN: u64 = 16;
const HEADER_SIZE: usize = 32;
const FLAG_BIG_ENDIAN: u8 = 0x1;
const FLAG_INLINE_STRINGS: u8 = 0x2;
const PF_X: u32 = 0x1;
const PF_W: u32 = 0x2;

/// Reads the Go build info of an ELF executable: from the `.go.buildinfo`
/// section, or, when there is none (or it lacks the magic), from the
/// writable non-executable `PT_LOAD` segments that hold the
/// `"\xff Go buildinf:"` header. Handles both the inline-string format
/// (Go 1.18+) and the older pointer-based one.
pub fn read(file: &object::File<'_>) -> Result<BuildInfo, BuildInfoError> {
    let image = Image::from_file(file);
    let mut regions: Vec<(u64, u64)> = Vec::new();
    if let Some(sect) = file.section_by_name(".go.buildinfo") {
        if sect.size() > 0 {
            regions.push((sect.address(), sect.size()));
        }
    }
    // Writable, non-executable segments (what debug/buildinfo searches when
    // there is no section header). Searched after the section, so a binary
    // whose section table was stripped or rewritten still works.
    for seg in file.segments() {
        let writable_data = match seg.flags() {
            object::SegmentFlags::Elf { p_flags, .. } => p_flags.0 & (PF_W | PF_X) == PF_W,
            _ => false,
        };
        if writable_data && seg.size() > 0 {
            regions.push((seg.address(), seg.size()));
        }
    }
    if regions.is_empty() {
        return Err(BuildInfoError::NotGo);
    }
    for (start, size) in regions {
        if let Some(addr) = search_magic(&image, start, size) {
            return parse_at(&image, addr);
        }
    }
    Err(BuildInfoError::NotGo)
}

/// Parses a Go version string: `go1.26.6` -> 1.26.6, `go1.21` -> 1.21.0,
/// `go1.21rc2` -> 1.21.0, `go1.22.0 X:foo` -> 1.22.0,
/// `devel go1.27-abc123 ...` -> 1.27.0.
pub fn parse_version(s: &str) -> Option<GoVersion> {
    let s = s.trim();
    let s = s.strip_prefix("devel ").map(str::trim_start).unwrap_or(s);
    let rest = s.strip_prefix("go")?;
    let (major, rest) = leading_number(rest)?;
    let (minor, rest) = match rest.strip_prefix('.') {
        Some(r) => leading_number(r)?,
        None => (0, rest),
    };
    let patch = match rest.strip_prefix('.') {
        Some(r) => leading_number(r).map(|(p, _)| p).unwrap_or(0),
        None => 0,
    };
    Some(GoVersion {
        major,
        minor,
        patch,
    })
}

fn leading_number(s: &str) -> Option<(u32, &str)> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let n = s[..end].parse().ok()?;
    Some((n, &s[end..]))
}

/// The file-backed bytes of the loadable segments, addressed by virtual
/// address.
struct Image<'data> {
    segments: Vec<(u64, &'data [u8])>,
}

impl<'data> Image<'data> {
    fn from_file(file: &object::File<'data>) -> Self {
        let mut segments = Vec::new();
        for seg in file.segments() {
            if let Ok(data) = seg.data() {
                if !data.is_empty() {
                    segments.push((seg.address(), data));
                }
            }
        }
        if segments.is_empty() {
            // Relocatable objects or odd files: fall back to sections.
            for sect in file.sections() {
                if sect.address() == 0 {
                    continue;
                }
                if let Ok(data) = sect.data() {
                    if !data.is_empty() {
                        segments.push((sect.address(), data));
                    }
                }
            }
        }
        Image { segments }
    }

    /// The bytes from `addr` to the end of the containing segment's file data.
    fn at(&self, addr: u64) -> Option<&'data [u8]> {
        self.segments.iter().find_map(|&(base, data)| {
            let off = addr.checked_sub(base)?;
            if off < data.len() as u64 {
                Some(&data[off as usize..])
            } else {
                None
            }
        })
    }

    fn read(&self, addr: u64, len: u64) -> Option<&'data [u8]> {
        let b = self.at(addr)?;
        let len = usize::try_from(len).ok()?;
        b.get(..len)
    }
}

fn search_magic(image: &Image<'_>, start: u64, size: u64) -> Option<u64> {
    let end = start.checked_add(size)?;
    let mut addr = start.checked_add(ALIGN - 1)? & !(ALIGN - 1);
    while addr < end {
        // Work over the contiguous file data available at `addr`.
        let Some(data) = image.at(addr) else {
            // Not file-backed here (e.g. .bss); skip to the next segment that
            // starts inside the region, if any.
            let next = image
                .segments
                .iter()
                .map(|&(base, _)| base)
                .filter(|&b| b > addr && b < end)
                .min()?;
            addr = next.checked_add(ALIGN - 1)? & !(ALIGN - 1);
            continue;
        };
        let avail = (data.len() as u64).min(end - addr) as usize;
        let data = &data[..avail];
        let mut off = 0usize;
        while off + MAGIC.len() <= data.len() {
            if &data[off..off + MAGIC.len()] == MAGIC {
                return Some(addr + off as u64);
            }
            off += ALIGN as usize;
        }
        addr += (data.len() as u64 + ALIGN - 1) & !(ALIGN - 1);
    }
    None
}

fn parse_at(image: &Image<'_>, addr: u64) -> Result<BuildInfo, BuildInfoError> {
    let header = image
        .read(addr, HEADER_SIZE as u64)
        .ok_or_else(|| BuildInfoError::Malformed("truncated build info header".into()))?;
    let ptr_size = header[14];
    let flags = header[15];

    let (raw_version, modinfo) = if flags & FLAG_INLINE_STRINGS != 0 {
        let (vers, next) = decode_inline_string(image, addr + HEADER_SIZE as u64)?;
        let (modinfo, _) = decode_inline_string(image, next)?;
        (String::from_utf8_lossy(&vers).into_owned(), modinfo)
    } else {
        let big_endian = flags & FLAG_BIG_ENDIAN != 0;
        let read_ptr = |b: &[u8]| -> Option<u64> {
            match ptr_size {
                4 => {
                    let a: [u8; 4] = b.get(..4)?.try_into().ok()?;
                    Some(if big_endian {
                        u32::from_be_bytes(a)
                    } else {
                        u32::from_le_bytes(a)
                    } as u64)
                }
                8 => {
                    let a: [u8; 8] = b.get(..8)?.try_into().ok()?;
                    Some(if big_endian {
                        u64::from_be_bytes(a)
                    } else {
                        u64::from_le_bytes(a)
                    })
                }
                _ => None,
            }
        };
        if ptr_size != 4 && ptr_size != 8 {
            return Err(BuildInfoError::Malformed(format!(
                "bad pointer size {ptr_size}"
            )));
        }
        let ps = ptr_size as usize;
        let read_go_string = |hdr_addr: u64| -> Option<&[u8]> {
            let hdr = image.read(hdr_addr, 2 * ps as u64)?;
            let data = read_ptr(hdr)?;
            let len = read_ptr(&hdr[ps..])?;
            if len == 0 {
                return Some(&[]);
            }
            image.read(data, len)
        };
        let vers_ptr = read_ptr(&header[16..]).unwrap_or(0);
        let mod_ptr = read_ptr(&header[16 + ps..]).unwrap_or(0);
        let vers = read_go_string(vers_ptr).ok_or_else(|| {
            BuildInfoError::Malformed("version string pointer out of range".into())
        })?;
        // Like debug/buildinfo, a missing module info string is not fatal.
        let modinfo = read_go_string(mod_ptr).unwrap_or(&[]);
        (String::from_utf8_lossy(vers).into_owned(), modinfo.to_vec())
    };

    if raw_version.is_empty() {
        return Err(BuildInfoError::NotGo);
    }
    let version = parse_version(&raw_version).ok_or_else(|| {
        BuildInfoError::Malformed(format!("unrecognized Go version {raw_version:?}"))
    })?;
    let (main_path, main_version, package_path) = parse_modinfo(&modinfo);
    Ok(BuildInfo {
        version,
        raw_version,
        main_path,
        main_version,
        package_path,
    })
}

fn decode_inline_string(image: &Image<'_>, addr: u64) -> Result<(Vec<u8>, u64), BuildInfoError> {
    let b = image
        .at(addr)
        .ok_or_else(|| BuildInfoError::Malformed("string out of range".into()))?;
    let (len, n) =
        uvarint(b).ok_or_else(|| BuildInfoError::Malformed("bad string length varint".into()))?;
    let start = addr + n as u64;
    let bytes = image
        .read(start, len)
        .ok_or_else(|| BuildInfoError::Malformed("truncated string".into()))?;
    Ok((bytes.to_vec(), start + len))
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        if i == 9 && byte > 1 {
            return None; // overflow
        }
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Returns (main module path, its version, main package path) from the module
/// info blob.
fn parse_modinfo(modinfo: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    // The blob is wrapped in two 16-byte binary sentinels; the one at the
    // end is preceded by a newline.
    let b = modinfo;
    if b.len() < 33 || b[b.len() - 17] != b'\n' {
        return (None, None, None);
    }
    let body = String::from_utf8_lossy(&b[16..b.len() - 16]);
    let mut main_path = None;
    let mut main_version = None;
    let mut package_path = None;
    for line in body.lines() {
        let mut fields = line.split('\t');
        match fields.next() {
            Some("path") => {
                if let Some(p) = fields.next().filter(|p| !p.is_empty()) {
                    package_path = Some(p.to_string());
                }
            }
            Some("mod") => {
                if let Some(p) = fields.next().filter(|p| !p.is_empty()) {
                    main_path = Some(p.to_string());
                }
                main_version = fields.next().filter(|v| !v.is_empty()).map(str::to_string);
            }
            _ => {}
        }
    }
    (main_path, main_version, package_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgo::{go_cmd, go_paths, scratch_dir};
    use std::path::PathBuf;
    use std::sync::OnceLock;

    #[test]
    fn parse_versions() {
        assert_eq!(parse_version("go1.26.6"), Some(GoVersion::new(1, 26, 6)));
        assert_eq!(parse_version("go1.21"), Some(GoVersion::new(1, 21, 0)));
        assert_eq!(parse_version("go1.21rc2"), Some(GoVersion::new(1, 21, 0)));
        assert_eq!(parse_version("go1.20.14"), Some(GoVersion::new(1, 20, 14)));
        assert_eq!(
            parse_version("go1.22.0 X:nocoverageredesign"),
            Some(GoVersion::new(1, 22, 0))
        );
        assert_eq!(
            parse_version("devel go1.27-6e2a1b3c4d Tue Jan 6 2026"),
            Some(GoVersion::new(1, 27, 0))
        );
        assert_eq!(parse_version("go1"), Some(GoVersion::new(1, 0, 0)));
        assert_eq!(parse_version("1.21.3"), None);
        assert_eq!(parse_version("go"), None);
        assert_eq!(parse_version(""), None);
        assert_eq!(GoVersion::new(1, 26, 6).to_string(), "go1.26.6");
        assert!(GoVersion::new(1, 21, 13) < GoVersion::new(1, 26, 0));
        assert!(GoVersion::new(1, 26, 6).at_least(1, 26));
        assert!(!GoVersion::new(1, 25, 9).at_least(1, 26));
    }

    /// The module info as the linker embeds it: between two 16-byte binary
    /// sentinels (those of cmd/go's modload, not valid UTF-8).
    fn modinfo_blob(body: &str) -> Vec<u8> {
        const START: [u8; 16] = [
            0x30, 0x77, 0xaf, 0x0c, 0x92, 0x74, 0x08, 0x02, 0x41, 0xe1, 0xc1, 0x07, 0xe6, 0xd6,
            0x18, 0xe6,
        ];
        const END: [u8; 16] = [
            0xf9, 0x32, 0x43, 0x31, 0x86, 0x18, 0x20, 0x72, 0x00, 0x82, 0x42, 0x10, 0x41, 0x16,
            0xd8, 0xf2,
        ];
        let mut v = START.to_vec();
        v.extend_from_slice(body.as_bytes());
        v.push(b'\n');
        v.extend_from_slice(&END);
        v
    }

    #[test]
    fn modinfo_parsing() {
        let blob = modinfo_blob(
            "path\texample.com/m/cmd/x\nmod\texample.com/m\t(devel)\t\nbuild\t-compiler=gc",
        );
        let (m, v, p) = parse_modinfo(&blob);
        assert_eq!(m.as_deref(), Some("example.com/m"));
        assert_eq!(v.as_deref(), Some("(devel)"));
        assert_eq!(p.as_deref(), Some("example.com/m/cmd/x"));
        assert_eq!(parse_modinfo(b""), (None, None, None));
        let (m, v, p) = parse_modinfo(&modinfo_blob("path\tcommand-line-arguments"));
        assert_eq!((m, v), (None, None));
        assert_eq!(p.as_deref(), Some("command-line-arguments"));
    }

    /// A header in the new (inline strings) format, built by hand.
    #[test]
    fn inline_format_synthetic() {
        let mut mem = Vec::new();
        mem.extend_from_slice(MAGIC);
        mem.push(8); // ptr size
        mem.push(FLAG_INLINE_STRINGS);
        mem.resize(HEADER_SIZE, 0);
        let vers = "go1.24.11";
        mem.push(vers.len() as u8);
        mem.extend_from_slice(vers.as_bytes());
        // Length > 127 to exercise a multi-byte varint.
        let padded = modinfo_blob(&format!(
            "path\tex.com/a/cmd/a\nmod\tex.com/a\t(devel)\t{}",
            "\nbuild\tx=y".repeat(20)
        ));
        assert!(padded.len() > 127);
        let mut n = padded.len();
        while n >= 0x80 {
            mem.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        mem.push(n as u8);
        mem.extend_from_slice(&padded);
        let base = 0x50_0000u64;
        let image = Image {
            segments: vec![(base, &mem[..])],
        };
        assert_eq!(search_magic(&image, base, mem.len() as u64), Some(base));
        let bi = parse_at(&image, base).unwrap();
        assert_eq!(bi.raw_version, vers);
        assert_eq!(bi.version, GoVersion::new(1, 24, 11));
        assert_eq!(bi.main_path.as_deref(), Some("ex.com/a"));
        assert_eq!(bi.package_path.as_deref(), Some("ex.com/a/cmd/a"));
    }

    /// A header in the old (pointer-based, before Go 1.18) format, built by
    /// hand: the header holds pointers to Go string headers elsewhere.
    #[test]
    fn pointer_format_synthetic() {
        let base = 0x60_0000u64;
        let mut mem = vec![0u8; 0x200];
        // Put the magic at a 16-aligned offset that is not the start.
        let hdr_off = 0x40usize;
        mem[hdr_off..hdr_off + 14].copy_from_slice(MAGIC);
        mem[hdr_off + 14] = 8;
        mem[hdr_off + 15] = 0; // little endian, pointer format
        let vers = b"go1.17.13";
        let modinfo = modinfo_blob("path\tex.com/old\nmod\tex.com/old\t(devel)\t");
        let vers_data = 0x100usize;
        let mod_data = 0x110usize;
        mem[vers_data..vers_data + vers.len()].copy_from_slice(vers);
        mem[mod_data..mod_data + modinfo.len()].copy_from_slice(&modinfo);
        let vers_hdr = 0x80usize;
        let mod_hdr = 0x90usize;
        let put = |mem: &mut Vec<u8>, off: usize, v: u64| {
            mem[off..off + 8].copy_from_slice(&v.to_le_bytes());
        };
        put(&mut mem, vers_hdr, base + vers_data as u64);
        put(&mut mem, vers_hdr + 8, vers.len() as u64);
        put(&mut mem, mod_hdr, base + mod_data as u64);
        put(&mut mem, mod_hdr + 8, modinfo.len() as u64);
        put(&mut mem, hdr_off + 16, base + vers_hdr as u64);
        put(&mut mem, hdr_off + 24, base + mod_hdr as u64);
        let image = Image {
            segments: vec![(base, &mem[..])],
        };
        let addr = search_magic(&image, base, mem.len() as u64).unwrap();
        assert_eq!(addr, base + hdr_off as u64);
        let bi = parse_at(&image, addr).unwrap();
        assert_eq!(bi.raw_version, "go1.17.13");
        assert_eq!(bi.version, GoVersion::new(1, 17, 13));
        assert_eq!(bi.main_path.as_deref(), Some("ex.com/old"));
        assert_eq!(bi.package_path.as_deref(), Some("ex.com/old"));

        // Bad version pointer -> Malformed; empty version -> NotGo.
        let mut bad = mem.clone();
        bad[hdr_off + 16..hdr_off + 24].copy_from_slice(&0xdead_0000u64.to_le_bytes());
        let image = Image {
            segments: vec![(base, &bad[..])],
        };
        assert!(matches!(
            parse_at(&image, addr),
            Err(BuildInfoError::Malformed(_))
        ));
        let mut empty = mem.clone();
        empty[vers_hdr + 8..vers_hdr + 16].copy_from_slice(&0u64.to_le_bytes());
        let image = Image {
            segments: vec![(base, &empty[..])],
        };
        assert!(matches!(parse_at(&image, addr), Err(BuildInfoError::NotGo)));
    }

    #[test]
    fn magic_must_be_aligned() {
        let base = 0x1000u64;
        let mut mem = vec![0u8; 0x100];
        mem[0x18..0x18 + 14].copy_from_slice(MAGIC);
        let image = Image {
            segments: vec![(base, &mem[..])],
        };
        assert_eq!(search_magic(&image, base, mem.len() as u64), None);
    }

    #[test]
    fn not_go() {
        // The test executable itself is an ELF file without Go build info.
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(exe).unwrap();
        let file = object::File::parse(&*data).unwrap();
        assert!(matches!(read(&file), Err(BuildInfoError::NotGo)));
    }

    // ---- Tests against binaries built by a real Go toolchain ----

    struct Built {
        go_version: String,
        /// (binary, main package path)
        bins: Vec<(PathBuf, &'static str)>,
    }

    const MODULE: &str = "example.com/buildinfotest";

    fn build(go: PathBuf) -> Option<Built> {
        if !go.exists() {
            eprintln!(
                "note: Go toolchain {} not found (set TRACER_GO); skipping Go build info tests",
                go.display()
            );
            return None;
        }
        let dir = scratch_dir("tracer-buildinfo-test");
        std::fs::create_dir_all(dir.join("cmd/tool")).unwrap();
        std::fs::write(dir.join("go.mod"), format!("module {MODULE}\n\ngo 1.21\n")).unwrap();
        let main = "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n";
        std::fs::write(dir.join("main.go"), main).unwrap();
        std::fs::write(dir.join("cmd/tool/main.go"), main).unwrap();
        let out = go_cmd(&go, &dir)
            .env("CGO_ENABLED", "0")
            .args(["env", "GOVERSION"])
            .output()
            .expect("run go env");
        assert!(out.status.success(), "go env failed");
        let go_version = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let mut bins = Vec::new();
        for (name, pkg, path, args) in [
            ("plain", ".", MODULE, &[][..]),
            ("stripped", ".", MODULE, &["-ldflags=-s -w"][..]),
            ("pie", ".", MODULE, &["-buildmode=pie"][..]),
            (
                "pie-stripped",
                ".",
                MODULE,
                &["-buildmode=pie", "-ldflags=-s -w"][..],
            ),
            (
                "tool",
                "./cmd/tool",
                "example.com/buildinfotest/cmd/tool",
                &["-ldflags=-s -w"][..],
            ),
        ] {
            let bin = dir.join(format!("bin-{name}"));
            let out = go_cmd(&go, &dir)
                .env("CGO_ENABLED", "0")
                .arg("build")
                .args(args)
                .arg("-o")
                .arg(&bin)
                .arg(pkg)
                .output()
                .expect("run go build");
            assert!(
                out.status.success(),
                "{go_version}: go build {args:?} {pkg} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            bins.push((bin, path));
        }
        Some(Built { go_version, bins })
    }

    fn built() -> &'static [Built] {
        static B: OnceLock<Vec<Built>> = OnceLock::new();
        B.get_or_init(|| go_paths().into_iter().filter_map(build).collect())
    }

    #[test]
    fn real_binaries() {
        for b in built() {
            let expected = parse_version(&b.go_version).unwrap();
            for (bin, package) in &b.bins {
                let data = std::fs::read(bin).unwrap();
                let file = object::File::parse(&*data).unwrap();
                let bi = read(&file).unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
                assert_eq!(bi.raw_version, b.go_version, "{}", bin.display());
                assert_eq!(bi.version, expected);
                assert_eq!(
                    bi.version.to_string(),
                    format!("go{}.{}.{}", expected.major, expected.minor, expected.patch)
                );
                assert_eq!(bi.main_path.as_deref(), Some(MODULE), "{}", bin.display());
                assert_eq!(
                    bi.package_path.as_deref(),
                    Some(*package),
                    "{}",
                    bin.display()
                );
            }
        }
    }

    /// With the section header table gone, the magic is still found by
    /// scanning the writable data segment.
    #[test]
    fn real_binary_without_section_headers() {
        for b in built() {
            let mut data = std::fs::read(&b.bins[1].0).unwrap();
            // Zero e_shoff/e_shnum/e_shstrndx (ELF64 little endian offsets).
            data[0x28..0x30].fill(0);
            data[0x3c..0x40].fill(0);
            let file = object::File::parse(&*data).unwrap();
            assert!(file.section_by_name(".go.buildinfo").is_none());
            let bi = read(&file).unwrap();
            assert_eq!(bi.raw_version, b.go_version);
        }
    }
}
