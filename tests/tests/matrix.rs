//! The build flavours production ships (default, `-ldflags=-s -w`,
//! `-ldflags=-w`, `-buildmode=pie`, `-trimpath`) on the oldest and the newest Go
//! the tracer supports, attached and under `tracer run`: the same leaks as the
//! fixture announces them. (`nodwarf.rs` covers the default, `-w` and `-s -w`
//! builds of the oldest Go; `binaries.rs` the default Go; `cargo xtask compat`
//! every Go minor, with cgo and without inlining too.) One test per cell, so
//! they run in parallel.
use std::path::PathBuf;
use tracer_tests::*;

fn bin(go: Go, flavour: &str) -> PathBuf {
    let (_, flags) = FLAVOURS
        .iter()
        .find(|(n, _)| *n == flavour)
        .expect("a known flavour");
    // Named apart from the other tests' builds of the same flags.
    let mut extra = vec!["-tags=matrix"];
    extra.extend_from_slice(flags);
    build_fixture("scenarios", go, &extra)
}

macro_rules! cells {
    ($($name:ident: $go:expr, $flavour:expr, $check:ident;)*) => {
        $(
            #[test]
            fn $name() {
                $check(&bin($go, $flavour));
            }
        )*
    };
}

cells! {
    newest_default_attach: Go::Newest, "default", scenarios_found_attached;
    newest_default_run: Go::Newest, "default", scenarios_found_under_run;
    newest_stripped_attach: Go::Newest, "-ldflags=-s -w", scenarios_found_attached;
    newest_stripped_run: Go::Newest, "-ldflags=-s -w", scenarios_found_under_run;
    newest_nodwarf_attach: Go::Newest, "-ldflags=-w", scenarios_found_attached;
    newest_nodwarf_run: Go::Newest, "-ldflags=-w", scenarios_found_under_run;
    newest_pie_attach: Go::Newest, "-buildmode=pie", scenarios_found_attached;
    newest_pie_run: Go::Newest, "-buildmode=pie", scenarios_found_under_run;
    newest_trimpath_attach: Go::Newest, "-trimpath", scenarios_found_attached;
    newest_trimpath_run: Go::Newest, "-trimpath", scenarios_found_under_run;
    oldest_pie_attach: Go::Oldest, "-buildmode=pie", scenarios_found_attached;
    oldest_pie_run: Go::Oldest, "-buildmode=pie", scenarios_found_under_run;
    oldest_trimpath_attach: Go::Oldest, "-trimpath", scenarios_found_attached;
    oldest_trimpath_run: Go::Oldest, "-trimpath", scenarios_found_under_run;
}

/// A cgo program built with `-ldflags=-w` is linked by the system's linker,
/// which keeps the DWARF of its C objects: DWARF, but none of Go's, so the
/// table of Go minors is used as for any other binary without DWARF.
fn cgo_without_go_dwarf() -> PathBuf {
    build_fixture_env(
        "scenarios",
        Go::Newest,
        &["-tags=matrix,withcgo", "-ldflags=-w"],
        &[("CGO_ENABLED", "1")],
    )
}

#[test]
fn cgo_without_go_dwarf_attach() {
    scenarios_found_attached(&cgo_without_go_dwarf());
}

#[test]
fn cgo_without_go_dwarf_run() {
    scenarios_found_under_run(&cgo_without_go_dwarf());
}
