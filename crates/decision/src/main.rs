//! `promscaler-decision`: serves DecisionService. All logic lives in the library.

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    promscaler_decision::args::Args::parse().run().await
}
