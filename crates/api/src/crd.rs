//! CustomResourceDefinition YAML generated from the types, committed under
//! `charts/promscaler/crds/` and checked for staleness by a test.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Error, PromScaler, PromScalerAuthentication};

/// The command that regenerates the committed CRD files, run from the repository root.
pub const REGENERATE_COMMAND: &str =
    "cargo run -p promscaler-api --bin promscaler-crdgen -- charts/promscaler/crds";

/// Where the CRD files live, relative to the repository root.
pub const CRD_DIR: &str = "charts/promscaler/crds";

/// The CRDs with their file names (`<group>_<plural>.yaml`, as controller-gen names them).
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("promscaler.io_promscalers.yaml", PromScaler::crd()),
        (
            "promscaler.io_promscalerauthentications.yaml",
            PromScalerAuthentication::crd(),
        ),
    ]
}

/// One CRD as the YAML document committed to the chart (with a header saying how to
/// regenerate it).
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    let body = serde_yaml::to_string(crd).expect("a CustomResourceDefinition serialises to YAML");
    format!(
        "# Generated from crates/api (promscaler-api); do not edit.\n# Regenerate: {REGENERATE_COMMAND}\n{body}"
    )
}

/// Writes every CRD into `dir` (created if missing) and returns the paths written.
pub fn write_crds(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut written = Vec::new();
    for (file, crd) in crds() {
        let path = dir.join(file);
        std::fs::write(&path, crd_yaml(&crd)).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}
