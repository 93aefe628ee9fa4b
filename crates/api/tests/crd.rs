//! The committed CRD YAML under charts/promscaler/crds must equal what the types generate.

use std::path::PathBuf;

use promscaler_api::crd;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn committed_crds_match_the_types() {
    for (file, generated) in crd::crds() {
        let path = repo_root().join(crd::CRD_DIR).join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{} is missing ({e}); generate it with `{}`",
                path.display(),
                crd::REGENERATE_COMMAND
            )
        });
        let committed: serde_yaml::Value = serde_yaml::from_str(&committed).expect("valid YAML");
        let generated = serde_yaml::to_value(&generated).expect("CRD serialises");
        assert!(
            committed == generated,
            "{} is stale: the types changed; regenerate it with `{}` and commit the result",
            path.display(),
            crd::REGENERATE_COMMAND
        );
    }
}

#[test]
fn promscaler_crd_has_keda_columns_plus_desired_and_a_status_subresource() {
    let (_, crd) = crd::crds().remove(0);
    let version = &crd.spec.versions[0];
    let columns: Vec<String> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.to_uppercase())
        .collect();
    assert_eq!(
        columns,
        [
            "SCALETARGETKIND",
            "SCALETARGETNAME",
            "MIN",
            "MAX",
            "READY",
            "ACTIVE",
            "FALLBACK",
            "PAUSED",
            "TRIGGERS",
            "AUTHENTICATIONS",
            "DESIRED",
            "AGE"
        ]
    );
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.scale.as_ref())
            .is_none()
    );
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["psc".to_owned()][..])
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("promscalers.promscaler.io")
    );
}

#[test]
fn authentication_crd_is_namespaced_with_short_name_pscauth() {
    let (_, crd) = crd::crds().remove(1);
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("promscalerauthentications.promscaler.io")
    );
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["pscauth".to_owned()][..])
    );
    assert_eq!(crd.spec.scope, "Namespaced");
}
