//! Test dependencies: found on the machine, installed when missing and possible, or explained
//! with the exact command to run.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

use crate::run;

/// Environment the tests run with.
#[derive(Debug)]
pub(crate) struct TestEnv {
    venv: PathBuf,
}

impl TestEnv {
    /// `PROMSCALER_TEST_PYTHON` (the rig's interpreter) and `PATH` with the venv's scripts
    /// (`moto_server`) first.
    pub(crate) fn vars(&self) -> Vec<(String, OsString)> {
        let bin = self.venv.join("bin");
        let mut paths = vec![bin.clone()];
        if let Some(path) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&path));
        }
        let path = std::env::join_paths(paths).unwrap_or_default();
        vec![
            (
                "PROMSCALER_TEST_PYTHON".to_owned(),
                bin.join("python").into_os_string(),
            ),
            ("PATH".to_owned(), path),
        ]
    }
}

/// Makes sure Prometheus, kubectl and the Python rig are present.
pub(crate) fn ensure(root: &Path, target: &Path) -> Result<TestEnv> {
    ensure_prometheus()?;
    if !on_path("kubectl") {
        // kubectl comes with the machine image; it cannot be fetched here.
        eprintln!(
            "xtask: warning: kubectl is not on PATH; the Kubernetes API emulator's kubectl tests will fail. \
             Install kubectl 1.32+ (e.g. from your distribution) and re-run."
        );
    }
    let venv = ensure_venv(root, target)?;
    Ok(TestEnv { venv })
}

pub(crate) fn has_nextest() -> bool {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn ensure_prometheus() -> Result<()> {
    if on_path("prometheus") && on_path("promtool") {
        return Ok(());
    }
    let install = "apt-get update && apt-get install -y --no-install-recommends prometheus";
    if !is_root() {
        bail!(
            "Prometheus is missing and installing it needs root: run `sudo sh -c '{install}'`, then re-run `cargo xtask test`"
        );
    }
    eprintln!("xtask: installing Debian's prometheus package");
    run(Command::new("sh").args(["-c", install]))
        .with_context(|| format!("installing Prometheus failed; run `{install}` yourself"))?;
    if !on_path("prometheus") {
        bail!("the prometheus package installed but `prometheus` is not on PATH");
    }
    Ok(())
}

/// A virtualenv under the target directory with `xtask/requirements-test.txt`, reinstalled only
/// when that file changes.
fn ensure_venv(root: &Path, target: &Path) -> Result<PathBuf> {
    let requirements = root.join("xtask/requirements-test.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let venv = target.join("promscaler-venv");
    let stamp = venv.join(".requirements");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
        && venv.join("bin/python").is_file()
    {
        return Ok(venv);
    }
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| on_path(p))
        .context("python3 is missing: install Python 3.9+ (e.g. `apt-get install -y python3 python3-venv`)")?;
    eprintln!("xtask: creating the test virtualenv at {}", venv.display());
    run(Command::new(python).arg("-m").arg("venv").arg("--clear").arg(&venv)).with_context(|| {
        format!(
            "creating a virtualenv failed; install python3-venv (`apt-get install -y python3-venv`) or run `{python} -m venv {}`",
            venv.display()
        )
    })?;
    let pip = venv.join("bin/pip");
    run(Command::new(&pip)
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements))
    .with_context(|| {
        format!(
            "installing the rig's PyPI packages failed; run `{} install -r {}`",
            pip.display(),
            requirements.display()
        )
    })?;
    std::fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(venv)
}
