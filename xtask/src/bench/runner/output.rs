//! Capture files and the lines read back from them: the fixture's `result` line,
//! the tracer's JSON summary, loadgen's `key=value` fields, a failure's last lines,
//! the tracer refusing a flag. Parsed by hand and forgivingly (a missing field is
//! `None`, for the caller to judge), never with a JSON library: xtask depends on
//! anyhow alone.
use anyhow::{Context as _, Result};
use std::fs;
use std::path::Path;
use std::process::ExitStatus;

pub fn file(path: &Path) -> Result<fs::File> {
    fs::File::create(path).with_context(|| format!("creating {}", path.display()))
}

pub fn read(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

pub fn remove(paths: &[&Path]) {
    for p in paths {
        let _ = fs::remove_file(p);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(lines)..].join("\n    ")
}

pub fn failure(
    what: &str,
    problem: &str,
    status: ExitStatus,
    out: &Path,
    err: &Path,
) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: {problem} ({status})\n  stderr ({}):\n    {}\n  stdout ({}):\n    {}",
        err.display(),
        tail(&read(err), 8),
        out.display(),
        tail(&read(out), 4)
    )
}

/// The tracer refused its command line (a mode or flag it does not have): exit 2
/// before the target ever ran.
pub fn usage_error(status: ExitStatus, out: &str, err: &str) -> Option<String> {
    if status.code() != Some(2) || out.lines().any(|l| l.starts_with("pid ")) {
        return None;
    }
    let lower = err.to_lowercase();
    let refused = [
        "--mode",
        "--budget",
        "mode",
        "invalid value",
        "unexpected argument",
        "not supported",
        "unsupported",
    ];
    if !refused.iter().any(|k| lower.contains(k)) {
        return None;
    }
    let line = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    Some(format!("mode not available: {}", line.trim()))
}

/// `key=value` in a space-separated line.
pub fn kv<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|f| f.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// (ops/s, elapsed ns) from the bench fixture's result line.
pub fn result_line(out: &str) -> Option<(f64, u64)> {
    let l = out.lines().find(|l| l.starts_with("result "))?;
    Some((
        kv(l, "ops_per_sec")?.parse().ok()?,
        kv(l, "ns")?.parse().ok()?,
    ))
}

pub fn summary_line(out: &str) -> Option<&str> {
    out.lines()
        .rev()
        .find(|l| l.starts_with('{') && l.contains("\"kind\":\"summary\""))
}

/// The tracer's `budget` line (parks and locks modes with a budget).
pub fn budget_line(out: &str) -> Option<&str> {
    out.lines()
        .rev()
        .find(|l| l.starts_with('{') && l.contains("\"kind\":\"budget\""))
}

/// A top-level number field of a one-line JSON object (None when null).
pub fn json_f64(line: &str, key: &str) -> Option<f64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let num: String = line[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        .collect();
    num.parse().ok()
}

/// A top-level unsigned number field of a one-line JSON object.
pub fn json_u64(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = line[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}
