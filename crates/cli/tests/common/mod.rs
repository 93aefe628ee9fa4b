//! Shared by the CLI tests: run the built `promscalerctl`, serve the real decision service on
//! 127.0.0.1:0, read the KEDA corpus of `promscaler-api`.

#![allow(dead_code, unreachable_pub)] // each test binary uses a part

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use promscaler_decision::grpc::DecisionGrpc;
use promscaler_proto::v1::decision_service_server::DecisionServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

/// Bound on every await in these tests.
pub const LIMIT: Duration = Duration::from_secs(30);

/// What one run of promscalerctl did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with both streams unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn ok(self) -> Self {
        self.expect_code(0)
    }
}

/// Runs promscalerctl with `args` (and `stdin`), without PROMSCALER_* from the environment.
/// Prints the command and its output so `--nocapture` shows what docs/cli.md quotes.
pub fn ctl_with_stdin(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promscalerctl"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PROMSCALER_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("promscalerctl starts");
    if let Some(input) = stdin {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out: Output = child.wait_with_output().expect("promscalerctl runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    println!(
        "$ promscalerctl {}\n{}{}[exit {}]\n",
        args.join(" "),
        run.stdout,
        run.stderr,
        run.code
    );
    run
}

pub fn ctl(args: &[&str]) -> Run {
    ctl_with_stdin(args, None)
}

/// Runs promscalerctl off the async runtime's threads.
pub async fn ctl_async(args: Vec<String>) -> Run {
    tokio::time::timeout(
        LIMIT,
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ctl(&args)
        }),
    )
    .await
    .expect("promscalerctl finishes in time")
    .expect("join")
}

/// A file of the KEDA corpus in crates/api/tests/data, relative to this crate (cargo and
/// nextest run tests, and so promscalerctl, in the package directory; relative paths keep the
/// printed commands short for docs/cli.md).
pub fn corpus(name: &str) -> String {
    format!("../api/tests/data/{name}")
}

/// A file in this crate's tests/data, relative to this crate.
pub fn data(name: &str) -> String {
    format!("tests/data/{name}")
}

/// The real DecisionService on 127.0.0.1:0; returns its URL.
pub async fn serve_decision() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .add_service(DecisionServiceServer::new(DecisionGrpc::new()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

/// A port nothing listens on.
pub fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// The seed app's pods scraped by a real Prometheus, and the real metrics-fetcher binary.
pub struct Rig {
    pub target: promscaler_sandbox::prometheus::ScrapeTarget,
    pub prometheus: promscaler_sandbox::prometheus::Prometheus,
    pub fetcher_url: String,
    _fetcher: promscaler_sandbox::process::ChildProcess,
    pub dir: tempfile::TempDir,
}

impl Rig {
    /// Pods with these connection counts, Prometheus scraping them every second, and
    /// `promscaler-metrics-fetcher` (built by `cargo build -p promscaler-metrics-fetcher`)
    /// serving on a free port.
    pub async fn start(connections_per_pod: &[f64]) -> anyhow::Result<Self> {
        use promscaler_sandbox::process::{ChildProcess, bin_path, free_port, poll_until};
        let target =
            promscaler_sandbox::prometheus::ScrapeTarget::sample_app(connections_per_pod).await?;
        let prometheus =
            promscaler_sandbox::prometheus::Prometheus::start(&[target.addr()]).await?;
        let dir = tempfile::tempdir()?;
        let grpc: std::net::SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let mut cmd = Command::new(bin_path("promscaler-metrics-fetcher")?);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("PROMSCALER_") || k.starts_with("OTEL_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("--grpc-addr")
            .arg(grpc.to_string())
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{}", free_port()?));
        let mut fetcher = ChildProcess::spawn(
            "promscaler-metrics-fetcher",
            cmd,
            &dir.path().join("fetcher.log"),
        )?;
        let ready = poll_until("the metrics-fetcher to listen", LIMIT, || async move {
            Ok(tokio::net::TcpStream::connect(grpc).await.ok().map(|_| ()))
        })
        .await;
        fetcher.check_running()?;
        ready?;
        Ok(Self {
            target,
            prometheus,
            fetcher_url: format!("http://{grpc}"),
            _fetcher: fetcher,
            dir,
        })
    }

    /// Writes `content` to `file` in the rig's directory and returns its path.
    pub fn write(&self, file: &str, content: &str) -> String {
        let path = self.dir.path().join(file);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Writes a PromScaler like the seed's, querying this rig's Prometheus without AWS
    /// signing, and returns its path.
    pub fn promscaler(&self, file: &str, query: &str) -> String {
        let yaml = format!(
            r#"apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata:
  name: sample-app-prometheus-scaler
  namespace: default
spec:
  scaleTargetRef:
    name: sample-app
  minReplicaCount: 1
  maxReplicaCount: 5
  pollingInterval: 60
  cooldownPeriod: 300
  fallback:
    failureThreshold: 2
    replicas: 1
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 600
  triggers:
    - type: prometheus
      name: connections
      metadata:
        serverAddress: {}
        query: '{query}'
        threshold: "50"
        activationThreshold: "0"
"#,
            self.prometheus.url()
        );
        let path = self.dir.path().join(file);
        std::fs::write(&path, yaml).unwrap();
        path.to_str().unwrap().to_owned()
    }
}
