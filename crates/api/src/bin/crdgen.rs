//! Writes promscaler's CRD YAML files: `promscaler-crdgen [DIR]` (default
//! `charts/promscaler/crds`, relative to the current directory).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(promscaler_api::crd::CRD_DIR),
        PathBuf::from,
    );
    match promscaler_api::crd::write_crds(&dir) {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("promscaler-crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}
