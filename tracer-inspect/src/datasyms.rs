//! Addresses of the runtime's data symbols in a binary without a symbol table
//! (`-ldflags=-s`), from the code that uses them: the pclntab still names every
//! function, and a function that touches a global addresses it RIP-relative.
use crate::binary::{Binary, Symbol};
use crate::pclntab::Pclntab;
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};
use std::collections::BTreeSet;

/// `runtime.allgs` (a `[]*g`: pointer, length, capacity), from
/// `runtime.allgadd`, which appends to it: the one global whose three words it
/// all reads or writes (`allgs = append(allgs, gp)`; the lock, `allgptr` and
/// `allglen` are single words).
pub fn allgs(bin: &Binary, tab: &Pclntab<'_>) -> Option<Symbol> {
    let f = tab.lookup("runtime.allgadd")?;
    let code = bin.bytes_at(f.entry, (f.end - f.entry) as usize)?;
    let mut touched = BTreeSet::new();
    let mut dec = Decoder::with_ip(64, code, f.entry, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    while dec.can_decode() {
        dec.decode_out(&mut ins);
        if ins.is_ip_rel_memory_operand() && ins.mnemonic() != Mnemonic::Lea {
            touched.insert(ins.ip_rel_memory_address());
        }
    }
    let mut slices = touched
        .iter()
        .filter(|&&a| touched.contains(&(a + 8)) && touched.contains(&(a + 16)));
    match (slices.next(), slices.next()) {
        (Some(&addr), None) => Some(Symbol { addr, size: 24 }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testgo::{go_cmd, go_paths, scratch_dir};

    /// Found where the symbol table says (the search never reads it), and in a
    /// stripped binary (whose data moves: its build settings differ) in `.bss`.
    #[test]
    fn allgs_without_symbols() {
        for go in go_paths() {
            let dir = scratch_dir("datasyms");
            std::fs::write(dir.join("main.go"), crate::layouts::REFERENCE_PROGRAM).unwrap();
            std::fs::write(dir.join("go.mod"), "module datasyms\n\ngo 1.21\n").unwrap();
            for (name, flags) in [
                ("plain", &[][..]),
                ("stripped", &["-ldflags=-s -w"][..]),
                ("pie", &["-buildmode=pie"][..]),
            ] {
                let out = go_cmd(&go, &dir)
                    .env("CGO_ENABLED", "0")
                    .arg("build")
                    .args(flags)
                    .args(["-o", name, "."])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let bin = Binary::open(&dir.join(name)).unwrap();
                let obj = bin.object().unwrap();
                let tab = Pclntab::from_elf(&obj).unwrap();
                let got = allgs(&bin, &tab);
                if name == "stripped" {
                    use object::{Object as _, ObjectSection as _};
                    let bss = obj.section_by_name(".bss").unwrap();
                    let a = got.expect("allgs in the stripped binary").addr;
                    assert!(
                        (bss.address()..bss.address() + bss.size()).contains(&a),
                        "{}: {a:#x}",
                        go.display()
                    );
                } else {
                    let want = bin.symbols(&["runtime.allgs"]).unwrap()["runtime.allgs"];
                    assert_eq!(got, Some(want), "{} {name}", go.display());
                }
            }
        }
    }
}
