//! A `prometheus` trigger's metadata, parsed exactly as KEDA's prometheus scaler parses it
//! (`pkg/scalers/prometheus_scaler.go`, `prometheusMetadata`), into a typed
//! [`PrometheusTrigger`]. Every bad key produces its own [`FieldError`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::FieldError;
use crate::go;

/// Who signs AWS requests when the trigger uses SigV4 (trigger metadata `identityOwner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityOwner {
    /// `pod` (KEDA's default): credentials come from the referenced authentication.
    Pod,
    /// `operator`: the metrics-fetcher's own identity (KEDA: the operator's IRSA role).
    Operator,
    /// `workload`: the role in the `eks.amazonaws.com/role-arn` annotation of the scale
    /// target's ServiceAccount, assumed by the metrics-fetcher on top of its own identity (what
    /// KEDA does for `podIdentity.identityOwner: workload`; in trigger metadata KEDA would treat
    /// it like `operator`).
    Workload,
}

/// One of KEDA's `authModes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthMode {
    /// `bearer`: `Authorization: Bearer <bearerToken>`.
    Bearer,
    /// `basic`: HTTP basic with `username`/`password`.
    Basic,
    /// `tls`: client certificate `cert`/`key`, optional `ca`.
    Tls,
    /// `custom`: header `customAuthHeader: customAuthValue`.
    Custom,
}

/// A validated `prometheus` trigger's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusTrigger {
    /// `serverAddress`: base URL; `/api/v1/query` is appended.
    pub server_address: String,
    /// `query`: PromQL that must reduce to one value.
    pub query: String,
    /// `threshold`: the target value.
    pub threshold: f64,
    /// `activationThreshold` (default 0): active when the value is above it.
    pub activation_threshold: f64,
    /// `namespace`: sent as the `namespace` query parameter (Thanos).
    pub namespace: Option<String>,
    /// `customHeaders`.
    pub custom_headers: BTreeMap<String, String>,
    /// `queryParameters`.
    pub query_parameters: BTreeMap<String, String>,
    /// `ignoreNullValues` (default true): an empty result or NaN/±Inf counts as 0.
    pub ignore_null_values: bool,
    /// `unsafeSsl` (default false): skip TLS verification.
    pub unsafe_ssl: bool,
    /// `timeout`; `None` (absent or 0) = the fetcher's default (3 s).
    pub timeout: Option<Duration>,
    /// `awsRegion`: sign requests with SigV4 for this region.
    pub aws_region: Option<String>,
    /// `identityOwner`; `None` = absent (KEDA treats it as `pod`).
    pub identity_owner: Option<IdentityOwner>,
    /// `authModes` (or `authMode`), sorted, without duplicates.
    pub auth_modes: Vec<AuthMode>,
}

/// Metadata keys KEDA's prometheus scaler reads, and what it does with others.
const KNOWN_KEYS: &[&str] = &[
    "serverAddress",
    "query",
    "queryParameters",
    "threshold",
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "unsafeSsl",
    "awsRegion",
    "timeout",
    "identityOwner",
    "authModes",
    "authMode",
];

/// Keys KEDA reads only from a TriggerAuthentication, never from trigger metadata.
const AUTH_ONLY_KEYS: &[&str] = &[
    "bearerToken",
    "token",
    "username",
    "password",
    "ca",
    "cert",
    "key",
    "customAuthHeader",
    "customAuthValue",
    "awsRoleArn",
    "awsSecretAccessKey",
    "awsSessionToken",
];

/// KEDA's lookup: trimmed, and an empty value counts as absent.
fn get<'a>(metadata: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    metadata
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

impl PrometheusTrigger {
    /// Parses a trigger's `metadata`; `path` prefixes field names in errors (e.g.
    /// `spec.triggers[0].metadata`). Collects every error instead of stopping at the first.
    pub fn parse(metadata: &BTreeMap<String, String>, path: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let field = |k: &str| format!("{path}.{k}");

        let mut required = |key: &str, what: &str| match get(metadata, key) {
            Some(v) => Some(v.to_owned()),
            None => {
                errors.push(FieldError::new(field(key), format!("is required: {what}")));
                None
            }
        };
        let server_address = required(
            "serverAddress",
            "the Prometheus base URL, e.g. https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>",
        );
        let query = required(
            "query",
            "a PromQL query returning one value, e.g. sum(rate(http_requests_total[2m]))",
        );
        let threshold_raw = required(
            "threshold",
            "the target value per replica (AverageValue) or in total (Value), e.g. \"50\"",
        );

        if let Some(addr) = &server_address
            && !(addr.starts_with("http://") || addr.starts_with("https://"))
        {
            errors.push(FieldError::new(
                field("serverAddress"),
                format!("{addr:?} is not an http:// or https:// URL; write the server's base URL, e.g. http://prometheus.monitoring:9090"),
            ));
        }

        let mut number = |key: &str, raw: Option<&str>, default: f64| -> f64 {
            match raw {
                None => default,
                Some(v) => go::parse_json_number(v).unwrap_or_else(|e| {
                    errors.push(FieldError::new(field(key), e));
                    default
                }),
            }
        };
        let threshold = number("threshold", threshold_raw.as_deref(), 0.0);
        let activation_threshold = number(
            "activationThreshold",
            get(metadata, "activationThreshold"),
            0.0,
        );
        // KEDA hands the threshold to the HPA as a `%.3f` quantity, so below 0.0005 it is a
        // target of 0, which the HPA refuses (docs/semantics.md §1).
        if threshold_raw.is_some()
            && (threshold * 1000.0).round() < 1.0
            && errors.iter().all(|e| e.field != field("threshold"))
        {
            errors.push(FieldError::new(
                field("threshold"),
                format!(
                    "must be at least 0.001, got {threshold}: the HPA divides by it, in thousandths"
                ),
            ));
        }

        let mut boolean = |key: &str, default: bool| match get(metadata, key) {
            None => default,
            Some(v) => go::parse_bool(v).unwrap_or_else(|e| {
                errors.push(FieldError::new(field(key), e));
                default
            }),
        };
        let ignore_null_values = boolean("ignoreNullValues", true);
        let unsafe_ssl = boolean("unsafeSsl", false);

        let mut map = |key: &str| match get(metadata, key) {
            None => BTreeMap::new(),
            Some(v) => go::parse_map(v).unwrap_or_else(|e| {
                errors.push(FieldError::new(field(key), e));
                BTreeMap::new()
            }),
        };
        let custom_headers = map("customHeaders");
        let query_parameters = map("queryParameters");

        let timeout = match get(metadata, "timeout") {
            None => None,
            Some(v) => match go::parse_duration_or_millis(v) {
                Ok(d) if d.is_zero() => None,
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(FieldError::new(field("timeout"), e));
                    None
                }
            },
        };

        let identity_owner = match get(metadata, "identityOwner") {
            None => None,
            Some("pod") => Some(IdentityOwner::Pod),
            Some("operator") => Some(IdentityOwner::Operator),
            Some("workload") => Some(IdentityOwner::Workload),
            Some(other) => {
                errors.push(FieldError::new(
                    field("identityOwner"),
                    format!("{other:?} is not pod, operator or workload; use operator to sign with the metrics-fetcher's own AWS identity (IRSA), workload to assume the role of the scale target's ServiceAccount (its eks.amazonaws.com/role-arn annotation), or pod to use the credentials of the authenticationRef"),
                ));
                None
            }
        };

        let auth_key = if get(metadata, "authModes").is_some() {
            "authModes"
        } else {
            "authMode"
        };
        let auth_modes = match get(metadata, auth_key) {
            None => Vec::new(),
            Some(v) => parse_auth_modes(v).unwrap_or_else(|e| {
                errors.push(FieldError::new(field(auth_key), e));
                Vec::new()
            }),
        };

        for key in metadata.keys() {
            if let Some(base) = key.strip_suffix("FromEnv") {
                errors.push(FieldError::new(
                    field(key),
                    format!("reads the workload's container environment, which promscaler does not do; put the value of {base} in a Secret and reference it from a PromScalerAuthentication secretTargetRef (or set {base} directly)"),
                ));
            }
        }

        if errors.is_empty() {
            Ok(Self {
                server_address: server_address.unwrap_or_default(),
                query: query.unwrap_or_default(),
                threshold,
                activation_threshold,
                namespace: get(metadata, "namespace").map(str::to_owned),
                custom_headers,
                query_parameters,
                ignore_null_values,
                unsafe_ssl,
                timeout,
                aws_region: get(metadata, "awsRegion").map(str::to_owned),
                identity_owner,
                auth_modes,
            })
        } else {
            Err(errors)
        }
    }

    /// Keys KEDA would ignore (it logs "Unmatched input property"), each with what to do.
    /// These never change behaviour, so they are warnings, not errors.
    pub fn warnings(metadata: &BTreeMap<String, String>, path: &str) -> Vec<FieldError> {
        metadata
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()) && !k.ends_with("FromEnv"))
            .map(|k| {
                let message = match k.as_str() {
                    "metricName" => "is ignored (deprecated since KEDA 2.10); remove it".to_owned(),
                    "cortexOrgID" => "is ignored (removed from KEDA); use customHeaders: X-Scope-OrgID=<org id>".to_owned(),
                    k if AUTH_ONLY_KEYS.contains(&k) || k == "awsAccessKeyID" => {
                        "is ignored in trigger metadata; put it in a Secret referenced by a PromScalerAuthentication secretTargetRef".to_owned()
                    }
                    _ => "is not a prometheus trigger parameter and is ignored".to_owned(),
                };
                FieldError::new(format!("{path}.{k}"), message)
            })
            .collect()
    }
}

/// KEDA `authModes`: comma-separated, each one of apiKey, basic, tls, bearer, custom, oauth,
/// at most one of bearer/basic/oauth. promscaler supports bearer, basic, tls and custom.
pub(crate) fn parse_auth_modes(v: &str) -> Result<Vec<AuthMode>, String> {
    let mut modes = Vec::new();
    for m in v.split(',').map(str::trim) {
        let mode = match m {
            "bearer" => AuthMode::Bearer,
            "basic" => AuthMode::Basic,
            "tls" => AuthMode::Tls,
            "custom" => AuthMode::Custom,
            "apiKey" | "oauth" => {
                return Err(format!(
                    "{m} is not supported by promscaler for Prometheus servers; use bearer, basic, tls or custom"
                ));
            }
            other => {
                return Err(format!(
                    "{other:?} is not an auth mode; use bearer, basic, tls or custom (comma-separated)"
                ));
            }
        };
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    modes.sort();
    if modes.contains(&AuthMode::Bearer) && modes.contains(&AuthMode::Basic) {
        return Err(format!(
            "{v:?} combines bearer and basic; KEDA allows only one of them"
        ));
    }
    if modes.contains(&AuthMode::Basic) && modes.len() > 1 {
        return Err(format!(
            "{v:?} combines basic with another mode, which promscaler cannot send together; use basic alone"
        ));
    }
    if modes.contains(&AuthMode::Bearer) && modes.contains(&AuthMode::Custom) {
        return Err(format!(
            "{v:?} combines bearer and custom; KEDA sends only the bearer token then, so remove custom (or bearer)"
        ));
    }
    Ok(modes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metadata from `key=value` pairs.
    fn md(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A well-formed trigger, plus `extra` (which may override).
    fn valid_with(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut m = md(&[
            ("serverAddress", "http://localhost:9090"),
            ("threshold", "100"),
            ("query", "up"),
        ]);
        m.extend(md(extra));
        m
    }

    fn parse(m: &BTreeMap<String, String>) -> Result<PrometheusTrigger, Vec<FieldError>> {
        PrometheusTrigger::parse(m, "metadata")
    }

    /// What, extra metadata, whether KEDA accepts it.
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

    /// KEDA's own table (`testPromMetadata` in prometheus_scaler_test.go): which metadata parse.
    #[test]
    fn accepts_and_rejects_what_kedas_prometheus_scaler_does() {
        let table: &[Case<'_>] = &[
            (
                "all properly formed, with deprecated metricName",
                &[("metricName", "http_requests_total")],
                true,
            ),
            ("with namespace", &[("namespace", "foo")], true),
            (
                "ignoreNullValues false",
                &[("ignoreNullValues", "false")],
                true,
            ),
            (
                "activationThreshold",
                &[("activationThreshold", "50")],
                true,
            ),
            (
                "empty serverAddress is missing",
                &[("serverAddress", "")],
                false,
            ),
            ("malformed threshold", &[("threshold", "one")], false),
            (
                "malformed activationThreshold",
                &[("activationThreshold", "one")],
                false,
            ),
            ("empty query is missing", &[("query", "")], false),
            (
                "ignoreNullValues not a boolean",
                &[("ignoreNullValues", "xxxx")],
                false,
            ),
            ("unsafeSsl", &[("unsafeSsl", "true")], true),
            (
                "customHeaders",
                &[("customHeaders", "key1=value1,key2=value2")],
                true,
            ),
            (
                "customHeaders wrong format",
                &[("customHeaders", "key1=value1,key2")],
                false,
            ),
            (
                "queryParameters",
                &[("queryParameters", "key1=value1,key2=value2")],
                true,
            ),
            (
                "queryParameters wrong format",
                &[("queryParameters", "key1=value1,key2")],
                false,
            ),
            ("timeout in milliseconds", &[("timeout", "1000")], true),
            ("negative timeout", &[("timeout", "-1")], false),
            ("timeout not a number", &[("timeout", "a")], false),
            ("authModes tls", &[("authModes", "tls")], true),
            (
                "authModes tls, basic",
                &[("authModes", "tls, basic")],
                false,
            ),
            (
                "authModes bearer,basic",
                &[("authModes", "bearer,basic")],
                false,
            ),
            ("authModes oauth", &[("authModes", "oauth")], false),
        ];
        for (what, extra, ok) in table {
            assert_eq!(parse(&valid_with(extra)).is_ok(), *ok, "{what}");
        }
        assert!(parse(&md(&[])).is_err(), "empty metadata");
    }

    #[test]
    fn defaults_are_kedas() {
        assert_eq!(
            parse(&valid_with(&[])).unwrap(),
            PrometheusTrigger {
                server_address: "http://localhost:9090".into(),
                query: "up".into(),
                threshold: 100.0,
                activation_threshold: 0.0,
                namespace: None,
                custom_headers: BTreeMap::new(),
                query_parameters: BTreeMap::new(),
                ignore_null_values: true,
                unsafe_ssl: false,
                timeout: None,
                aws_region: None,
                identity_owner: None,
                auth_modes: vec![],
            }
        );
    }

    #[test]
    fn every_field_is_parsed_and_values_are_trimmed() {
        let t = parse(&md(&[
            (
                "serverAddress",
                " https://aps-workspaces.ap-northeast-2.amazonaws.com/workspaces/ws-1 ",
            ),
            ("query", "sum(up)"),
            ("threshold", "100.50"),
            ("activationThreshold", "5.5"),
            ("namespace", "team"),
            ("customHeaders", "X-Scope-OrgID=acme"),
            ("queryParameters", "dedup=true"),
            ("ignoreNullValues", "F"),
            ("unsafeSsl", "1"),
            ("timeout", "2s"),
            ("awsRegion", "ap-northeast-2"),
            ("identityOwner", "operator"),
            ("authMode", "custom,tls"),
        ]))
        .unwrap();
        assert_eq!(
            t,
            PrometheusTrigger {
                server_address:
                    "https://aps-workspaces.ap-northeast-2.amazonaws.com/workspaces/ws-1".into(),
                query: "sum(up)".into(),
                threshold: 100.5,
                activation_threshold: 5.5,
                namespace: Some("team".into()),
                custom_headers: [("X-Scope-OrgID".to_owned(), "acme".to_owned())].into(),
                query_parameters: [("dedup".to_owned(), "true".to_owned())].into(),
                ignore_null_values: false,
                unsafe_ssl: true,
                timeout: Some(Duration::from_secs(2)),
                aws_region: Some("ap-northeast-2".into()),
                identity_owner: Some(IdentityOwner::Operator),
                auth_modes: vec![AuthMode::Tls, AuthMode::Custom],
            }
        );
    }

    #[test]
    fn timeout_zero_means_the_default() {
        assert_eq!(
            parse(&valid_with(&[("timeout", "0")])).unwrap().timeout,
            None
        );
    }

    #[test]
    fn every_bad_field_gets_its_own_error_naming_it() {
        let errors = parse(&md(&[
            ("serverAddress", "prometheus:9090"),
            ("threshold", "50m"),
            ("activationThreshold", "+1"),
            ("ignoreNullValues", "yes"),
            ("unsafeSsl", "on"),
            ("customHeaders", "a"),
            ("queryParameters", "=x"),
            ("timeout", "3 seconds"),
            ("identityOwner", "keda"),
            ("authModes", "apiKey"),
            ("bearerTokenFromEnv", "TOKEN"),
        ]))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.query",
                "metadata.serverAddress",
                "metadata.threshold",
                "metadata.activationThreshold",
                "metadata.ignoreNullValues",
                "metadata.unsafeSsl",
                "metadata.customHeaders",
                "metadata.queryParameters",
                "metadata.timeout",
                "metadata.identityOwner",
                "metadata.authModes",
                "metadata.bearerTokenFromEnv",
            ],
            "{errors:#?}"
        );
        assert!(errors[0].message.contains("is required"));
    }

    #[test]
    fn threshold_must_be_at_least_a_thousandth() {
        for raw in ["0", "-5", "0.0004"] {
            let errors = parse(&valid_with(&[("threshold", raw)])).unwrap_err();
            assert_eq!(errors.len(), 1, "{raw}");
            assert_eq!(errors[0].field, "metadata.threshold");
            assert!(errors[0].message.contains("at least 0.001"), "{raw}");
        }
        assert!(parse(&valid_with(&[("threshold", "0.001")])).is_ok());
    }

    #[test]
    fn keys_keda_ignores_are_warnings_with_advice() {
        let warnings = PrometheusTrigger::warnings(
            &valid_with(&[
                ("metricName", "x"),
                ("cortexOrgID", "acme"),
                ("bearerToken", "t"),
                ("typo", "1"),
            ]),
            "metadata",
        );
        let got: Vec<(&str, bool)> = warnings
            .iter()
            .map(|w| (w.field.as_str(), w.message.contains("ignored")))
            .collect();
        assert_eq!(
            got,
            [
                ("metadata.bearerToken", true),
                ("metadata.cortexOrgID", true),
                ("metadata.metricName", true),
                ("metadata.typo", true),
            ]
        );
        assert!(warnings[1].message.contains("X-Scope-OrgID"));
    }
}
