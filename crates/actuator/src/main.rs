//! `promscaler-actuator`: the PromScaler controller. All logic lives in the library.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    promscaler_actuator::args::Args::parse().run().await
}
