//! Bounded fuzz runs: `cargo xtask fuzz` runs every cargo-fuzz target under `fuzz/` for a few
//! seconds each (libFuzzer, coverage-guided), starting from the committed seed corpus;
//! `cargo xtask test` runs the targets whose release build is quick ([`QUICK_TARGETS`]), since a
//! cold release build of the targets over the fetcher and the API (AWS SDK, k8s-openapi) takes
//! longer than CI's budget allows. A crash,
//! a panic, a timeout or running out of memory fails the run and leaves the input under the
//! target directory, with the command that reproduces it.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::{cargo, run};

/// The fuzz targets (`fuzz/Cargo.toml`'s `[[bin]]`s), in the order they run.
pub(crate) const TARGETS: [&str; 4] = [
    "prometheus_answer",
    "formula",
    "promscaler_manifest",
    "keda_import",
];

/// The targets `cargo xtask test` runs: those that build from `promscaler-core` alone, from
/// their own cargo-fuzz package ([`QUICK_FUZZ_DIR`]), since cargo builds every dependency of a
/// package even for one of its targets.
pub(crate) const QUICK_TARGETS: &[&str] = &["formula"];

/// The cargo-fuzz package of [`QUICK_TARGETS`], relative to the repository root.
pub(crate) const QUICK_FUZZ_DIR: &str = "fuzz/core";

/// The cargo-fuzz package of every target.
const FUZZ_DIR: &str = "fuzz";

/// libFuzzer's limit for one input, seconds: slower counts as a hang (a failure).
const INPUT_TIMEOUT_SECONDS: u32 = 10;

/// Runs every target for `seconds` (0: none).
pub(crate) fn run_all(root: &Path, target: &Path, seconds: u32) -> Result<()> {
    run_targets(root, target, seconds, FUZZ_DIR, &TARGETS)
}

/// Runs `targets` of the cargo-fuzz package in `fuzz_dir` for `seconds` each (0: none).
pub(crate) fn run_targets(
    root: &Path,
    target: &Path,
    seconds: u32,
    fuzz_dir: &str,
    targets: &[&str],
) -> Result<()> {
    if seconds == 0 {
        eprintln!("xtask: fuzzing skipped (--fuzz-seconds 0)");
        return Ok(());
    }
    ensure_cargo_fuzz()?;
    let fuzz_target_dir = target.join("fuzz");
    for &name in targets {
        // New inputs go to a scratch corpus under the target directory; the committed seeds
        // are only read.
        let scratch = fuzz_target_dir.join("corpus").join(name);
        let artifacts = fuzz_target_dir.join("artifacts").join(name);
        for dir in [&scratch, &artifacts] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let seeds = root.join("fuzz/corpus").join(name);
        let result = run(fuzz_command(root)
            .args([
                "run",
                "--sanitizer",
                "none",
                "--codegen-units",
                "16",
                "--fuzz-dir",
                fuzz_dir,
                "--target-dir",
            ])
            .arg(&fuzz_target_dir)
            .arg(name)
            .arg(&scratch)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display())));
        if let Err(error) = result {
            let found = newest_file(&artifacts);
            bail!(
                "fuzz target {name} failed: {error:#}\n{}",
                match found {
                    Some(input) => format!(
                        "the failing input is {}; reproduce from the repository root with `RUSTC_BOOTSTRAP=1 cargo fuzz run -s none --fuzz-dir {fuzz_dir} {name} {}` \
                         (docs/BUILDING.md, Fuzzing), then add it as a regression test",
                        input.display(),
                        input.display()
                    ),
                    None => "no failing input was written (see the output above)".to_owned(),
                }
            );
        }
    }
    Ok(())
}

/// `cargo fuzz` on the stable toolchain: `RUSTC_BOOTSTRAP=1` lets it use the nightly-only
/// `-Z` flags libFuzzer's instrumentation needs. `run_all` adds `--sanitizer none`: the code
/// under test forbids `unsafe`, so what the fuzzer can find is panics, overflows (cargo-fuzz
/// turns debug assertions on), hangs and unbounded memory, and the build and the run are about
/// twice as fast without ASan; `--codegen-units 16` because the build, not the run, dominates
/// a 30 s run on two cores.
fn fuzz_command(root: &Path) -> Command {
    let mut command = cargo();
    command
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .arg("fuzz");
    command
}

fn has_cargo_fuzz() -> bool {
    cargo()
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs cargo-fuzz from crates.io when it is missing (as `ensure` installs Prometheus).
fn ensure_cargo_fuzz() -> Result<()> {
    if has_cargo_fuzz() {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    run(cargo().args(["install", "cargo-fuzz", "--locked"])).context(
        "installing cargo-fuzz failed; run `cargo install cargo-fuzz --locked` yourself, \
         or skip fuzzing with `cargo xtask test --fuzz-seconds 0`",
    )?;
    if !has_cargo_fuzz() {
        bail!("cargo-fuzz installed but `cargo fuzz --version` fails; is ~/.cargo/bin on PATH?");
    }
    Ok(())
}

/// The most recently written file in `dir`.
fn newest_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, path)| path)
}
