//! The harness: [`Sandbox`] starts the pieces on loopback (the Kubernetes API emulator with
//! promscaler's CRDs and the workload simulator, the `sample-app` Deployment, the
//! [`EmulatedApp`] serving one `/metrics` per ready pod, a [`Prometheus`] following those pods,
//! the three services as processes), applies the seed's PromScaler and reads the system back.
//! The end-to-end tests and the soak use it without the view.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use promscaler_kube_emulator::{Emulator, EmulatorHandle, SimConfig};

use crate::app::EmulatedApp;
use crate::gateway::AmpGateway;
use crate::process::{ServiceProcess, http, poll_until};
use crate::prometheus::{Prometheus, SAMPLE_METRIC, SEED_QUERY};
use crate::seed::{MIN_REPLICAS, NAMESPACE, SCALER, SeedScaler, sample_app_deployment};
use crate::sts::Sts;

/// The region of the `--aws` mode's gateway and STS.
pub const AWS_REGION: &str = "us-east-1";
/// The role the fetcher's (emulated) IRSA web identity assumes with `--aws`.
pub const AWS_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/promscaler-metrics-fetcher";

/// How the sandbox is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The chart's CRDs (`charts/promscaler/crds`).
    pub crds_dir: PathBuf,
    /// How long an emulated pod takes to become Ready.
    pub startup_delay: Duration,
    /// The PromScaler's query.
    pub query: String,
    /// `pollingInterval` (seconds).
    pub polling_interval: u32,
    /// `cooldownPeriod` (seconds).
    pub cooldown_period: u32,
    /// Scale-down `stabilizationWindowSeconds`.
    pub scale_down_stabilization: u32,
    /// The Deployment's replicas before the scaler acts.
    pub initial_replicas: i32,
    /// The app's connections before the scaler acts (the PromScaler is applied once
    /// Prometheus reports them).
    pub initial_connections: f64,
    /// `minReplicaCount` (the seed's 1; 0 lets the app scale to zero after the cooldown).
    pub min_replicas: i32,
    /// `fallback` as (`failureThreshold`, `replicas`); the seed has none.
    pub fallback: Option<(u32, i32)>,
    /// With the Python of the test venv (moto, botocore): query through an AMP-like SigV4
    /// gateway with the fetcher's IRSA credentials from a local STS.
    pub aws_python: Option<PathBuf>,
    /// The actuator replicas' `--identity`s, started in this order (so the first one takes the
    /// Lease and leads; the others stand by).
    pub actuators: Vec<String>,
    /// Extra flags for every actuator (e.g. `--lease-duration=5s`).
    pub actuator_args: Vec<String>,
}

impl SandboxConfig {
    /// The demo's settings: the seed's query; polling 1 s, cooldown 10 s and scale-down
    /// stabilization 15 s (the seed's 300 s examples, shortened); pods ready after 1 s.
    pub fn demo(crds_dir: PathBuf) -> Self {
        Self {
            crds_dir,
            startup_delay: Duration::from_secs(1),
            query: SEED_QUERY.to_owned(),
            polling_interval: 1,
            cooldown_period: 10,
            scale_down_stabilization: 15,
            initial_replicas: 2,
            initial_connections: 0.0,
            min_replicas: MIN_REPLICAS,
            fallback: None,
            aws_python: None,
            actuators: vec!["sandbox-actuator".to_owned()],
            actuator_args: Vec::new(),
        }
    }
}

/// One look at the system.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The app's connections.
    pub connections: f64,
    /// The query's value as Prometheus returns it now.
    pub query_value: Option<f64>,
    /// `status.desiredReplicas` of the PromScaler.
    pub desired: Option<i32>,
    /// `spec.replicas` of the Deployment.
    pub replicas: Option<i32>,
    /// Pods serving metrics.
    pub ready_pods: usize,
    /// The PromScaler's Ready condition status.
    pub ready: String,
    /// The PromScaler's Active condition status.
    pub active: String,
}

/// The running sandbox; dropping it stops every process and server it started.
#[derive(Debug)]
pub struct Sandbox {
    // Field order is drop order: the services first, the emulator last.
    /// The actuator (the first of [`SandboxConfig::actuators`], leading at start).
    pub actuator: ServiceProcess,
    /// The other actuator replicas, in the order of [`SandboxConfig::actuators`].
    pub standbys: Vec<ServiceProcess>,
    /// The decision service.
    pub decision: ServiceProcess,
    /// The metrics-fetcher.
    pub fetcher: ServiceProcess,
    /// Prometheus following the app's pods.
    pub prometheus: Prometheus,
    /// The emulated app.
    pub app: EmulatedApp,
    aws: Option<(AmpGateway, Sts)>,
    emulator: EmulatorHandle,
    actuator_ids: Vec<String>,
    query: String,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// Starts everything and applies the Deployment and the seed's PromScaler.
    pub async fn start(config: &SandboxConfig) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("promscaler-sandbox-")
            .tempdir()?;
        let emulator = Emulator::builder()
            .workload_sim(SimConfig {
                startup_delay: config.startup_delay,
            })
            .crds_dir(&config.crds_dir)
            .start("127.0.0.1:0")
            .await
            .context("starting the Kubernetes API emulator")?;
        let kubeconfig = dir.path().join("kubeconfig");
        emulator.write_kubeconfig(&kubeconfig)?;
        emulator.apply_yaml(&sample_app_deployment(NAMESPACE, config.initial_replicas))?;
        let app = EmulatedApp::start(
            emulator.addr(),
            NAMESPACE,
            "sample-app",
            &dir.path().join("sample-app-pods.json"),
        )
        .await?;
        // Prometheus scrapes the app's pods and, once they run, the services' admin ports (so a
        // local Grafana with the chart's dashboard can point at it).
        let services_sd = dir.path().join("services.json");
        std::fs::write(&services_sd, "[]")?;
        let prometheus = Prometheus::following_all(&[app.sd_file(), &services_sd]).await?;
        let mut fetcher_env = Vec::new();
        let mut server = prometheus.url();
        let aws = match &config.aws_python {
            Some(python) => {
                let sts = Sts::start(python).await?;
                let gateway =
                    AmpGateway::start(python, &prometheus.url(), &sts.endpoint(), AWS_REGION)
                        .await?;
                server = gateway.workspace_url();
                let token = dir.path().join("token");
                std::fs::write(
                    &token,
                    "eyJhbGciOiJSUzI1NiJ9.sandbox-service-account-token.sig",
                )?;
                let none = dir.path().join("absent");
                for (k, v) in [
                    ("AWS_ROLE_ARN", AWS_ROLE_ARN.to_owned()),
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
                    ("AWS_REGION", AWS_REGION.to_owned()),
                    ("AWS_ENDPOINT_URL_STS", sts.endpoint()),
                    ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
                    ("AWS_CONFIG_FILE", none.display().to_string()),
                    ("AWS_SHARED_CREDENTIALS_FILE", none.display().to_string()),
                ] {
                    fetcher_env.push((k.to_owned(), v));
                }
                Some((gateway, sts))
            }
            None => None,
        };
        let fetcher =
            ServiceProcess::start("promscaler-metrics-fetcher", &[], &fetcher_env).await?;
        let decision = ServiceProcess::start("promscaler-decision", &[], &[]).await?;
        let Some((first, others)) = config.actuators.split_first() else {
            bail!("the sandbox needs at least one actuator");
        };
        let actuator_args = |identity: &str| -> Vec<String> {
            let mut args: Vec<String> = [
                "--fetcher-addr",
                &fetcher.grpc_url(),
                "--decision-addr",
                &decision.grpc_url(),
                "--lease-namespace",
                NAMESPACE,
                "--identity",
                identity,
                // A local sandbox on loopback: promscalerctl and the soak call ActuatorService
                // with no Kubernetes identity (docs/operations.md, "Security model").
                "--grpc-authz=false",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            args.extend(config.actuator_args.iter().cloned());
            args
        };
        let env = [("KUBECONFIG".to_owned(), kubeconfig.display().to_string())];
        let actuator =
            ServiceProcess::start("promscaler-actuator", &actuator_args(first), &env).await?;
        // One after the other, so the first one has taken the Lease when the others start.
        let mut standbys = Vec::new();
        for identity in others {
            standbys.push(
                ServiceProcess::start("promscaler-actuator", &actuator_args(identity), &env)
                    .await?,
            );
        }
        let mut admins = vec![
            fetcher.admin_addr(),
            decision.admin_addr(),
            actuator.admin_addr(),
        ];
        admins.extend(standbys.iter().map(ServiceProcess::admin_addr));
        let admins: Vec<String> = admins.iter().map(ToString::to_string).collect();
        std::fs::write(
            &services_sd,
            serde_json::json!([{ "targets": admins, "labels": { "job": "promscaler" } }])
                .to_string(),
        )?;
        // The scaler's first look must be at the initial load, not at pods not scraped yet.
        app.set_connections(config.initial_connections);
        let total = format!("sum({SAMPLE_METRIC}{{app_kubernetes_io_name=\"sample-app\"}})");
        poll_until(
            &format!(
                "Prometheus reporting {} connections",
                config.initial_connections
            ),
            Duration::from_secs(30),
            || async {
                let value = prometheus.value(&total).await?;
                Ok(value
                    .is_some_and(|v| (v - config.initial_connections).abs() <= 0.5)
                    .then_some(()))
            },
        )
        .await?;
        let seed = SeedScaler {
            namespace: NAMESPACE,
            server: &server,
            query: &config.query,
            min_replicas: config.min_replicas,
            polling_interval: config.polling_interval,
            cooldown_period: config.cooldown_period,
            scale_down_stabilization: config.scale_down_stabilization,
            fallback: config.fallback,
            aws_region: config.aws_python.as_ref().map(|_| AWS_REGION),
        };
        emulator.apply_yaml(&seed.yaml())?;
        Ok(Self {
            actuator,
            standbys,
            decision,
            fetcher,
            prometheus,
            app,
            aws,
            emulator,
            actuator_ids: config.actuators.clone(),
            query: config.query.clone(),
            kubeconfig,
            dir,
        })
    }

    /// The PromScaler's `serverAddress`: Prometheus, or the AMP-like gateway with `--aws`.
    pub fn server_address(&self) -> String {
        match &self.aws {
            Some((gateway, _)) => gateway.workspace_url(),
            None => self.prometheus.url(),
        }
    }

    /// The kubeconfig pointing at the emulator (for kubectl).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The emulator's address.
    pub fn api_addr(&self) -> SocketAddr {
        self.emulator.addr()
    }

    /// The in-process Kubernetes API emulator (fault injection, request counts, changes).
    pub fn emulator(&self) -> &EmulatorHandle {
        &self.emulator
    }

    /// The actuator replicas' identities, as in [`SandboxConfig::actuators`].
    pub fn actuator_identities(&self) -> &[String] {
        &self.actuator_ids
    }

    /// The actuator replica with `identity`.
    pub fn actuator_mut(&mut self, identity: &str) -> Option<&mut ServiceProcess> {
        let index = self.actuator_ids.iter().position(|id| id == identity)?;
        match index {
            0 => Some(&mut self.actuator),
            i => self.standbys.get_mut(i - 1),
        }
    }

    /// The local STS of the `--aws` mode.
    pub fn sts_mut(&mut self) -> Option<&mut Sts> {
        self.aws.as_mut().map(|(_, sts)| sts)
    }

    /// The sandbox's scratch directory (kubeconfig, file-SD file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sets the load.
    pub fn set_connections(&self, connections: f64) {
        self.app.set_connections(connections);
    }

    async fn get_json(&self, path: &str) -> Result<serde_json::Value> {
        let (status, body) = http(self.emulator.addr(), "GET", path, "").await?;
        if status != 200 {
            bail!("GET {path}: {status} {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// The Deployment's `spec.replicas`.
    pub async fn replicas(&self) -> Result<i32> {
        let deployment = self
            .get_json(&format!(
                "/apis/apps/v1/namespaces/{NAMESPACE}/deployments/sample-app"
            ))
            .await?;
        deployment["spec"]["replicas"]
            .as_i64()
            .map(|r| r as i32)
            .context("no spec.replicas")
    }

    /// The PromScaler as the API serves it.
    pub async fn scaler(&self) -> Result<serde_json::Value> {
        self.get_json(&format!(
            "/apis/promscaler.io/v1alpha1/namespaces/{NAMESPACE}/promscalers/{SCALER}"
        ))
        .await
    }

    /// The PromScaler's condition of `type_` as (status, reason, message), if set.
    pub async fn condition(&self, type_: &str) -> Result<Option<(String, String, String)>> {
        let scaler = self.scaler().await?;
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        Ok(scaler["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == type_)
            .map(|c| (text(&c["status"]), text(&c["reason"]), text(&c["message"]))))
    }

    /// Waits until the PromScaler's condition `type_` has `status`; returns (reason, message).
    pub async fn wait_condition(
        &self,
        type_: &str,
        status: &str,
        timeout: Duration,
    ) -> Result<(String, String)> {
        poll_until(
            &format!("condition {type_}={status}"),
            timeout,
            || async move {
                Ok(self
                    .condition(type_)
                    .await?
                    .filter(|(s, _, _)| s == status)
                    .map(|(_, reason, message)| (reason, message)))
            },
        )
        .await
        .with_context(|| self.logs())
    }

    /// Reads connections, the query value, the scaler's status and the replicas.
    pub async fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot {
            connections: self.app.connections(),
            ready_pods: self.app.ready_pods(),
            ready: "-".into(),
            active: "-".into(),
            ..Snapshot::default()
        };
        snap.query_value = self.prometheus.value(&self.query).await.ok().flatten();
        snap.replicas = self.replicas().await.ok();
        if let Ok(scaler) = self.scaler().await {
            let status = &scaler["status"];
            snap.desired = status["desiredReplicas"].as_i64().map(|d| d as i32);
            for c in status["conditions"].as_array().into_iter().flatten() {
                let value = c["status"].as_str().unwrap_or("-").to_owned();
                match c["type"].as_str() {
                    Some("Ready") => snap.ready = value,
                    Some("Active") => snap.active = value,
                    _ => {}
                }
            }
        }
        snap
    }

    /// Waits until the Deployment has `expected` replicas.
    pub async fn wait_replicas(&self, expected: i32, timeout: Duration) -> Result<()> {
        poll_until(
            &format!("sample-app at {expected} replicas"),
            timeout,
            || async move { Ok((self.replicas().await? == expected).then_some(())) },
        )
        .await
        .with_context(|| self.logs())
    }

    /// Waits until the query returns `expected` (±0.5).
    pub async fn wait_query_value(&self, expected: f64, timeout: Duration) -> Result<()> {
        poll_until(&format!("query value {expected}"), timeout, || async move {
            let v = self.prometheus.value(&self.query).await?;
            Ok(v.is_some_and(|v| (v - expected).abs() <= 0.5).then_some(()))
        })
        .await
    }

    /// The services' log tails.
    pub fn logs(&self) -> String {
        format!(
            "--- fetcher ---\n{}\n--- decision ---\n{}\n--- actuator ---\n{}\n",
            self.fetcher.log_tail(),
            self.decision.log_tail(),
            self.actuator.log_tail()
        )
    }
}
