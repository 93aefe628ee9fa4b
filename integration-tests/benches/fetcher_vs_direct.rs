//! Queries per second through the metrics-fetcher versus directly against the same Prometheus
//! (docs/BENCHMARKS.md, "Queries per second: through the fetcher vs directly"): the fetcher's
//! overhead ratio. A plain harness (no criterion): it starts a
//! real Prometheus scraping the seed's app and the fetcher binary, then runs the same number of
//! distinct instant queries (distinct so the fetcher cannot coalesce them) both ways at a few
//! concurrency levels, over kept-alive connections in both cases.
//!
//! ```sh
//! cargo build --release -p promscaler-metrics-fetcher
//! cargo bench -p promscaler-integration-tests --bench fetcher_vs_direct
//! ```
//! `BENCH_QUERIES` (default 2000) sets the queries per run.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use promscaler_proto::v1 as pb;
use promscaler_proto::v1::metrics_fetcher_service_client::MetricsFetcherServiceClient;
use promscaler_sandbox::process::ServiceProcess;
use promscaler_sandbox::prometheus::{Prometheus, SEED_QUERY, ScrapeTarget};

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn run<F, Fut>(queries: usize, concurrency: usize, one: F) -> Result<Duration>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let one = one.clone();
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while i < queries {
                one(i).await?;
                i += concurrency;
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        tokio::time::timeout(Duration::from_secs(600), w)
            .await
            .context("benchmark run took over 10 minutes")???;
    }
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> Result<()> {
    let queries: usize = std::env::var("BENCH_QUERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let target = ScrapeTarget::sample_app(&[70.0, 70.0]).await?;
    let prometheus = Prometheus::start(&[target.addr()]).await?;
    prometheus
        .wait_for_value(SEED_QUERY, 140.0, Duration::from_secs(30))
        .await?;
    let fetcher = ServiceProcess::start(
        "promscaler-metrics-fetcher",
        &["--log-level=warn".to_owned()],
        &[],
    )
    .await?;
    let channel = tonic::transport::Endpoint::from_shared(fetcher.grpc_url())?
        .connect()
        .await?;
    let grpc = MetricsFetcherServiceClient::new(channel);
    let http: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let prom_url = prometheus.url();

    println!("| path | concurrency | queries | seconds | queries/s |");
    println!("|---|---:|---:|---:|---:|");
    let mut results = Vec::new();
    for concurrency in [1usize, 8, 32] {
        let (http, url) = (http.clone(), prom_url.clone());
        let direct = run(queries, concurrency, move |i| {
            let (http, prom_url) = (http.clone(), url.clone());
            async move {
                let uri = format!(
                    "{prom_url}/api/v1/query?query={}",
                    encode(&format!("{SEED_QUERY} + {i}"))
                );
                let resp = http.get(uri.parse()?).await?;
                let status = resp.status();
                let body = resp.into_body().collect().await?.to_bytes();
                if !status.is_success() || !body.starts_with(b"{\"status\":\"success\"") {
                    bail!("direct query failed: {status}");
                }
                Ok(())
            }
        })
        .await?;
        let (grpc, url) = (grpc.clone(), prom_url.clone());
        let via_fetcher = run(queries, concurrency, move |i| {
            let (mut grpc, prom_url) = (grpc.clone(), url.clone());
            async move {
                let resp = grpc
                    .query(pb::QueryRequest {
                        source: Some(pb::PrometheusSource {
                            server_address: prom_url,
                            ..Default::default()
                        }),
                        query: format!("{SEED_QUERY} + {i}"),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                match resp.result {
                    Some(pb::query_response::Result::Sample(_)) => Ok(()),
                    other => bail!("fetcher query failed: {other:?}"),
                }
            }
        })
        .await?;
        for (path, took) in [("direct", direct), ("fetcher", via_fetcher)] {
            println!(
                "| {path} | {concurrency} | {queries} | {:.2} | {:.0} |",
                took.as_secs_f64(),
                queries as f64 / took.as_secs_f64()
            );
        }
        results.push((concurrency, direct, via_fetcher));
    }
    println!();
    for (concurrency, direct, via) in results {
        println!(
            "concurrency {concurrency}: fetcher/direct time ratio {:.2}",
            via.as_secs_f64() / direct.as_secs_f64()
        );
    }
    drop(fetcher);
    Ok(())
}
