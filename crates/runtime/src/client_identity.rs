//! Pinning who may call a gRPC port (`--allowed-client-identities`).
//!
//! Mutual TLS (`--grpc-tls-client-ca`) proves that a client holds a certificate the CA signed;
//! with this list the server also requires that certificate to name one of the listed
//! identities in its subject alternative names: a DNS name (compared case-insensitively, e.g.
//! `promscaler-actuator.promscaler.svc`) or a URI (compared exactly, e.g.
//! `spiffe://cluster.local/ns/promscaler/sa/promscaler-actuator`). Any other client is answered
//! `PERMISSION_DENIED` naming the identities its certificate carries; a connection without a
//! client certificate is `UNAUTHENTICATED`. gRPC health checks (`grpc.health.v1.Health`) stay
//! open to every client the CA admits: they reveal nothing but whether the service is up.
//!
//! The metrics-fetcher trusts the caller a request names (`caller.namespace`) to apply its
//! per-namespace policy, so only the actuator may call it: pinning the actuator's identity
//! keeps a pod that merely holds another certificate of the same CA from claiming another
//! namespace.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use rustls::pki_types::CertificateDer;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// Path prefix of the RPCs every authenticated client may call.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// Checks one entry of `--allowed-client-identities`: a value with `:` (`spiffe://...`,
/// `https://...`) is a URI, anything else must be a DNS name (letters, digits, '-', '.').
pub fn parse_identity(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    if entry.contains(':') && !entry.contains(char::is_whitespace) {
        return Ok(entry.to_owned());
    }
    if entry.contains('*') {
        return Err(format!(
            "{entry:?}: wildcards are not accepted; list each client's exact DNS name or URI"
        ));
    }
    if entry
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Ok(entry.to_owned());
    }
    Err(format!(
        "{entry:?} is neither a DNS name nor a URI (e.g. promscaler-actuator.promscaler.svc or \
         spiffe://cluster.local/ns/promscaler/sa/promscaler-actuator)"
    ))
}

/// The identities allowed to call; empty = any client the CA admits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedClients {
    dns: Vec<String>,
    uris: Vec<String>,
}

/// What a client certificate names in its subject alternative names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresentedIdentities {
    /// DNS names.
    pub dns: Vec<String>,
    /// URIs.
    pub uris: Vec<String>,
}

impl PresentedIdentities {
    /// Reads the subject alternative names of a DER certificate; `None` when it does not parse.
    pub fn of(cert: &CertificateDer<'_>) -> Option<Self> {
        let cert = webpki::EndEntityCert::try_from(cert).ok()?;
        Some(Self {
            dns: cert.valid_dns_names().map(str::to_owned).collect(),
            uris: cert.valid_uri_names().map(str::to_owned).collect(),
        })
    }

    fn describe(&self) -> String {
        let mut names: Vec<String> = self.dns.iter().map(|d| format!("DNS:{d}")).collect();
        names.extend(self.uris.iter().map(|u| format!("URI:{u}")));
        if names.is_empty() {
            "no DNS or URI subject alternative name".to_owned()
        } else {
            let shown = names.len().min(8);
            let mut text = names[..shown].join(", ");
            if names.len() > shown {
                text.push_str(&format!(" and {} more", names.len() - shown));
            }
            text
        }
    }
}

impl AllowedClients {
    /// Parses the flag's entries (see [`parse_identity`]); errors name the bad entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let parsed = entries
            .iter()
            .map(|e| parse_identity(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_parsed(&parsed))
    }

    /// Builds the list from entries [`parse_identity`] accepted.
    pub fn from_parsed(entries: &[String]) -> Self {
        let mut allowed = Self::default();
        for entry in entries.iter().filter(|e| !e.is_empty()) {
            if entry.contains(':') {
                allowed.uris.push(entry.clone());
            } else {
                allowed.dns.push(entry.to_ascii_lowercase());
            }
        }
        allowed
    }

    /// True when no identity is listed (any client the CA admits may call).
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.uris.is_empty()
    }

    /// Whether `presented` names a listed identity.
    pub fn admits(&self, presented: &PresentedIdentities) -> bool {
        presented
            .dns
            .iter()
            .any(|d| self.dns.iter().any(|a| a.eq_ignore_ascii_case(d)))
            || presented.uris.iter().any(|u| self.uris.contains(u))
    }

    /// Checks the client's certificate chain (end entity first), as the TLS layer verified it.
    pub fn check(&self, chain: Option<&[CertificateDer<'static>]>) -> Result<(), tonic::Status> {
        if self.is_empty() {
            return Ok(());
        }
        let Some(leaf) = chain.and_then(<[_]>::first) else {
            return Err(tonic::Status::unauthenticated(
                "this gRPC port requires a client certificate (mutual TLS): present the \
                 certificate of a client listed in the server's --allowed-client-identities",
            ));
        };
        let Some(presented) = PresentedIdentities::of(leaf) else {
            return Err(tonic::Status::unauthenticated(
                "the client certificate cannot be read",
            ));
        };
        if self.admits(&presented) {
            return Ok(());
        }
        Err(tonic::Status::permission_denied(format!(
            "this client is not allowed to call this service: its certificate names {}, none of \
             which is in the server's --allowed-client-identities; only the listed clients (the \
             actuator) may call it — use that client, or ask the operator to list this \
             certificate's identity",
            presented.describe()
        )))
    }
}

/// Refuses RPCs from clients [`AllowedClients`] does not admit; a no-op without a list.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentityLayer {
    allowed: Option<Arc<AllowedClients>>,
}

impl ClientIdentityLayer {
    /// A layer enforcing `allowed` (nothing when it is empty).
    pub fn new(allowed: AllowedClients) -> Self {
        Self {
            allowed: (!allowed.is_empty()).then(|| Arc::new(allowed)),
        }
    }
}

impl<S> tower::Layer<S> for ClientIdentityLayer {
    type Service = ClientIdentity<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientIdentity {
            inner,
            allowed: self.allowed.clone(),
        }
    }
}

/// The service produced by [`ClientIdentityLayer`].
#[derive(Debug, Clone)]
pub struct ClientIdentity<S> {
    inner: S,
    allowed: Option<Arc<AllowedClients>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for ClientIdentity<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(allowed) = &self.allowed
            && !request.uri().path().starts_with(HEALTH_PREFIX)
        {
            let certs = request
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(TlsConnectInfo::peer_certs);
            if let Err(status) = allowed.check(certs.as_deref().map(Vec::as_slice)) {
                tracing::warn!(
                    rpc = %request.uri().path(),
                    code = ?status.code(),
                    error = %status.message(),
                    "gRPC call refused: client identity not allowed"
                );
                return Either::Left(ready(Ok(status.into_http())));
            }
        }
        Either::Right(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(dns: &[&str], uris: &[&str]) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        for uri in uris {
            params.subject_alt_names.push(rcgen::SanType::URI(
                rcgen::string::Ia5String::try_from(*uri).unwrap(),
            ));
        }
        params.self_signed(&key).unwrap().der().clone()
    }

    fn allowed(entries: &[&str]) -> AllowedClients {
        AllowedClients::parse(&entries.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_listed_dns_name_or_uri_is_admitted_and_nothing_else() {
        let list = allowed(&[
            "Promscaler-Actuator.promscaler.svc",
            "spiffe://cluster.local/ns/promscaler/sa/promscaler-actuator",
        ]);
        let actuator = cert(
            &["promscaler-actuator", "promscaler-actuator.promscaler.svc"],
            &[],
        );
        assert!(list.check(Some(&[actuator])).is_ok());
        let by_uri = cert(
            &[],
            &["spiffe://cluster.local/ns/promscaler/sa/promscaler-actuator"],
        );
        assert!(list.check(Some(&[by_uri])).is_ok());

        // Same CA, another component's name: refused, and the message says which names it had.
        let fetcher = cert(&["promscaler-metrics-fetcher.promscaler.svc"], &[]);
        let status = list.check(Some(&[fetcher])).unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
        assert!(
            status
                .message()
                .contains("DNS:promscaler-metrics-fetcher.promscaler.svc"),
            "{status:?}"
        );
        assert!(
            status.message().contains("--allowed-client-identities"),
            "{status:?}"
        );
        // A URI differing in case or a suffix match is not the identity.
        let near = cert(
            &["evil-promscaler-actuator.promscaler.svc"],
            &["spiffe://cluster.local/ns/promscaler/sa/PROMSCALER-actuator"],
        );
        assert!(list.check(Some(&[near])).is_err());
    }

    #[test]
    fn no_client_certificate_is_unauthenticated_and_an_empty_list_admits_everyone() {
        let list = allowed(&["promscaler-actuator"]);
        assert_eq!(
            list.check(None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(AllowedClients::default().check(None).is_ok());
    }

    #[test]
    fn entries_that_are_neither_names_nor_uris_are_refused() {
        for bad in ["*.promscaler.svc", "actuator pod", "a/b"] {
            let err = AllowedClients::parse(&[bad.to_owned()]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
