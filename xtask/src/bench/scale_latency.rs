//! `cargo xtask bench scale-latency` (docs/BENCHMARKS.md, "Threshold crossing to /scale PATCH"):
//! the time from a metric crossing the threshold in Prometheus to the `/scale` PATCH, minus the
//! polling interval.
//!
//! Setup: a [`ScrapeTarget`] serves `bench_load` (one series) and a real Prometheus scrapes it
//! every second; the release metrics-fetcher, decision service and actuator run as processes;
//! the Kubernetes API emulator (with its workload simulator, so the Deployment's status follows
//! its replicas as in a cluster) runs in this process. One PromScaler scales one Deployment on
//! `sum(bench_load)`, AverageValue 50, `pollingInterval` 1 s, without `useCachedMetrics` (so
//! every tick's QueryBatch carries `max_age` 0 and the fetcher queries upstream each time: its
//! cache only serves results younger than a request's `max_age`), and a behavior with no
//! stabilization window and rate limits wider than a trial (so scale-down is as immediate as
//! scale-up and back-to-back trials are never capped). Its `serverAddress` is a
//! [`RecordingProxy`] in front of Prometheus. The sandbox's seed PromScaler is not used: its
//! query averages over one minute (no sharp crossing) and the default rate policies would cap
//! the second scale-up within 15 s.
//!
//! A trial flips the served value across the threshold (40 ⇒ 1 replica, 140 ⇒ 3, and back), at
//! a random phase against the scrape and the polling, and takes:
//! - `t_cross`: when Prometheus first answers the new value to a poller in this process that
//!   asks every `--cross-poll` (the send time of that query);
//! - `t_seen`: when the first query of the fetcher whose answer carries the new value arrived
//!   at the proxy;
//! - `t_patch`: when the emulator committed the Deployment's new `spec.replicas` (a hook on the
//!   store, [`promscaler_kube_emulator::EmulatorHandle::changes`]), not when a watch delivered it.
//!   A `?watch=1` on the Deployment read by this process measures what watch delivery would add.
//!
//! `t_patch − t_seen` is the processing after the polling wait (the number BENCHMARKS.md records, goal ≤ 50 ms
//! p99), split into Prometheus's answer to the proxy and what follows it (fetcher → actuator →
//! decision → PATCH); `t_seen − t_cross` is the polling wait (≤ `pollingInterval` + a tick).

use std::{
    collections::HashMap,
    fmt::Write as _,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use promscaler_kube_emulator::{Emulator, EmulatorHandle, SimConfig};
use promscaler_sandbox::{
    process::poll_until,
    prometheus::{Prometheus, ScrapeTarget, single_value},
};

use super::{
    Services,
    http_proxy::{KeepAlive, QueryRecord, RecordingProxy},
    proc::{Metrics, machine, percentile},
};

/// Options of `cargo xtask bench scale-latency`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScaleLatencyArgs {
    /// Upward threshold crossings; each is followed by one back down, and both are measured.
    #[arg(long, default_value_t = 200)]
    trials: usize,
    /// The PromScaler's pollingInterval (whole seconds).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// How often the harness asks Prometheus for the value to time the crossing.
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    cross_poll: Duration,
    /// How long the emulator's pods take to become ready after a scale.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    startup_delay: Duration,
    /// Skip `cargo build --release` of the three services (use the binaries already built).
    #[arg(long)]
    no_build: bool,
}

const METRIC: &str = "bench_load";
const QUERY: &str = "sum(bench_load)";
const NAMESPACE: &str = "default";
const DEPLOYMENT: &str = "bench-app";
const THRESHOLD: f64 = 50.0;
/// ceil(40 / 50) = 1 replica.
const LOW: f64 = 40.0;
/// ceil(140 / 50) = 3 replicas.
const HIGH: f64 = 140.0;

fn exposition(value: f64) -> String {
    format!("# HELP {METRIC} Load.\n# TYPE {METRIC} gauge\n{METRIC} {value}\n")
}

fn replicas_for(value: f64) -> i64 {
    ((value / THRESHOLD).ceil() as i64).clamp(1, 10)
}

fn deployment() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {DEPLOYMENT}
  namespace: {NAMESPACE}
  labels:
    app: {DEPLOYMENT}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {DEPLOYMENT}
  template:
    metadata:
      labels:
        app: {DEPLOYMENT}
    spec:
      containers:
        - name: app
          image: app:1.0
"#
    )
}

fn promscaler(interval: Duration, server: &str) -> String {
    let interval = interval.as_secs().max(1);
    format!(
        r#"apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata:
  name: latency
  namespace: {NAMESPACE}
spec:
  scaleTargetRef:
    name: {DEPLOYMENT}
  pollingInterval: {interval}
  minReplicaCount: 1
  maxReplicaCount: 10
  advanced:
    horizontalPodAutoscalerConfig:
      behavior:
        scaleUp:
          stabilizationWindowSeconds: 0
          policies:
            - type: Pods
              value: 10
              periodSeconds: 1
        scaleDown:
          stabilizationWindowSeconds: 0
          policies:
            - type: Percent
              value: 100
              periodSeconds: 1
  triggers:
    - type: prometheus
      name: load
      metricType: AverageValue
      metadata:
        serverAddress: {server}
        query: '{QUERY}'
        threshold: "{THRESHOLD}"
"#
    )
}

/// Which way a trial crosses the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// A change of the Deployment's `spec.replicas`, as the emulator committed it.
#[derive(Debug, Clone, Copy)]
struct ReplicaChange {
    committed: Instant,
    resource_version: u64,
    replicas: i64,
}

/// One crossing: what the harness did and when Prometheus showed it.
#[derive(Debug, Clone, Copy)]
struct Trial {
    direction: Direction,
    /// The scrape target started serving `value`.
    set: Instant,
    /// Prometheus first answered `value` to the harness's poller (t_cross).
    crossed: Instant,
    value: f64,
    /// The replicas `value` asks for.
    replicas: i64,
}

/// The durations of one trial, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Measured {
    /// t_seen − t_cross.
    polling_wait: f64,
    /// t_patch − t_seen.
    processing: f64,
    /// Prometheus answering the proxy's forward of the first query that saw the value.
    prometheus: f64,
    /// From the proxy handing that answer back to the PATCH's commit.
    after_answer: f64,
    /// t_cross − set: the scrape wait.
    visible_after: f64,
    /// HTTP watch event read − commit, when the watch saw that resourceVersion.
    watch_delivery: Option<f64>,
}

/// `b − a` in milliseconds, negative when `b` is earlier.
fn ms(a: Instant, b: Instant) -> f64 {
    match b.checked_duration_since(a) {
        Some(d) => d.as_secs_f64() * 1e3,
        None => -(a - b).as_secs_f64() * 1e3,
    }
}

/// Pairs a trial with the first query after it that carried its value and the first commit
/// of its replicas after it.
fn measure(
    trial: &Trial,
    queries: &[QueryRecord],
    changes: &[ReplicaChange],
    watched: &HashMap<u64, Instant>,
) -> Result<Measured, String> {
    let seen = queries
        .iter()
        .find(|q| q.arrived >= trial.set && q.value == Some(trial.value))
        .ok_or("no query through the proxy carried the new value")?;
    let patch = changes
        .iter()
        .find(|c| c.committed >= trial.set && c.replicas == trial.replicas)
        .ok_or("the Deployment never got the new replicas")?;
    if patch.committed < seen.arrived {
        return Err(format!(
            "replicas changed {:.1} ms before a query saw the value",
            ms(patch.committed, seen.arrived)
        ));
    }
    Ok(Measured {
        polling_wait: ms(trial.crossed, seen.arrived),
        processing: ms(seen.arrived, patch.committed),
        prometheus: ms(seen.upstream_sent, seen.upstream_answered),
        after_answer: ms(seen.answered, patch.committed),
        visible_after: ms(trial.set, trial.crossed),
        watch_delivery: watched
            .get(&patch.resource_version)
            .map(|&at| ms(patch.committed, at)),
    })
}

/// Nearest-rank percentiles of a sample, in its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stats {
    n: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

impl Stats {
    fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Self {
            n: v.len(),
            p50: percentile(&v, 0.5),
            p90: percentile(&v, 0.9),
            p99: percentile(&v, 0.99),
            max: v[v.len() - 1],
        })
    }

    fn row(&self, what: &str) -> String {
        format!(
            "| {what} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            self.n, self.p50, self.p90, self.p99, self.max
        )
    }
}

/// Collects the Deployment's `spec.replicas` changes from the emulator's commit hook.
fn collect_changes(emulator: &EmulatorHandle) -> Arc<Mutex<Vec<ReplicaChange>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let shared = out.clone();
    let mut changes = emulator.changes();
    tokio::spawn(async move {
        let mut last = None;
        while let Some(change) = changes.next().await {
            if change.resource != "apps/deployments"
                || change.object["metadata"]["name"] != DEPLOYMENT
            {
                continue;
            }
            let replicas = change.object["spec"]["replicas"].as_i64();
            if replicas != last {
                last = replicas;
                if let Some(replicas) = replicas {
                    lock(&shared).push(ReplicaChange {
                        committed: change.at,
                        resource_version: change.resource_version,
                        replicas,
                    });
                }
            }
        }
    });
    out
}

/// Watches the Deployment over HTTP like a client would and timestamps each event as it is
/// read: resourceVersion ⇒ when. Abort the task before stopping the emulator.
fn watch_over_http(
    emulator: &EmulatorHandle,
) -> (
    Arc<Mutex<HashMap<u64, Instant>>>,
    tokio::task::JoinHandle<()>,
) {
    let out = Arc::new(Mutex::new(HashMap::new()));
    let shared = out.clone();
    let addr = emulator.addr();
    let task = tokio::spawn(async move {
        let result = async {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            let request = http::Request::get(format!(
                "/apis/apps/v1/namespaces/{NAMESPACE}/deployments?watch=1&fieldSelector=metadata.name%3D{DEPLOYMENT}"
            ))
            .header(http::header::HOST, addr.to_string())
            .body(Full::new(Bytes::new()))?;
            let mut body = sender.send_request(request).await?.into_body();
            let mut buffer = Vec::new();
            while let Some(frame) = body.frame().await {
                let read = Instant::now();
                if let Ok(data) = frame?.into_data() {
                    buffer.extend_from_slice(&data);
                }
                while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&line) else {
                        continue;
                    };
                    if let Some(rv) = event["object"]["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|rv| rv.parse().ok())
                    {
                        lock(&shared).entry(rv).or_insert(read);
                    }
                }
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(error) = result {
            eprintln!("xtask: the HTTP watch of the Deployment ended: {error:#}");
        }
    });
    (out, task)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asks Prometheus for the query every `every` until it answers `value`; the send time of that
/// query.
async fn first_answer(
    prometheus: &mut KeepAlive,
    value: f64,
    every: Duration,
    timeout: Duration,
) -> Result<Instant> {
    let path = format!("/api/v1/query?query={}", form_encode(QUERY));
    let deadline = Instant::now() + timeout;
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let sent = Instant::now();
        let (status, body) = prometheus.get(&path).await?;
        if status == http::StatusCode::OK
            && single_value(&String::from_utf8_lossy(&body)) == Some(value)
        {
            return Ok(sent);
        }
        if sent > deadline {
            bail!("Prometheus did not answer {value} within {timeout:?}");
        }
    }
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The Deployment's replicas from the last committed change.
fn current_replicas(changes: &Mutex<Vec<ReplicaChange>>) -> Option<i64> {
    lock(changes).last().map(|c| c.replicas)
}

/// Everything one run needs.
struct Rig {
    target: ScrapeTarget,
    direct: KeepAlive,
    changes: Arc<Mutex<Vec<ReplicaChange>>>,
    cross_poll: Duration,
    timeout: Duration,
}

impl Rig {
    /// Serves `value` and waits until Prometheus shows it and the Deployment has its replicas.
    async fn cross(&mut self, direction: Direction, value: f64) -> Result<Trial> {
        let replicas = replicas_for(value);
        self.target.set(exposition(value));
        let set = Instant::now();
        let crossed = first_answer(&mut self.direct, value, self.cross_poll, self.timeout).await?;
        let changes = self.changes.clone();
        poll_until(
            &format!("{DEPLOYMENT} at {replicas} replicas"),
            self.timeout,
            || {
                let changes = changes.clone();
                async move {
                    Ok(lock(&changes)
                        .iter()
                        .any(|c| c.committed >= set && c.replicas == replicas)
                        .then_some(()))
                }
            },
        )
        .await?;
        Ok(Trial {
            direction,
            set,
            crossed,
            value,
            replicas,
        })
    }

    /// Back to the low value and 1 replica after a failed trial.
    async fn reset(&mut self) -> Result<()> {
        self.target.set(exposition(LOW));
        let changes = self.changes.clone();
        poll_until("1 replica again", self.timeout * 2, || {
            let changes = changes.clone();
            async move { Ok((current_replicas(&changes) == Some(1)).then_some(())) }
        })
        .await
    }
}

/// Counter deltas between two scrapes of the same service.
fn delta(before: &Metrics, after: &Metrics, name: &str, labels: &[&str]) -> f64 {
    after.sum(name, labels) - before.sum(name, labels)
}

pub(crate) async fn run(root: &Path, args: ScaleLatencyArgs) -> Result<()> {
    if args.interval.as_secs() == 0 || args.interval.subsec_nanos() != 0 {
        bail!("--interval must be whole seconds (pollingInterval is in seconds)");
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
    let load_start = machine();
    eprintln!("xtask: {load_start}");

    let target = ScrapeTarget::start(exposition(LOW)).await?;
    let prometheus = Prometheus::start(&[target.addr()]).await?;
    prometheus
        .wait_for_value(QUERY, LOW, Duration::from_secs(30))
        .await
        .context("Prometheus never scraped the bench target")?;
    let proxy = RecordingProxy::start(prometheus.addr()).await?;

    let emulator = Emulator::builder()
        .workload_sim(SimConfig {
            startup_delay: args.startup_delay,
        })
        .crds_dir(root.join("charts/promscaler/crds"))
        .start("127.0.0.1:0")
        .await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&kubeconfig)?;
    let changes = collect_changes(&emulator);
    emulator.apply_yaml(&deployment())?;
    let (watched, watch_task) = watch_over_http(&emulator);

    let actuator_args: Vec<String> = ["--lease-namespace", NAMESPACE, "--identity", "bench"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let Services {
        mut fetcher,
        mut decision,
        mut actuator,
    } = Services::start(root, &kubeconfig, &actuator_args, &[]).await?;
    actuator.wait_ready(Duration::from_secs(60)).await?;
    emulator.apply_yaml(&promscaler(args.interval, &proxy.url()))?;

    // Warm-up: the scaler ticks and queries through the proxy (connections open, first status
    // written) before the first trial.
    poll_until(
        "3 queries through the proxy",
        Duration::from_secs(60),
        || async { Ok((proxy.records().len() >= 3).then_some(())) },
    )
    .await
    .with_context(|| format!("actuator log:\n{}", actuator.process.log_tail()))?;

    let fetcher_before = fetcher.metrics().await?;
    let actuator_before = actuator.metrics().await?;
    let queries_before = proxy.records().len();
    let started = Instant::now();
    let mut rig = Rig {
        target,
        direct: KeepAlive::new(prometheus.addr()),
        changes: changes.clone(),
        cross_poll: args.cross_poll,
        timeout: args.interval * 10 + Duration::from_secs(10),
    };
    let mut trials = Vec::new();
    let mut failures = Vec::new();
    for i in 0..args.trials {
        for (direction, value) in [(Direction::Up, HIGH), (Direction::Down, LOW)] {
            // A random phase against the scrape and the polling, after the previous scale has
            // reached the actuator's watch cache.
            let phase = rand::random_range(0..args.interval.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(200 + phase)).await;
            match rig.cross(direction, value).await {
                Ok(trial) => trials.push(trial),
                Err(error) => {
                    eprintln!("xtask: trial {i} {direction:?} failed: {error:#}");
                    failures.push(format!("{direction:?}: {error:#}"));
                    rig.reset().await?;
                    break;
                }
            }
        }
        actuator.check_running()?;
        fetcher.check_running()?;
        decision.check_running()?;
        if (i + 1) % 20 == 0 {
            let so_far = Stats::of(
                trials
                    .iter()
                    .filter_map(|t| {
                        measure(t, &proxy.records(), &lock(&changes), &lock(&watched)).ok()
                    })
                    .map(|m| m.processing),
            );
            eprintln!(
                "xtask: {} trials, processing so far: {}; {}",
                i + 1,
                so_far.map_or("-".to_owned(), |s| format!(
                    "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    s.p50, s.p99, s.max
                )),
                machine()
            );
        }
    }
    // Let the HTTP watch deliver the last events.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let elapsed = started.elapsed();
    let load_end = machine();
    let fetcher_after = fetcher.metrics().await?;
    let actuator_after = actuator.metrics().await?;
    let records = proxy.records();
    let upstream = records.len() - queries_before;

    let changes = lock(&changes).clone();
    let watched = lock(&watched).clone();
    let mut measured = Vec::new();
    for trial in &trials {
        match measure(trial, &records, &changes, &watched) {
            Ok(m) => measured.push((trial.direction, m)),
            Err(error) => failures.push(format!("{:?}: {error}", trial.direction)),
        }
    }
    let stats = |f: fn(&Measured) -> Option<f64>, direction: Option<Direction>| {
        Stats::of(
            measured
                .iter()
                .filter(|(d, _)| direction.is_none_or(|want| *d == want))
                .filter_map(|(_, m)| f(m)),
        )
    };
    let processing = stats(|m| Some(m.processing), None);
    let rows = [
        (
            "**t_patch − t_seen** (processing after the polling wait)",
            processing,
        ),
        (
            "… scale-ups (1 → 3)",
            stats(|m| Some(m.processing), Some(Direction::Up)),
        ),
        (
            "… scale-downs (3 → 1)",
            stats(|m| Some(m.processing), Some(Direction::Down)),
        ),
        (
            "… of which Prometheus answering the proxy",
            stats(|m| Some(m.prometheus), None),
        ),
        (
            "… of which from that answer to the PATCH's commit",
            stats(|m| Some(m.after_answer), None),
        ),
        (
            "t_seen − t_cross (polling wait)",
            stats(|m| Some(m.polling_wait), None),
        ),
        (
            "t_cross − value served (scrape wait)",
            stats(|m| Some(m.visible_after), None),
        ),
        (
            "watch delivery (HTTP watch event read − commit)",
            stats(|m| m.watch_delivery, None),
        ),
    ];

    let mut report = String::new();
    let _ = writeln!(report, "## scale-latency results");
    let _ = writeln!(
        report,
        "{} crossings measured ({} trials up and down), pollingInterval {:?}, Prometheus scrape \
         1 s, crossing polled every {:?}, pods ready after {:?}, {:.0} s",
        measured.len(),
        args.trials,
        args.interval,
        args.cross_poll,
        args.startup_delay,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(report, "machine at start: {load_start}");
    let _ = writeln!(report, "machine at end:   {load_end}");
    let ticks = delta(
        &actuator_before,
        &actuator_after,
        "promscaler_actuator_tick_duration_seconds_count",
        &[],
    );
    let tick_seconds = delta(
        &actuator_before,
        &actuator_after,
        "promscaler_actuator_tick_duration_seconds_sum",
        &[],
    );
    let _ = writeln!(
        report,
        "actuator: {ticks} ticks = one every {:.3} s, {:.1} ms per tick on average",
        elapsed.as_secs_f64() / ticks.max(1.0),
        tick_seconds / ticks.max(1.0) * 1e3
    );
    let _ = writeln!(
        report,
        "upstream queries through the proxy: {upstream}; fetcher answers: {} upstream, {} \
         coalesced, {} from its cache",
        delta(
            &fetcher_before,
            &fetcher_after,
            "promscaler_fetcher_queries_total",
            &["served=\"upstream\""]
        ),
        delta(
            &fetcher_before,
            &fetcher_after,
            "promscaler_fetcher_queries_total",
            &["served=\"coalesced\""]
        ),
        delta(
            &fetcher_before,
            &fetcher_after,
            "promscaler_fetcher_queries_total",
            &["served=\"cache\""]
        ),
    );
    let _ = writeln!(report);
    let _ = writeln!(report, "| measure | n | p50 | p90 | p99 | max |");
    let _ = writeln!(report, "|---|---|---|---|---|---|");
    for (what, row) in rows {
        if let Some(row) = row {
            let _ = writeln!(report, "{}", row.row(what));
        }
    }
    let _ = writeln!(report);
    let _ = writeln!(
        report,
        "goal (t_patch − t_seen p99 ≤ 50 ms): {}",
        match processing.map(|s| s.p99) {
            Some(p99) if p99 <= 50.0 => format!("met ({p99:.1} ms)"),
            Some(p99) => format!("NOT met ({p99:.1} ms)"),
            None => "no measurement".to_owned(),
        }
    );
    // Where the tail comes from: the slowest crossings, split.
    let mut slowest: Vec<&(Direction, Measured)> = measured.iter().collect();
    slowest.sort_by(|a, b| b.1.processing.total_cmp(&a.1.processing));
    let _ = writeln!(
        report,
        "slowest crossings (processing = Prometheus + after its answer + the proxy's forwarding):"
    );
    for (direction, m) in slowest.into_iter().take(8) {
        let _ = writeln!(
            report,
            "  {direction:?}: {:.1} ms = Prometheus {:.1} ms + after the answer {:.1} ms + proxy \
             {:.1} ms",
            m.processing,
            m.prometheus,
            m.after_answer,
            m.processing - m.prometheus - m.after_answer
        );
    }
    if !failures.is_empty() {
        let _ = writeln!(report, "failed or unpaired trials: {}", failures.len());
        for failure in &failures {
            let _ = writeln!(report, "  {failure}");
        }
    }
    println!("{report}");

    drop(actuator);
    drop(fetcher);
    drop(decision);
    drop(proxy);
    watch_task.abort();
    emulator.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn query(base: Instant, arrived: u64, value: f64) -> QueryRecord {
        QueryRecord {
            arrived: at(base, arrived),
            upstream_sent: at(base, arrived + 1),
            upstream_answered: at(base, arrived + 3),
            answered: at(base, arrived + 4),
            value: Some(value),
        }
    }

    fn change(base: Instant, committed: u64, rv: u64, replicas: i64) -> ReplicaChange {
        ReplicaChange {
            committed: at(base, committed),
            resource_version: rv,
            replicas,
        }
    }

    #[test]
    fn pairs_the_first_query_with_the_new_value_and_the_first_commit_after_the_trial() {
        let base = Instant::now();
        let trial = Trial {
            direction: Direction::Up,
            set: at(base, 1_000),
            crossed: at(base, 1_400),
            value: HIGH,
            replicas: 3,
        };
        let queries = [
            query(base, 500, HIGH), // an earlier trial's
            query(base, 1_100, LOW),
            query(base, 2_000, HIGH),
            query(base, 3_000, HIGH),
        ];
        let changes = [
            change(base, 600, 10, 3),
            change(base, 700, 11, 1),
            change(base, 2_012, 20, 3),
            change(base, 4_000, 30, 1),
        ];
        let watched = HashMap::from([(20, at(base, 2_015))]);
        let m = measure(&trial, &queries, &changes, &watched).unwrap();
        assert_eq!(
            m,
            Measured {
                polling_wait: 600.0,
                processing: 12.0,
                prometheus: 2.0,
                after_answer: 8.0,
                visible_after: 400.0,
                watch_delivery: Some(3.0),
            }
        );
    }

    #[test]
    fn a_scale_before_any_query_saw_the_value_is_not_a_measurement() {
        let base = Instant::now();
        let trial = Trial {
            direction: Direction::Down,
            set: at(base, 0),
            crossed: at(base, 100),
            value: LOW,
            replicas: 1,
        };
        let err = measure(
            &trial,
            &[query(base, 300, LOW)],
            &[change(base, 200, 5, 1)],
            &HashMap::new(),
        )
        .unwrap_err();
        assert!(err.contains("before a query saw the value"), "{err}");
        assert!(measure(&trial, &[], &[], &HashMap::new()).is_err());
    }

    #[test]
    fn stats_are_nearest_rank_and_signed_durations_keep_their_sign() {
        let s = Stats::of((1..=200).rev().map(f64::from)).unwrap();
        assert_eq!(
            (s.n, s.p50, s.p90, s.p99, s.max),
            (200, 100.0, 180.0, 198.0, 200.0)
        );
        assert_eq!(Stats::of([]), None);
        let base = Instant::now();
        assert_eq!(ms(at(base, 5), base), -5.0);
        assert_eq!(replicas_for(HIGH), 3);
        assert_eq!(replicas_for(LOW), 1);
    }
}
