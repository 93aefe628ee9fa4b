//! `cargo xtask sandbox` as a user runs it: the xtask binary with a scenario file (and
//! `--no-build`: the test build already built the services), read from its
//! terminal output; kubectl against the kubeconfig it prints; Ctrl-C (SIGINT) stops it and every
//! process it started.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use promscaler_integration_tests::cluster::repo_root;
use promscaler_sandbox::process::bin_path;

/// Output lines so far, shared with the reader thread.
type Lines = Arc<Mutex<Vec<String>>>;

#[test]
fn the_sandbox_command_shows_the_view_answers_kubectl_and_ctrl_c_leaves_nothing_behind()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let scenario = dir.path().join("scenario.txt");
    // 140 connections for ten minutes: long enough to be interrupted.
    std::fs::write(&scenario, "# seconds connections\n0 140\n600 140\n")?;
    let stderr = dir.path().join("stderr.log");
    let mut child = Command::new(bin_path("xtask")?)
        .current_dir(repo_root())
        .args(["sandbox", "--no-build", "--scenario"])
        .arg(&scenario)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr)?)
        .spawn()
        .context("starting xtask sandbox")?;
    let pid = child.id();
    let lines: Lines = Arc::default();
    let stdout = child.stdout.take().context("stdout")?;
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
    let output = || {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            lines.lock().unwrap_or_else(|e| e.into_inner()).join("\n"),
            std::fs::read_to_string(&stderr).unwrap_or_default()
        )
    };
    let result = (|| -> Result<Vec<u32>> {
        // `--no-build`: the binaries next to xtask (`cargo xtask test` builds every binary
        // before the tests).
        let kubeconfig = wait_line(&lines, Duration::from_secs(120), |l| {
            l.split("KUBECONFIG=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(PathBuf::from)
        })
        .context("the kubeconfig line")?;
        wait_line(&lines, Duration::from_secs(60), |l| {
            (l.contains("TIME") && l.contains("REPLICAS") && l.contains("ACTIVE")).then_some(())
        })
        .context("the table header")?;
        // A row of the live view with ceil(140/50) = 3 replicas, Ready and Active.
        wait_line(&lines, Duration::from_secs(90), |l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 8
                && cols[1] == "140"
                && cols[4] == "3"
                && cols[6] == "True"
                && cols[7] == "True")
                .then_some(())
        })
        .context("a row with 140 connections, 3 replicas, Ready and Active")?;

        let psc = kubectl(&kubeconfig, &["get", "psc", "-n", "default"])?;
        let header = psc.lines().next().unwrap_or_default();
        for column in [
            "NAME",
            "SCALETARGETKIND",
            "MIN",
            "MAX",
            "READY",
            "ACTIVE",
            "DESIRED",
        ] {
            ensure!(
                header.contains(column),
                "kubectl get psc: no {column}:\n{psc}"
            );
        }
        ensure!(
            psc.contains("sample-app-prometheus-scaler"),
            "kubectl get psc:\n{psc}"
        );
        let deploy = kubectl(
            &kubeconfig,
            &["get", "deploy", "sample-app", "-n", "default"],
        )?;
        ensure!(
            deploy.lines().nth(1).is_some_and(|l| l.contains("3/3")),
            "kubectl get deploy:\n{deploy}"
        );
        Ok(descendants(pid))
    })();
    let started = match result {
        Ok(started) => started,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.context(output()));
        }
    };
    ensure!(
        started.len() >= 4,
        "expected Prometheus and the three services among xtask's children, found {started:?}"
    );

    // Ctrl-C.
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "kill -INT {pid}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = child.try_wait()? {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "xtask sandbox still running 60 s after SIGINT\n{}",
                output()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = reader.join();
    ensure!(exit.success(), "exit {exit}\n{}", output());
    let text = output();
    ensure!(
        text.contains("sandbox: stopping everything it started"),
        "{text}"
    );
    ensure!(
        text.contains("import charts/promscaler/files/dashboard.json"),
        "the sandbox says where to point a local Grafana: {text}"
    );
    let chart = wait_line(&lines, Duration::ZERO, |l| {
        l.strip_prefix("summary: chart of load and replicas: ")
            .map(PathBuf::from)
    })
    .context("the chart line")?;
    let svg = std::fs::read_to_string(&chart).with_context(|| chart.display().to_string())?;
    ensure!(svg.starts_with("<svg"), "{}", chart.display());

    let left: Vec<u32> = started.into_iter().filter(|p| alive(*p)).collect();
    ensure!(
        left.is_empty(),
        "processes left behind: {:?}",
        left.iter()
            .map(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default())
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// Waits until a line of the output gives `Some` from `find`.
fn wait_line<T>(
    lines: &Lines,
    timeout: Duration,
    mut find: impl FnMut(&str) -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find_map(|l| find(l))
        {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            bail!("not in the output after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .context("running kubectl")?;
    ensure!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The process ids of every descendant of `pid` (from /proc).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(ppid) = parent_of(p) {
            parents.push((p, ppid));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The parent pid from `/proc/<pid>/stat` (the field after the `(comm)`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Running (a zombie or a vanished process does not count).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}
