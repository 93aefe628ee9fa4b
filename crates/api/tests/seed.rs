//! The seed's ScaledObject, converted, is a valid PromScaler: it fits the generated CRD schema,
//! validates, and yields the policy and query the seed describes.

use std::collections::BTreeMap;

use promscaler_api::keda::import_keda;
use promscaler_api::proto::{self, upstream_auth::Method};
use promscaler_api::{PromScaler, PromScalerAuthentication, crd, resolve_auth};
use serde_json::Value;

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn imported(name: &str) -> Value {
    let doc = import_keda(&data(name)).unwrap().documents.remove(0);
    serde_json::to_value(doc).unwrap()
}

fn seed() -> PromScaler {
    serde_json::from_value(imported("seed_scaledobject.yaml")).expect("fits the PromScaler type")
}

#[test]
fn converted_seed_fits_the_generated_crd_schema() {
    let errors = crd::schema_errors("PromScaler", &imported("seed_scaledobject.yaml"));
    assert_eq!(errors, Some(vec![]));
}

#[test]
fn every_importable_corpus_file_fits_the_generated_crd_schemas() {
    for f in [
        "seed_triggerauthentication.yaml",
        "bearer_token_prometheus.yaml",
        "cluster_trigger_authentication.yaml",
        "scaling_modifiers.yaml",
        "every_supported_field.yaml",
    ] {
        for doc in import_keda(&data(f)).unwrap().documents {
            let doc = serde_json::to_value(doc).unwrap();
            if let Some(errors) = crd::schema_errors(doc["kind"].as_str().unwrap(), &doc) {
                assert_eq!(errors, vec![], "{f}");
            }
        }
    }
}

fn seconds(s: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: s,
        nanos: 0,
    })
}

#[test]
fn seed_validates_into_the_policy_the_guide_describes() {
    let v = seed().validate().expect("the seed is valid");
    assert_eq!(v.namespace, "default");
    assert_eq!(v.name, "sample-app-prometheus-scaler");
    assert_eq!(
        v.target,
        proto::ScaleTargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "sample-app".into(),
        }
    );
    assert_eq!(v.scale_target_kind(), "apps/v1.Deployment");
    assert_eq!(v.polling_interval, std::time::Duration::from_secs(60));
    assert_eq!(
        v.policy,
        proto::ScalingPolicy {
            min_replicas: 1,
            max_replicas: 5,
            idle_replicas: None,
            cooldown_period: seconds(300),
            initial_cooldown_period: seconds(0),
            fallback: Some(proto::Fallback {
                failure_threshold: 2,
                replicas: 1,
                behavior: proto::FallbackBehavior::Static as i32,
            }),
            behavior: Some(proto::Behavior {
                scale_up: None,
                scale_down: Some(proto::ScalingRules {
                    stabilization_window_seconds: Some(600),
                    select_policy: proto::SelectPolicy::Max as i32,
                    policies: vec![],
                    tolerance: None,
                }),
            }),
            triggers: vec![proto::TriggerPolicy {
                name: "trigger-0".into(),
                metric_type: proto::MetricType::AverageValue as i32,
                target: 50.0,
                activation_target: 0.0,
            }],
            scaling_modifiers: None,
            tolerance: None,
            last_known_good_ttl: None,
        }
    );
    assert_eq!(v.pause, proto::Pause::default());
    assert!(!v.restore_to_original_replica_count);
    assert_eq!(v.warnings, vec![]);
}

#[test]
fn seed_trigger_queries_amp_signed_with_the_fetchers_own_identity() {
    let v = seed().validate().unwrap();
    let auth: PromScalerAuthentication =
        serde_json::from_value(imported("seed_triggerauthentication.yaml")).unwrap();
    let t = &v.triggers[0];
    assert_eq!(t.authentication_ref.as_deref(), Some("sample-app-ta"));
    let upstream = resolve_auth(
        &t.prometheus,
        "spec.triggers[0]",
        Some(&auth.spec),
        &BTreeMap::new(),
    )
    .unwrap();
    let request = v.query_request(0, upstream);
    assert_eq!(
        request,
        proto::QueryRequest {
            source: Some(proto::PrometheusSource {
                server_address: "https://aps-workspaces.ap-northeast-2.amazonaws.com/workspaces/ws-<REDACTED_WORKSPACE_ID>".into(),
                custom_headers: Default::default(),
                query_parameters: Default::default(),
                namespace: String::new(),
                unsafe_ssl: false,
                timeout: None,
                auth: Some(proto::UpstreamAuth {
                    method: Some(Method::Aws(proto::AwsAuth {
                        region: "ap-northeast-2".into(),
                        ..Default::default()
                    })),
                }),
            }),
            query: r#"sum(avg_over_time(websocket_active_connection_count{app_kubernetes_io_name="sample-app"}[1m]))"#.into(),
            ignore_null_values: true,
            time: None,
            caller: Some(proto::ScalerRef {
                namespace: "default".into(),
                name: "sample-app-prometheus-scaler".into(),
            }),
            max_age: None,
        }
    );
}

#[test]
fn seed_status_columns_show_prometheus_and_the_authentication() {
    let spec = seed().spec;
    assert_eq!(spec.triggers_types(), "prometheus");
    assert_eq!(spec.authentications_types(), "sample-app-ta");
}
