//! Analysis of a traced Go process: which goroutines are stuck, where, on what,
//! for how long, and which are leaking.
//!
//! Data flows one way: [`input`] (symbolized observations from the tracer) feed
//! the [`model`]; the [`detect`]ors read the model and produce [`findings`];
//! [`report`]s render findings and never compute them. [`Analyzer`] wires the
//! steps together for callers that do not need them separately.
//!
//! Nothing here performs I/O except writing reports to a caller's writer.

pub mod analyzer;
pub mod config;
pub mod detect;
pub mod diff;
pub mod fail_on;
pub mod findings;
#[cfg(test)]
mod fixtures;
pub mod frames;
pub mod input;
pub mod lockgraph;
pub mod lockwatch;
pub mod model;
pub mod report;
pub mod summary;
pub mod system;

pub use analyzer::Analyzer;
pub use config::{Config, ConfigError};
pub use fail_on::{should_fail, FailOn, ParseFailOnError};
pub use findings::{Findings, GoroutineFinding, GroupFinding, Growth, Rule};
pub use input::{Frame, Input, Object, Parked};
pub use model::{Model, SiteHistogram};
pub use report::{Report, ReportError};
pub use summary::{ProgramEnd, Summary, SummaryInputs};
pub use system::SIGNAL_TYPE;
