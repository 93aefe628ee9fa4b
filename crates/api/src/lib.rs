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

mod auth;
pub mod crd;
mod error;
mod go;
pub mod keda;
pub mod pause;
mod prometheus;
mod resolve;
mod schema;
pub mod state;
mod types;
mod validate;

pub use auth::{
    AUTH_PARAMETERS, PodIdentity, PromScalerAuthentication, PromScalerAuthenticationSpec,
    SecretTargetRef,
};
pub use error::{Error, FieldError};
pub use pause::parse_pause;
pub use prometheus::{AuthMode, IdentityOwner, PrometheusTrigger};
pub use resolve::resolve_auth;
pub use types::{
    API_VERSION, AdvancedConfig, AuthenticationRef, Condition, DecisionStateStatus, Fallback,
    GROUP, HealthStatus, HorizontalPodAutoscalerConfig, HpaBehavior, HpaScalingPolicy,
    HpaScalingRules, PromScaler, PromScalerSpec, PromScalerStatus, ScaleTargetRef, ScaleTrigger,
    ScalingModifiers, TimestampedReplicas, TimestampedValue, VERSION,
};
pub use validate::{
    AUTHENTICATION_KIND, DEFAULT_COOLDOWN_PERIOD_SECONDS, DEFAULT_MAX_REPLICA_COUNT,
    DEFAULT_POLLING_INTERVAL_SECONDS, MAX_TRIGGERS, PROMETHEUS_TRIGGER_TYPE, ValidatedScaler,
    ValidatedTrigger, validate_spec,
};

/// The generated protobuf types this crate converts to, re-exported for callers.
pub use promscaler_proto::v1 as proto;
