//! promscaler's custom resources and everything about reading them: the `PromScaler` and
//! `PromScalerAuthentication` types (group `promscaler.io`, version `v1alpha1`, KEDA
//! ScaledObject/TriggerAuthentication field names and shapes), the CRD YAML generated from them,
//! trigger metadata parsing exactly as KEDA's prometheus scaler parses it, whole-spec validation
//! with one error per bad field, pause annotations, the conversion to the `promscaler.v1` proto
//! messages the actuator sends to the decision service and the metrics-fetcher, and the import
//! of KEDA manifests.
//!
//! Data comes from Kubernetes (the actuator's watch cache) or from files (`promscalerctl`), and
//! goes out as `ScalingPolicy`, `QueryRequest` and `UpstreamAuth` messages. No I/O happens here
//! except in [`crd::write_crds`]; Secrets are resolved by the caller and passed in.
//!
//! How the actuator uses it, once per PromScaler change (not per tick):
//!
//! ```
//! use std::collections::BTreeMap;
//! use promscaler_api::{PromScaler, files, resolve_auth};
//!
//! # let yaml = r#"
//! # apiVersion: promscaler.io/v1alpha1
//! # kind: PromScaler
//! # metadata: {name: sample-app-prometheus-scaler, namespace: default}
//! # spec:
//! #   scaleTargetRef: {name: sample-app}
//! #   minReplicaCount: 1
//! #   maxReplicaCount: 5
//! #   triggers:
//! #     - type: prometheus
//! #       metadata:
//! #         serverAddress: https://aps-workspaces.ap-northeast-2.amazonaws.com/workspaces/ws-1
//! #         query: sum(avg_over_time(websocket_active_connection_count[1m]))
//! #         threshold: "50"
//! #         awsRegion: ap-northeast-2
//! #         identityOwner: operator
//! # "#;
//! let scaler: PromScaler = files::parse_promscalers(yaml)?.remove(0);
//! // Invalid ⇒ Ready=False with every FieldError ("spec.triggers[0].metadata.threshold: ...").
//! let v = scaler.validate().map_err(promscaler_api::Error::from)?;
//! // Per trigger: look up its PromScalerAuthentication (v.triggers[i].authentication_ref) and
//! // the Secrets it names (`spec.secret_refs()`), then build the upstream auth.
//! let auth = resolve_auth(&v.triggers[0].prometheus, "spec.triggers[0]", None, &BTreeMap::new())
//!     .map_err(promscaler_api::Error::from)?;
//! let batch = vec![v.query_request(0, auth)]; // → MetricsFetcherService.QueryBatch
//! let policy = v.policy.clone(); // → DecideRequest.policy, with v.pause as DecideRequest.pause
//! assert_eq!(policy.max_replicas, 5);
//! assert_eq!(batch[0].query, "sum(avg_over_time(websocket_active_connection_count[1m]))");
//! # Ok::<(), promscaler_api::Error>(())
//! ```

mod auth;
pub mod crd;
mod error;
pub mod files;
mod go;
pub mod keda;
pub mod pause;
mod prometheus;
mod resolve;
mod schema;
pub mod state;
mod target;
mod types;
mod validate;

pub use auth::{
    AUTH_PARAMETERS, PodIdentity, PromScalerAuthentication, PromScalerAuthenticationSpec,
    SecretTargetRef,
};
pub use error::{Error, FieldError};
pub use pause::{is_paused, parse_pause, stops_scaling};
pub use prometheus::{AuthMode, IdentityOwner, PrometheusTrigger};
pub use resolve::{
    WORKLOAD_ROLE_ANNOTATION, WORKLOAD_ROLE_PARAMETER, needs_workload_role, resolve_auth,
};
pub use target::{
    DEFAULT_TARGET_API_VERSION, DEFAULT_TARGET_KIND, scale_target_kind, with_target_defaults,
};
pub use types::{
    API_VERSION, AdvancedConfig, AuthenticationRef, Condition, DecisionStateStatus, Fallback,
    GROUP, HealthStatus, HorizontalPodAutoscalerConfig, HpaBehavior, HpaScalingPolicy,
    HpaScalingRules, NameMap, PromScaler, PromScalerSpec, PromScalerStatus, ScaleTargetRef,
    ScaleTrigger, ScalingModifiers, TimestampedReplicas, TimestampedValue, VERSION,
};
pub use validate::{
    AUTHENTICATION_KIND, DEFAULT_COOLDOWN_PERIOD_SECONDS, DEFAULT_MAX_REPLICA_COUNT,
    DEFAULT_POLLING_INTERVAL_SECONDS, MAX_TRIGGERS, PROMETHEUS_TRIGGER_TYPE, ValidatedScaler,
    ValidatedTrigger, validate_spec,
};

/// The generated protobuf types this crate converts to, re-exported for callers.
pub use promscaler_proto::v1 as proto;
