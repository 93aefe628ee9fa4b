//! `cargo xtask sandbox`: the whole system on loopback and a load curve.
//!
//! [`Sandbox`] starts the pieces (the Kubernetes API emulator with promscaler's CRDs and the
//! workload simulator, the `sample-app` Deployment, the [`EmulatedApp`] serving one `/metrics`
//! per ready pod, a [`Prometheus`] following those pods, the three services as processes)
//! and applies the seed's PromScaler; the end-to-end tests use it without the view. [`run`] adds
//! the load curve ([`Scenario`]), the live terminal table, the SVG chart and the summary.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use promscaler_kube_emulator::{Emulator, EmulatorHandle, SimConfig};

use crate::app::EmulatedApp;
use crate::gateway::AmpGateway;
use crate::process::{ServiceProcess, http, poll_until};
use crate::prometheus::{Prometheus, SAMPLE_METRIC, SEED_QUERY, which};
use crate::sts::Sts;

/// The region of the `--aws` mode's gateway and STS.
pub const AWS_REGION: &str = "us-east-1";
/// The role the fetcher's (emulated) IRSA web identity assumes with `--aws`.
pub const AWS_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/promscaler-metrics-fetcher";
/// The namespace everything runs in.
pub const NAMESPACE: &str = "default";
/// The PromScaler's name.
pub const SCALER: &str = "sample-app-prometheus-scaler";
/// The seed's target value per replica.
pub const THRESHOLD: f64 = 50.0;
/// The seed's replica bounds.
pub const MIN_REPLICAS: i32 = 1;
/// The seed's replica bounds.
pub const MAX_REPLICAS: i32 = 5;

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

/// The seed's `sample-app` Deployment in `namespace`.
pub fn sample_app_deployment(namespace: &str, replicas: i32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: sample-app
  namespace: {namespace}
  labels:
    app.kubernetes.io/name: sample-app
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app.kubernetes.io/name: sample-app
  template:
    metadata:
      labels:
        app.kubernetes.io/name: sample-app
    spec:
      containers:
        - name: app
          image: sample-app:1.0
"#
    )
}

/// The seed's PromScaler (AverageValue 50, activation 0, min 1, max 5) against `server`.
pub fn seed_promscaler(config: &SandboxConfig, server: &str) -> String {
    let aws = if config.aws_python.is_some() {
        format!("\n        identityOwner: operator\n        awsRegion: {AWS_REGION}")
    } else {
        String::new()
    };
    let fallback = match config.fallback {
        Some((failure_threshold, replicas)) => format!(
            "\n  fallback:\n    failureThreshold: {failure_threshold}\n    replicas: {replicas}"
        ),
        None => String::new(),
    };
    format!(
        r#"apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata:
  name: {SCALER}
  namespace: {NAMESPACE}
spec:
  scaleTargetRef:
    name: sample-app
  minReplicaCount: {min}
  maxReplicaCount: {MAX_REPLICAS}
  pollingInterval: {polling}
  cooldownPeriod: {cooldown}{fallback}
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleDown:
          stabilizationWindowSeconds: {stabilization}
  triggers:
    - type: prometheus
      name: connections
      metadata:
        serverAddress: {server}
        query: '{query}'
        threshold: "{THRESHOLD}"
        activationThreshold: "0"{aws}
"#,
        min = config.min_replicas,
        polling = config.polling_interval,
        cooldown = config.cooldown_period,
        stabilization = config.scale_down_stabilization,
        query = config.query,
    )
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
        let prometheus = Prometheus::following(app.sd_file()).await?;
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
        emulator.apply_yaml(&seed_promscaler(config, &server))?;
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

/// A load curve: (seconds, connections) points, linear in between, flat after the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The points, by time.
    pub points: Vec<(f64, f64)>,
}

impl Scenario {
    /// The seed's story: ramp to 140, hold, peak at 300, drop to 20, silence.
    pub fn seed() -> Self {
        Self {
            points: vec![
                (0.0, 20.0),
                (30.0, 140.0),
                (150.0, 140.0),
                (165.0, 300.0),
                (225.0, 300.0),
                (230.0, 20.0),
                (320.0, 20.0),
                (325.0, 0.0),
                (380.0, 0.0),
            ],
        }
    }

    /// Parses lines of `SECONDS CONNECTIONS` (also `- [SECONDS, CONNECTIONS]` YAML lists and
    /// `SECONDS,CONNECTIONS`); `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self> {
        let mut points = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let cleaned: String = line
                .chars()
                .map(|c| if "-[],:".contains(c) { ' ' } else { c })
                .collect();
            let fields: Vec<&str> = cleaned.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [t, c] = fields[..] else {
                bail!(
                    "line {}: expected `SECONDS CONNECTIONS`, got {line:?}",
                    i + 1
                );
            };
            let t: f64 = t
                .parse()
                .with_context(|| format!("line {}: {t:?}", i + 1))?;
            let c: f64 = c
                .parse()
                .with_context(|| format!("line {}: {c:?}", i + 1))?;
            if points.last().is_some_and(|&(last, _)| t < last) || c < 0.0 {
                bail!(
                    "line {}: times must not decrease and connections be >= 0",
                    i + 1
                );
            }
            points.push((t, c));
        }
        if points.is_empty() {
            bail!("the scenario has no points");
        }
        Ok(Self { points })
    }

    /// The connections at `t` seconds.
    pub fn at(&self, t: f64) -> f64 {
        let mut prev = self.points[0];
        if t <= prev.0 {
            return prev.1;
        }
        for &(pt, pc) in &self.points[1..] {
            if t <= pt {
                let span = pt - prev.0;
                return if span <= 0.0 {
                    pc
                } else {
                    prev.1 + (pc - prev.1) * (t - prev.0) / span
                };
            }
            prev = (pt, pc);
        }
        prev.1
    }

    /// The last point's time.
    pub fn duration(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.0)
    }
}

/// One recorded second.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the start (wall clock).
    pub t: f64,
    /// What was seen.
    pub snap: Snapshot,
}

/// The replicas the seed computes for `connections`: ceil(c/50) within [min, max].
pub fn expected_replicas(connections: f64) -> i32 {
    ((connections / THRESHOLD).ceil() as i32).clamp(MIN_REPLICAS, MAX_REPLICAS)
}

/// For each plateau of the load (the same connections for at least `min_len` samples), the
/// connections and the replicas at its end.
pub fn plateaus(samples: &[Sample], min_len: usize) -> Vec<(f64, Option<i32>)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=samples.len() {
        let same = i < samples.len()
            && (samples[i].snap.connections - samples[start].snap.connections).abs() < 0.5;
        if !same {
            if i - start >= min_len {
                out.push((
                    samples[start].snap.connections,
                    samples[i - 1].snap.replicas,
                ));
            }
            start = i;
        }
    }
    out
}

/// The summary lines: where replicas settled on each plateau, against the seed's arithmetic.
pub fn summary(samples: &[Sample]) -> Vec<String> {
    plateaus(samples, 5)
        .into_iter()
        .map(|(c, r)| {
            let expected = expected_replicas(c);
            let got = r.map_or("-".to_owned(), |r| r.to_string());
            let verdict = if r == Some(expected) { "as" } else { "NOT as" };
            format!(
                "with {c:.0} connections replicas settled at {got}, {verdict} the seed computes \
                 (ceil({c:.0}/{THRESHOLD:.0}) = {} within [{MIN_REPLICAS}, {MAX_REPLICAS}] = \
                 {expected})",
                (c / THRESHOLD).ceil()
            )
        })
        .collect()
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".to_owned(), |v| v.to_string())
}

/// The table's header.
pub fn table_header() -> String {
    format!(
        "{:>6}  {:>11}  {:>11}  {:>7}  {:>8}  {:>4}  {:>5}  {:>6}",
        "TIME", "CONNECTIONS", "QUERY", "DESIRED", "REPLICAS", "PODS", "READY", "ACTIVE"
    )
}

/// One table row.
pub fn table_row(sample: &Sample) -> String {
    let s = &sample.snap;
    format!(
        "{:>5.0}s  {:>11.0}  {:>11}  {:>7}  {:>8}  {:>4}  {:>5}  {:>6}",
        sample.t,
        s.connections,
        s.query_value.map_or("-".to_owned(), |v| format!("{v:.1}")),
        opt(s.desired),
        opt(s.replicas),
        s.ready_pods,
        s.ready,
        s.active
    )
}

/// A hand-written SVG: connections and the query value (left axis), replicas (right axis).
pub fn chart_svg(samples: &[Sample]) -> String {
    let (w, h) = (960.0, 420.0);
    let (left, right, top, bottom) = (60.0, 60.0, 40.0, 50.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let t_max = samples.last().map_or(1.0, |s| s.t).max(1.0);
    let c_max = samples
        .iter()
        .map(|s| s.snap.connections.max(s.snap.query_value.unwrap_or(0.0)))
        .fold(50.0_f64, f64::max);
    let c_max = (c_max / 50.0).ceil() * 50.0;
    let r_max = f64::from(MAX_REPLICAS + 1);
    let x = |t: f64| left + t / t_max * pw;
    let yc = |c: f64| top + ph - c / c_max * ph;
    let yr = |r: f64| top + ph - r / r_max * ph;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">promscaler sandbox: load and replicas (threshold {THRESHOLD:.0} per replica, min {MIN_REPLICAS}, max {MAX_REPLICAS})</text>"#,
        w / 2.0
    );
    // Grid and axes.
    for i in 0..=5 {
        let c = c_max * f64::from(i) / 5.0;
        let y = yc(c);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#1f77b4">{c:.0}</text>"##,
            left + pw,
            left - 6.0,
            y + 4.0
        );
    }
    for r in 0..=(MAX_REPLICAS + 1) {
        let y = yr(f64::from(r));
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" fill="#d62728">{r}</text>"##,
            left + pw + 6.0,
            y + 4.0
        );
    }
    let step = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| t_max / s <= 12.0)
        .unwrap_or(1200.0);
    let mut t = 0.0;
    while t <= t_max {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t:.0}s</text>"#,
            x(t),
            top + ph + 18.0
        );
        t += step;
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle" fill="#1f77b4">connections</text>"##,
        top + ph / 2.0,
        top + ph / 2.0
    );
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" transform="rotate(90 {:.1} {:.1})" text-anchor="middle" fill="#d62728">replicas</text>"##,
        w - 14.0,
        top + ph / 2.0,
        w - 14.0,
        top + ph / 2.0
    );
    // Series.
    let line = |points: Vec<(f64, f64)>| -> String {
        points
            .iter()
            .map(|(a, b)| format!("{a:.1},{b:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let load: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (x(s.t), yc(s.snap.connections)))
        .collect();
    let query: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.snap.query_value.map(|v| (x(s.t), yc(v))))
        .collect();
    let mut replicas = Vec::new();
    let mut last: Option<f64> = None;
    for s in samples {
        if let Some(r) = s.snap.replicas {
            let r = f64::from(r);
            if let Some(prev) = last
                && prev != r
            {
                replicas.push((x(s.t), yr(prev)));
            }
            replicas.push((x(s.t), yr(r)));
            last = Some(r);
        }
    }
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##,
        line(load)
    );
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="#2ca02c" stroke-width="1.5" stroke-dasharray="5,3" points="{}"/>"##,
        line(query)
    );
    let _ = writeln!(
        svg,
        r##"<polyline fill="none" stroke="#d62728" stroke-width="2.5" points="{}"/>"##,
        line(replicas)
    );
    // Legend.
    let ly = h - 14.0;
    for (i, (color, label)) in [
        ("#1f77b4", "connections (load)"),
        ("#2ca02c", "query value (Prometheus)"),
        ("#d62728", "replicas (Deployment spec.replicas)"),
    ]
    .iter()
    .enumerate()
    {
        let lx = left + 260.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{label}</text>"#,
            lx + 24.0,
            lx + 30.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Options of `cargo xtask sandbox`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The repository root (CRDs; the chart is written under `target/`).
    pub root: PathBuf,
    /// A scenario file; the seed's story when `None`.
    pub scenario: Option<PathBuf>,
    /// How much faster than written the load curve runs.
    pub speed: f64,
    /// Run with an AMP-like SigV4 gateway and a local STS.
    pub aws: bool,
    /// The test venv's Python (`<target>/promscaler-venv/bin/python`), used with `aws`.
    pub venv_python: PathBuf,
    /// Keep everything running after the scenario until Ctrl-C.
    pub keep_running: bool,
    /// Where the SVG chart goes.
    pub chart: PathBuf,
}

/// Installs Debian's `prometheus` when it is missing and we are root; otherwise says how.
pub fn ensure_prometheus() -> Result<()> {
    if which("prometheus").is_some() {
        return Ok(());
    }
    let install = "apt-get update && apt-get install -y --no-install-recommends prometheus";
    let uid = std::process::Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!(
            "Prometheus is not installed; install Debian's package as root: `sudo sh -c '{install}'`"
        );
    }
    eprintln!("sandbox: installing Debian's prometheus package");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(install)
        .status()?;
    if !status.success() || which("prometheus").is_none() {
        bail!("`{install}` failed ({status})");
    }
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the sandbox with the live view; returns after the scenario (or Ctrl-C).
pub async fn run(options: DemoOptions) -> Result<()> {
    if options.speed <= 0.0 || !options.speed.is_finite() {
        bail!("--speed must be > 0");
    }
    let scenario = match &options.scenario {
        Some(path) => Scenario::parse(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?,
        None => Scenario::seed(),
    };
    ensure_prometheus()?;
    let mut config = SandboxConfig::demo(options.root.join("charts/promscaler/crds"));
    config.initial_connections = scenario.at(0.0).round();
    if options.aws {
        let python = std::env::var_os(crate::process::TEST_PYTHON_ENV)
            .filter(|p| !p.is_empty())
            .map_or_else(|| options.venv_python.clone(), PathBuf::from);
        if !python.is_file() {
            bail!(
                "--aws needs the Python venv with moto[server] and botocore at {}: create it with \
                 `cargo xtask test --deps-only`",
                python.display()
            );
        }
        config.aws_python = Some(python);
    }
    println!("sandbox: starting the API emulator, Prometheus and the three services on 127.0.0.1");
    let sandbox = tokio::select! {
        s = Sandbox::start(&config) => s?,
        _ = stop_signal() => { println!("interrupted"); return Ok(()); }
    };
    println!(
        "sandbox: Prometheus at {}, Kubernetes API at http://{}",
        sandbox.prometheus.url(),
        sandbox.api_addr()
    );
    if config.aws_python.is_some() {
        println!(
            "sandbox: --aws: the fetcher signs with SigV4 using credentials its IRSA web identity \
             got from a local STS; the PromScaler's serverAddress is the AMP-like gateway {}",
            sandbox.server_address()
        );
    }
    println!("sandbox: PromScaler {SCALER}: query {}", config.query);
    println!(
        "sandbox: threshold {THRESHOLD:.0}, min {MIN_REPLICAS}, max {MAX_REPLICAS}, pollingInterval \
         {}s, cooldownPeriod {}s, scale-down stabilization {}s",
        config.polling_interval, config.cooldown_period, config.scale_down_stabilization
    );
    println!(
        "sandbox: in another terminal: KUBECONFIG={} kubectl get psc,deploy",
        sandbox.kubeconfig().display()
    );
    println!(
        "sandbox: scenario of {:.0}s at speed {} ({:.0}s); Ctrl-C stops everything\n",
        scenario.duration(),
        options.speed,
        scenario.duration() / options.speed
    );
    println!("{}", table_header());
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut samples = Vec::new();
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop_signal() => { interrupted = true; break; }
        }
        let t = start.elapsed().as_secs_f64();
        let scenario_t = t * options.speed;
        if scenario_t > scenario.duration() + 0.5 {
            break;
        }
        sandbox.set_connections(scenario.at(scenario_t).round());
        let snap = tokio::select! {
            s = sandbox.snapshot() => s,
            _ = stop_signal() => { interrupted = true; break; }
        };
        let sample = Sample { t, snap };
        println!("{}", table_row(&sample));
        samples.push(sample);
    }
    if let Some(parent) = options.chart.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&options.chart, chart_svg(&samples))?;
    println!();
    for line in summary(&samples) {
        println!("summary: {line}");
    }
    println!(
        "summary: chart of load and replicas: {}",
        options.chart.display()
    );
    if options.keep_running && !interrupted {
        println!(
            "sandbox: still running (KUBECONFIG={} kubectl get psc,deploy); Ctrl-C stops it",
            sandbox.kubeconfig().display()
        );
        let _ = stop_signal().await;
    }
    println!("sandbox: stopping everything it started");
    drop(sandbox);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_interpolates() {
        let s = Scenario::parse("# t c\n0 0\n10 100\n- [20, 100]\n30,0\n").unwrap();
        assert_eq!(s.at(5.0), 50.0);
        assert_eq!(s.at(15.0), 100.0);
        assert_eq!(s.at(25.0), 50.0);
        assert_eq!(s.at(99.0), 0.0);
        assert_eq!(s.duration(), 30.0);
        assert!(Scenario::parse("").is_err());
        assert!(Scenario::parse("10 1\n5 2").is_err());
    }

    #[test]
    fn seed_numbers() {
        assert_eq!(expected_replicas(140.0), 3);
        assert_eq!(expected_replicas(300.0), 5);
        assert_eq!(expected_replicas(0.0), 1);
    }

    fn sample(t: f64, c: f64, r: i32) -> Sample {
        Sample {
            t,
            snap: Snapshot {
                connections: c,
                replicas: Some(r),
                ..Snapshot::default()
            },
        }
    }

    #[test]
    fn summary_reports_plateaus() {
        let mut samples: Vec<Sample> = (0..6).map(|i| sample(f64::from(i), 140.0, 2)).collect();
        samples.push(sample(6.0, 140.0, 3));
        samples.push(sample(7.0, 200.0, 3));
        let lines = summary(&samples);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("with 140 connections replicas settled at 3, as"),
            "{lines:?}"
        );
        let svg = chart_svg(&samples);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
