//! Reads the target's memory while it runs. Every read may see a torn state: callers
//! re-validate what they read (goid unchanged, status unchanged) before trusting it.
use crate::InspectError;

pub struct Memory {
    pid: u32,
}

impl Memory {
    pub fn new(pid: u32) -> Self {
        Self { pid }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Fills `buf` from `addr` with one `process_vm_readv` call.
    pub fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), InspectError> {
        if buf.is_empty() {
            return Ok(());
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: both iovecs describe valid memory of the stated length; the kernel
        // checks the remote one.
        let n = unsafe { libc::process_vm_readv(self.pid as i32, &local, 1, &remote, 1, 0) };
        if n < 0 {
            return Err(InspectError::Memory {
                addr,
                source: std::io::Error::last_os_error(),
            });
        }
        if (n as usize) < buf.len() {
            return Err(InspectError::Memory {
                addr,
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short read"),
            });
        }
        Ok(())
    }

    /// Reads `size` bytes at each of `addrs` into consecutive pieces of `buf`, with
    /// as few `process_vm_readv` calls as the kernel allows (1024 pieces per call):
    /// the per-call cost (looking up and checking the target's mm) was most of a
    /// read of 100,000 goroutines. Returns which pieces were read in full; a zero
    /// address is never read.
    pub fn read_each(&self, addrs: &[u64], size: usize, buf: &mut [u8]) -> Vec<bool> {
        let pieces: Vec<(u64, usize)> = addrs.iter().map(|&a| (a, size)).collect();
        self.read_pieces(&pieces, size, buf)
    }

    /// Like [`Memory::read_each`], with a length per piece (at most `stride`); piece
    /// `i` goes to `buf[i * stride..]`. Empty pieces are not read.
    pub fn read_pieces(&self, pieces: &[(u64, usize)], stride: usize, buf: &mut [u8]) -> Vec<bool> {
        const IOV_MAX: usize = 1024;
        let mut ok = vec![false; pieces.len()];
        if stride == 0 || buf.len() < pieces.len() * stride {
            return ok;
        }
        let todo: Vec<usize> = (0..pieces.len())
            .filter(|&i| pieces[i].0 != 0 && pieces[i].1 > 0 && pieces[i].1 <= stride)
            .collect();
        let mut next = 0;
        while next < todo.len() {
            let batch = &todo[next..(next + IOV_MAX).min(todo.len())];
            let local: Vec<libc::iovec> = batch
                .iter()
                .map(|&i| libc::iovec {
                    // SAFETY: i * stride + len <= buf.len(), checked above.
                    iov_base: unsafe { buf.as_mut_ptr().add(i * stride) }.cast(),
                    iov_len: pieces[i].1,
                })
                .collect();
            let remote: Vec<libc::iovec> = batch
                .iter()
                .map(|&i| libc::iovec {
                    iov_base: pieces[i].0 as *mut libc::c_void,
                    iov_len: pieces[i].1,
                })
                .collect();
            // SAFETY: the local iovecs are disjoint pieces of `buf`; the kernel checks
            // the remote ones.
            let n = unsafe {
                libc::process_vm_readv(
                    self.pid as i32,
                    local.as_ptr(),
                    local.len() as libc::c_ulong,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            // Transfers stop at the first piece that cannot be read: the ones
            // before it are complete, it is skipped, and the rest retried.
            let mut left = if n < 0 {
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EFAULT) {
                    return ok;
                }
                0
            } else {
                n as usize
            };
            let mut done = 0;
            for &i in batch {
                if left < pieces[i].1 {
                    break;
                }
                left -= pieces[i].1;
                ok[i] = true;
                done += 1;
            }
            next += if done < batch.len() { done + 1 } else { done };
        }
        ok
    }

    pub fn u64(&self, addr: u64) -> Result<u64, InspectError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn u32(&self, addr: u64) -> Result<u32, InspectError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn u8(&self, addr: u64) -> Result<u8, InspectError> {
        let mut b = [0u8; 1];
        self.read(addr, &mut b)?;
        Ok(b[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_each_reads_around_pieces_that_fail() {
        let data: Vec<u64> = (0..3000).collect();
        let at = |i: usize| &data[i] as *const u64 as u64;
        // An unreadable piece in each of the first two batches, a skipped zero,
        // and more pieces than one call takes.
        let mut addrs: Vec<u64> = (0..2500).map(at).collect();
        addrs[10] = 8;
        addrs[1500] = 16;
        addrs[2000] = 0;
        let mut buf = vec![0u8; addrs.len() * 8];
        let ok = Memory::new(std::process::id()).read_each(&addrs, 8, &mut buf);
        for (i, ok) in ok.iter().enumerate() {
            let bad = matches!(i, 10 | 1500 | 2000);
            assert_eq!(*ok, !bad, "piece {i}");
            if !bad {
                let v = u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap());
                assert_eq!(v, i as u64);
            }
        }
    }
}
