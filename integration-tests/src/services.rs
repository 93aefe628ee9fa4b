//! The three service binaries as child processes on loopback ports they bind themselves (port 0,
//! reported through `--addr-file`), with helpers to reach
//! their gRPC and admin endpoints and to stop them the way Kubernetes does (SIGTERM).

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, ExitStatus},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use promscaler_sandbox::process::{self, ChildProcess};

/// Which service binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `promscaler-metrics-fetcher`.
    Fetcher,
    /// `promscaler-decision`.
    Decision,
    /// `promscaler-actuator`.
    Actuator,
}

impl Kind {
    /// The binary name.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Fetcher => "promscaler-metrics-fetcher",
            Self::Decision => "promscaler-decision",
            Self::Actuator => "promscaler-actuator",
        }
    }

    /// The fully-qualified gRPC service it serves.
    pub fn grpc_service(self) -> &'static str {
        match self {
            Self::Fetcher => promscaler_proto::service_names::METRICS_FETCHER,
            Self::Decision => promscaler_proto::service_names::DECISION,
            Self::Actuator => promscaler_proto::service_names::ACTUATOR,
        }
    }
}

/// A running service process.
#[derive(Debug)]
pub struct ServiceProcess {
    kind: Kind,
    grpc: SocketAddr,
    admin: SocketAddr,
    process: ChildProcess,
    /// Set when the service serves gRPC over TLS: how this test connects to it.
    client_tls: Option<tonic::transport::ClientTlsConfig>,
    _logs: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts `kind` with extra `args` and `envs` (OTEL_* and PROMSCALER_* from the test's own
    /// environment are not inherited, so runs are reproducible). The service binds port 0 and
    /// reports the ports it bound through `--addr-file`, so no two tests can race for a port;
    /// this waits (up to [`ADDR_WAIT`]) until it has, and fails with the process's first error
    /// when it exits first.
    pub fn start(kind: Kind, args: &[String], envs: &[(&str, String)]) -> Result<Self> {
        let (mut process, addr_file, logs) = spawn(kind, args, envs)?;
        let (grpc, admin) = wait_for_addrs(&mut process, &addr_file)?;
        Ok(Self {
            kind,
            grpc,
            admin,
            process,
            client_tls: None,
            _logs: logs,
        })
    }

    /// Starts `kind` expecting it to refuse to start (bad flags or files): waits until it exits
    /// and returns its exit status and log. Fails if it binds its ports instead.
    pub fn start_expecting_exit(
        kind: Kind,
        args: &[String],
        envs: &[(&str, String)],
    ) -> Result<(ExitStatus, String)> {
        let (mut process, addr_file, logs) = spawn(kind, args, envs)?;
        let deadline = std::time::Instant::now() + ADDR_WAIT;
        loop {
            if let Some(status) = process.try_wait()? {
                let log = std::fs::read_to_string(logs.path().join("output.log"))?;
                return Ok((status, log));
            }
            if addr_file.exists() {
                bail!("{} started although it should not have", kind.binary());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "{} neither exited nor started within {ADDR_WAIT:?}",
                    kind.binary()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Marks the service as serving gRPC over TLS (started with `--grpc-tls-*` flags): the
    /// test's own connections ([`Self::channel`], [`Self::wait_serving`]) use `tls`, and
    /// [`Self::grpc_url`] is `https://`.
    pub fn with_client_tls(mut self, tls: tonic::transport::ClientTlsConfig) -> Self {
        self.client_tls = Some(tls);
        self
    }

    /// Which service this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// `http://127.0.0.1:<grpc port>` (`https://` when the service serves TLS).
    pub fn grpc_url(&self) -> String {
        let scheme = if self.client_tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.grpc)
    }

    /// The admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Everything the process printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._logs.path().join("output.log")).unwrap_or_default()
    }

    /// The end of what the process printed (for assertion messages).
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// A gRPC channel to the service (connects lazily).
    pub fn channel(&self) -> Result<tonic::transport::Channel> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.grpc_url())?
            .connect_timeout(Duration::from_secs(2));
        if let Some(tls) = &self.client_tls {
            endpoint = endpoint.tls_config(tls.clone())?;
        }
        Ok(endpoint.connect_lazy())
    }

    /// Waits until grpc.health.v1 reports SERVING for the service's gRPC service.
    pub async fn wait_serving(&mut self, timeout: Duration) -> Result<()> {
        let channel = self.channel()?;
        let service = self.kind.grpc_service().to_owned();
        let result =
            process::poll_until(&format!("{} to serve", self.kind.binary()), timeout, || {
                let mut client =
                    tonic_health::pb::health_client::HealthClient::new(channel.clone());
                let request = tonic_health::pb::HealthCheckRequest {
                    service: service.clone(),
                };
                async move {
                    let response = client.check(request).await?;
                    Ok((response.into_inner().status()
                        == tonic_health::pb::health_check_response::ServingStatus::Serving)
                        .then_some(()))
                }
            })
            .await;
        self.process.check_running()?;
        result.with_context(|| format!("log:\n{}", self.log_tail()))
    }

    /// The admin port's `/metrics` text.
    pub async fn metrics_text(&self) -> Result<String> {
        let (status, body) = process::http(self.admin, "GET", "/metrics", "").await?;
        if status != 200 {
            bail!("GET /metrics answered {status}: {body}");
        }
        Ok(body)
    }

    /// The exit status, once the process has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        self.process.try_wait()
    }

    /// Kills the process at once (SIGKILL), as a crash or a node loss would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub async fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let pid = self.process.id().context("process already reaped")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM {pid} failed: {status}");
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.process.try_wait()? {
                return Ok(status);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} did not exit within {timeout:?} of SIGTERM; log:\n{}",
                    self.kind.binary(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Spawns `kind` on port 0 with `--addr-file` in a fresh log directory.
fn spawn(
    kind: Kind,
    args: &[String],
    envs: &[(&str, String)],
) -> Result<(ChildProcess, std::path::PathBuf, tempfile::TempDir)> {
    let logs = tempfile::tempdir()?;
    let addr_file = logs.path().join("addrs");
    let mut command = Command::new(process::bin_path(kind.binary())?);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("OTEL_") || key.starts_with("PROMSCALER_") {
            command.env_remove(&*key);
        }
    }
    command
        .args(["--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .arg("--addr-file")
        .arg(&addr_file)
        .args(args)
        .env("PROMSCALER_LOG_LEVEL", "info,promscaler=debug")
        .envs(envs.iter().map(|(k, v)| (k, v)));
    let process = ChildProcess::spawn(kind.binary(), command, &logs.path().join("output.log"))?;
    Ok((process, addr_file, logs))
}

/// How long a service may take to bind its ports.
pub const ADDR_WAIT: Duration = Duration::from_secs(30);

/// Reads the `grpc=` and `admin=` lines the service writes once bound (`--addr-file`), polling
/// until [`ADDR_WAIT`]; fails with the process's log (first error first) when it exits first.
fn wait_for_addrs(process: &mut ChildProcess, path: &Path) -> Result<(SocketAddr, SocketAddr)> {
    let deadline = std::time::Instant::now() + ADDR_WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let find = |key: &str| -> Result<SocketAddr> {
                let value = text
                    .lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .with_context(|| format!("no {key}= line in {}: {text:?}", path.display()))?;
                Ok(value.parse()?)
            };
            return Ok((find("grpc")?, find("admin")?));
        }
        process.check_running()?;
        if std::time::Instant::now() > deadline {
            bail!(
                "the service did not report its addresses within {ADDR_WAIT:?}; log:\n{}",
                process.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
