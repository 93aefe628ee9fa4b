//! Command-line flags of `promscaler-kube-emulator`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use promscaler_kube_emulator::{Emulator, Error, SimConfig};

/// An in-memory Kubernetes API server for tests and the sandbox.
#[derive(Debug, Parser)]
#[command(name = "promscaler-kube-emulator", version)]
pub(crate) struct Args {
    /// Address to listen on (plain HTTP).
    #[arg(
        long,
        env = "PROMSCALER_KUBE_EMULATOR_ADDR",
        default_value = "127.0.0.1:6443"
    )]
    addr: String,
    /// Write a kubeconfig pointing at the emulator to this file.
    #[arg(long, env = "PROMSCALER_KUBE_EMULATOR_KUBECONFIG_OUT")]
    kubeconfig_out: Option<PathBuf>,
    /// Serve the CRDs in the YAML files of this directory from the start.
    #[arg(long, env = "PROMSCALER_KUBE_EMULATOR_CRDS")]
    crds: Option<PathBuf>,
    /// Do not simulate Deployment/StatefulSet Pods and status.
    #[arg(long, env = "PROMSCALER_KUBE_EMULATOR_NO_WORKLOAD_SIM")]
    no_workload_sim: bool,
    /// Serve HTTPS with a self-signed certificate (a generated CA the kubeconfig trusts).
    #[arg(long, env = "PROMSCALER_KUBE_EMULATOR_HTTPS")]
    https: bool,
    /// How long simulated Pods take to become Ready ("1s", "500ms").
    #[arg(long, env = "PROMSCALER_KUBE_EMULATOR_POD_STARTUP_DELAY", default_value = "1s", value_parser = humantime::parse_duration)]
    pod_startup_delay: Duration,
    /// Tokens `TokenReview` accepts, in kube-apiserver's `--token-auth-file` format: one
    /// `token,user,uid,"group1,group2"` a line. More can be added at `POST /_emulator/tokens`.
    #[arg(long, env = "PROMSCALER_KUBE_EMULATOR_TOKEN_AUTH_FILE")]
    token_auth_file: Option<PathBuf>,
    /// Log filter (tracing-subscriber EnvFilter syntax).
    #[arg(long, env = "PROMSCALER_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

impl Args {
    /// Starts the emulator and serves until Ctrl-C/SIGTERM.
    pub(crate) async fn run(self) -> Result<(), Error> {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(&self.log_level))
            .init();
        let mut builder = Emulator::builder();
        builder = if self.no_workload_sim {
            builder.no_workload_sim()
        } else {
            builder.workload_sim(SimConfig {
                startup_delay: self.pod_startup_delay,
            })
        };
        if self.https {
            builder = builder.https();
        }
        if let Some(path) = &self.token_auth_file {
            builder = builder.token_auth_file(path);
        }
        if let Some(dir) = &self.crds {
            builder = builder.crds_dir(dir);
        }
        let mut emulator = builder.start(&self.addr).await?;
        if let Some(path) = &self.kubeconfig_out {
            emulator.write_kubeconfig(path)?;
            tracing::info!(path = %path.display(), "wrote kubeconfig");
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|source| Error::Io {
                path: "SIGTERM handler".into(),
                source,
            })?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = emulator.wait() => {}
        }
        emulator.shutdown().await;
        Ok(())
    }
}
