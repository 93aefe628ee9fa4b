//! `promscaler-metrics-fetcher`: serves MetricsFetcherService. All logic lives in the library.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One process-wide rustls provider (ring), for every TLS client built without an explicit one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    promscaler_metrics_fetcher::args::Args::parse().run().await
}
