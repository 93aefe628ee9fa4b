//! From a PromScaler (and its PromScalerAuthentications and Secret values) to what one tick sends:
//! the `ScalingPolicy`, one `QueryRequest` per trigger, the pause state, the polling interval and
//! the target. Parsing and validation are `promscaler-api`'s, shared with promscalerctl.

use std::{collections::BTreeMap, time::Duration};

use kube::{
    ResourceExt as _,
    runtime::reflector::{ObjectRef, Store},
};
use promscaler_api::{
    PromScaler, PromScalerAuthentication, WORKLOAD_ROLE_PARAMETER, needs_workload_role,
    resolve_auth,
};
use promscaler_proto::v1::{Pause, QueryRequest, ScalingPolicy};

use crate::{
    identity::{self, WorkloadCaches},
    reason,
    types::{HELM_RELEASE_SECRET, TargetRef},
};

/// The values a tick read: per Secret name (absent: no such Secret), per key (`None`: the Secret
/// has no such key, or its value is not UTF-8).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SecretValues(BTreeMap<String, BTreeMap<String, Option<String>>>);

/// What a Secret's key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    /// There is no such Secret (or it is a Helm release Secret, which is not watched).
    NoSecret,
    /// The Secret exists without this key (or its value is not UTF-8).
    NoKey,
    /// The value.
    Value(&'a str),
}

impl SecretValues {
    /// Records `key` of Secret `secret` (`value` `None`: the Secret lacks the key).
    pub(crate) fn insert(&mut self, secret: &str, key: &str, value: Option<String>) {
        self.0
            .entry(secret.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
    }

    /// Records that Secret `secret` exists (with none of the keys asked for yet).
    pub(crate) fn found(&mut self, secret: &str) {
        self.0.entry(secret.to_owned()).or_default();
    }

    /// What `key` of `secret` holds.
    pub(crate) fn get(&self, secret: &str, key: &str) -> Lookup<'_> {
        match self.0.get(secret) {
            None => Lookup::NoSecret,
            Some(keys) => match keys.get(key) {
                Some(Some(value)) => Lookup::Value(value),
                _ => Lookup::NoKey,
            },
        }
    }
}

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

/// The Secret keys `scaler`'s triggers' PromScalerAuthentications refer to, as (Secret, key):
/// what a tick reads before [`evaluate`]. An authentication that does not exist refers to none
/// (`evaluate` reports it).
pub(crate) fn secret_refs(
    scaler: &PromScaler,
    auths: &Store<PromScalerAuthentication>,
) -> Vec<(String, String)> {
    let namespace = scaler.namespace().unwrap_or_default();
    let mut refs: Vec<(String, String)> = scaler
        .spec
        .triggers
        .iter()
        .filter_map(|t| t.authentication_ref.as_ref())
        .filter_map(|r| auths.get(&ObjectRef::new(&r.name).within(&namespace)))
        .flat_map(|auth| {
            auth.spec
                .secret_refs()
                .into_iter()
                .map(|(secret, key, _)| (secret.to_owned(), key.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

/// Validates `scaler` and resolves its authentication from the watch cache, the Secret values
/// read for it (see [`secret_refs`]) and, for `identityOwner: workload`, the role of the
/// target's ServiceAccount from `workloads`.
pub(crate) fn evaluate(
    scaler: &PromScaler,
    auths: &Store<PromScalerAuthentication>,
    secrets: &SecretValues,
    workloads: WorkloadCaches<'_>,
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
                let missing = |message: String| Invalid {
                    reason: reason::SECRET_NOT_FOUND,
                    message,
                };
                let value = match secrets.get(secret, key) {
                    Lookup::Value(value) => value.to_owned(),
                    Lookup::NoKey => {
                        return Err(missing(format!(
                            "PromScalerAuthentication {}: Secret {namespace}/{secret} has no key {key:?} (parameter {parameter})",
                            auth.name_any()
                        )));
                    }
                    Lookup::NoSecret => {
                        return Err(missing(format!(
                            "PromScalerAuthentication {}: Secret {namespace}/{secret} (parameter {parameter}) not found (Helm release Secrets, type {HELM_RELEASE_SECRET}, are not watched)",
                            auth.name_any()
                        )));
                    }
                };
                params.insert(parameter.to_owned(), value);
            }
        }
        if needs_workload_role(&trigger.prometheus, auth.as_ref().map(|a| &a.spec), &params) {
            // KEDA's resolver: the workload's role replaces any awsRoleArn parameter.
            let target = TargetRef::from(validated.target.clone());
            let role =
                identity::workload_role(&namespace, &target, workloads).map_err(|e| Invalid {
                    reason: e.reason,
                    message: format!("{path}: {}", e.message),
                })?;
            params.insert(WORKLOAD_ROLE_PARAMETER.to_owned(), role);
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
