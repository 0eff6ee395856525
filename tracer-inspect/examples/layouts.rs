//! `layouts TABLE GO...`: builds the reference program with each `go` command
//! given, reads its DWARF and data, and writes the entries into TABLE (entries of
//! other Go minors already there are kept). Run by `cargo xtask layouts`.
use std::path::PathBuf;
use std::process::ExitCode;
use tracer_inspect::layouts;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some((table, gos)) = args.split_first().filter(|(_, g)| !g.is_empty()) else {
        eprintln!("usage: layouts TABLE GO...");
        return ExitCode::from(2);
    };
    match run(table, gos) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layouts: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(table: &PathBuf, gos: &[PathBuf]) -> Result<(), String> {
    let mut entries = match std::fs::read_to_string(table) {
        Ok(text) => layouts::parse(&text)?,
        Err(_) => Vec::new(),
    };
    let work = std::env::temp_dir().join(format!("tracer-layouts-{}", std::process::id()));
    for (i, go) in gos.iter().enumerate() {
        let bin = layouts::build_reference(go, &work.join(i.to_string()))?;
        let l = layouts::extract(&bin)?;
        eprintln!(
            "layouts: {}: {} offsets, {} statuses, {} wait reasons",
            l.built_with,
            l.offsets.len(),
            l.statuses.len(),
            l.wait_reasons.len()
        );
        entries.retain(|e| e.minor != l.minor);
        entries.push(l);
    }
    let _ = std::fs::remove_dir_all(&work);
    entries.sort_by_key(|e| e.minor);
    std::fs::write(table, layouts::render(&entries))
        .map_err(|e| format!("{}: {e}", table.display()))
}
