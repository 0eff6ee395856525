//! The runtime's names for wait reasons, read from the target itself: the numbers
//! change between Go versions, the strings in `runtime.waitReasonStrings` do not lie.
use crate::binary::{Binary, Symbol};
use crate::memory::Memory;

/// Reads the `[N]string` array. Each Go string is (pointer, length). Pointers are
/// read from the file; in a PIE binary they are relocated at load time, so the live
/// process is read instead when it is available.
pub fn read(bin: &Binary, sym: Symbol, live: Option<(&Memory, u64)>) -> Vec<String> {
    let n = (sym.size / 16) as usize;
    let from_file = |i: usize| -> Option<String> {
        let e = bin.bytes_at(sym.addr + 16 * i as u64, 16)?;
        let ptr = u64::from_le_bytes(e[..8].try_into().ok()?);
        let len = u64::from_le_bytes(e[8..].try_into().ok()?) as usize;
        if len == 0 {
            return Some(String::new());
        }
        let s = bin.bytes_at(ptr, len)?;
        Some(String::from_utf8_lossy(s).into_owned())
    };
    let from_mem = |i: usize| -> Option<String> {
        let (mem, bias) = live?;
        let at = sym.addr + bias + 16 * i as u64;
        let ptr = mem.u64(at).ok()?;
        let len = mem.u64(at + 8).ok()? as usize;
        if len > 256 {
            return None;
        }
        let mut buf = vec![0u8; len];
        mem.read(ptr, &mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf).into_owned())
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s = from_file(i)
            .or_else(|| from_mem(i))
            .unwrap_or_else(|| format!("wait reason {i}"));
        out.push(s);
    }
    out
}
