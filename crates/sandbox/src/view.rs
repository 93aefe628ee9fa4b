//! The view of `cargo xtask sandbox`: [`run`] starts the [`Sandbox`], plays the [`Scenario`],
//! prints a table row a second, and ends with the summary of the [`report`](crate::report) and
//! an SVG chart (the same renderer as `promscalerctl simulate --chart`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use promscaler_core::chart::{Chart, Series};

use crate::harness::{Sandbox, SandboxConfig};
use crate::prometheus::ensure_prometheus;
use crate::report::{Sample, summary};
use crate::scenario::Scenario;
use crate::seed::{MAX_REPLICAS, MIN_REPLICAS, SCALER, THRESHOLD};

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

/// The chart of a run: connections and the query value (left axis), the Deployment's replicas
/// (right axis), seconds since the start along the x axis.
pub fn chart_svg(samples: &[Sample]) -> String {
    let end = samples.last().map_or(1.0, |s| s.t).max(1.0);
    let step = [10.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| end / s <= 12.0)
        .unwrap_or(1200.0);
    Chart {
        title: format!(
            "promscaler sandbox: load and replicas (threshold {THRESHOLD:.0} per replica, min \
             {MIN_REPLICAS}, max {MAX_REPLICAS})"
        ),
        start: 0.0,
        end,
        x_ticks: (0..)
            .map(|k| f64::from(k) * step)
            .take_while(|t| *t <= end)
            .map(|t| (t, format!("{t:.0}s")))
            .collect(),
        x_unit: "seconds".to_owned(),
        value_axis: "connections".to_owned(),
        values: vec![
            Series {
                name: "connections (load)".to_owned(),
                points: samples.iter().map(|s| (s.t, s.snap.connections)).collect(),
            },
            Series {
                name: "query value (Prometheus)".to_owned(),
                points: samples
                    .iter()
                    .map(|s| (s.t, s.snap.query_value.unwrap_or(f64::NAN)))
                    .collect(),
            },
        ],
        replicas_name: "replicas (Deployment spec.replicas)".to_owned(),
        replicas: samples
            .iter()
            .filter_map(|s| s.snap.replicas.map(|r| (s.t, r)))
            .collect(),
        fallback: Vec::new(),
        max_replicas: MAX_REPLICAS,
    }
    .svg()
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
    println!(
        "sandbox: Prometheus also scrapes the three services (job \"promscaler\"): for a local \
         Grafana, add the data source {} and import charts/promscaler/files/dashboard.json",
        sandbox.prometheus.url()
    );
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
    use crate::harness::Snapshot;

    #[test]
    fn the_chart_draws_load_query_and_replicas_over_seconds() {
        let samples: Vec<Sample> = (0..=40)
            .map(|i| Sample {
                t: f64::from(i),
                snap: Snapshot {
                    connections: 140.0,
                    query_value: (i > 2).then_some(140.0),
                    replicas: Some(if i < 20 { 2 } else { 3 }),
                    ..Snapshot::default()
                },
            })
            .collect();
        let svg = chart_svg(&samples);
        for text in [
            ">connections (load)</text>",
            ">query value (Prometheus)</text>",
            ">replicas (Deployment spec.replicas)</text>",
            ">connections</text>",
            ">seconds</text>",
            ">0s</text>",
            ">40s</text>",
        ] {
            assert!(svg.contains(text), "{text} not in {svg}");
        }
        assert!(!svg.contains(">50s</text>"), "{svg}");
        // The Deployment's replicas: 2 until second 20, then 3 to the end.
        assert!(svg.contains(r#"<path d="M70.0 196.0L89.0 196.0"#), "{svg}");
    }
}
