//! The fetcher's domain: where to query ([`Source`]), how to authenticate ([`Auth`]) and what to
//! ask ([`InstantQuery`], [`RangeQuery`]). Built from the wire types in `grpc.rs` only.
//!
//! Secrets are held in [`Secret`], whose `Debug` never prints them, and enter cache keys only
//! through [`Source::fingerprint`] (a SHA-256 digest).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use url::Url;

/// KEDA's default per-request timeout for the prometheus scaler.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// A secret string (token, password, key). `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is sent upstream or hashed.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A Prometheus-compatible server and how to talk to it.
#[derive(Debug, Clone)]
pub struct Source {
    /// Base URL without a trailing slash; `/api/v1/query` is appended.
    pub base: Url,
    /// `host[:port]` of `base`, for logs, metrics, policy and errors.
    pub host: String,
    /// Extra headers, sorted by name (e.g. `X-Scope-OrgID`).
    pub custom_headers: Vec<(HeaderName, HeaderValue)>,
    /// Extra query parameters, sorted.
    pub query_parameters: Vec<(String, String)>,
    /// Thanos/Cortex `namespace` parameter.
    pub namespace: Option<String>,
    /// Skip TLS verification (only when the user asked for it).
    pub unsafe_ssl: bool,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Upstream authentication.
    pub auth: Auth,
}

/// How to authenticate upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Auth {
    /// No authentication.
    None,
    /// AWS SigV4 (Amazon Managed Prometheus).
    Aws(AwsAuth),
    /// A header carrying a secret: bearer token, basic credentials or a custom auth header.
    Header(HeaderAuth),
    /// A TLS client certificate and/or a custom CA, optionally with a header.
    Tls(TlsAuth),
}

/// SigV4 signing settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AwsAuth {
    /// Signing region; `None` = from the host, else the environment.
    pub region: Option<String>,
    /// Role to assume on top of the base identity.
    pub role_arn: Option<String>,
    /// With `role_arn`: the PromScaler's namespace, sent as the STS session tag
    /// [`crate::aws::NAMESPACE_TAG`] (set from the request's caller, see
    /// [`Source::tag_session`]).
    pub session_namespace: Option<String>,
    /// Static keys; `None` = the fetcher's own identity (default chain).
    pub static_keys: Option<StaticKeys>,
    /// Signing service, `aps` by default.
    pub service: String,
}

/// Static AWS keys given by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StaticKeys {
    /// Access key id (not secret: it appears in signatures and is used to name the identity).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token for temporary keys.
    pub session_token: Option<Secret>,
}

/// A header that carries a credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderAuth {
    /// Header name, `Authorization` unless a custom auth header was asked for.
    pub name: HeaderName,
    /// Full header value, e.g. `Bearer <token>`.
    pub value: Secret,
}

/// TLS material, PEM-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsAuth {
    /// Client certificate chain; `None` = no client certificate.
    pub client_cert: Option<ClientCert>,
    /// Extra trusted CA certificates.
    pub ca_pem: Option<String>,
    /// Header sent along (bearer token with mTLS).
    pub header: Option<HeaderAuth>,
}

/// A client certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientCert {
    /// Certificate chain, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: Secret,
}

/// The TLS settings that select a distinct HTTP client (one client, and one connection pool, per
/// distinct value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TlsSettings {
    /// Skip verification.
    pub unsafe_ssl: bool,
    /// Extra CA.
    pub ca_pem: Option<String>,
    /// Client certificate.
    pub client_cert: Option<ClientCert>,
}

impl TlsSettings {
    /// A digest naming these settings without holding the key in clear.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update([u8::from(self.unsafe_ssl)]);
        feed(&mut h, self.ca_pem.as_deref().unwrap_or(""));
        if let Some(c) = &self.client_cert {
            feed(&mut h, &c.cert_pem);
            feed(&mut h, c.key_pem.expose());
        }
        h.finalize().into()
    }
}

impl Source {
    /// Parses and validates a server address; rejects credentials in the URL (they would end up
    /// in logs and errors: put them in `auth`).
    pub fn parse_base(server_address: &str) -> Result<(Url, String), crate::Error> {
        let field = "source.server_address";
        let trimmed = server_address.trim();
        if trimmed.is_empty() {
            return Err(crate::Error::invalid(
                field,
                "empty; give the server's base URL",
            ));
        }
        let mut url = Url::parse(trimmed).map_err(|e| {
            crate::Error::invalid(
                field,
                format!("not a URL ({e}); e.g. http://prometheus:9090"),
            )
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(crate::Error::invalid(
                field,
                format!("scheme {:?} is not http or https", url.scheme()),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(crate::Error::invalid(
                field,
                "credentials in the URL are not accepted; use basic auth instead",
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(crate::Error::invalid(field, "the URL has no host"));
        };
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        url.set_query(None);
        url.set_fragment(None);
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&path);
        Ok((url, host))
    }

    /// Records the caller's namespace for the STS session a role ARN is assumed in (its
    /// session tag). A namespace that is not a Kubernetes name cannot be a tag and is refused.
    pub fn tag_session(&mut self, namespace: &str) -> Result<(), crate::Error> {
        let Auth::Aws(aws) = &mut self.auth else {
            return Ok(());
        };
        if aws.role_arn.is_none() || namespace.is_empty() {
            return Ok(());
        }
        let valid = namespace.len() <= 63
            && namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(crate::Error::invalid(
                "caller.namespace",
                format!(
                    "{:?} is not a Kubernetes namespace name",
                    crate::error::quote(namespace, 64)
                ),
            ));
        }
        aws.session_namespace = Some(namespace.to_owned());
        Ok(())
    }

    /// The host name without a port, lower-cased.
    pub fn host_name(&self) -> &str {
        self.base.host_str().unwrap_or_default()
    }

    /// The TLS settings of this source.
    pub fn tls_settings(&self) -> TlsSettings {
        match &self.auth {
            Auth::Tls(tls) => TlsSettings {
                unsafe_ssl: self.unsafe_ssl,
                ca_pem: tls.ca_pem.clone(),
                client_cert: tls.client_cert.clone(),
            },
            Auth::None | Auth::Aws(_) | Auth::Header(_) => TlsSettings {
                unsafe_ssl: self.unsafe_ssl,
                ..TlsSettings::default()
            },
        }
    }

    /// Feeds everything that makes two upstream requests identical into `h`: server, headers,
    /// parameters, TLS and auth identity (secrets included, so different tokens never share a
    /// result, but only ever as part of a digest).
    pub fn fingerprint(&self, h: &mut Sha256) {
        feed(h, self.base.as_str());
        for (k, v) in &self.custom_headers {
            feed(h, k.as_str());
            h.update(v.as_bytes());
            h.update([0]);
        }
        for (k, v) in &self.query_parameters {
            feed(h, k);
            feed(h, v);
        }
        feed(h, self.namespace.as_deref().unwrap_or(""));
        h.update(self.tls_settings().fingerprint());
        match &self.auth {
            Auth::None => feed(h, "none"),
            Auth::Aws(aws) => {
                feed(h, "aws");
                feed(h, aws.region.as_deref().unwrap_or(""));
                feed(h, aws.role_arn.as_deref().unwrap_or(""));
                // Each namespace signs with its own tagged session, never another's.
                feed(h, aws.session_namespace.as_deref().unwrap_or(""));
                feed(h, &aws.service);
                if let Some(k) = &aws.static_keys {
                    feed(h, &k.access_key_id);
                    feed(h, k.secret_access_key.expose());
                    feed(h, k.session_token.as_ref().map_or("", Secret::expose));
                }
            }
            Auth::Header(a) => feed_header(h, a),
            Auth::Tls(t) => {
                feed(h, "tls");
                if let Some(a) = &t.header {
                    feed_header(h, a);
                }
            }
        }
    }
}

fn feed_header(h: &mut Sha256, a: &HeaderAuth) {
    feed(h, "header");
    feed(h, a.name.as_str());
    feed(h, a.value.expose());
}

/// Length-prefixed so that ("ab","c") and ("a","bc") differ.
fn feed(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}

/// Who asks: the PromScaler's namespace and name (policy, logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// Namespace; empty when unknown.
    pub namespace: String,
    /// Name; empty when unknown.
    pub name: String,
}

/// One instant query.
#[derive(Debug, Clone)]
pub struct InstantQuery {
    /// Where.
    pub source: Arc<Source>,
    /// PromQL.
    pub query: String,
    /// Empty result or NaN/±Inf ⇒ 0.
    pub ignore_null_values: bool,
    /// Evaluation time; `None` = now.
    pub time: Option<SystemTime>,
    /// Who asks.
    pub caller: Caller,
    /// A cached result younger than this may be served; zero = always query.
    pub max_age: Duration,
}

/// One range query.
#[derive(Debug, Clone)]
pub struct RangeQuery {
    /// Where.
    pub source: Arc<Source>,
    /// PromQL.
    pub query: String,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Resolution (> 0).
    pub step: Duration,
    /// Who asks.
    pub caller: Caller,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_keeps_path_and_drops_trailing_slash() {
        let (url, host) = Source::parse_base(
            "https://aps-workspaces.ap-northeast-2.amazonaws.com/workspaces/ws-123/",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "https://aps-workspaces.ap-northeast-2.amazonaws.com/workspaces/ws-123"
        );
        assert_eq!(host, "aps-workspaces.ap-northeast-2.amazonaws.com");
        let (_, host) = Source::parse_base("http://127.0.0.1:9090").unwrap();
        assert_eq!(host, "127.0.0.1:9090");
    }

    #[test]
    fn credentials_in_url_are_rejected_without_echoing_them() {
        let err = Source::parse_base("http://user:hunter2@prom:9090").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(
            err.kind(),
            promscaler_proto::v1::QueryErrorKind::InvalidArgument
        );
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "<redacted>");
    }
}
