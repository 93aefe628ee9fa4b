//! `promscaler-kube-emulator`: serves the in-memory Kubernetes API until interrupted.

mod args;

use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match args::Args::parse().run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("promscaler-kube-emulator: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
