//! `promscaler-actuator`: the PromScaler controller. All logic lives in the library.

use clap::Parser as _;

// One thread runs everything. The controller loop and its ticks are polled inside `run()`, the
// HTTP/2 connections to the peers and the API server are spawned tasks: on a multi-threaded
// runtime every RPC bounced between threads (two wake-ups and a park per call, 24 % of the
// actuator's CPU in `finish_task_switch` at 10,000 PromScalers), while the work itself needs a
// fraction of one core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    promscaler_actuator::args::Args::parse().run().await
}
