//! Which findings turn into a failing exit status, for CI runs of the tracer.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::findings::{Findings, Rule};

/// A condition under which the run fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailOn {
    /// Any goroutine the tracer would call stuck or leaked: `parked_at_exit`,
    /// `growing`, `long_parked` or `leaked`.
    Leak,
    /// Only goroutines parked past the threshold.
    LongParked,
    /// Any finding at all, including rules added later.
    Any,
}

impl FailOn {
    pub fn matches(self, rule: Rule) -> bool {
        match self {
            FailOn::Leak => matches!(
                rule,
                Rule::ParkedAtExit | Rule::Growing | Rule::LongParked | Rule::Leaked
            ),
            FailOn::LongParked => rule == Rule::LongParked,
            FailOn::Any => true,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailOn::Leak => "leak",
            FailOn::LongParked => "long_parked",
            FailOn::Any => "any",
        }
    }
}

impl fmt::Display for FailOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown fail-on condition {0:?}: expected leak, long_parked or any")]
pub struct ParseFailOnError(pub String);

impl FromStr for FailOn {
    type Err = ParseFailOnError;

    /// Accepts `long-parked` too, the spelling command-line flags use.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "leak" => Ok(FailOn::Leak),
            "long_parked" | "long-parked" => Ok(FailOn::LongParked),
            "any" => Ok(FailOn::Any),
            _ => Err(ParseFailOnError(s.to_string())),
        }
    }
}

/// Whether any finding meets any of the conditions.
pub fn should_fail(findings: &Findings, fail_on: &[FailOn]) -> bool {
    findings
        .rules()
        .into_iter()
        .any(|rule| fail_on.iter().any(|f| f.matches(rule)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::GoroutineFinding;
    use crate::input::{Frame, Object};

    fn with_rule(rule: Rule) -> Findings {
        let site = Frame::new("main.f", "/m.go", 1);
        Findings {
            goroutines: vec![GoroutineFinding {
                rule,
                goid: 5,
                wait_reason: "select".into(),
                parked_ns: 1,
                exact: true,
                object: Object::None,
                frames: vec![site.clone()],
                start_function: None,
                created_by: None,
                parent_goid: None,
                site,
                test: None,
                gc_proved_leak: rule == Rule::Leaked,
            }],
            groups: vec![],
        }
    }

    #[test]
    fn parses_names() {
        assert_eq!("leak".parse(), Ok(FailOn::Leak));
        assert_eq!("long-parked".parse(), Ok(FailOn::LongParked));
        assert_eq!("Long_Parked".parse(), Ok(FailOn::LongParked));
        assert_eq!(" any ".parse(), Ok(FailOn::Any));
        assert_eq!(
            "leaks".parse::<FailOn>(),
            Err(ParseFailOnError("leaks".into()))
        );
        for f in [FailOn::Leak, FailOn::LongParked, FailOn::Any] {
            assert_eq!(f.to_string().parse(), Ok(f));
        }
    }

    #[test]
    fn matches_rules() {
        assert!(should_fail(&with_rule(Rule::ParkedAtExit), &[FailOn::Leak]));
        assert!(should_fail(&with_rule(Rule::LongParked), &[FailOn::Leak]));
        assert!(should_fail(&with_rule(Rule::Leaked), &[FailOn::Leak]));
        assert!(!should_fail(
            &with_rule(Rule::Leaked),
            &[FailOn::LongParked]
        ));
        assert!(!should_fail(
            &with_rule(Rule::ParkedAtExit),
            &[FailOn::LongParked]
        ));
        assert!(should_fail(
            &with_rule(Rule::ParkedAtExit),
            &[FailOn::LongParked, FailOn::Any]
        ));
        assert!(!should_fail(&Findings::default(), &[FailOn::Any]));
        assert!(!should_fail(&with_rule(Rule::Growing), &[]));
    }
}
