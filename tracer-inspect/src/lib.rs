//! Reads a Go target once and describes it as plain data ([`TargetInfo`]): where its
//! executable is, which Go made it, where the runtime functions and their probe
//! points are, the struct offsets and wait-reason names of that Go version, and how
//! to turn a PC into function, file and line. Knows nothing about BPF.
pub mod binary;
pub mod buildinfo;
pub mod callsites;
pub mod datasyms;
pub mod dwarf;
pub mod error;
pub mod goroutines;
pub mod layouts;
pub mod lines;
pub mod locksites;
pub mod memory;
pub mod pclnlines;
pub mod pclntab;
pub mod process;
pub mod prologue;
pub mod target;
#[cfg(test)]
mod testgo;
pub mod typenames;
pub mod waitreasons;

pub use error::InspectError;
pub use target::{RuntimeFunc, StructOffsets, TargetInfo};
