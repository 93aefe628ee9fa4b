//! KEDA import against a corpus of KEDA manifests (tests/data), the seed's first.

use promscaler_api::keda::import_keda;
use promscaler_api::{Error, PromScaler, PromScalerAuthentication};
use serde_yaml::Value;

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(s: &str) -> Value {
    serde_yaml::from_str(s).expect("valid YAML")
}

fn problems_of(input: &str) -> Vec<String> {
    match import_keda(input) {
        Err(Error::Import { problems }) => problems,
        other => panic!("expected the import to be refused, got {other:?}"),
    }
}

#[test]
fn seed_scaled_object_converts_by_changing_only_api_version_and_kind() {
    let seed = data("seed_scaledobject.yaml");
    let imported = import_keda(&seed).expect("the seed imports");

    // What a KEDA user expects: the same document with promscaler's apiVersion and kind, minus
    // what the API server filled in (generation) and KEDA's own finalizer.
    let mut expected = yaml(&seed);
    expected["apiVersion"] = "promscaler.io/v1alpha1".into();
    expected["kind"] = "PromScaler".into();
    let md = expected["metadata"].as_mapping_mut().unwrap();
    md.shift_remove("finalizers");
    md.shift_remove("generation");

    assert_eq!(imported.documents, vec![expected.clone()]);
    // Same key order too: the converted file diffs cleanly against the original.
    assert_eq!(
        imported.to_yaml(),
        serde_yaml::to_string(&expected).unwrap()
    );
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("metadata.finalizers")),
        "{:?}",
        imported.notes
    );
    // The spec is byte-for-byte KEDA's, so the authenticationRef keeps its implicit kind.
    let out = imported.to_yaml();
    assert!(
        out.contains("authenticationRef:\n      name: sample-app-ta\n"),
        "{out}"
    );
}

#[test]
fn seed_trigger_authentication_becomes_a_prom_scaler_authentication() {
    let imported = import_keda(&data("seed_triggerauthentication.yaml")).unwrap();
    let auth: PromScalerAuthentication =
        serde_yaml::from_value(imported.documents[0].clone()).unwrap();
    assert_eq!(auth.metadata.name.as_deref(), Some("sample-app-ta"));
    assert_eq!(auth.spec.pod_identity.unwrap().provider, "aws");
}

#[test]
fn trigger_authentication_ref_kind_is_renamed_and_other_documents_pass_through() {
    let imported = import_keda(&data("bearer_token_prometheus.yaml")).unwrap();
    let kinds: Vec<&str> = imported
        .documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Secret", "PromScalerAuthentication", "PromScaler"]);
    let ps: PromScaler = serde_yaml::from_value(imported.documents[2].clone()).unwrap();
    let auth_ref = ps.spec.triggers[0].authentication_ref.clone().unwrap();
    assert_eq!(auth_ref.kind.as_deref(), Some("PromScalerAuthentication"));
    assert_eq!(auth_ref.name, "prometheus-bearer");
    assert!(ps.validate().unwrap().pause.scale_in_paused);
}

#[test]
fn unquoted_metadata_numbers_are_quoted_with_a_note() {
    let imported = import_keda(&data("scaling_modifiers.yaml")).unwrap();
    assert_eq!(
        imported.documents[0]["spec"]["triggers"][0]["metadata"]["threshold"],
        Value::from("20")
    );
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("spec.triggers[0].metadata.threshold: quoted as \"20\"")),
        "{:?}",
        imported.notes
    );
    let ps: PromScaler = serde_yaml::from_value(imported.documents[0].clone()).unwrap();
    let v = ps.validate().unwrap();
    assert_eq!(
        v.policy.scaling_modifiers.unwrap().formula,
        "(queue + inflight) / 2"
    );
}

#[test]
fn secretless_cluster_trigger_authentication_is_copied_into_each_namespace_that_uses_it() {
    let imported = import_keda(&data("cluster_trigger_authentication.yaml")).unwrap();
    let summary: Vec<(String, String, String)> = imported
        .documents
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
                d["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        summary,
        [
            s("PromScalerAuthentication", "team-a", "amp"),
            s("PromScalerAuthentication", "team-b", "amp"),
            s("PromScaler", "team-a", "api"),
            s("PromScaler", "team-b", "web"),
        ]
    );
    assert_eq!(
        imported.documents[2]["spec"]["triggers"][0]["authenticationRef"]["kind"],
        Value::from("PromScalerAuthentication")
    );
}

#[test]
fn non_prometheus_triggers_and_unsupported_fields_are_refused_one_per_line() {
    let problems = problems_of(&data("refused_non_prometheus_and_unsupported.yaml"));
    let expected_fragments = [
        "TriggerAuthentication default/vault (document 2): spec.env: is not supported",
        "TriggerAuthentication default/vault (document 2): spec.hashiCorpVault: is not supported",
        "ScaledJob default/batch (document 3): ScaledJobs are not supported",
        "ScaledObject default/mixed (document 1): spec.triggers[0].type: \"cpu\" triggers are not supported",
        "ScaledObject default/mixed (document 1): spec.triggers[1].type: \"kafka\" triggers are not supported",
    ];
    assert_eq!(problems.len(), expected_fragments.len(), "{problems:#?}");
    for (p, want) in problems.iter().zip(expected_fragments) {
        assert!(p.starts_with(want), "{p:?} should start with {want:?}");
    }
}

#[test]
fn values_keda_would_reject_are_refused_with_every_field_named() {
    let problems = problems_of(&data("refused_invalid_values.yaml"));
    let fields: Vec<&str> = problems
        .iter()
        .map(|p| p.split(": ").nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        fields,
        [
            "spec.minReplicaCount",
            "spec.triggers[0].metadata.threshold",
            "spec.triggers[0].metadata.ignoreNullValues",
            "spec.triggers[0].metadata.timeout",
        ],
        "{problems:#?}"
    );
}

#[test]
fn cluster_trigger_authentication_with_secrets_is_refused() {
    let input = r#"
apiVersion: keda.sh/v1alpha1
kind: ClusterTriggerAuthentication
metadata: {name: shared}
spec:
  secretTargetRef: [{parameter: bearerToken, name: token, key: token}]
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: a, namespace: x}
spec:
  scaleTargetRef: {name: a}
  triggers:
    - type: prometheus
      authenticationRef: {name: shared, kind: ClusterTriggerAuthentication}
      metadata: {serverAddress: "http://p:9090", query: "sum(up)", threshold: "1", authModes: bearer}
"#;
    let problems = problems_of(input);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("spec.secretTargetRef: reads Secrets from KEDA's namespace"));
    assert!(problems[1].contains("ClusterTriggerAuthentication shared is not in this input"));
}

#[test]
fn unparseable_yaml_names_the_document() {
    match import_keda("a: b\n---\n: : :\n  - [") {
        Err(Error::Yaml { document, .. }) => assert_eq!(document, 2),
        other => panic!("{other:?}"),
    }
}

#[test]
#[ignore = "prints the conversion of every corpus file, for eyeballing"]
fn print_corpus() {
    for f in [
        "seed_scaledobject.yaml",
        "bearer_token_prometheus.yaml",
        "cluster_trigger_authentication.yaml",
        "scaling_modifiers.yaml",
        "refused_non_prometheus_and_unsupported.yaml",
    ] {
        println!("===== {f}");
        match import_keda(&data(f)) {
            Ok(i) => {
                println!("{}", i.to_yaml());
                for n in i.notes {
                    println!("note: {n}");
                }
            }
            Err(e) => println!("REFUSED:\n{e}"),
        }
    }
}

#[test]
fn documents_keep_their_input_order() {
    let input = format!(
        "{}---\n{}",
        data("seed_scaledobject.yaml"),
        data("seed_triggerauthentication.yaml")
    );
    let kinds: Vec<String> = import_keda(&input)
        .unwrap()
        .documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["PromScaler", "PromScalerAuthentication"]);
}

#[test]
fn fields_promscaler_ignores_are_kept_with_a_note_saying_why() {
    let imported = import_keda(&data("every_supported_field.yaml")).unwrap();
    let notes = imported.notes.join("\n");
    for expected in [
        "metadata.annotations[scaledobject.keda.sh/transfer-hpa-ownership]: kept, but ignored",
        "spec.scaleTargetRef.envSourceContainerName: kept, but unused",
        "spec.advanced.horizontalPodAutoscalerConfig.name: \"custom-hpa-name\" is ignored",
        "spec.triggers[0].metadata.metricName: is ignored (deprecated since KEDA 2.10)",
    ] {
        assert!(notes.contains(expected), "missing {expected:?} in\n{notes}");
    }
    let ps: PromScaler = serde_yaml::from_value(imported.documents[0].clone()).unwrap();
    let v = ps.validate().unwrap();
    assert_eq!(v.pause.paused_replicas, Some(3));
    assert_eq!(v.scale_target_kind(), "argoproj.io/v1alpha1.Rollout");
    let t = &v.triggers[0].prometheus;
    assert_eq!(t.timeout, Some(std::time::Duration::from_millis(2500)));
    assert!(!t.ignore_null_values);
    assert_eq!(t.query_parameters.len(), 2);
}

#[test]
fn aws_external_id_is_refused_because_the_fetcher_cannot_send_it() {
    let input = r#"
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: amp, namespace: x}
spec:
  secretTargetRef:
    - {parameter: awsRoleArn, name: aws, key: role}
    - {parameter: awsExternalId, name: aws, key: external-id}
"#;
    let problems = problems_of(input);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("spec.secretTargetRef[1].parameter: awsExternalId is not supported")
    );
}

/// Found by the keda_import fuzz target: serde_yaml reads a mapping key with a bare `!` tag but
/// cannot write it back, and `Imported::to_yaml` panicked on it. Now the import refuses it,
/// naming the document.
#[test]
fn a_document_that_cannot_be_written_back_is_refused_not_a_panic() {
    let input = "! t ignores (with a note)ScapiVershon: ke# A Clu)sterTriggrtAheuenticationd ha";
    let problems = problems_of(input);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("document 1: cannot be written back as YAML"),
        "{problems:#?}"
    );
}

#[test]
fn workload_pod_identity_is_imported_and_a_roles_conflict_with_it_refused() {
    let input = r#"
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: amp, namespace: x}
spec:
  podIdentity: {provider: aws, identityOwner: workload}
"#;
    let imported = import_keda(input).unwrap();
    let auth: PromScalerAuthentication =
        serde_yaml::from_value(imported.documents[0].clone()).unwrap();
    let pod_identity = auth.spec.pod_identity.unwrap();
    assert_eq!(pod_identity.identity_owner.as_deref(), Some("workload"));
    assert_eq!(pod_identity.role_arn, None);

    // KEDA's webhook rejects roleArn with identityOwner: workload; so does the import.
    let problems = problems_of(&input.replace(
        "identityOwner: workload}",
        "identityOwner: workload, roleArn: \"arn:aws:iam::1:role/r\"}",
    ));
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .contains("spec.podIdentity.roleArn: cannot be used with identityOwner: workload"),
        "{problems:#?}"
    );
}

#[test]
fn a_triggers_identity_owner_workload_keeps_kedas_meaning_operator() {
    let input = r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: app, namespace: x}
spec:
  scaleTargetRef: {name: app}
  triggers:
    - type: prometheus
      metadata:
        serverAddress: https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1
        query: sum(up)
        threshold: "5"
        identityOwner: workload
"#;
    let imported = import_keda(input).unwrap();
    assert_eq!(
        imported.documents[0]["spec"]["triggers"][0]["metadata"]["identityOwner"],
        Value::from("operator")
    );
    assert!(
        imported
            .notes
            .iter()
            .any(|n| n.contains("spec.triggers[0].metadata.identityOwner: imported as operator")),
        "{:?}",
        imported.notes
    );
}
