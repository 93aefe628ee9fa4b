//! `cargo xtask bench ...`: harnesses that run the release service binaries as processes and
//! measure them from the outside (throughput and latency at a client, CPU and RSS from /proc,
//! counters from the services' own `/metrics`). Results go to docs/BENCHMARKS.md with the
//! command that produced them. These are measurements, not tests: nothing here asserts a goal.

mod actuator_10k;
mod decide_grpc;
mod http_proxy;
mod proc;
mod scale_latency;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result};
use clap::Subcommand;
use promscaler_sandbox::process::{ChildProcess, free_port};

/// The harnesses.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCmd {
    /// The criterion benches of every crate (the default without a subcommand).
    Criterion {
        /// Run each benchmark briefly (criterion --quick), for a smoke run.
        #[arg(long)]
        quick: bool,
    },
    /// Decide over gRPC on loopback: a load generator against the release decision binary.
    DecideGrpc(decide_grpc::DecideGrpcArgs),
    /// The actuator with thousands of PromScalers against the Kubernetes API emulator.
    #[command(name = "actuator-10k")]
    Actuator10k(actuator_10k::Actuator10kArgs),
    /// Threshold crossing in Prometheus to the /scale PATCH, after the polling wait
    /// (docs/BENCHMARKS.md, "Threshold crossing to /scale PATCH").
    ScaleLatency(scale_latency::ScaleLatencyArgs),
}

/// Runs one harness.
pub(crate) fn run(root: &Path, cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Criterion { quick } => crate::criterion(root, quick),
        BenchCmd::DecideGrpc(args) => {
            runtime(args.client_threads)?.block_on(decide_grpc::run(root, args))
        }
        BenchCmd::Actuator10k(args) => runtime(2)?.block_on(actuator_10k::run(root, args)),
        BenchCmd::ScaleLatency(args) => runtime(2)?.block_on(scale_latency::run(root, args)),
    }
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?)
}

/// Builds the release binaries of `packages` (`cargo build --release -p ...`).
/// Set by a harness run with `--debug-build`: build and start the dev-profile binaries (for
/// figures that do not depend on the build, such as request counts; CPU and memory figures of
/// such a run are not comparable with release ones).
static DEBUG_BUILD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The profile directory the harnesses build and run (`release` unless `--debug-build`).
fn profile() -> &'static str {
    if DEBUG_BUILD.load(std::sync::atomic::Ordering::Relaxed) {
        "debug"
    } else {
        "release"
    }
}

fn build_release(root: &Path, packages: &[&str]) -> Result<()> {
    let mut command = crate::cargo();
    command.current_dir(root).arg("build");
    if profile() == "release" {
        command.arg("--release");
    }
    for package in packages {
        command.args(["-p", package]);
    }
    crate::run(&mut command)
}

/// A release binary in the target directory.
fn release_bin(root: &Path, name: &str) -> Result<PathBuf> {
    let path = crate::target_dir(root).join(profile()).join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing after the build",
        path.display()
    );
    Ok(path)
}

/// Where the harness keeps the services' logs (kept after the run, for reading).
fn log_dir(root: &Path) -> Result<PathBuf> {
    let dir = crate::target_dir(root).join("bench-logs");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The three services as the harnesses run them (logs at `info`).
#[derive(Debug)]
struct Services {
    fetcher: Service,
    decision: Service,
    actuator: Service,
}

impl Services {
    /// Starts the fetcher and the decision service and waits until they are ready, then starts
    /// the actuator against them and the API server of `kubeconfig`, with `actuator_args` added
    /// (not waited for: the harness decides what "ready" means for its run); the fetcher gets
    /// `fetcher_args`.
    async fn start(
        root: &Path,
        kubeconfig: &Path,
        actuator_args: &[String],
        fetcher_args: &[String],
    ) -> Result<Self> {
        let quiet = [("PROMSCALER_LOG_LEVEL", "info".to_owned())];
        let mut fetcher = Service::start(root, "promscaler-metrics-fetcher", fetcher_args, &quiet)?;
        let mut decision = Service::start(root, "promscaler-decision", &[], &quiet)?;
        fetcher.wait_ready(Duration::from_secs(30)).await?;
        decision.wait_ready(Duration::from_secs(30)).await?;
        let mut args: Vec<String> = vec![
            "--fetcher-addr".to_owned(),
            fetcher.grpc_url(),
            "--decision-addr".to_owned(),
            decision.grpc_url(),
        ];
        args.extend_from_slice(actuator_args);
        let actuator = Service::start(
            root,
            "promscaler-actuator",
            &args,
            &[
                ("KUBECONFIG", kubeconfig.display().to_string()),
                ("PROMSCALER_LOG_LEVEL", "info".to_owned()),
            ],
        )?;
        Ok(Self {
            fetcher,
            decision,
            actuator,
        })
    }
}

/// One of our release binaries running on free loopback ports; killed on drop.
#[derive(Debug)]
struct Service {
    process: ChildProcess,
    grpc: SocketAddr,
    admin: SocketAddr,
    pid: u32,
}

impl Service {
    /// Starts `binary` with `--grpc-addr`/`--admin-addr` on free ports plus `args` and `envs`;
    /// output goes to `<target>/bench-logs/<binary>.log`.
    fn start(root: &Path, binary: &str, args: &[String], envs: &[(&str, String)]) -> Result<Self> {
        let grpc: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let mut command = Command::new(release_bin(root, binary)?);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("OTEL_") || key.starts_with("PROMSCALER_") || key.starts_with("AWS_")
            {
                command.env_remove(&*key);
            }
        }
        command
            .arg("--grpc-addr")
            .arg(grpc.to_string())
            .arg("--admin-addr")
            .arg(admin.to_string())
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)));
        let log = log_dir(root)?.join(format!("{binary}.log"));
        let process = ChildProcess::spawn(binary, command, &log)?;
        let pid = process.id().context("no pid")?;
        eprintln!(
            "xtask: started {binary} (pid {pid}, gRPC {grpc}, admin {admin}, log {})",
            log.display()
        );
        Ok(Self {
            process,
            grpc,
            admin,
            pid,
        })
    }

    fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Fails when the process has exited.
    fn check_running(&mut self) -> Result<()> {
        self.process.check_running()
    }

    /// The service's `/metrics`, parsed.
    async fn metrics(&self) -> Result<proc::Metrics> {
        proc::Metrics::scrape(self.admin).await
    }

    /// Waits until `/ready` answers 200.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let admin = self.admin;
        let ready = promscaler_sandbox::process::poll_until("/ready", timeout, || async move {
            let (status, _) = promscaler_sandbox::process::http(admin, "GET", "/ready", "").await?;
            Ok((status == 200).then_some(()))
        })
        .await;
        self.check_running()?;
        ready.with_context(|| format!("log:\n{}", self.process.log_tail()))
    }
}
