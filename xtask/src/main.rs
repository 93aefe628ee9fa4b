//! `cargo xtask`: the project's commands that are more than one cargo call.
//!
//! - `cargo xtask test`: installs what the tests need when it is missing (Debian's
//!   `prometheus` package, a Python virtualenv with the rig's PyPI packages, cargo-fuzz), then
//!   runs `cargo fmt --check`, `cargo clippy -D warnings`, `cargo doc`, every test with
//!   cargo-nextest, two minutes of the fault soak, and the quick fuzz target for 30 s
//!   (`--fuzz-seconds`; `cargo xtask fuzz` runs every target).
//! - `cargo xtask sandbox`: the whole system on one machine and a load curve (see
//!   `promscaler_sandbox::view`).
//! - `cargo xtask bench`: the benchmarks recorded in docs/BENCHMARKS.md (criterion by default;
//!   `bench decide-grpc`, `bench actuator-10k` and `bench scale-latency` run the release binaries
//!   as processes).
//! - `cargo xtask soak --minutes N`: the sandbox under load while a seeded random schedule
//!   kills and restarts its parts and fails API requests, checking the invariants of
//!   docs/operations.md ("The fault soak"); `cargo xtask test` ends with two minutes of it.

mod bench;
mod deps;
mod fuzz;
mod soak;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "promscaler's project commands")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install test dependencies when missing, then fmt --check, clippy -D warnings, all tests.
    Test {
        /// Only install the test dependencies; run nothing.
        #[arg(long)]
        deps_only: bool,
        /// Seconds to run each fuzz target (libFuzzer, after the tests); 0 skips fuzzing.
        #[arg(long, env = "PROMSCALER_FUZZ_SECONDS", default_value_t = 30)]
        fuzz_seconds: u32,
        /// Extra arguments for `cargo nextest run` (e.g. a test filter).
        #[arg(last = true)]
        nextest_args: Vec<String>,
    },
    /// Only the bounded fuzz run of `test`: each target under `fuzz/` for a few seconds.
    Fuzz {
        /// Seconds to run each fuzz target.
        #[arg(long, env = "PROMSCALER_FUZZ_SECONDS", default_value_t = 30)]
        seconds: u32,
    },
    /// Run promscaler locally: emulator, Prometheus, the three services and a load curve.
    Sandbox {
        /// A load curve: lines of `SECONDS CONNECTIONS` (default: the seed's story).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// How many times faster than written the load curve runs.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Query through an AMP-like SigV4 gateway with credentials from a local STS.
        #[arg(long)]
        aws: bool,
        /// Keep everything running after the scenario until Ctrl-C.
        #[arg(long)]
        keep_running: bool,
        /// Use the service binaries already built (e.g. by `cargo xtask test`) instead of
        /// running `cargo build` first.
        #[arg(long)]
        no_build: bool,
    },
    /// Run the sandbox under load while a random (seeded) schedule kills and restarts the
    /// fetcher, the decision service, Prometheus, STS and the leading actuator and fails API
    /// requests, checking that no invariant breaks (docs/operations.md, "The fault soak").
    Soak {
        /// How long to run (minutes; fractions allowed).
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// The seed of the load curve and the fault schedule (default: random, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Query Prometheus directly, without the SigV4 gateway and STS (no STS kills).
        #[arg(long)]
        no_aws: bool,
        /// Use the service binaries already built instead of running `cargo build` first.
        #[arg(long)]
        no_build: bool,
    },
    /// Run the benchmarks whose results are recorded in docs/BENCHMARKS.md (without a
    /// subcommand: the criterion benches).
    Bench {
        /// Run each criterion benchmark briefly (criterion --quick), for a smoke run.
        #[arg(long)]
        quick: bool,
        #[command(subcommand)]
        harness: Option<bench::BenchCmd>,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.command {
        Cmd::Test {
            deps_only,
            fuzz_seconds,
            nextest_args,
        } => test(&root, deps_only, fuzz_seconds, &nextest_args),
        Cmd::Fuzz { seconds } => fuzz::run_all(&root, &target_dir(&root), seconds),
        Cmd::Sandbox {
            scenario,
            speed,
            aws,
            keep_running,
            no_build,
        } => sandbox(&root, scenario, speed, aws, keep_running, no_build),
        Cmd::Soak {
            minutes,
            seed,
            no_aws,
            no_build,
        } => {
            if !no_build {
                build_bins(&root)?;
            }
            soak(&root, minutes, seed, !no_aws)
        }
        Cmd::Bench { quick, harness } => match harness {
            Some(harness) => bench::run(&root, harness),
            None => criterion(&root, quick),
        },
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// The cargo target directory in use (CARGO_TARGET_DIR or `<root>/target`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `command`, echoing it, and fails with its exit status.
fn run(command: &mut Command) -> Result<()> {
    eprintln!("xtask: running {command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}

fn test(root: &Path, deps_only: bool, fuzz_seconds: u32, nextest_args: &[String]) -> Result<()> {
    let env = deps::ensure(root, &target_dir(root))?;
    if deps_only {
        return Ok(());
    }

    run(cargo()
        .current_dir(root)
        .args(["fmt", "--all", "--", "--check"]))
    .context("formatting differs: run `cargo fmt --all`")?;
    // `--locked` everywhere: CI builds exactly what Cargo.lock says, or fails saying it is stale.
    run(cargo().current_dir(root).args([
        "clippy",
        "--locked",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Broken intra-doc links and malformed doc comments fail the run like clippy warnings.
    run(cargo()
        .current_dir(root)
        .env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--locked", "--workspace", "--no-deps"]))
    .context("documentation warnings: fix the doc comments cargo doc names")?;
    // Integration tests start the service binaries as child processes.
    run(cargo()
        .current_dir(root)
        .args(["build", "--locked", "--workspace", "--bins"]))?;

    let mut tests = cargo();
    tests.current_dir(root).envs(env.vars());
    if deps::has_nextest() {
        tests.args([
            "nextest",
            "run",
            "--locked",
            "--workspace",
            "--no-fail-fast",
        ]);
        tests.args(nextest_args);
    } else {
        eprintln!(
            "xtask: cargo-nextest not found (install: cargo install cargo-nextest --locked); using cargo test"
        );
        tests.args(["test", "--locked", "--workspace", "--no-fail-fast"]);
        if !nextest_args.is_empty() {
            tests.arg("--").args(nextest_args);
        }
    }
    run(&mut tests)?;
    // Doc tests are not run by nextest.
    if deps::has_nextest() && nextest_args.is_empty() {
        run(cargo()
            .current_dir(root)
            .args(["test", "--locked", "--workspace", "--doc"]))?;
    }
    // Last, two minutes of the fault soak. A fixed seed, so every CI run injects the same
    // schedule of faults and a failure replays with `cargo xtask soak --minutes 2 --seed 1`;
    // `cargo xtask soak` alone draws a new seed and explores other schedules.
    if nextest_args.is_empty() {
        eprintln!("xtask: two minutes of the fault soak (cargo xtask soak --minutes 2 --seed 1)");
        soak(root, 2.0, Some(1), true)?;
        // The quick fuzz targets (`cargo xtask fuzz` runs all of them).
        fuzz::run_targets(
            root,
            &target_dir(root),
            fuzz_seconds,
            fuzz::QUICK_FUZZ_DIR,
            fuzz::QUICK_TARGETS,
        )?;
    }
    Ok(())
}

/// The soak with the venv's Python for `--aws` (it fails with the way to create it when
/// missing).
fn soak(root: &Path, minutes: f64, seed: Option<u64>, aws: bool) -> Result<()> {
    let aws_python = if aws {
        let python = std::env::var_os(promscaler_sandbox::process::TEST_PYTHON_ENV)
            .filter(|p| !p.is_empty())
            .map_or_else(
                || target_dir(root).join("promscaler-venv/bin/python"),
                PathBuf::from,
            );
        if !python.is_file() {
            bail!(
                "the soak's --aws mode needs the Python venv with moto[server] and botocore at {}:                  create it with `cargo xtask test --deps-only`, or pass --no-aws",
                python.display()
            );
        }
        Some(python)
    } else {
        None
    };
    let options = soak::SoakOptions {
        root: root.to_path_buf(),
        minutes,
        seed,
        aws_python,
    };
    tokio::runtime::Runtime::new()?.block_on(soak::run(options))
}

/// `cargo build --workspace --bins`: the same build as `cargo xtask test`, so after the tests
/// it is a no-op and the binaries are shared.
fn build_bins(root: &Path) -> Result<()> {
    let status = cargo()
        .current_dir(root)
        .args(["build", "--workspace", "--bins"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building the service binaries failed");
    }
    Ok(())
}

fn criterion(root: &Path, quick: bool) -> Result<()> {
    let mut command = cargo();
    command
        .current_dir(root)
        .args(["bench", "--workspace", "--benches"]);
    if quick {
        command.args(["--", "--quick"]);
    }
    run(&mut command)
}

fn sandbox(
    root: &Path,
    scenario: Option<PathBuf>,
    speed: f64,
    aws: bool,
    keep_running: bool,
    no_build: bool,
) -> Result<()> {
    if !no_build {
        build_bins(root)?;
    }
    let options = promscaler_sandbox::view::DemoOptions {
        root: root.to_path_buf(),
        scenario,
        speed,
        aws,
        keep_running,
        chart: target_dir(root).join("sandbox/sandbox-chart.svg"),
        venv_python: target_dir(root).join("promscaler-venv/bin/python"),
    };
    tokio::runtime::Runtime::new()?.block_on(promscaler_sandbox::view::run(options))
}
