//! `promscalerctl`: see the `promscaler_cli` crate.

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = promscaler_cli::Cli::parse();
    match cli.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Every variant's message already carries its cause and what to do.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
