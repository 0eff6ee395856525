//! Renderers. They print findings and summaries as given and decide nothing, so
//! the text and JSON outputs always tell the same story.

pub mod duration;
pub mod json;
pub mod locks;
pub mod metrics;
pub mod pprof;
pub mod text;

use thiserror::Error;

use crate::findings::{Findings, GroupFinding};
use crate::summary::Summary;

/// Everything a renderer needs, assembled before rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub findings: Findings,
    /// `findings.goroutines` grouped per blocking site, for the text report.
    pub sites: Vec<GroupFinding>,
    pub summary: Summary,
}

impl Report {
    pub fn new(findings: Findings, summary: Summary) -> Self {
        let sites = findings.by_site();
        Report {
            findings,
            sites,
            summary,
        }
    }
}

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
}
