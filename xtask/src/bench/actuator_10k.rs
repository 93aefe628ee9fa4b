//! `cargo xtask bench actuator-10k`: the actuator with 10,000 PromScalers at a 30 s interval
//! sharing 100 distinct queries, against the Kubernetes API emulator, a real Prometheus and the
//! release metrics-fetcher and decision service.
//!
//! Setup: the emulator runs inside this process (workload simulator off); every PromScaler has
//! its own Deployment at 1 replica whose status says 1 ready replica. Prometheus scrapes one
//! target serving `bench_load{group="gNNN"} 40` for each query group; PromScaler i queries
//! `sum(bench_load{group="g<i mod queries>"})` with threshold 50 and `useCachedMetrics: true`,
//! so every decision is "stay at 1" and nothing needs writing once the first status is written.
//!
//! Phases: apply the objects; start the services; warm up until every PromScaler has been
//! decided once and the actuator's write counter has stood still for one polling interval (or
//! `--max-warmup`); then measure over `--measure`: the actuator's CPU (utime+stime from
//! `/proc/<pid>/stat`) and RSS (VmRSS, sampled every 5 s), Kubernetes API writes from the
//! actuator's `promscaler_actuator_kube_writes_total` and from the emulator's resourceVersion
//! (which also counts the Lease renewals), upstream queries from Prometheus's own
//! `prometheus_http_requests_total{handler="/api/v1/query"}` and the fetcher's counters.

use std::{
    fmt::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use promscaler_kube_emulator::{Emulator, EmulatorHandle};
use promscaler_sandbox::prometheus::{Prometheus, ScrapeTarget};

use super::{
    Service, Services,
    proc::{Metrics, ProcSample, machine},
};

/// Options of `cargo xtask bench actuator-10k`.
#[derive(Debug, clap::Args)]
pub(crate) struct Actuator10kArgs {
    /// PromScalers (each with its own Deployment).
    #[arg(long, default_value_t = 10_000)]
    scalers: usize,
    /// Distinct queries shared by the PromScalers.
    #[arg(long, default_value_t = 100)]
    queries: usize,
    /// pollingInterval of every PromScaler.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Measured steady-state window.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    measure: Duration,
    /// Longest warm-up before measuring anyway (the report says so).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    max_warmup: Duration,
    /// The actuator's --kube-qps (client-side rate limit). Only the warm-up's first status
    /// writes and finalizers are limited by it; steady state should write nothing.
    #[arg(long, default_value_t = 500.0)]
    kube_qps: f64,
    /// The actuator's --kube-burst.
    #[arg(long, default_value_t = 1000)]
    kube_burst: u32,
    /// Skip `cargo build --release` of the three services (use the binaries already built).
    #[arg(long)]
    no_build: bool,
    /// During the window, GET the actuator's /metrics this often, as a Prometheus scraping it
    /// would (its per-PromScaler series are built at each scrape); 0s = never.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    scrape_every: Duration,
    /// Build and run the dev-profile binaries instead of release ones: request and sample
    /// counts are the same, CPU and memory figures are not comparable.
    #[arg(long)]
    debug_build: bool,
    /// A flag for the metrics-fetcher, e.g. `--fetcher-arg=--fusion=false` (repeatable).
    #[arg(long, allow_hyphen_values = true)]
    fetcher_arg: Vec<String>,
}

const METRIC: &str = "bench_load";
const NAMESPACE: &str = "default";

fn exposition(queries: usize) -> String {
    let mut text = format!("# HELP {METRIC} Load per group.\n# TYPE {METRIC} gauge\n");
    for g in 0..queries {
        let _ = writeln!(text, "{METRIC}{{group=\"g{g:03}\"}} 40");
    }
    text
}

fn deployment(i: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i:05}
  namespace: {NAMESPACE}
  labels:
    app: app-{i:05}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: app-{i:05}
  template:
    metadata:
      labels:
        app: app-{i:05}
    spec:
      containers:
        - name: app
          image: app:1.0
status:
  observedGeneration: 1
  replicas: 1
  updatedReplicas: 1
  readyReplicas: 1
  availableReplicas: 1
"#
    )
}

fn promscaler(i: usize, queries: usize, interval: Duration, server: &str) -> String {
    let group = i % queries;
    let interval = interval.as_secs().max(1);
    format!(
        r#"apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata:
  name: scaler-{i:05}
  namespace: {NAMESPACE}
spec:
  scaleTargetRef:
    name: app-{i:05}
  pollingInterval: {interval}
  minReplicaCount: 1
  maxReplicaCount: 10
  triggers:
    - type: prometheus
      name: load
      useCachedMetrics: true
      metadata:
        serverAddress: {server}
        query: 'sum({METRIC}{{group="g{group:03}"}})'
        threshold: "50"
        activationThreshold: "0"
"#
    )
}

/// Counters read at one instant.
#[derive(Debug, Clone)]
struct Counters {
    at: Instant,
    actuator: Metrics,
    fetcher: Metrics,
    prometheus_queries: f64,
    resource_version: u64,
}

impl Counters {
    fn writes(&self) -> f64 {
        self.actuator
            .sum("promscaler_actuator_kube_writes_total", &[])
    }

    fn decisions(&self) -> f64 {
        self.actuator
            .sum("promscaler_actuator_decisions_total", &[])
    }

    fn scalers(&self) -> f64 {
        self.actuator.sum("promscaler_actuator_scalers", &[])
    }
}

async fn counters(
    actuator: &Service,
    fetcher: &Service,
    prometheus: &Prometheus,
    emulator: &EmulatorHandle,
) -> Result<Counters> {
    let prom = Metrics::scrape(prometheus.addr()).await?;
    Ok(Counters {
        at: Instant::now(),
        actuator: actuator.metrics().await?,
        fetcher: fetcher.metrics().await?,
        prometheus_queries: prom.sum(
            "prometheus_http_requests_total",
            &["handler=\"/api/v1/query\""],
        ),
        resource_version: emulator.resource_version(),
    })
}

/// Per-series deltas of `name` between two scrapes, as "labels: delta" lines.
fn deltas(before: &Metrics, after: &Metrics, name: &str) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = after
        .series(name)
        .into_iter()
        .map(|(labels, v)| {
            let old = before
                .series(name)
                .into_iter()
                .find(|(l, _)| *l == labels)
                .map_or(0.0, |(_, v)| v);
            (labels, v - old)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub(crate) async fn run(root: &Path, args: Actuator10kArgs) -> Result<()> {
    if args.debug_build {
        super::DEBUG_BUILD.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if !args.no_build {
        super::build_release(
            root,
            &[
                "promscaler-actuator",
                "promscaler-metrics-fetcher",
                "promscaler-decision",
            ],
        )?;
    }
    let t0 = Instant::now();
    let app = ScrapeTarget::start(exposition(args.queries)).await?;
    let prometheus = Prometheus::start(&[app.addr()]).await?;
    let probe = format!("sum({METRIC}{{group=\"g000\"}})");
    prometheus
        .wait_for_value(&probe, 40.0, Duration::from_secs(30))
        .await
        .context("Prometheus never scraped the bench target")?;

    let emulator = Emulator::builder()
        .no_workload_sim()
        .crds_dir(root.join("charts/promscaler/crds"))
        .start("127.0.0.1:0")
        .await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig)?;
    let server = prometheus.url();
    for chunk in (0..args.scalers).collect::<Vec<_>>().chunks(500) {
        let mut yaml = String::new();
        for &i in chunk {
            yaml.push_str(&deployment(i));
            yaml.push_str("---\n");
            yaml.push_str(&promscaler(i, args.queries, args.interval, &server));
            yaml.push_str("---\n");
        }
        emulator.apply_yaml(&yaml)?;
    }
    eprintln!(
        "xtask: {} Deployments and {} PromScalers applied in {:.1?}",
        args.scalers,
        args.scalers,
        t0.elapsed()
    );

    let actuator_args: Vec<String> = [
        "--lease-namespace",
        NAMESPACE,
        "--identity",
        "bench",
        "--kube-qps",
        &args.kube_qps.to_string(),
        "--kube-burst",
        &args.kube_burst.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let Services {
        mut fetcher,
        mut decision,
        mut actuator,
    } = Services::start(root, &kubeconfig, &actuator_args, &args.fetcher_arg).await?;
    let started = Instant::now();

    // Warm-up: every PromScaler known and decided at least once, then no write for one interval.
    let scalers = args.scalers as f64;
    let mut last_writes = f64::NAN;
    let mut quiet_since = Instant::now();
    let mut warm = false;
    let mut all_decided_after = None;
    while started.elapsed() < args.max_warmup {
        tokio::time::sleep(Duration::from_secs(5)).await;
        actuator.check_running()?;
        fetcher.check_running()?;
        decision.check_running()?;
        let c = counters(&actuator, &fetcher, &prometheus, &emulator).await;
        let Ok(c) = c else {
            continue; // the admin server may not listen yet
        };
        let writes = c.writes();
        if writes != last_writes {
            last_writes = writes;
            quiet_since = Instant::now();
        }
        if all_decided_after.is_none() && c.scalers() >= scalers && c.decisions() >= scalers {
            all_decided_after = Some(started.elapsed());
        }
        let rss = ProcSample::read(actuator.pid)?;
        eprintln!(
            "xtask: warm-up {:>4.0}s: scalers {}, decisions {}, writes {}, RSS {:.0} MiB, {}",
            started.elapsed().as_secs_f64(),
            c.scalers(),
            c.decisions(),
            writes,
            rss.rss_mib(),
            machine()
        );
        if all_decided_after.is_some() && quiet_since.elapsed() >= args.interval {
            warm = true;
            break;
        }
    }
    let warmup = started.elapsed();

    // The measured window.
    let before = counters(&actuator, &fetcher, &prometheus, &emulator).await?;
    let proc_before = ProcSample::read(actuator.pid)?;
    let load_before = machine();
    let mut max_rss = proc_before.rss_kib;
    let window_end = Instant::now() + args.measure;
    let mut next_scrape = Instant::now();
    let mut scrapes = 0usize;
    let mut last_scrape = String::new();
    while Instant::now() < window_end {
        if !args.scrape_every.is_zero() && Instant::now() >= next_scrape {
            let (status, body) =
                promscaler_sandbox::process::http(actuator.admin, "GET", "/metrics", "").await?;
            if status != 200 {
                bail!("the actuator's /metrics answered {status}");
            }
            scrapes += 1;
            last_scrape = body;
            next_scrape += args.scrape_every;
        }
        let pause = Duration::from_secs(5).min(window_end - Instant::now()).min(
            next_scrape
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(100)),
        );
        tokio::time::sleep(pause).await;
        actuator.check_running()?;
        max_rss = max_rss.max(ProcSample::read(actuator.pid)?.rss_kib);
    }
    let proc_after = ProcSample::read(actuator.pid)?;
    let after = counters(&actuator, &fetcher, &prometheus, &emulator).await?;
    let load_after = machine();
    max_rss = max_rss.max(proc_after.rss_kib);

    let window = after.at - before.at;
    let minutes = window.as_secs_f64() / 60.0;
    let intervals = window.as_secs_f64() / args.interval.as_secs_f64();
    let writes = after.writes() - before.writes();
    let rv = after.resource_version - before.resource_version;
    let upstream = after.prometheus_queries - before.prometheus_queries;
    let decisions = after.decisions() - before.decisions();

    println!("## actuator-10k results");
    if scrapes > 0 {
        let series = last_scrape
            .lines()
            .filter(|l| l.starts_with("promscaler_actuator_scaler_"))
            .count();
        println!(
            "actuator /metrics scraped every {:?} in the window: {scrapes} scrapes, the last {:.1} MiB with {series} per-PromScaler series",
            args.scrape_every,
            last_scrape.len() as f64 / (1024.0 * 1024.0)
        );
    }
    println!(
        "{} PromScalers, {} distinct queries, interval {:?}, measured {:.0} s ({intervals:.1} intervals)",
        args.scalers,
        args.queries,
        args.interval,
        window.as_secs_f64()
    );
    println!(
        "warm-up: {:.0} s ({}); every PromScaler decided once after {}",
        warmup.as_secs_f64(),
        if warm {
            "writes stood still for one interval"
        } else {
            "max-warmup reached: writes were still happening"
        },
        all_decided_after.map_or("never".to_owned(), |d| format!("{:.0} s", d.as_secs_f64()))
    );
    println!(
        "writes during warm-up (actuator counter): {}",
        before.writes()
    );
    println!("machine at start of window: {load_before}");
    println!("machine at end of window:   {load_after}");
    println!(
        "actuator RSS: {:.1} MiB at end, {:.1} MiB max in window",
        proc_after.rss_mib(),
        max_rss as f64 / 1024.0
    );
    println!(
        "actuator CPU: {:.0} mCPU average over the window",
        proc_before.millicores_until(&proc_after)
    );
    println!(
        "Kubernetes API writes by the actuator: {writes} in window = {:.1}/min",
        writes / minutes
    );
    for (labels, d) in deltas(
        &before.actuator,
        &after.actuator,
        "promscaler_actuator_kube_writes_total",
    ) {
        if d != 0.0 {
            println!("  {labels}: {d}");
        }
    }
    println!(
        "emulator resourceVersion delta (every write to any object, Lease renewals included): {rv} = {:.1}/min",
        rv as f64 / minutes
    );
    println!(
        "upstream queries (Prometheus /api/v1/query): {upstream} = {:.1} per interval",
        upstream / intervals
    );
    for (labels, d) in deltas(
        &before.fetcher,
        &after.fetcher,
        "promscaler_fetcher_queries_total",
    ) {
        println!(
            "  fetcher queries {labels}: {d} = {:.1} per interval",
            d / intervals
        );
    }
    let sum = |m: &Metrics| -> f64 {
        m.series("promscaler_actuator_scaler_upstream_samples_total")
            .into_iter()
            .map(|(_, v)| v)
            .sum()
    };
    let samples = sum(&after.actuator) - sum(&before.actuator);
    println!(
        "upstream samples processed (Prometheus stats, summed over PromScalers): {samples} = {:.0} per interval",
        samples / intervals
    );
    for (labels, d) in deltas(
        &before.fetcher,
        &after.fetcher,
        "promscaler_fetcher_fused_requests_total",
    ) {
        println!(
            "fused upstream requests {labels}: {d} = {:.1} per interval",
            d / intervals
        );
    }
    if !args.fetcher_arg.is_empty() {
        println!("fetcher flags: {}", args.fetcher_arg.join(" "));
    }
    if args.debug_build {
        println!(
            "dev-profile binaries (--debug-build): CPU and memory figures are not release ones"
        );
    }
    println!(
        "decisions: {decisions} = {:.0} per interval (expected {})",
        decisions / intervals,
        args.scalers
    );
    for (labels, d) in deltas(
        &before.actuator,
        &after.actuator,
        "promscaler_actuator_decisions_total",
    ) {
        if d != 0.0 {
            println!("  {labels}: {d}");
        }
    }
    drop(actuator);
    drop(fetcher);
    drop(decision);
    emulator.shutdown().await;
    Ok(())
}
