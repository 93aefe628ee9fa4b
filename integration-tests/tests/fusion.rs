//! Query fusion against a real Prometheus (issue 15): every fused answer equals the unfused
//! one.
//!
//! A real Prometheus serves a fixed hour of history (backfilled with promtool: gauges,
//! counters with resets, classic histograms, apps with and without each metric, series without
//! the `app` label, a label value full of regex and string metacharacters). Two fetcher
//! processes query it: one with fusion (the default flags), one with `--fusion=false`. Seeded
//! query families — the fusable shapes (sum/avg/min/max/count of selectors and of rate,
//! increase, avg_over_time, ...; histogram_quantile over sum by (le); binary operations
//! between them and with scalars), 1–3 matchers, members with and without data — go to both
//! as one QueryBatch per family; each member's answer must be the same: values within a
//! relative 1e-9, errors of the same kind. The seeds are fixed, so every run checks the same
//! families.

use std::fmt::Write as _;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use promscaler_proto::v1 as pb;
use promscaler_proto::v1::metrics_fetcher_service_client::MetricsFetcherServiceClient;
use promscaler_proto::v1::query_response::Result as QueryResult;
use promscaler_sandbox::process::ServiceProcess;
use promscaler_sandbox::prometheus::Prometheus;
use tonic::transport::Channel;

/// Start of the history: a 2 h block boundary (promtool cuts blocks on them).
const T0: i64 = 1_699_999_200;
/// One hour of samples every 15 s.
const STEP: i64 = 15;
const POINTS: i64 = 241;
/// Apps with data; one value is full of metacharacters (regex, PromQL and JSON).
const APPS: [&str; 6] = [
    "checkout",
    "cart",
    "search",
    r#"we"ird\app.*|x(y)"#,
    "ünï-cødé",
    "app-5",
];
/// Values with no series at all.
const GHOSTS: [&str; 2] = ["ghost", "nobody"];
const PODS: [&str; 3] = ["p0", "p1", "p2"];
const FAMILIES: u64 = 120;

/// xorshift64*: small, seeded, the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// An OpenMetrics label value or PromQL string body.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

/// The hour of history.
fn history() -> String {
    let mut rng = Rng(0x5eed_0001);
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    let walk = |rng: &mut Rng, start: f64| -> Vec<f64> {
        let mut v = start;
        (0..POINTS)
            .map(|_| {
                v += (rng.below(200) as f64 - 100.0) / 37.0;
                v
            })
            .collect()
    };
    let counter = |rng: &mut Rng, rate: u64| -> Vec<f64> {
        let mut v = rng.below(1000) as f64;
        (0..POINTS)
            .map(|_| {
                if rng.chance(2) {
                    v = rng.below(5) as f64; // a restart
                } else {
                    v += (rng.next() % (rate + 1)) as f64 + 0.25;
                }
                v
            })
            .collect()
    };
    for (a, app) in APPS.iter().enumerate() {
        let app = escape(app);
        for pod in PODS {
            for job in ["api", "worker"] {
                if a == 2 && job == "worker" {
                    continue;
                }
                let start = rng.below(100) as f64;
                series.push((
                    format!(r#"fz_gauge{{app="{app}",pod="{pod}",job="{job}"}}"#),
                    walk(&mut rng, start),
                ));
            }
            for code in ["200", "500"] {
                // app-5 never fails: its error ratio has no numerator.
                if a == 5 && code == "500" {
                    continue;
                }
                let rate = if code == "200" { 40 } else { 4 };
                series.push((
                    format!(r#"fz_requests_total{{app="{app}",pod="{pod}",code="{code}"}}"#),
                    counter(&mut rng, rate),
                ));
            }
            // search has no histogram.
            if a != 2 {
                let base = counter(&mut rng, 20);
                for (i, le) in ["0.1", "0.5", "1", "+Inf"].iter().enumerate() {
                    let share = (i + 1) as f64 / 4.0;
                    series.push((
                        format!(
                            r#"fz_latency_seconds_bucket{{app="{app}",pod="{pod}",le="{le}"}}"#
                        ),
                        base.iter().map(|v| (v * share).floor()).collect(),
                    ));
                }
            }
        }
    }
    // Series without the app label: the members whose value is "".
    for pod in ["orphan-0", "orphan-1"] {
        series.push((
            format!(r#"fz_gauge{{pod="{pod}",job="api"}}"#),
            walk(&mut rng, 10.0),
        ));
        series.push((
            format!(r#"fz_requests_total{{pod="{pod}",code="200"}}"#),
            counter(&mut rng, 10),
        ));
    }
    let mut text = String::new();
    let mut families: Vec<&str> = series
        .iter()
        .map(|(s, _)| s.split('{').next().unwrap_or_default())
        .collect();
    families.sort_unstable();
    families.dedup();
    for family in families {
        writeln!(text, "# TYPE {family} gauge").unwrap();
        for (name, values) in series.iter().filter(|(s, _)| s.starts_with(family)) {
            if name.split('{').next() != Some(family) {
                continue;
            }
            for (i, v) in values.iter().enumerate() {
                writeln!(text, "{name} {v} {}", T0 + i as i64 * STEP).unwrap();
            }
        }
    }
    text.push_str("# EOF\n");
    text
}

/// A query family: a template with `$V` where the app value goes.
fn inner(rng: &mut Rng) -> String {
    let window = rng.pick(&["1m", "5m", "10m"]);
    let (metric, extra): (&str, &[&str]) = match rng.below(3) {
        0 => ("fz_gauge", &[r#"job="api""#, r#"pod="p1""#, r#"pod!="p2""#]),
        1 => (
            "fz_requests_total",
            &[r#"code="200""#, r#"code="500""#, r#"pod!="p0""#],
        ),
        _ => ("fz_gauge", &[r#"job=~"api|worker""#, r#"pod="p0""#]),
    };
    let mut matchers = vec![r#"app="$V""#.to_owned()];
    for _ in 0..rng.below(3) {
        let m = rng.pick(extra).to_string();
        if !matchers.contains(&m) {
            matchers.push(m);
        }
    }
    // The app matcher anywhere among them.
    let at = rng.below(matchers.len());
    matchers.swap(0, at);
    let selector = format!("{metric}{{{}}}", matchers.join(","));
    let e = if metric == "fz_requests_total" {
        let f = rng.pick(&["rate", "increase", "irate", "resets"]);
        format!("{f}({selector}[{window}])")
    } else {
        match rng.below(4) {
            0 => selector,
            1 => format!("avg_over_time({selector}[{window}])"),
            2 => format!("max_over_time({selector}[{window}])"),
            _ => format!("deriv({selector}[{window}])"),
        }
    };
    match rng.below(6) {
        0 => format!("{e} * 2"),
        1 => format!("{e} > 3"),
        2 => format!("abs({e})"),
        _ => e,
    }
}

fn root(rng: &mut Rng, depth: u32) -> String {
    let choice = if depth >= 2 {
        rng.below(3)
    } else {
        rng.below(6)
    };
    match choice {
        0 | 1 => {
            let agg = rng.pick(&["sum", "avg", "min", "max", "count"]);
            format!("{agg}({})", inner(rng))
        }
        2 => {
            let q = rng.pick(&["0.5", "0.9", "0.99"]);
            let window = rng.pick(&["5m", "10m"]);
            let pod = if rng.chance(30) { r#",pod!="p1""# } else { "" };
            format!(
                r#"histogram_quantile({q}, sum by (le) (rate(fz_latency_seconds_bucket{{app="$V"{pod}}}[{window}])))"#
            )
        }
        3 => {
            let op = rng.pick(&["+", "-", "*", "/", "> bool", "<"]);
            format!("{} {op} {}", root(rng, depth + 1), root(rng, depth + 1))
        }
        4 => {
            let op = rng.pick(&["*", "+", ">", "/"]);
            let s = rng.pick(&["0.5", "2", "100"]);
            if rng.chance(50) {
                format!("{} {op} {s}", root(rng, depth + 1))
            } else {
                format!("{s} {op} ({})", root(rng, depth + 1))
            }
        }
        _ => r#"sum(rate(fz_requests_total{app="$V",code="500"}[5m])) / sum(rate(fz_requests_total{app="$V"}[5m]))"#
            .to_owned(),
    }
}

async fn bounded<T>(what: &str, limit: Duration, fut: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .with_context(|| format!("{what} did not finish within {limit:?}"))
}

struct Fetcher {
    process: ServiceProcess,
    client: MetricsFetcherServiceClient<Channel>,
}

impl Fetcher {
    async fn start(args: &[&str]) -> Result<Self> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let process = ServiceProcess::start("promscaler-metrics-fetcher", &args, &[]).await?;
        let channel = bounded(
            "gRPC connect",
            Duration::from_secs(10),
            tonic::transport::Endpoint::from_shared(process.grpc_url())?.connect(),
        )
        .await??;
        Ok(Self {
            process,
            client: MetricsFetcherServiceClient::new(channel),
        })
    }

    async fn batch(&self, queries: Vec<pb::QueryRequest>) -> Result<Vec<pb::QueryResponse>> {
        let mut client = self.client.clone();
        Ok(bounded(
            "QueryBatch",
            Duration::from_secs(60),
            client.query_batch(pb::QueryBatchRequest { queries }),
        )
        .await??
        .into_inner()
        .results)
    }

    async fn counter(&self, name: &str) -> Result<f64> {
        let text = self.process.metrics_text().await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0))
    }
}

fn same(fused: &pb::QueryResponse, alone: &pb::QueryResponse) -> Result<(), String> {
    match (&fused.result, &alone.result) {
        (Some(QueryResult::Sample(a)), Some(QueryResult::Sample(b))) => {
            let scale = a.value.abs().max(b.value.abs());
            if (a.value - b.value).abs() <= 1e-9 * scale {
                Ok(())
            } else {
                Err(format!("{} fused, {} alone", a.value, b.value))
            }
        }
        (Some(QueryResult::Error(a)), Some(QueryResult::Error(b))) if a.kind == b.kind => Ok(()),
        (a, b) => Err(format!("{a:?} fused, {b:?} alone")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fused_answers_equal_unfused_answers_on_a_real_prometheus() -> Result<()> {
    let prometheus = Prometheus::with_history(&history()).await?;
    // The history is in: Prometheus answers from it.
    let probe = prometheus
        .query_at(r#"count(fz_gauge)"#, (T0 + 1800) as f64)
        .await?;
    if !probe.contains(r#""value""#) {
        bail!("the backfilled history is not served: {probe}");
    }
    let fused = Fetcher::start(&[]).await?;
    let alone = Fetcher::start(&["--fusion=false"]).await?;
    let times = [T0 + 1800, T0 + 3600, T0 + 3600 + 420];
    let mut pool: Vec<&str> = APPS.to_vec();
    pool.extend(GHOSTS);
    pool.push("");
    let mut expected_fused = 0.0;
    let mut compared = 0;
    let mut with_value = 0;
    for seed in 1..=FAMILIES {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1000_0001));
        let template = root(&mut rng, 0);
        let time = prost_types::Timestamp {
            seconds: *rng.pick(&times),
            nanos: 0,
        };
        let mut values: Vec<&str> = Vec::new();
        for _ in 0..2 + rng.below(5) {
            let v = *rng.pick(&pool);
            if !values.contains(&v) {
                values.push(v);
            }
        }
        if values.len() >= 2 {
            expected_fused += 1.0;
        }
        let queries: Vec<pb::QueryRequest> = values
            .iter()
            .map(|v| pb::QueryRequest {
                source: Some(pb::PrometheusSource {
                    server_address: prometheus.url(),
                    timeout: Some(prost_types::Duration {
                        seconds: 10,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                query: template.replace("$V", &escape(v)),
                time: Some(time),
                ignore_null_values: rng.chance(20),
                ..Default::default()
            })
            .collect();
        let got = fused.batch(queries.clone()).await?;
        let want = alone.batch(queries.clone()).await?;
        for ((q, f), a) in queries.iter().zip(&got).zip(&want) {
            if let Err(diff) = same(f, a) {
                bail!(
                    "seed {seed}, {}: {diff}\n--- fused fetcher ---\n{}",
                    q.query,
                    fused.process.log_tail()
                );
            }
            compared += 1;
            with_value += usize::from(matches!(a.result, Some(QueryResult::Sample(_))));
        }
    }
    eprintln!(
        "fusion differential: {FAMILIES} families, {expected_fused} fused, {compared} members \
         compared, {with_value} with a value"
    );
    // Every family of two or more values went upstream as one fused query; none was refused
    // by shape, and the unfused fetcher fused nothing.
    assert_eq!(
        fused
            .counter("promscaler_fetcher_fused_requests_total")
            .await?,
        expected_fused
    );
    let metrics = fused.process.metrics_text().await?;
    assert!(
        !metrics.contains("promscaler_fetcher_unfusable_queries_total{"),
        "{metrics}"
    );
    assert_eq!(
        alone
            .counter("promscaler_fetcher_fused_requests_total")
            .await?,
        0.0
    );
    // The families exercised both answers and errors.
    assert!(with_value > compared / 3, "{with_value} of {compared}");
    assert!(with_value < compared, "{with_value} of {compared}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// End to end: many PromScalers through the actuator.

/// PromScalers (each with its own Deployment and its own label value).
const SCALERS: usize = 1000;
/// Every this-many-th PromScaler asks for a group that has no series.
const NO_DATA_EVERY: usize = 97;
const POLLING_SECONDS: u64 = 10;
/// Polling intervals measured.
const INTERVALS: f64 = 3.0;

/// The replicas PromScaler `i` reaches: its group's sum is 5, 15 or 25 at threshold 10 (1, 2
/// or 3 replicas); a group without series holds at the starting 1.
fn expected_replicas(i: usize) -> i32 {
    if i.is_multiple_of(NO_DATA_EVERY) {
        1
    } else {
        1 + (i % 3) as i32
    }
}

fn load_exposition() -> String {
    let mut text = String::from("# HELP fz_load Load per group.\n# TYPE fz_load gauge\n");
    for i in 0..SCALERS {
        let half = (5.0 + 10.0 * (i % 3) as f64) / 2.0;
        for pod in ["a", "b"] {
            writeln!(text, r#"fz_load{{group="g{i:04}",pod="{pod}"}} {half}"#).unwrap();
        }
    }
    text
}

fn scaler_objects(i: usize, server: &str) -> String {
    let group = if i.is_multiple_of(NO_DATA_EVERY) {
        format!("missing-{i:04}")
    } else {
        format!("g{i:04}")
    };
    // Half of the PromScalers without data fail (EMPTY_RESULT), half read 0 (KEDA's default).
    let ignore_null = if i.is_multiple_of(2 * NO_DATA_EVERY) {
        "false"
    } else {
        "true"
    };
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i:04}
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels:
      app: app-{i:04}
  template:
    metadata:
      labels:
        app: app-{i:04}
    spec:
      containers:
        - name: app
          image: app:1.0
---
apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata:
  name: scaler-{i:04}
  namespace: default
spec:
  scaleTargetRef:
    name: app-{i:04}
  pollingInterval: {POLLING_SECONDS}
  minReplicaCount: 1
  maxReplicaCount: 5
  triggers:
    - type: prometheus
      name: load
      metadata:
        serverAddress: {server}
        query: 'sum(fz_load{{group="{group}"}})'
        threshold: "10"
        activationThreshold: "0"
        ignoreNullValues: "{ignore_null}"
---
"#
    )
}

/// Sum of every sample of `name` (all label sets) in a /metrics text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Queries Prometheus has answered on `/api/v1/query` (its own counter, read from /metrics,
/// which is not a query).
async fn prometheus_queries(prometheus: &Prometheus) -> Result<f64> {
    let (status, text) =
        promscaler_sandbox::process::http(prometheus.addr(), "GET", "/metrics", "").await?;
    if status != 200 {
        bail!("prometheus /metrics answered {status}");
    }
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains(r#"handler="/api/v1/query""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

async fn replicas_off(
    system: &promscaler_integration_tests::system::System,
) -> Result<Vec<String>> {
    use k8s_openapi::api::apps::v1::Deployment;
    let api: kube::Api<Deployment> = kube::Api::namespaced(system.cluster.client(), "default");
    let list = bounded(
        "listing Deployments",
        Duration::from_secs(30),
        api.list(&kube::api::ListParams::default()),
    )
    .await??;
    let mut off = Vec::new();
    for d in list.items {
        let name = d.metadata.name.unwrap_or_default();
        let Some(i) = name
            .strip_prefix("app-")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let replicas = d.spec.and_then(|s| s.replicas).unwrap_or(1);
        if replicas != expected_replicas(i) {
            off.push(format!(
                "{name}: {replicas}, expected {}",
                expected_replicas(i)
            ));
        }
    }
    Ok(off)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_promscalers_cost_at_most_ten_upstream_requests_per_interval() -> Result<()> {
    use promscaler_integration_tests::system::System;
    // The fusion window spans the spread of the first round of ticks (the actuator then keeps
    // each PromScaler's phase, on a 100 ms grid), and one fused query may hold every member.
    let mut system = System::start_with_env(
        &[70.0, 70.0],
        vec![
            ("PROMSCALER_FUSION_WINDOW", "1s".to_owned()),
            ("PROMSCALER_FUSION_MAX_MEMBERS", SCALERS.to_string()),
        ],
    )
    .await?;
    system.app.set(load_exposition());
    system
        .prometheus
        .wait_for_value(
            r#"count(fz_load)"#,
            (2 * SCALERS) as f64,
            Duration::from_secs(60),
        )
        .await?;
    let server = system.prometheus.url();
    for chunk in (0..SCALERS).collect::<Vec<_>>().chunks(250) {
        let yaml: String = chunk.iter().map(|&i| scaler_objects(i, &server)).collect();
        system.cluster.apply(&yaml)?;
    }
    system
        .start_actuator_with(
            "actuator-a",
            &["--kube-qps", "1000", "--kube-burst", "2000"],
        )
        .await?;
    // Every PromScaler at the replicas its own value gives, as it would without fusion.
    promscaler_sandbox::process::poll_until(
        "every Deployment at its expected replicas",
        Duration::from_secs(180),
        || async { Ok(replicas_off(&system).await?.is_empty().then_some(())) },
    )
    .await
    .with_context(|| system.logs())?;

    // Measure over INTERVALS polling intervals' worth of answered queries.
    let answered = |text: &str| metric_sum(text, "promscaler_fetcher_queries_total");
    let start_answers = answered(&system.fetcher.metrics_text().await?);
    let start_upstream = prometheus_queries(&system.prometheus).await?;
    let goal = start_answers + INTERVALS * SCALERS as f64;
    promscaler_sandbox::process::poll_until(
        "three polling intervals of answers",
        Duration::from_secs(POLLING_SECONDS * 10),
        || async {
            let now = answered(&system.fetcher.metrics_text().await?);
            Ok((now >= goal).then_some(()))
        },
    )
    .await?;
    let upstream = prometheus_queries(&system.prometheus).await? - start_upstream;
    let metrics = system.fetcher.metrics_text().await?;
    let per_interval = upstream / INTERVALS;
    eprintln!(
        "fusion e2e: {SCALERS} PromScalers, {upstream} upstream queries in {INTERVALS} intervals \
         ({per_interval:.1} per interval)"
    );
    assert!(
        per_interval <= 10.0,
        "{upstream} upstream queries in {INTERVALS} intervals\n{metrics}"
    );
    assert!(
        metric_sum(&metrics, "promscaler_fetcher_fused_requests_total") > 0.0,
        "{metrics}"
    );
    // And still every PromScaler's own replicas.
    let off = replicas_off(&system).await?;
    assert!(off.is_empty(), "{off:?}");
    Ok(())
}
