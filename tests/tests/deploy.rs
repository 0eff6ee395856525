//! The deployment files in `deploy/`: each parses, asks for exactly the
//! capabilities README.md documents (no more, no `privileged`), and builds and runs
//! what the README says.
use std::collections::BTreeSet;

fn repo(path: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The capabilities README.md's table asks for to trace another user's process.
fn readme_caps() -> BTreeSet<String> {
    let readme = repo("README.md");
    let row = readme
        .lines()
        .find(|l| l.contains("another user's process") && l.contains("CAP_SYS_ADMIN"))
        .expect("README's capability row for other users' processes");
    let mut caps: BTreeSet<String> = row
        .split('`')
        .filter(|w| w.starts_with("CAP_"))
        .map(|w| w.trim_start_matches("CAP_").to_string())
        .collect();
    // CAP_SYS_ADMIN implies these for the kernel; the manifests name them too, for
    // runtimes that check them one by one.
    caps.extend(["BPF".to_string(), "PERFMON".to_string()]);
    caps
}

#[test]
fn daemonset_runs_the_agent_with_the_documented_capabilities() {
    let y: serde_yaml::Value = serde_yaml::from_str(&repo("deploy/daemonset.yaml")).unwrap();
    assert_eq!(y["kind"], "DaemonSet");
    let pod = &y["spec"]["template"];
    assert_eq!(pod["spec"]["hostPID"], true);
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], "9464");
    let c = &pod["spec"]["containers"][0];
    assert_eq!(c["ports"][0]["containerPort"], 9464);
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    let added: BTreeSet<String> = sc["capabilities"]["add"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(added, readme_caps());
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--all-go"), "{args:?}");
    assert!(args.contains(&"0.0.0.0:9464"), "{args:?}");
}

#[test]
fn systemd_unit_runs_the_agent_with_the_documented_capabilities() {
    let unit = repo("deploy/tracer.service");
    let value = |key: &str| {
        unit.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in the unit"))
            .to_string()
    };
    assert!(value("ExecStart").starts_with("/usr/local/bin/tracer agent "));
    assert!(value("ExecStart").contains("--listen 127.0.0.1:9464"));
    for key in ["AmbientCapabilities", "CapabilityBoundingSet"] {
        let caps: BTreeSet<String> = value(key)
            .split_whitespace()
            .map(|c| c.trim_start_matches("CAP_").to_string())
            .collect();
        assert_eq!(caps, readme_caps(), "{key}");
    }
    for section in ["[Unit]", "[Service]", "[Install]"] {
        assert!(unit.contains(section), "{section}");
    }
}

#[test]
fn image_build_is_the_readmes_build() {
    let docker = repo("deploy/Dockerfile");
    let readme = repo("README.md");
    // README: `cargo xtask build` is the release build of target/release/tracer.
    assert!(readme.contains("| `cargo xtask build` | release build of `target/release/tracer` |"));
    let runs: Vec<&str> = docker
        .lines()
        .filter_map(|l| l.strip_prefix("RUN "))
        .collect();
    assert!(runs.contains(&"cargo xtask build"), "{runs:?}");
    assert!(docker.contains("COPY --from=build /src/target/release/tracer /usr/local/bin/tracer"));
    assert!(docker.contains(r#"ENTRYPOINT ["/usr/local/bin/tracer", "agent"]"#));
    for f in [
        "deploy/Dockerfile",
        "deploy/daemonset.yaml",
        "deploy/tracer.service",
    ] {
        assert!(readme.contains(f), "README.md does not say how to use {f}");
    }
}
