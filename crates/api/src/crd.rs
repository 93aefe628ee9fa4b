//! CustomResourceDefinition YAML generated from the types, committed under
//! `charts/promscaler/crds/` and checked for staleness by a test.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Error, FieldError, PromScaler, PromScalerAuthentication};

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

/// Checks a manifest (as JSON) against the generated CRD's `openAPIV3Schema` the way the API
/// server does with strict field validation: unknown fields, wrong types, missing required
/// fields. `kind` selects the CRD (`PromScaler` or `PromScalerAuthentication`); `None` when
/// `kind` is not one of ours. Typed deserialisation ignores unknown fields, so offline
/// validation (`promscalerctl validate`) uses this to catch typos such as `pollingInteval`.
pub fn schema_errors(kind: &str, manifest: &serde_json::Value) -> Option<Vec<FieldError>> {
    let crd = crds()
        .into_iter()
        .map(|(_, c)| c)
        .find(|c| c.spec.names.kind == kind)?;
    let schema = serde_json::to_value(&crd.spec.versions[0].schema)
        .expect("a CRD schema serialises")["openAPIV3Schema"]
        .clone();
    let mut errors = Vec::new();
    check(manifest, &schema, "", &mut errors);
    Some(errors)
}

fn check(
    v: &serde_json::Value,
    schema: &serde_json::Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    use serde_json::Value;
    let here = || {
        if path.is_empty() {
            "<root>".to_owned()
        } else {
            path.to_owned()
        }
    };
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(v.is_i64() || v.is_u64() || v.is_string()) {
            errors.push(FieldError::new(
                here(),
                format!("must be an integer or a string, got {v}"),
            ));
        }
        return;
    }
    if v.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            errors.push(FieldError::new(here(), "must not be null"));
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !ok {
        let hint = if ty == "string" && (v.is_number() || v.is_boolean()) {
            format!("; quote it: \"{v}\"")
        } else {
            String::new()
        };
        errors.push(FieldError::new(
            here(),
            format!("must be {ty}, got {v}{hint}"),
        ));
        return;
    }
    if let Some(obj) = v.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !obj.contains_key(r) {
                errors.push(FieldError::new(join(path, r), "is required"));
            }
        }
        for (k, child) in obj {
            let p = join(path, k);
            if let Some(s) = schema.get("properties").and_then(|p| p.get(k)) {
                check(child, s, &p, errors);
            } else if let Some(s) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                check(child, s, &p, errors);
            } else if path.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                // Validated by the API server itself, not by the CRD schema.
            } else {
                errors.push(FieldError::new(p, "is not a known field (strict field validation rejects it; the API server would otherwise drop it); check the spelling"));
            }
        }
    }
    if let (Some(items), Some(schema)) = (v.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(item, schema, &format!("{path}[{i}]"), errors);
        }
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_owned()
    } else {
        format!("{path}.{k}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn schema_check_names_typos_wrong_types_and_missing_fields() {
        let manifest = json!({
            "apiVersion": "promscaler.io/v1alpha1",
            "kind": "PromScaler",
            "metadata": {"name": "x"},
            "spec": {
                "pollingInteval": 30,
                "maxReplicaCount": "5",
                "triggers": [{"type": "prometheus", "metadata": {"threshold": 50}}]
            }
        });
        let errors = schema_errors("PromScaler", &manifest).unwrap();
        let got: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            got,
            [
                "spec.scaleTargetRef",
                "spec.maxReplicaCount",
                "spec.pollingInteval",
                "spec.triggers[0].metadata.threshold",
            ],
            "{errors:#?}"
        );
        assert!(errors[3].message.contains("quote it"));
        assert_eq!(schema_errors("Deployment", &manifest), None);
    }
}
