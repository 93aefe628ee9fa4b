//! From a PromScaler (and its PromScalerAuthentications and Secrets) to what one tick sends:
//! the `ScalingPolicy`, one `QueryRequest` per trigger, the pause state, the polling interval and
//! the target. Parsing and validation are `promscaler-api`'s, shared with promscalerctl.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    ResourceExt as _,
    runtime::reflector::{ObjectRef, Store},
};
use promscaler_api::{PromScaler, PromScalerAuthentication, resolve_auth};
use promscaler_proto::v1::{Pause, QueryRequest, ScalingPolicy};

use crate::{
    reason,
    types::{HELM_RELEASE_SECRET, TargetRef},
};

/// Everything a tick needs from a valid PromScaler.
#[derive(Debug, Clone)]
pub(crate) struct Evaluated {
    /// The policy for Decide.
    pub policy: ScalingPolicy,
    /// One query per trigger, in trigger order.
    pub queries: Vec<QueryRequest>,
    /// Trigger names, in the same order.
    pub trigger_names: Vec<String>,
    /// Pause annotations.
    pub pause: Pause,
    /// Time between evaluations.
    pub polling_interval: Duration,
    /// The scale target.
    pub target: TargetRef,
    /// For the SCALETARGETKIND column: `<apiVersion>.<kind>`.
    pub scale_target_kind: String,
    /// For the TRIGGERS column.
    pub triggers_types: String,
    /// For the AUTHENTICATIONS column.
    pub authentications: String,
}

/// Why a PromScaler cannot be acted on.
#[derive(Debug, Clone)]
pub(crate) struct Invalid {
    /// Condition reason (one of [`crate::reason`]).
    pub reason: &'static str,
    /// What to fix, naming the fields.
    pub message: String,
}

/// The target with KEDA's defaults (`promscaler_api`'s rule, shared with validation and the CLI).
pub(crate) fn target_ref(scaler: &PromScaler) -> TargetRef {
    scaler.spec.scale_target_ref.with_defaults().into()
}

/// Validates `scaler` and resolves its authentication from the watch caches.
pub(crate) fn evaluate(
    scaler: &PromScaler,
    auths: &Store<PromScalerAuthentication>,
    secrets: &Store<Secret>,
) -> Result<Evaluated, Invalid> {
    let validated = scaler.validate().map_err(|errors| Invalid {
        reason: reason::SCALED_OBJECT_CHECK_FAILED,
        message: join(&errors),
    })?;
    let namespace = validated.namespace.clone();
    let mut queries = Vec::with_capacity(validated.triggers.len());
    for (index, trigger) in validated.triggers.iter().enumerate() {
        let path = format!("spec.triggers[{index}]");
        let auth = match &trigger.authentication_ref {
            None => None,
            Some(name) => Some(
                auths
                    .get(&ObjectRef::new(name).within(&namespace))
                    .ok_or_else(|| Invalid {
                        reason: reason::AUTHENTICATION_NOT_FOUND,
                        message: format!(
                            "{path}.authenticationRef: PromScalerAuthentication {namespace}/{name} not found; create it or fix the name"
                        ),
                    })?,
            ),
        };
        let mut params = BTreeMap::new();
        if let Some(auth) = &auth {
            for (secret, key, parameter) in auth.spec.secret_refs() {
                let found = secrets.get(&ObjectRef::new(secret).within(&namespace));
                let value = found
                    .as_ref()
                    .and_then(|s| secret_value(s, key))
                    .ok_or_else(|| Invalid {
                        reason: reason::SECRET_NOT_FOUND,
                        message: match found {
                            Some(_) => format!(
                                "PromScalerAuthentication {}: Secret {namespace}/{secret} has no key {key:?} (parameter {parameter})",
                                auth.name_any()
                            ),
                            None => format!(
                                "PromScalerAuthentication {}: Secret {namespace}/{secret} (parameter {parameter}) not found (Helm release Secrets, type {HELM_RELEASE_SECRET}, are not watched)",
                                auth.name_any()
                            ),
                        },
                    })?;
                params.insert(parameter.to_owned(), value);
            }
        }
        let upstream = resolve_auth(
            &trigger.prometheus,
            &path,
            auth.as_ref().map(|a| &a.spec),
            &params,
        )
        .map_err(|errors| Invalid {
            reason: reason::SCALED_OBJECT_CHECK_FAILED,
            message: join(&errors),
        })?;
        queries.push(validated.query_request(index, upstream));
    }
    let target = TargetRef::from(validated.target.clone());
    Ok(Evaluated {
        trigger_names: validated.triggers.iter().map(|t| t.name.clone()).collect(),
        queries,
        policy: validated.policy.clone(),
        pause: validated.pause,
        polling_interval: validated.polling_interval,
        target,
        scale_target_kind: validated.scale_target_kind(),
        triggers_types: scaler.spec.triggers_types(),
        authentications: scaler.spec.authentications_types(),
    })
}

fn join(errors: &[promscaler_api::FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A Secret's value for `key` (`data`, base64-decoded by the client, else `stringData`).
fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(bytes.0.clone()).ok();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
}
