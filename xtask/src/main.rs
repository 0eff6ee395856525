//! Project tasks: `cargo xtask setup | build | demo | test | compat | bench | lint | layouts`.
//!
//! Built by the default stable toolchain, it installs the pinned toolchains the
//! project needs (see `docs/toolchain.md`) and runs everything else through them, so a
//! fresh clone needs nothing but rustup, Python and a C compiler.
mod bench;
mod build;
mod layouts;
mod setup;
mod tasks;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::setup(&args[1..]).map(|_| ()),
        Some("build") => build::build().map(|_| ()),
        Some("demo") => tasks::demo(&args[1..]),
        Some("test") => tasks::test(&args[1..]),
        Some("compat") => tasks::compat(&args[1..]),
        Some("bench") => tasks::bench(&args[1..]),
        Some("lint") => tasks::lint(),
        Some("layouts") => layouts::layouts(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 setup [--go VERSION]  install the pinned toolchains, bpf-linker and Go into build/\n  \
                 build                 build the tracer (release)\n  \
                 demo                  run the tracer against a bundled leaking Go service\n  \
                 test [ARGS]           the whole test suite (ARGS go to cargo test)\n  \
                 compat [VERSION...]   the Go x build flavour matrix, written into docs/compatibility.md\n  \
                 bench [--quick]       overhead benchmark, writes build/bench/\n  \
                 lint                  cargo fmt --check and clippy -D warnings\n  \
                 layouts [VERSION...]  regenerate the Go struct layout table (one Go per minor)"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}
