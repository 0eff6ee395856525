//! `tracer run`: start the program held before `exec`, attach to it, then let it go,
//! so not one event of its start-up is missed.
use crate::cli::TraceOpts;
use anyhow::{Context as _, Result, bail};
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;

pub fn run(command: &[String], opts: TraceOpts) -> Result<u8> {
    let program = resolve(&command[0])?;
    let target = tracer_inspect::TargetInfo::from_path(&program)?;
    // The child blocks on this pipe between fork and exec.
    let (mut reader, writer) = std::io::pipe().context("creating the start pipe")?;
    let mut cmd = std::process::Command::new(&program);
    cmd.args(&command[1..]);
    // SAFETY: only async-signal-safe work (a blocking read) happens in the child.
    unsafe {
        cmd.pre_exec(move || {
            let mut b = [0u8; 1];
            let _ = reader.read(&mut b);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let pid = child.id();
    let writer = std::cell::RefCell::new(Some(writer));
    let release = Box::new(move || -> Result<()> {
        // Closing the write end lets the child's read return and exec proceed.
        drop(writer.borrow_mut().take());
        Ok(())
    });
    let result = crate::trace(&target, pid, opts, Some(release));
    if result.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    result
}

fn resolve(prog: &str) -> Result<PathBuf> {
    let p = PathBuf::from(prog);
    if p.components().count() > 1 {
        if !p.exists() {
            bail!("{prog}: no such file");
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(prog))
        .find(|c| c.is_file())
        .with_context(|| format!("{prog}: not found in PATH"))
}
