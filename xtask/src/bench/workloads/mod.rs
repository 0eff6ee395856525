//! The families of measurement, one file each: what each runs, in which order, how
//! many times, and what it keeps. They start processes only through the runner and
//! never format a figure, so that a workload can change without touching the
//! tables, and one run is measured alike in every family.
pub mod attach;
pub mod bigbin;
pub mod fleet;
pub mod flood;
pub mod http;
pub mod locksites;
pub mod micro;
pub mod snapshot;
