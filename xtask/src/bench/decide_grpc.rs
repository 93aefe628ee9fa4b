//! `cargo xtask bench decide-grpc`: `DecisionService.Decide` over gRPC on loopback.
//!
//! Builds and starts the release `promscaler-decision`, then N concurrent client tasks each
//! send Decide calls back to back (closed loop) over M HTTP/2 connections, for a warm-up and
//! then a measured window. The request is the one of the criterion benches (2 AverageValue
//! triggers, default HPA behavior, a full 5-minute history of 20 recommendations plus scale
//! events), so the three numbers compare: engine, engine + wire coding, engine + wire + gRPC.
//! The load generator runs on the same machine and competes with the server for the CPUs: its
//! CPU time is reported next to the server's.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use promscaler_proto::v1::{DecideRequest, decision_service_client::DecisionServiceClient};
use tonic::transport::{Channel, Endpoint};

use super::{
    Service,
    proc::{ProcSample, machine, percentile},
};

/// Options of `cargo xtask bench decide-grpc`.
#[derive(Debug, clap::Args)]
pub(crate) struct DecideGrpcArgs {
    /// Measured window.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Load before the window (not measured).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Calls in flight at once (client tasks, each sending back to back).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Worker threads of the load generator's tokio runtime.
    #[arg(long, default_value_t = 2)]
    pub(crate) client_threads: usize,
    /// Skip `cargo build --release -p promscaler-decision` (use the binary already built).
    #[arg(long)]
    no_build: bool,
}

/// The criterion benches' scenario: 2 triggers, default behavior, a full 5-minute history.
fn request() -> DecideRequest {
    promscaler_proto::examples::decide_request()
}

/// What one client task saw in the measured window.
#[derive(Debug, Default)]
struct Tally {
    /// Latency of each call started in the window, in microseconds.
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

pub(crate) async fn run(root: &Path, args: DecideGrpcArgs) -> Result<()> {
    if !args.no_build {
        super::build_release(root, &["promscaler-decision"])?;
    }
    let mut server = Service::start(
        root,
        "promscaler-decision",
        &[],
        &[("PROMSCALER_LOG_LEVEL", "warn".to_owned())],
    )?;
    server.wait_ready(Duration::from_secs(30)).await?;

    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        // Endpoint::connect opens one HTTP/2 connection per channel.
        let channel: Channel = Endpoint::from_shared(server.grpc_url())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .context("connecting to promscaler-decision")?;
        channels.push(channel);
    }
    // One call first: the request must be valid, or the numbers would measure errors.
    let check = DecisionServiceClient::new(channels[0].clone())
        .decide(request())
        .await
        .context("a single Decide call failed")?
        .into_inner();
    eprintln!(
        "xtask: Decide answers desired_replicas={} ({} explanation lines)",
        check.desired_replicas,
        check.explanation.len()
    );

    let start = Instant::now();
    let window_start = start + args.warmup;
    let end = window_start + args.duration;
    let request = request();
    let mut tasks = Vec::new();
    for i in 0..args.concurrency.max(1) {
        let mut client = DecisionServiceClient::new(channels[i % channels.len()].clone());
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let result = client.decide(request.clone()).await;
                let latency = sent.elapsed();
                if sent < window_start {
                    continue;
                }
                match result {
                    Ok(_) => tally
                        .latencies_us
                        .push(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX)),
                    Err(status) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert_with(|| status.to_string());
                    }
                }
            }
            tally
        }));
    }

    tokio::time::sleep_until(window_start.into()).await;
    let server_before = ProcSample::read(server.pid)?;
    let client_before = ProcSample::read(std::process::id())?;
    let load_before = machine();
    tokio::time::sleep_until(end.into()).await;
    let server_after = ProcSample::read(server.pid)?;
    let client_after = ProcSample::read(std::process::id())?;
    let load_after = machine();

    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let tally = task.await?;
        latencies.extend(tally.latencies_us);
        errors += tally.errors;
        first_error = first_error.or(tally.first_error);
    }
    server.check_running()?;
    latencies.sort_unstable();
    let calls = latencies.len() as f64;
    let seconds = args.duration.as_secs_f64();
    let rps = calls / seconds;
    let server_cpu = server_before.cpu_seconds_until(&server_after);
    let client_cpu = client_before.cpu_seconds_until(&client_after);

    println!("## decide-grpc results");
    println!(
        "concurrency {} over {} connection(s), warm-up {:?}, window {:?}",
        args.concurrency, args.connections, args.warmup, args.duration
    );
    println!("machine at start of window: {load_before}");
    println!("machine at end of window:   {load_after}");
    println!("successful calls: {}, errors: {errors}", latencies.len());
    if let Some(error) = first_error {
        println!("first error: {error}");
    }
    println!("throughput: {rps:.0} RPC/s");
    println!(
        "latency: p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        latencies.last().copied().unwrap_or(0),
    );
    println!(
        "server CPU: {:.0} mCPU ({:.1} µs per call), RSS {:.1} MiB",
        server_before.millicores_until(&server_after),
        server_cpu * 1e6 / calls.max(1.0),
        server_after.rss_mib()
    );
    println!(
        "load generator CPU: {:.0} mCPU ({:.1} µs per call)",
        client_before.millicores_until(&client_after),
        client_cpu * 1e6 / calls.max(1.0)
    );
    if latencies.is_empty() {
        bail!("no call succeeded in the window");
    }
    Ok(())
}
