//! Child processes for the rig and the demo: spawn with logs captured to files, kill on drop (no
//! orphans), find our binaries and the test Python, pick free ports, poll with deadlines.
//!
//! Errors are `anyhow`: this is rig code whose failures are read by a person running tests,
//! never matched on.

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Env var naming the Python interpreter of a venv with `moto[server]` and `botocore`
/// (`moto_server` next to it); `cargo xtask test` creates the venv and sets it.
pub const TEST_PYTHON_ENV: &str = "PROMSCALER_TEST_PYTHON";

/// A child process killed (and reaped) when dropped. stdout and stderr go to a log file.
#[derive(Debug)]
pub struct ChildProcess {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `cmd` with stdin closed and output appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Self {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        })
    }

    /// The process id.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process and waits for it (idempotent).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status if the process has ended (kept: later calls return it again).
    pub fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => Ok(child.try_wait()?),
            None => Ok(None),
        }
    }

    /// Fails when the process has exited (with its log's tail).
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!("{} exited ({status}); log:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the log, preceded by its first error line when that is not among
    /// them (a process that fails shows why, not only a backtrace).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        tail_with_first_error(&text, 40)
    }
}

/// The last `n` lines of `log`, preceded by the first line that reports an error (a tracing
/// `ERROR` line, a panic, or `Error:`) when it is older than those `n` lines.
pub fn tail_with_first_error(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(n);
    let tail = lines[start..].join("\n");
    let is_error = |l: &&str| {
        l.contains("ERROR") || l.contains("panicked at") || l.trim_start().starts_with("Error:")
    };
    match lines[..start].iter().find(|l| is_error(l)) {
        Some(first) => format!("first error: {first}\n[...]\n{tail}"),
        None => tail,
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Path of one of our binaries (e.g. `promscaler-metrics-fetcher`) in the target directory of
/// the running test executable (`target/<profile>/deps/<test>` ⇒ `target/<profile>/<name>`).
pub fn bin_path(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut candidates = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        candidates.push(dir.join(name));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "binary {name} not found (looked at {candidates:?}); build it first: `cargo build \
                 -p {name}` (cargo xtask test builds every binary before the tests)"
            )
        })
}

/// The test Python from [`TEST_PYTHON_ENV`], with a message saying how to get one.
pub fn test_python() -> Result<PathBuf> {
    let Some(path) = std::env::var_os(TEST_PYTHON_ENV).filter(|p| !p.is_empty()) else {
        bail!(
            "{TEST_PYTHON_ENV} is not set: run the tests with `cargo xtask test`, which creates a \
             venv with moto[server] and botocore and sets it"
        );
    };
    let path = PathBuf::from(path);
    if !path.is_file() {
        bail!(
            "{TEST_PYTHON_ENV}={} does not exist: run `cargo xtask test` to create the venv",
            path.display()
        );
    }
    Ok(path)
}

/// A script installed next to the test Python (e.g. `moto_server`).
pub fn venv_script(python: &Path, name: &str) -> Result<PathBuf> {
    let path = python.parent().map(|d| d.join(name)).unwrap_or_default();
    if !path.is_file() {
        bail!(
            "{} not found next to {}: run `cargo xtask test` to (re)create the venv",
            name,
            python.display()
        );
    }
    Ok(path)
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `check` every 50 ms until it returns `Ok(Some(v))` or `timeout` passes; the last error
/// is in the failure message.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("not yet");
    loop {
        match tokio::time::timeout_at(deadline, check()).await {
            Ok(Ok(Some(v))) => return Ok(v),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => last = format!("{e:#}"),
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A minimal HTTP/1.1 request (Connection: close) for rig control endpoints; bounded by 10 s.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: \
             application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no HTTP status in {head:?}"))?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        };
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .with_context(|| format!("{method} http://{addr}{path} timed out"))?
        .with_context(|| format!("{method} http://{addr}{path}"))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A command with a clean AWS environment: every `AWS_*` variable of ours removed, so tests
/// see only what they set.
pub fn command_without_aws_env(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// One of our service binaries running as a child process on free loopback ports, killed on
/// drop. Its environment has no `AWS_*` variables but those given. It can be killed and
/// restarted on the same ports with the same arguments (a crashed pod coming back).
#[derive(Debug)]
pub struct ServiceProcess {
    binary: String,
    path: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    process: ChildProcess,
    grpc: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts `binary` (found with [`bin_path`]) with `--grpc-addr`/`--admin-addr` on free
    /// ports plus `args` and `env`, and waits (30 s) until its `/ready` answers 200.
    pub async fn start(binary: &str, args: &[String], env: &[(String, String)]) -> Result<Self> {
        let path = bin_path(binary)?;
        let dir = tempfile::Builder::new()
            .prefix("promscaler-svc-")
            .tempdir()?;
        let grpc: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let log = dir.path().join(format!("{binary}.log"));
        let process =
            ChildProcess::spawn(binary, service_command(&path, grpc, admin, args, env), &log)?;
        let mut service = Self {
            binary: binary.to_owned(),
            path,
            args: args.to_vec(),
            env: env.to_vec(),
            process,
            grpc,
            admin,
            dir,
        };
        service.wait_ready().await?;
        Ok(service)
    }

    /// Waits (30 s) until `/ready` answers 200; fails with the log when it does not.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let admin = self.admin;
        let ready = poll_until(
            &format!("{} /ready", self.binary),
            Duration::from_secs(30),
            || async move {
                let (status, _) = http(admin, "GET", "/ready", "").await?;
                Ok((status == 200).then_some(()))
            },
        )
        .await;
        if let Err(e) = ready {
            self.process.check_running()?;
            bail!("{e:#}\n{} log:\n{}", self.binary, self.process.log_tail());
        }
        Ok(())
    }

    /// Kills the process (SIGKILL: no drain, as a crash or an OOM kill would).
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts the process again on the same ports with the same arguments (after [`kill`]),
    /// appending to the same log, and waits until it is ready.
    ///
    /// [`kill`]: ServiceProcess::kill
    pub async fn restart(&mut self) -> Result<()> {
        self.respawn()?;
        self.wait_ready().await
    }

    /// Starts the process again like [`restart`] without waiting until it is ready (an
    /// actuator restarted while a peer is down is not ready until the peer is back).
    ///
    /// [`restart`]: ServiceProcess::restart
    pub fn respawn(&mut self) -> Result<()> {
        self.process.kill();
        let log = self.dir.path().join(format!("{}.log", self.binary));
        self.process = ChildProcess::spawn(
            &self.binary,
            service_command(&self.path, self.grpc, self.admin, &self.args, &self.env),
            &log,
        )?;
        Ok(())
    }

    /// Fails when the process has exited by itself (with its log's tail); a process stopped
    /// by [`kill`] does not count.
    ///
    /// [`kill`]: ServiceProcess::kill
    pub fn check_running(&mut self) -> Result<()> {
        self.process.check_running()
    }

    /// `http://127.0.0.1:PORT` of the gRPC server.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// The admin server's address (`/live`, `/ready`, `/metrics`).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The last lines of the service's log.
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// `GET /metrics` of the admin server.
    pub async fn metrics_text(&self) -> Result<String> {
        let (status, body) = http(self.admin, "GET", "/metrics", "").await?;
        if status != 200 {
            bail!("/metrics answered {status}");
        }
        Ok(body)
    }
}

fn service_command(
    path: &Path,
    grpc: SocketAddr,
    admin: SocketAddr,
    args: &[String],
    env: &[(String, String)],
) -> Command {
    let mut cmd = command_without_aws_env(path);
    cmd.arg(format!("--grpc-addr={grpc}"))
        .arg(format!("--admin-addr={admin}"))
        .args(args)
        .env_remove("PROMSCALER_GRPC_ADDR")
        .env_remove("PROMSCALER_ADMIN_ADDR")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_chunked_bodies() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }

    #[test]
    fn missing_python_says_to_run_xtask() {
        if std::env::var_os(TEST_PYTHON_ENV).is_none() {
            let err = test_python().unwrap_err().to_string();
            assert!(err.contains("cargo xtask test"), "{err}");
        }
    }
}
