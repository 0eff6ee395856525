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
