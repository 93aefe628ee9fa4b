//! Building `promscaler.v1.UpstreamAuth` for a trigger from its metadata, its
//! PromScalerAuthentication and the Secret values the caller resolved, following KEDA's
//! prometheus scaler: `authModes` first (bearer, basic, tls, custom), else AWS SigV4 (pod
//! identity, `identityOwner`, static keys), else no authentication.

use std::collections::BTreeMap;

use promscaler_proto::v1::{self, upstream_auth::Method};

use crate::prometheus::{AuthMode, IdentityOwner, PrometheusTrigger};
use crate::{FieldError, PodIdentity, PromScalerAuthenticationSpec};

/// The ServiceAccount annotation that names a workload's AWS role (IRSA's, read by EKS's pod
/// identity webhook); `identityOwner: workload` assumes the role it names.
pub const WORKLOAD_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

/// The parameter the caller fills with the workload's role for `identityOwner: workload` (as
/// KEDA's resolver does), before calling [`resolve_auth`].
pub const WORKLOAD_ROLE_PARAMETER: &str = "awsRoleArn";

/// Whether [`resolve_auth`] signs this trigger with the workload's AWS role
/// (`podIdentity.identityOwner: workload` with `provider: aws`, or trigger metadata
/// `identityOwner: workload` without pod identity) and no `authModes` take precedence: then the
/// caller must find the role in the [`WORKLOAD_ROLE_ANNOTATION`] of the scale target's
/// ServiceAccount and pass it as parameter [`WORKLOAD_ROLE_PARAMETER`].
pub fn needs_workload_role(
    trigger: &PrometheusTrigger,
    auth: Option<&PromScalerAuthenticationSpec>,
    params: &BTreeMap<String, String>,
) -> bool {
    let says_workload = match auth
        .and_then(|a| a.pod_identity.as_ref())
        .filter(|p| !matches!(p.provider.as_str(), "" | "none"))
    {
        Some(p) => p.provider == "aws" && p.identity_owner.as_deref() == Some("workload"),
        None => trigger.identity_owner == Some(IdentityOwner::Workload),
    };
    says_workload
        && trigger.auth_modes.is_empty()
        && params.get("authModes").is_none_or(|m| m.trim().is_empty())
}

fn workload_role_missing(path: &str, field: &str) -> FieldError {
    FieldError::new(
        format!("{path}.{field}"),
        format!(
            "identityOwner: workload assumes the role named by the {WORKLOAD_ROLE_ANNOTATION} annotation of the scale target's ServiceAccount, and no role was found; annotate that ServiceAccount (or pass the role as parameter {WORKLOAD_ROLE_PARAMETER})"
        ),
    )
}

impl PromScalerAuthenticationSpec {
    /// The Secrets to read, as `(secret name, key, parameter)` triples: the caller looks each
    /// `key` up in Secret `name` (same namespace) and passes `parameter → value` to
    /// [`resolve_auth`].
    pub fn secret_refs(&self) -> Vec<(&str, &str, &str)> {
        self.secret_target_ref
            .iter()
            .map(|r| (r.name.as_str(), r.key.as_str(), r.parameter.as_str()))
            .collect()
    }
}

/// Builds the upstream authentication for one trigger.
///
/// - `path`: the trigger's field path for errors (e.g. `spec.triggers[0]`);
/// - `auth`: the referenced PromScalerAuthentication's spec, if the trigger has an
///   `authenticationRef`;
/// - `params`: the resolved Secret values by parameter name (`bearerToken`, `awsAccessKeyID`,
///   ...). Values are trimmed like KEDA does; empty values are absent.
///
/// AWS: `podIdentity.provider: aws` or `identityOwner: operator` ⇒ the metrics-fetcher's own
/// identity (empty keys), with `podIdentity.roleArn` / `awsRoleArn` assumed on top;
/// `identityOwner: workload` (pod identity or trigger metadata) ⇒ the workload's role, which the
/// caller passes as `awsRoleArn` (see [`needs_workload_role`]), assumed on top;
/// `awsAccessKeyID` + `awsSecretAccessKey` ⇒ static keys; `awsRegion` (metadata, else
/// parameter) ⇒ the signing region. Secret values never appear in errors.
pub fn resolve_auth(
    trigger: &PrometheusTrigger,
    path: &str,
    auth: Option<&PromScalerAuthenticationSpec>,
    params: &BTreeMap<String, String>,
) -> Result<Option<v1::UpstreamAuth>, Vec<FieldError>> {
    let param = Params(params);
    let pod_identity = auth
        .and_then(|a| a.pod_identity.as_ref())
        .filter(|p| !matches!(p.provider.as_str(), "" | "none"));
    if let Some(p) = pod_identity
        && p.provider != "aws"
    {
        return Err(vec![FieldError::new(
            format!("{path}.authenticationRef"),
            format!(
                "podIdentity provider {:?} is not supported; use aws (the metrics-fetcher's IRSA / EKS Pod Identity) or secretTargetRef",
                p.provider
            ),
        )]);
    }

    // authModes: from metadata, else from the authentication's parameters (KEDA order).
    let modes = if trigger.auth_modes.is_empty() {
        match param.get("authModes") {
            None => Vec::new(),
            Some(raw) => crate::prometheus::parse_auth_modes(&raw).map_err(|e| {
                vec![FieldError::new(
                    format!("{path}.authenticationRef"),
                    format!("parameter authModes: {e}"),
                )]
            })?,
        }
    } else {
        trigger.auth_modes.clone()
    };
    if modes.is_empty() {
        aws_auth(trigger, path, pod_identity, &param)
    } else if pod_identity.is_some() {
        Err(vec![FieldError::new(
            format!("{path}.authenticationRef"),
            "pod identity cannot be enabled with other auth types (KEDA rule): remove podIdentity or authModes",
        )])
    } else {
        header_auth(&modes, path, &param)
    }
}

/// The resolved parameters of a PromScalerAuthentication; blank values count as absent.
struct Params<'a>(&'a BTreeMap<String, String>);

impl Params<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.0
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

/// `authModes` (bearer, custom, basic, tls): the header or TLS credentials they need.
fn header_auth(
    modes: &[AuthMode],
    path: &str,
    param: &Params<'_>,
) -> Result<Option<v1::UpstreamAuth>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut need = |k: &str, mode: &str| match param.get(k) {
        Some(v) => v,
        None => {
            errors.push(FieldError::new(
                format!("{path}.authenticationRef"),
                format!("authModes {mode} needs parameter {k}; add it to the PromScalerAuthentication's secretTargetRef"),
            ));
            String::new()
        }
    };
    let bearer = if modes.contains(&AuthMode::Bearer) {
        Some(v1::BearerAuth {
            // KEDA also accepts `token` for `bearerToken`.
            token: match param.get("token") {
                Some(t) if param.get("bearerToken").is_none() => t,
                _ => need("bearerToken", "bearer"),
            },
            header_name: String::new(),
        })
    } else if modes.contains(&AuthMode::Custom) {
        Some(v1::BearerAuth {
            header_name: need("customAuthHeader", "custom"),
            token: need("customAuthValue", "custom"),
        })
    } else {
        None
    };
    let basic = modes.contains(&AuthMode::Basic).then(|| v1::BasicAuth {
        username: need("username", "basic"),
        password: param.get("password").unwrap_or_default(),
    });
    let tls = modes.contains(&AuthMode::Tls);
    let (cert, key) = if tls {
        (need("cert", "tls"), need("key", "tls"))
    } else {
        (String::new(), String::new())
    };
    let ca = param.get("ca").unwrap_or_default();
    if !errors.is_empty() {
        return Err(errors);
    }
    let method = if let Some(basic) = basic {
        if !ca.is_empty() {
            return Err(vec![FieldError::new(
                format!("{path}.authenticationRef"),
                "a custom ca with basic auth is not supported by promscaler; trust the server's CA another way or use bearer",
            )]);
        }
        Method::Basic(basic)
    } else if tls || !ca.is_empty() {
        Method::Tls(v1::TlsClientAuth {
            cert_pem: cert,
            key_pem: key,
            ca_pem: ca,
            bearer,
        })
    } else if let Some(bearer) = bearer {
        Method::Bearer(bearer)
    } else {
        return Ok(None);
    };
    Ok(Some(v1::UpstreamAuth {
        method: Some(method),
    }))
}

/// No `authModes`: AWS SigV4 when KEDA would sign (pod identity, `identityOwner`, a role or
/// static keys), else no authentication.
fn aws_auth(
    trigger: &PrometheusTrigger,
    path: &str,
    pod_identity: Option<&PodIdentity>,
    param: &Params<'_>,
) -> Result<Option<v1::UpstreamAuth>, Vec<FieldError>> {
    let at = |field: &str, message: &str| vec![FieldError::new(format!("{path}.{field}"), message)];
    let region = trigger
        .aws_region
        .clone()
        .or_else(|| param.get("awsRegion"))
        .unwrap_or_default();
    let role_param = param.get("awsRoleArn");
    if param.get("awsExternalId").is_some() {
        return Err(at(
            "authenticationRef",
            "parameter awsExternalId is not supported: the metrics-fetcher assumes roles without an external ID; allow the role to be assumed without one, or keep this trigger on KEDA",
        ));
    }
    let key_id = param
        .get("awsAccessKeyID")
        .or_else(|| param.get("awsAccessKeyId"));
    if let Some(p) = pod_identity {
        let role_arn = p.role_arn.clone().filter(|r| !r.trim().is_empty());
        return match p.identity_owner.as_deref().unwrap_or("") {
            "" | "keda" | "operator" => Ok(Some(aws(region, role_arn.or(role_param), None))),
            "workload" if role_arn.is_some() => Err(at(
                "authenticationRef",
                "podIdentity roleArn cannot be used with identityOwner: workload (KEDA rule): the role is the one annotated on the workload's ServiceAccount; remove roleArn, or set identityOwner: keda to assume roleArn",
            )),
            "workload" => match role_param {
                Some(role) => Ok(Some(aws(region, Some(role), None))),
                None => Err(vec![workload_role_missing(path, "authenticationRef")]),
            },
            other => Err(at(
                "authenticationRef",
                &format!(
                    "podIdentity identityOwner {other:?} is not supported: use keda (the metrics-fetcher's own identity, with roleArn to assume a role) or workload (the role of the scale target's ServiceAccount)"
                ),
            )),
        };
    }
    if trigger.identity_owner == Some(IdentityOwner::Workload) {
        return match role_param {
            Some(role) => Ok(Some(aws(region, Some(role), None))),
            None => Err(vec![workload_role_missing(path, "metadata.identityOwner")]),
        };
    }
    // KEDA signs whenever its AWS authorization resolves: always for `identityOwner: operator`;
    // for `pod` (the default) only with awsRoleArn or static keys, and otherwise sends the
    // request unsigned. Unsigned with an awsRegion can only fail at AMP, so that is an error.
    if trigger.identity_owner == Some(IdentityOwner::Operator) || role_param.is_some() {
        return Ok(Some(aws(region, role_param, None)));
    }
    match (key_id, param.get("awsSecretAccessKey")) {
        (Some(id), Some(secret)) => Ok(Some(aws(
            region,
            None,
            Some((id, secret, param.get("awsSessionToken").unwrap_or_default())),
        ))),
        (Some(_), None) => Err(at(
            "authenticationRef",
            "awsAccessKeyID is set but awsSecretAccessKey is missing; add it to the PromScalerAuthentication's secretTargetRef",
        )),
        (None, _) if !region.is_empty() => Err(at(
            "metadata.identityOwner",
            "AWS signing (awsRegion) needs credentials: set identityOwner: operator to use the metrics-fetcher's own identity (IRSA), use a PromScalerAuthentication with podIdentity.provider: aws, or give awsAccessKeyID/awsSecretAccessKey (or awsRoleArn) in its secretTargetRef",
        )),
        (None, _) => Ok(None),
    }
}

fn aws(
    region: String,
    role_arn: Option<String>,
    keys: Option<(String, String, String)>,
) -> v1::UpstreamAuth {
    let (access_key_id, secret_access_key, session_token) = keys.unwrap_or_default();
    v1::UpstreamAuth {
        method: Some(Method::Aws(v1::AwsAuth {
            region,
            role_arn: role_arn.unwrap_or_default(),
            access_key_id,
            secret_access_key,
            session_token,
            service: String::new(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PodIdentity, SecretTargetRef};

    /// What, the trigger, its authentication, the Secret values, the expectation.
    type Case<T> = (
        &'static str,
        PrometheusTrigger,
        Option<PromScalerAuthenticationSpec>,
        BTreeMap<String, String>,
        T,
    );

    fn trigger(extra: &[(&str, &str)]) -> PrometheusTrigger {
        let mut md: BTreeMap<String, String> = [
            (
                "serverAddress",
                "https://aps-workspaces.ap-northeast-2.amazonaws.com/workspaces/ws-1",
            ),
            ("query", "sum(up)"),
            ("threshold", "50"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        md.retain(|_, v| !v.is_empty());
        PrometheusTrigger::parse(&md, "metadata").expect("valid trigger")
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn pod_identity(role_arn: Option<&str>, owner: Option<&str>) -> PromScalerAuthenticationSpec {
        PromScalerAuthenticationSpec {
            secret_target_ref: vec![],
            pod_identity: Some(PodIdentity {
                provider: "aws".into(),
                role_arn: role_arn.map(Into::into),
                identity_owner: owner.map(Into::into),
            }),
        }
    }

    fn secrets() -> PromScalerAuthenticationSpec {
        PromScalerAuthenticationSpec {
            secret_target_ref: vec![SecretTargetRef {
                parameter: "bearerToken".into(),
                name: "s".into(),
                key: "k".into(),
            }],
            pod_identity: None,
        }
    }

    fn aws_auth(region: &str, role: &str, keys: (&str, &str, &str)) -> Option<Method> {
        Some(Method::Aws(v1::AwsAuth {
            region: region.into(),
            role_arn: role.into(),
            access_key_id: keys.0.into(),
            secret_access_key: keys.1.into(),
            session_token: keys.2.into(),
            service: String::new(),
        }))
    }

    fn bearer(token: &str, header: &str) -> v1::BearerAuth {
        v1::BearerAuth {
            token: token.into(),
            header_name: header.into(),
        }
    }

    #[test]
    fn auth_is_built_as_kedas_prometheus_scaler_would_send_it() {
        let region = ("awsRegion", "ap-northeast-2");
        let none = ("", "", "");
        let table: Vec<Case<Option<Method>>> = vec![
            ("no auth at all", trigger(&[]), None, params(&[]), None),
            (
                "identityOwner operator signs with the fetcher's identity",
                trigger(&[region, ("identityOwner", "operator")]),
                None,
                params(&[]),
                aws_auth("ap-northeast-2", "", none),
            ),
            (
                "operator with awsRoleArn assumes it",
                trigger(&[region, ("identityOwner", "operator")]),
                Some(secrets()),
                params(&[("awsRoleArn", "arn:aws:iam::1:role/q")]),
                aws_auth("ap-northeast-2", "arn:aws:iam::1:role/q", none),
            ),
            (
                "pod identity aws is the fetcher's identity",
                trigger(&[region]),
                Some(pod_identity(None, None)),
                params(&[]),
                aws_auth("ap-northeast-2", "", none),
            ),
            (
                "pod identity roleArn is assumed",
                trigger(&[region]),
                Some(pod_identity(Some("arn:aws:iam::1:role/amp"), Some("keda"))),
                params(&[]),
                aws_auth("ap-northeast-2", "arn:aws:iam::1:role/amp", none),
            ),
            (
                "pod identity workload assumes the workload's role",
                trigger(&[region]),
                Some(pod_identity(None, Some("workload"))),
                params(&[("awsRoleArn", "arn:aws:iam::1:role/app")]),
                aws_auth("ap-northeast-2", "arn:aws:iam::1:role/app", none),
            ),
            (
                "trigger identityOwner workload assumes the workload's role, not static keys",
                trigger(&[region, ("identityOwner", "workload")]),
                Some(secrets()),
                params(&[
                    ("awsRoleArn", "arn:aws:iam::1:role/app"),
                    ("awsAccessKeyID", "AKIA"),
                    ("awsSecretAccessKey", "s3"),
                ]),
                aws_auth("ap-northeast-2", "arn:aws:iam::1:role/app", none),
            ),
            (
                "static keys from secrets",
                trigger(&[region, ("identityOwner", "pod")]),
                Some(secrets()),
                params(&[
                    ("awsAccessKeyID", "AKIA"),
                    ("awsSecretAccessKey", "s3"),
                    ("awsSessionToken", "tok"),
                ]),
                aws_auth("ap-northeast-2", "", ("AKIA", "s3", "tok")),
            ),
            (
                "operator signs even without a region (derived from the AMP host)",
                trigger(&[("identityOwner", "operator")]),
                None,
                params(&[]),
                aws_auth("", "", none),
            ),
            (
                "identityOwner pod without AWS credentials or region sends unsigned, as KEDA",
                trigger(&[("identityOwner", "pod")]),
                None,
                params(&[]),
                None,
            ),
            (
                "region may come from the authentication",
                trigger(&[("identityOwner", "operator")]),
                Some(secrets()),
                params(&[("awsRegion", "us-west-2")]),
                aws_auth("us-west-2", "", none),
            ),
            (
                "bearer",
                trigger(&[("authModes", "bearer")]),
                Some(secrets()),
                params(&[("bearerToken", " tok\n")]),
                Some(Method::Bearer(bearer("tok", ""))),
            ),
            (
                "token is KEDA's other name for bearerToken",
                trigger(&[("authModes", "bearer")]),
                Some(secrets()),
                params(&[("token", "t")]),
                Some(Method::Bearer(bearer("t", ""))),
            ),
            (
                "custom header",
                trigger(&[("authModes", "custom")]),
                Some(secrets()),
                params(&[("customAuthHeader", "X-Api-Key"), ("customAuthValue", "v")]),
                Some(Method::Bearer(bearer("v", "X-Api-Key"))),
            ),
            (
                "basic without password",
                trigger(&[("authModes", "basic")]),
                Some(secrets()),
                params(&[("username", "u")]),
                Some(Method::Basic(v1::BasicAuth {
                    username: "u".into(),
                    password: String::new(),
                })),
            ),
            (
                "tls with bearer and ca",
                trigger(&[("authModes", "tls,bearer")]),
                Some(secrets()),
                params(&[
                    ("cert", "C"),
                    ("key", "K"),
                    ("ca", "CA"),
                    ("bearerToken", "t"),
                ]),
                Some(Method::Tls(v1::TlsClientAuth {
                    cert_pem: "C".into(),
                    key_pem: "K".into(),
                    ca_pem: "CA".into(),
                    bearer: Some(bearer("t", "")),
                })),
            ),
            (
                "authModes may come from the authentication",
                trigger(&[]),
                Some(secrets()),
                params(&[("authModes", "bearer"), ("bearerToken", "t")]),
                Some(Method::Bearer(bearer("t", ""))),
            ),
        ];
        for (what, t, auth, p, want) in table {
            let got = resolve_auth(&t, "spec.triggers[0]", auth.as_ref(), &p)
                .unwrap_or_else(|e| panic!("{what}: {e:?}"));
            assert_eq!(got.and_then(|a| a.method), want, "{what}");
        }
    }

    #[test]
    fn missing_or_conflicting_credentials_are_errors_that_say_what_to_add() {
        let table: Vec<Case<&str>> = vec![
            (
                "bearer without token",
                trigger(&[("authModes", "bearer")]),
                Some(secrets()),
                params(&[]),
                "needs parameter bearerToken",
            ),
            (
                "tls without key",
                trigger(&[("authModes", "tls")]),
                Some(secrets()),
                params(&[("cert", "C")]),
                "needs parameter key",
            ),
            (
                "basic without username",
                trigger(&[("authModes", "basic")]),
                Some(secrets()),
                params(&[]),
                "needs parameter username",
            ),
            (
                "pod identity with authModes",
                trigger(&[("authModes", "bearer")]),
                Some(pod_identity(None, None)),
                params(&[("bearerToken", "t")]),
                "pod identity cannot be enabled",
            ),
            (
                "unknown pod identity owner",
                trigger(&[("awsRegion", "eu-west-1")]),
                Some(pod_identity(None, Some("pod"))),
                params(&[]),
                "not supported",
            ),
            (
                "workload identity owner without the workload's role",
                trigger(&[("awsRegion", "eu-west-1")]),
                Some(pod_identity(None, Some("workload"))),
                params(&[]),
                "eks.amazonaws.com/role-arn annotation of the scale target's ServiceAccount",
            ),
            (
                "trigger identityOwner workload without the workload's role",
                trigger(&[("awsRegion", "eu-west-1"), ("identityOwner", "workload")]),
                None,
                params(&[]),
                "eks.amazonaws.com/role-arn annotation of the scale target's ServiceAccount",
            ),
            (
                "workload identity owner with its own roleArn",
                trigger(&[("awsRegion", "eu-west-1")]),
                Some(pod_identity(
                    Some("arn:aws:iam::1:role/amp"),
                    Some("workload"),
                )),
                params(&[("awsRoleArn", "arn:aws:iam::1:role/app")]),
                "cannot be used with identityOwner: workload",
            ),
            (
                "aws region without credentials",
                trigger(&[("awsRegion", "eu-west-1")]),
                None,
                params(&[]),
                "set identityOwner: operator",
            ),
            (
                "access key without secret",
                trigger(&[("awsRegion", "eu-west-1")]),
                Some(secrets()),
                params(&[("awsAccessKeyID", "AKIA")]),
                "awsSecretAccessKey is missing",
            ),
        ];
        for (what, t, auth, p, want) in table {
            let errors = resolve_auth(&t, "spec.triggers[0]", auth.as_ref(), &p).unwrap_err();
            assert!(
                errors.iter().any(|e| e.message.contains(want)),
                "{what}: {errors:?}"
            );
            for e in &errors {
                assert!(
                    !e.message.contains("AKIA") && !e.message.contains("s3"),
                    "{what}: secret leaked"
                );
            }
        }
    }

    #[test]
    fn the_workload_role_is_needed_only_when_aws_signs_for_the_workload() {
        let workload = Some(pod_identity(None, Some("workload")));
        let keda = Some(pod_identity(None, Some("keda")));
        let cases: Vec<Case<bool>> = vec![
            (
                "pod identity workload",
                trigger(&[]),
                workload.clone(),
                params(&[]),
                true,
            ),
            ("pod identity keda", trigger(&[]), keda, params(&[]), false),
            (
                "trigger identityOwner workload",
                trigger(&[("identityOwner", "workload")]),
                None,
                params(&[]),
                true,
            ),
            (
                "pod identity decides, not the trigger's identityOwner (KEDA)",
                trigger(&[("identityOwner", "workload")]),
                Some(pod_identity(None, None)),
                params(&[]),
                false,
            ),
            (
                "identityOwner operator",
                trigger(&[("identityOwner", "operator")]),
                None,
                params(&[]),
                false,
            ),
            (
                "authModes from metadata take precedence",
                trigger(&[("identityOwner", "workload"), ("authModes", "bearer")]),
                None,
                params(&[]),
                false,
            ),
            (
                "authModes from the authentication take precedence",
                trigger(&[]),
                workload,
                params(&[("authModes", "bearer")]),
                false,
            ),
        ];
        for (what, t, auth, p, want) in cases {
            assert_eq!(needs_workload_role(&t, auth.as_ref(), &p), want, "{what}");
        }
    }
}
