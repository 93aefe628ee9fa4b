//! The reasons the actuator writes into `Ready` conditions and Events, in one place: users
//! alert on them, and KEDA's names are kept where KEDA has one.

/// The spec (or a pause annotation) is invalid (KEDA's reason).
pub(crate) const SCALED_OBJECT_CHECK_FAILED: &str = "ScaledObjectCheckFailed";
/// A trigger's `authenticationRef` names no PromScalerAuthentication.
pub(crate) const AUTHENTICATION_NOT_FOUND: &str = "PromScalerAuthenticationNotFound";
/// A PromScalerAuthentication names a Secret (or a key) that does not exist.
pub(crate) const SECRET_NOT_FOUND: &str = "SecretNotFound";
/// `identityOwner: workload`, and the ServiceAccount has no usable `eks.amazonaws.com/role-arn`
/// annotation (or the target's kind has no pod template the actuator reads).
pub(crate) const WORKLOAD_IDENTITY_NOT_FOUND: &str = "WorkloadIdentityNotFound";
/// `identityOwner: workload`, and the ServiceAccount the scale target's pods run as does not
/// exist (a reason of its own: the fix differs, and a status is rewritten when its reason
/// changes, not its message).
pub(crate) const SERVICE_ACCOUNT_NOT_FOUND: &str = "ServiceAccountNotFound";
/// The scale target does not exist (yet).
pub(crate) const SCALE_TARGET_NOT_FOUND: &str = "ScaleTargetNotFound";
/// The target's kind is not served or has no `/scale` subresource.
pub(crate) const SCALE_TARGET_NOT_SCALABLE: &str = "ScaleTargetNotScalable";
/// Reading the target from the Kubernetes API failed.
pub(crate) const KUBERNETES_API_ERROR: &str = "KubernetesApiError";
/// `MetricsFetcherService.QueryBatch` failed or timed out.
pub(crate) const METRICS_FETCHER_UNAVAILABLE: &str = "MetricsFetcherUnavailable";
/// `DecisionService.Decide` failed or timed out.
pub(crate) const DECISION_SERVICE_UNAVAILABLE: &str = "DecisionServiceUnavailable";

/// Event: the target was scaled (the HPA controller's reason).
pub(crate) const SUCCESSFUL_RESCALE: &str = "SuccessfulRescale";
/// Event: a trigger started failing (KEDA's reason).
pub(crate) const KEDA_SCALER_FAILED: &str = "KEDAScalerFailed";

/// `Ready` reasons of the decision service for failing triggers (KEDA's).
pub(crate) const TRIGGER_ERROR: &str = "TriggerError";
/// See [`TRIGGER_ERROR`]: some of the triggers fail.
pub(crate) const PARTIAL_TRIGGER_ERROR: &str = "PartialTriggerError";
