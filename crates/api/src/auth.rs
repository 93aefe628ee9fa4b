//! The `PromScalerAuthentication` custom resource: KEDA's TriggerAuthentication restricted to
//! what promscaler's metrics-fetcher can use (Secrets and AWS pod identity).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Spec of a `PromScalerAuthentication` (`promscaler.io/v1alpha1`, short name `pscauth`):
/// KEDA's `TriggerAuthenticationSpec` restricted to `secretTargetRef` and `podIdentity`.
// clippy reads the repeated `printcolumn(type_ = ...)` arguments as duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[kube(
    group = "promscaler.io",
    version = "v1alpha1",
    kind = "PromScalerAuthentication",
    plural = "promscalerauthentications",
    singular = "promscalerauthentication",
    shortname = "pscauth",
    category = "promscaler",
    namespaced,
    derive = "PartialEq",
    derive = "Default",
    doc = "PromScalerAuthentication holds the credentials PromScaler triggers use upstream (KEDA TriggerAuthentication).",
    printcolumn(
        name = "PodIdentity",
        type_ = "string",
        json_path = ".spec.podIdentity.provider"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".spec.secretTargetRef[*].name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PromScalerAuthenticationSpec {
    /// Parameters read from Secrets in the PromScalerAuthentication's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_target_ref: Vec<SecretTargetRef>,
    /// Workload identity; only `provider: aws` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<PodIdentity>,
}

/// One authentication parameter taken from a Secret key (KEDA `AuthSecretTargetRef`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTargetRef {
    /// The parameter: bearerToken (or token), username, password, ca, cert, key, customAuthHeader,
    /// customAuthValue, awsAccessKeyID, awsSecretAccessKey, awsSessionToken, awsRoleArn,
    /// awsRegion or authModes.
    pub parameter: String,
    /// Secret name.
    pub name: String,
    /// Key in the Secret.
    pub key: String,
}

/// KEDA `podIdentity`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentity {
    /// `aws` (the metrics-fetcher's own IRSA / EKS Pod Identity), or `none`.
    pub provider: String,
    /// Role to assume on top of the fetcher's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// `keda` (default: the fetcher's identity, with `roleArn` assumed on top) or `workload`
    /// (the role in the `eks.amazonaws.com/role-arn` annotation of the scale target's
    /// ServiceAccount, assumed on top of the fetcher's identity; `roleArn` must then be unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_owner: Option<String>,
}

/// The `secretTargetRef` parameters promscaler understands (KEDA's names).
pub const AUTH_PARAMETERS: &[&str] = &[
    "bearerToken",
    "token",
    "username",
    "password",
    "ca",
    "cert",
    "key",
    "customAuthHeader",
    "customAuthValue",
    "awsAccessKeyID",
    "awsSecretAccessKey",
    "awsSessionToken",
    "awsRoleArn",
    "awsRegion",
    "authModes",
];
