//! PC -> function, file and line, with inlined frames, parsed lazily (addr2line only
//! reads the units a lookup touches).
use crate::dwarf::{Dwarf, Reader};
use serde::Serialize;
use std::sync::Arc;

/// One source frame. An inlined call yields several frames for one PC, innermost first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SourceFrame {
    /// Shared strings: a frame is copied into every park record that has it.
    pub function: Arc<str>,
    pub file: Arc<str>,
    pub line: u32,
}

/// A file as Go prints it. Go's linker writes `DW_AT_comp_dir` as `.`, so the
/// relative paths of a `-trimpath` build (`fixture/app/main.go`,
/// `runtime/chan.go`) come out of the line table as `./fixture/app/main.go`.
fn go_path(file: &str) -> &str {
    file.strip_prefix("./").unwrap_or(file)
}

pub struct Lines {
    ctx: addr2line::Context<Reader>,
}

impl Lines {
    pub fn new(dwarf: Dwarf) -> Result<Self, gimli::Error> {
        Ok(Self {
            ctx: addr2line::Context::from_dwarf(dwarf)?,
        })
    }

    /// Frames for `pc` (a link-time address), innermost (inlined) first.
    pub fn frames(&self, pc: u64) -> Vec<SourceFrame> {
        let mut out = Vec::new();
        let Ok(mut frames) = self.ctx.find_frames(pc).skip_all_loads() else {
            return out;
        };
        while let Ok(Some(frame)) = frames.next() {
            let function = frame
                .function
                .as_ref()
                .and_then(|f| f.raw_name().ok().map(|n| Arc::from(n.as_ref())))
                .unwrap_or_else(|| "?".into());
            let (file, line) = frame
                .location
                .map(|l| {
                    (
                        Arc::from(go_path(l.file.unwrap_or("?"))),
                        l.line.unwrap_or(0),
                    )
                })
                .unwrap_or_else(|| ("?".into(), 0));
            out.push(SourceFrame {
                function,
                file,
                line,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::go_path;

    #[test]
    fn paths_print_as_go_prints_them() {
        assert_eq!(go_path("./runtime/chan.go"), "runtime/chan.go");
        assert_eq!(go_path("./fixture/app/main.go"), "fixture/app/main.go");
        assert_eq!(
            go_path("/usr/lib/go/src/runtime/chan.go"),
            "/usr/lib/go/src/runtime/chan.go"
        );
        assert_eq!(go_path("?"), "?");
    }
}
