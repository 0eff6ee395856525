//! Bad input is an error, not a panic or a silent default: every bad flag value and
//! every program `tracer run` cannot run gets exit code 2 and one line saying what is
//! wrong; without the capabilities a mode needs, the tracer says which are missing
//! instead of running degraded.
mod input {
    use std::os::unix::fs::PermissionsExt as _;
    use std::os::unix::process::CommandExt as _;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Duration;
    use tracer_tests::*;

    const LIMIT: Duration = Duration::from_secs(30);

    /// Exit code 2, a first line from the tracer (`tracer: `) or from clap
    /// (`error: `) that contains every `needle`, and no panic.
    fn assert_refused(code: i32, err: &str, what: &str, needles: &[&str]) {
        let first = err.lines().next().unwrap_or("");
        assert_eq!(code, 2, "{what}: exit code {code}, stderr:\n{err}");
        assert!(
            first.starts_with("tracer: ") || first.starts_with("error: "),
            "{what}: first line {first:?}"
        );
        for n in needles {
            assert!(first.contains(n), "{what}: {n:?} not in {first:?}");
        }
        assert!(!err.contains("panicked"), "{what}: {err}");
    }

    /// `tracer attach 1 ARGS` and `tracer run ARGS -- /bin/true` are both refused.
    fn refused_in_attach_and_run(args: &[&str], needles: &[&str]) {
        let mut attach = vec!["attach", "1"];
        attach.extend_from_slice(args);
        let mut run = vec!["run"];
        run.extend_from_slice(args);
        run.extend_from_slice(&["--", "/bin/true"]);
        for argv in [attach, run] {
            let (code, _, err) = run_tracer(&argv, LIMIT);
            assert_refused(code, &err, &format!("{argv:?}"), needles);
        }
    }

    #[test]
    fn durations_that_overflow_or_are_zero_are_refused() {
        for flag in ["--duration", "--park-threshold", "--leak-window"] {
            refused_in_attach_and_run(&[flag, "99999999999999999999h"], &[flag, "365 days"]);
            refused_in_attach_and_run(&[flag, "400d"], &[flag, "365 days"]);
            refused_in_attach_and_run(&[flag, "-5s"], &[flag, "negative"]);
        }
        // A leak window of 0 means nothing; a duration of 0 is a one-shot read and
        // a threshold of 0 a full dump.
        refused_in_attach_and_run(
            &["--leak-window", "0"],
            &["--leak-window", "greater than 0"],
        );
    }

    #[test]
    fn budgets_outside_0_to_100_are_refused() {
        for bad in ["-3", "NaN", "-inf", "inf", "1000"] {
            refused_in_attach_and_run(&["--budget", bad], &["--budget", "0 to 100"]);
            let eq = format!("--budget={bad}");
            refused_in_attach_and_run(&[&eq], &["--budget", "0 to 100"]);
        }
    }

    #[test]
    fn pid_zero_is_refused() {
        let (code, _, err) = run_tracer(&["attach", "0"], LIMIT);
        assert_refused(code, &err, "attach 0", &["not a process id"]);
    }

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("tracer-input-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("creating a scratch dir");
            Scratch(dir)
        }

        /// A copy of `bin` named `name` with permission bits `mode`.
        fn copy(&self, bin: &Path, name: &str, mode: u32) -> PathBuf {
            let p = self.0.join(name);
            std::fs::copy(bin, &p).expect("copying the fixture");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
            p
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn run_refuses_a_directory() {
        let dir = Scratch::new("dir");
        let d = dir.0.to_str().unwrap();
        let (code, _, err) = run_tracer(&["run", "--", d], LIMIT);
        assert_refused(code, &err, "run DIR", &[d, "is a directory, not a program"]);
        let slash = format!("{d}/");
        let (code, _, err) = run_tracer(&["run", "--", &slash], LIMIT);
        assert_refused(code, &err, "run DIR/", &["is a directory, not a program"]);
    }

    #[test]
    fn run_refuses_a_file_without_execute_bit() {
        let bin = build_fixture("chansend", Go::Default, &[]);
        let dir = Scratch::new("noexec");
        let p = dir.copy(&bin, "chansend", 0o644);
        let p = p.to_str().unwrap();
        let (code, out, err) = run_tracer(&["run", "--", p], LIMIT);
        assert_refused(
            code,
            &err,
            "run non-executable",
            &[p, "is not executable", &format!("chmod +x {p}")],
        );
        assert!(out.is_empty(), "{out}");
    }

    #[test]
    fn run_looks_up_only_executable_files_in_path() {
        let bin = build_fixture("chansend", Go::Default, &[]);
        let first = Scratch::new("path1");
        let second = Scratch::new("path2");
        first.copy(&bin, "input-fixture", 0o644);
        std::fs::create_dir(second.0.join("input-dir")).unwrap();
        // Only a non-executable file and a directory by those names: not found.
        let path = std::env::join_paths([&first.0, &second.0]).unwrap();
        for name in ["input-fixture", "input-dir"] {
            let (code, _, err) = finish(
                tracer()
                    .env("PATH", &path)
                    .args(["run", "--mode", "watch", "--", name]),
                LIMIT,
            );
            assert_refused(code, &err, name, &[name, "not found in PATH"]);
        }
        // An executable one later in PATH is the one run.
        let good = second.copy(&bin, "input-fixture", 0o755);
        let (code, _, err) = finish(
            tracer().env("PATH", &path).args([
                "run",
                "--mode",
                "watch",
                "--",
                "input-fixture",
                "-exit-after",
                "200ms",
            ]),
            Duration::from_secs(60),
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains(&format!("{}", good.display())) && err.contains("attached"),
            "{err}"
        );
    }

    /// Exit 0, attached, and every probe in.
    fn assert_traced_fully(code: i32, out: &str, err: &str) {
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("attached"), "{err}");
        let summary = json_line(out, "summary");
        assert_eq!(
            summary["probes_failed"].as_array().map(Vec::len),
            Some(0),
            "{summary}"
        );
    }

    /// `setpriv` running the tracer as uid/gid 65534 with exactly `caps` (e.g.
    /// `+sys_admin,+sys_ptrace`, or `-all`); None when that cannot work here (no
    /// setpriv, not root, or the tracer binary out of that user's reach).
    fn as_nobody(caps: &str) -> Option<Command> {
        let usable = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(tracer_bin())
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !usable {
            eprintln!("skipped: cannot run the tracer as uid 65534 through setpriv here");
            return None;
        }
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &format!("--inh-caps={caps}"),
            &format!("--ambient-caps={caps}"),
            "--",
        ])
        .arg(tracer_bin())
        .env("RUST_LOG", "warn");
        Some(c)
    }

    /// A root process in the tracer's session: CAP_SYS_ADMIN (the uprobes) and
    /// CAP_SYS_PTRACE (reading it) are enough; CAP_BPF + CAP_PERFMON +
    /// CAP_SYS_PTRACE is refused up front, naming CAP_SYS_ADMIN, instead of
    /// attaching without the exit and semacquire probes.
    #[test]
    fn capabilities_minimal_set_attaches_and_a_smaller_one_is_refused() {
        let Some(mut minimal) = as_nobody("+sys_admin,+sys_ptrace") else {
            return;
        };
        let bin = build_fixture("chansend", Go::Default, &[]);
        let mut fixture = start_fixture(&bin, &[]);
        fixture.until_ready();
        let pid = fixture.pid().to_string();
        let (code, out, err) = finish(
            minimal.args(["attach", &pid, "--duration", "1s", "--format", "json"]),
            LIMIT,
        );
        assert_traced_fully(code, &out, &err);
        assert!(fixture.alive(), "the fixture did not survive the tracer");

        let mut reduced = as_nobody("+bpf,+perfmon,+sys_ptrace").expect("setpriv");
        let (code, _, err) = finish(reduced.args(["attach", &pid, "--duration", "1s"]), LIMIT);
        assert_refused(
            code,
            &err,
            "bpf+perfmon+ptrace",
            &["CAP_SYS_ADMIN", "uprobes"],
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }

    /// `tracer run` traces its own child: CAP_SYS_ADMIN alone is enough.
    #[test]
    fn capabilities_run_needs_only_sys_admin() {
        let Some(mut minimal) = as_nobody("+sys_admin") else {
            return;
        };
        let bin = build_fixture("chansend", Go::Default, &[]);
        let dir = Scratch::new("caps-run");
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        let prog = dir.copy(&bin, "chansend", 0o755);
        let (code, out, err) = finish(
            minimal
                .args(["run", "--format", "json", "--"])
                .arg(&prog)
                .args(["-exit-after", "200ms"]),
            Duration::from_secs(60),
        );
        assert_traced_fully(code, &out, &err);
        let (code, _, err) = finish(
            as_nobody("+bpf,+perfmon")
                .expect("setpriv")
                .args(["run", "--"])
                .arg(&prog),
            LIMIT,
        );
        assert_refused(code, &err, "run with bpf+perfmon", &["CAP_SYS_ADMIN"]);
    }

    /// A root process in another session: the SIGCONT that ends the exit hold needs
    /// CAP_KILL (without it the target stayed stopped after the tracer left), and
    /// snapshot mode needs CAP_SYS_PTRACE only.
    #[test]
    fn capabilities_depend_on_the_target_and_the_mode() {
        let Some(mut no_kill) = as_nobody("+sys_admin,+sys_ptrace") else {
            return;
        };
        let bin = build_fixture("chansend", Go::Default, &[]);
        let mut cmd = Command::new(&bin);
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let mut fixture = Proc::spawn(&mut cmd);
        fixture.until_ready();
        let pid = fixture.pid().to_string();
        let (code, _, err) = finish(no_kill.args(["attach", &pid, "--duration", "1s"]), LIMIT);
        assert_refused(code, &err, "no CAP_KILL", &["CAP_KILL", &pid]);
        let (code, _, err) = finish(
            as_nobody("+sys_admin,+sys_ptrace,+kill")
                .expect("setpriv")
                .args(["attach", &pid, "--duration", "1s"]),
            LIMIT,
        );
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("attached"), "{err}");
        let (code, _, err) = finish(
            as_nobody("+sys_ptrace")
                .expect("setpriv")
                .args(["attach", &pid, "--mode", "snapshot"]),
            LIMIT,
        );
        assert_eq!(code, 0, "{err}");
        let (code, _, err) = finish(
            as_nobody("-all")
                .expect("setpriv")
                .args(["attach", &pid, "--mode", "snapshot"]),
            LIMIT,
        );
        assert_refused(code, &err, "snapshot without caps", &["CAP_SYS_PTRACE"]);
        assert!(fixture.alive(), "the fixture did not survive the tracer");
    }
}
