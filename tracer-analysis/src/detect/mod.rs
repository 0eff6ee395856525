//! The rules. Each reads the model and names itself in what it finds, so a
//! report can always say why something was flagged.

pub mod growing;
pub mod parked;

pub use growing::GrowingDetector;
pub use parked::{
    leaked, leaked_except, long_parked, long_parked_except, parked_at_exit, parked_at_exit_except,
};
