//! The compatibility matrix behind `cargo xtask compat` (ignored by `cargo
//! test`): every Go in `TRACER_COMPAT_GOS` (`VERSION=PATH,...`) × every build
//! flavour × {plain, cgo, `-gcflags=all=-l`} × {attach, run}, the real tracer
//! against the scenarios fixture. Writes a Markdown table to
//! `TRACER_COMPAT_OUT` and fails if any cell failed.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracer_tests::*;

/// A variant of every build: (name, extra `go build` flags, environment).
type Variant = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

const VARIANTS: &[Variant] = &[
    ("plain", &[], &[]),
    ("cgo", &["-tags=withcgo"], &[("CGO_ENABLED", "1")]),
    ("-gcflags=all=-l", &["-gcflags=all=-l"], &[]),
];

const HOWS: [&str; 2] = ["attach", "run"];

struct Cell {
    go: String,
    variant: &'static str,
    flavour: &'static str,
    bin: Option<PathBuf>,
    /// attach, run: None until run, then Ok or the failure.
    results: [Option<Result<(), String>>; 2],
}

fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    let s = e
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    // What failed and why, without the whole report.
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(400)
        .collect()
}

#[test]
#[ignore = "run by cargo xtask compat"]
fn compat_matrix() {
    let gos: Vec<(String, PathBuf)> = std::env::var("TRACER_COMPAT_GOS")
        .expect("TRACER_COMPAT_GOS")
        .split(',')
        .map(|e| {
            let (v, p) = e.split_once('=').expect("VERSION=PATH");
            (v.to_string(), PathBuf::from(p))
        })
        .collect();
    let out_file = PathBuf::from(std::env::var("TRACER_COMPAT_OUT").expect("TRACER_COMPAT_OUT"));
    let jobs: usize = std::env::var("TRACER_COMPAT_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(2);
    let build_dir = PathBuf::from(std::env::var("TRACER_BUILD_DIR").expect("TRACER_BUILD_DIR"));
    let start = Instant::now();

    // Builds, one at a time (go build uses every core).
    let mut cells = Vec::new();
    for (version, go) in &gos {
        let dir = build_dir.join(format!("compat-{version}"));
        std::fs::create_dir_all(&dir).unwrap();
        for &(variant, vflags, env) in VARIANTS {
            for &(flavour, fflags) in FLAVOURS {
                let mut flags: Vec<&str> = vflags.to_vec();
                flags.extend_from_slice(fflags);
                let name = format!("scenarios-{variant}-{flavour}").replace(['=', ' ', '/'], "");
                let out = dir.join(name);
                let ok = build_go(go, "scenarios", &flags, env, &out);
                eprintln!("compat: built Go {version} {variant} {flavour}: {ok}");
                cells.push(Cell {
                    go: version.clone(),
                    variant,
                    flavour,
                    bin: ok.then_some(out),
                    results: [None, None],
                });
            }
        }
    }

    // Runs, `jobs` at a time.
    let work: Vec<(usize, usize, PathBuf)> = cells
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.bin.clone().map(|b| (i, b)))
        .flat_map(|(i, b)| (0..HOWS.len()).map(move |h| (i, h, b.clone())))
        .collect();
    let work = Arc::new(Mutex::new(work.into_iter()));
    let done = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..jobs)
        .map(|_| {
            let work = Arc::clone(&work);
            let done = Arc::clone(&done);
            std::thread::spawn(move || loop {
                let Some((i, h, bin)) = work.lock().unwrap().next() else {
                    break;
                };
                let r = catch_unwind(AssertUnwindSafe(|| {
                    if h == 0 {
                        scenarios_found_attached(&bin)
                    } else {
                        scenarios_found_under_run(&bin)
                    }
                }))
                .map_err(panic_message);
                eprintln!(
                    "compat: {} {}: {}",
                    HOWS[h],
                    bin.display(),
                    if r.is_ok() { "ok" } else { "FAILED" }
                );
                done.lock().unwrap().push((i, h, r));
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    for (i, h, r) in done.lock().unwrap().drain(..) {
        cells[i].results[h] = Some(r);
    }

    let table = render(&cells, start.elapsed().as_secs());
    print!("{table}");
    std::fs::write(&out_file, &table).unwrap();
    let failed = cells
        .iter()
        .filter(|c| c.bin.is_none() || c.results.iter().any(|r| !matches!(r, Some(Ok(())))))
        .count();
    assert_eq!(
        failed, 0,
        "{failed} builds failed or were not traced as expected"
    );
}

fn render(cells: &[Cell], secs: u64) -> String {
    let mut s = String::new();
    s.push_str("| Go | variant |");
    for (f, _) in FLAVOURS {
        s.push_str(&format!(" `{f}` |"));
    }
    s.push_str("\n|---|---|");
    for _ in FLAVOURS {
        s.push_str("---|");
    }
    s.push('\n');
    let mut failures = Vec::new();
    for row in cells.chunks(FLAVOURS.len()) {
        s.push_str(&format!("| {} | {} |", row[0].go, row[0].variant));
        for c in row {
            let text = match &c.bin {
                None => {
                    failures.push(format!(
                        "{} {} {}: go build failed",
                        c.go, c.variant, c.flavour
                    ));
                    "build failed".to_string()
                }
                Some(_) => {
                    let parts: Vec<String> = HOWS
                        .iter()
                        .zip(&c.results)
                        .map(|(how, r)| match r {
                            Some(Ok(())) => format!("{how} ✓"),
                            Some(Err(e)) => {
                                failures.push(format!(
                                    "{} {} {} {how}: {e}",
                                    c.go, c.variant, c.flavour
                                ));
                                format!("{how} ✗")
                            }
                            None => format!("{how} –"),
                        })
                        .collect();
                    parts.join(", ")
                }
            };
            s.push_str(&format!(" {text} |"));
        }
        s.push('\n');
    }
    let total = cells.len() * HOWS.len();
    let ok = cells
        .iter()
        .flat_map(|c| &c.results)
        .filter(|r| matches!(r, Some(Ok(()))))
        .count();
    s.push_str(&format!(
        "\n{ok} of {total} runs as expected ({} builds; {secs} s).\n",
        cells.len()
    ));
    for f in failures {
        s.push_str(&format!("\n- {f}"));
    }
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}
