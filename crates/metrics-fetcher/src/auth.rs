//! TLS and HTTP clients per upstream TLS configuration.
//!
//! One hyper client (and so one keep-alive pool) per distinct [`TlsSettings`]: the default
//! (webpki roots), a custom CA, a client certificate, or `unsafe_ssl`. Clients are cached by a
//! digest of the settings, so private keys are never kept as map keys in clear. Header-based
//! auth (bearer, basic, custom header) is applied per request in `prometheus::build_request`.
//!
//! `unsafe_ssl` disables certificate verification only for sources that ask for it; handshake
//! signatures are still checked so the connection is at least a well-formed TLS session.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;
use crate::source::TlsSettings;

/// The HTTP client type used upstream.
pub type HttpClient = Client<HttpsConnector<HttpConnector<CheckedResolver>>, Full<Bytes>>;

/// Whether `ip` is link-local (169.254.0.0/16, fe80::/10) or a cloud metadata address
/// (169.254.169.254, AWS' IPv6 fd00:ec2::254), IPv4-mapped forms included: where instance
/// credentials live, never a Prometheus.
pub fn is_link_local_or_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.is_link_local();
            }
            let fe80 = (v6.segments()[0] & 0xffc0) == 0xfe80;
            fe80 || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
        }
    }
}

/// A connection refused because of the address a name resolved to.
#[derive(Debug, thiserror::Error)]
#[error(
    "{name} resolves to {ip}, a link-local or cloud metadata address; the fetcher refuses those \
     unless started with --allow-link-local"
)]
pub struct RefusedAddress {
    /// The host name.
    pub name: String,
    /// The first refused address.
    pub ip: IpAddr,
}

/// The addresses of `name` the fetcher may connect to; an error when every one is refused.
pub fn check_resolved(
    name: &str,
    addrs: Vec<SocketAddr>,
    allow_link_local: bool,
) -> Result<Vec<SocketAddr>, RefusedAddress> {
    if allow_link_local {
        return Ok(addrs);
    }
    let first_refused = addrs
        .iter()
        .map(SocketAddr::ip)
        .find(|ip| is_link_local_or_metadata(*ip));
    let kept: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|a| !is_link_local_or_metadata(a.ip()))
        .collect();
    match first_refused {
        Some(ip) if kept.is_empty() => Err(RefusedAddress {
            name: name.to_owned(),
            ip,
        }),
        _ => Ok(kept),
    }
}

/// The system resolver, with the resolved addresses checked by [`check_resolved`]: an allowed
/// name (or one a tenant controls in DNS) cannot point the fetcher at the metadata service.
/// IP literals do not go through a resolver; the policy checks those
/// (`crate::policy::Policy::check`).
#[derive(Clone)]
pub struct CheckedResolver {
    inner: GaiResolver,
    allow_link_local: bool,
}

impl tower::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow_link_local;
        let resolving = self.inner.call(name.clone());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = resolving.await?.collect();
            Ok(check_resolved(name.as_str(), addrs, allow)?.into_iter())
        })
    }
}

/// Distinct TLS configurations kept at once; past this the cache starts over (a caller cycling
/// through certificates must not grow memory without bound).
const MAX_CLIENTS: usize = 256;

/// Idle keep-alive connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Clients by TLS settings digest.
#[derive(Default)]
pub struct ClientCache {
    /// `--allow-link-local`.
    allow_link_local: bool,
    /// Clients and when they were last used (see [`Self::prune_idle`]).
    clients: Mutex<HashMap<[u8; 32], (HttpClient, tokio::time::Instant)>>,
}

impl ClientCache {
    /// A cache whose clients refuse link-local and metadata addresses unless
    /// `allow_link_local`.
    pub fn new(allow_link_local: bool) -> Self {
        Self {
            allow_link_local,
            clients: Mutex::default(),
        }
    }

    /// The client for `tls`, built on first use.
    pub fn client(&self, tls: &TlsSettings) -> Result<HttpClient, Error> {
        let key = tls.fingerprint();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, used)) = clients.get_mut(&key) {
            *used = tokio::time::Instant::now();
            return Ok(c.clone());
        }
        let client = build_client(tls, self.allow_link_local)?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, (client.clone(), tokio::time::Instant::now()));
        Ok(client)
    }

    /// Drops clients (and their connection pools) no request used for `idle`.
    pub fn prune_idle(&self, idle: Duration) {
        let now = tokio::time::Instant::now();
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (_, used)| now.duration_since(*used) < idle);
    }

    /// Number of distinct clients (tests).
    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no client was built yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn build_client(tls: &TlsSettings, allow_link_local: bool) -> Result<HttpClient, Error> {
    let config = tls_config(tls)?;
    let mut http = HttpConnector::new_with_resolver(CheckedResolver {
        inner: GaiResolver::new(),
        allow_link_local,
    });
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        // ALPN offers h2 then http/1.1: HTTP/2 where the server offers it.
        .enable_all_versions()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(32)
        .build(connector))
}

/// Builds the rustls configuration for `tls` with the ring provider.
pub fn tls_config(tls: &TlsSettings) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS versions: {e}")))?;
    let builder = if tls.unsafe_ssl {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &tls.ca_pem {
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                let cert = cert.map_err(|e| {
                    Error::invalid(
                        "source.auth.tls.ca_pem",
                        format!("not PEM certificates: {e}"),
                    )
                })?;
                roots.add(cert).map_err(|e| {
                    Error::invalid("source.auth.tls.ca_pem", format!("unusable CA: {e}"))
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(Error::invalid(
                    "source.auth.tls.ca_pem",
                    "holds no PEM certificate",
                ));
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some(cc) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cc.cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| {
                        Error::invalid("source.auth.tls.cert_pem", format!("not PEM: {e}"))
                    })?;
            if certs.is_empty() {
                return Err(Error::invalid(
                    "source.auth.tls.cert_pem",
                    "holds no PEM certificate",
                ));
            }
            // The key's parse error is not echoed: it could quote key material.
            let key = PrivateKeyDer::from_pem_slice(cc.key_pem.expose().as_bytes())
                .map_err(|_| Error::invalid("source.auth.tls.key_pem", "not a PEM private key"))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                Error::invalid(
                    "source.auth.tls",
                    format!("certificate and key do not form a usable pair: {e}"),
                )
            })?
        }
    };
    Ok(config)
}

/// Accepts any server certificate (`unsafe_ssl`), still verifying handshake signatures.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_metadata_addresses_are_refused_unless_allowed() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        let err =
            check_resolved("evil.example", vec![addr("169.254.169.254:80")], false).unwrap_err();
        assert!(err.to_string().contains("--allow-link-local"), "{err}");
        assert!(check_resolved("x", vec![addr("[fd00:ec2::254]:80")], false).is_err());
        // Mixed answers keep only the usable addresses.
        let kept = check_resolved(
            "x",
            vec![addr("169.254.169.254:80"), addr("10.1.2.3:80")],
            false,
        )
        .unwrap();
        assert_eq!(kept, vec![addr("10.1.2.3:80")]);
        assert_eq!(
            check_resolved("x", vec![addr("169.254.169.254:80")], true).unwrap(),
            vec![addr("169.254.169.254:80")]
        );
    }
    use crate::source::{ClientCert, Secret};

    const CA: &str = include_str!("../testdata/ca.pem");
    const CLIENT_CERT: &str = include_str!("../testdata/client.pem");
    const CLIENT_KEY: &str = include_str!("../testdata/client.key");
    const SERVER_CERT: &str = include_str!("../testdata/server.pem");
    const SERVER_KEY: &str = include_str!("../testdata/server.key");

    #[test]
    fn one_client_per_distinct_tls_configuration() {
        let cache = ClientCache::default();
        let default = TlsSettings::default();
        let unsafe_ssl = TlsSettings {
            unsafe_ssl: true,
            ..TlsSettings::default()
        };
        let with_ca = TlsSettings {
            ca_pem: Some(CA.into()),
            ..TlsSettings::default()
        };
        for tls in [&default, &unsafe_ssl, &with_ca, &default, &with_ca] {
            cache.client(tls).unwrap();
        }
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn client_certificate_with_custom_ca_builds() {
        let tls = TlsSettings {
            unsafe_ssl: false,
            ca_pem: Some(CA.into()),
            client_cert: Some(ClientCert {
                cert_pem: CLIENT_CERT.into(),
                key_pem: Secret::new(CLIENT_KEY),
            }),
        };
        let config = tls_config(&tls).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn garbage_key_is_rejected_without_echoing_it() {
        let tls = TlsSettings {
            client_cert: Some(ClientCert {
                cert_pem: CLIENT_CERT.into(),
                key_pem: Secret::new(
                    "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
                ),
            }),
            ..TlsSettings::default()
        };
        let err = tls_config(&tls).unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0"), "{err}");
    }

    /// A TLS server on 127.0.0.1:0 (certificate for 127.0.0.1 from the test CA) answering one
    /// Prometheus response per request; optionally requiring a client certificate from that CA.
    async fn tls_server(
        require_client_cert: bool,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        use hyper_util::rt::{TokioExecutor, TokioIo};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(SERVER_CERT.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(CA.as_bytes()).unwrap())
                .unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(certs, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(
                        |req: http::Request<hyper::body::Incoming>| async move {
                            let body = format!(
                                r#"{{"status":"success","data":{{"resultType":"scalar","result":[1,"{}"]}}}}"#,
                                if req.version() == http::Version::HTTP_2 {
                                    2
                                } else {
                                    1
                                }
                            );
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (addr, task)
    }

    async fn get(tls: &TlsSettings, addr: std::net::SocketAddr) -> Result<String, String> {
        let client = ClientCache::default().client(tls).unwrap();
        let uri: http::Uri = format!("https://127.0.0.1:{}/api/v1/query?query=1", addr.port())
            .parse()
            .unwrap();
        let req = http::Request::get(uri)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| crate::error::error_chain(&e))?;
        use http_body_util::BodyExt as _;
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn custom_ca_is_trusted_and_http2_is_negotiated() {
        let (addr, _server) = tls_server(false).await;
        // webpki roots alone do not know the test CA.
        let err = get(&TlsSettings::default(), addr).await.unwrap_err();
        assert!(err.contains("certificate"), "{err}");
        let with_ca = TlsSettings {
            ca_pem: Some(CA.into()),
            ..TlsSettings::default()
        };
        let body = get(&with_ca, addr).await.unwrap();
        assert!(body.contains(r#""2"]"#), "ALPN should pick h2: {body}");
    }

    #[tokio::test]
    async fn unsafe_ssl_skips_verification_only_when_asked() {
        let (addr, _server) = tls_server(false).await;
        let unsafe_ssl = TlsSettings {
            unsafe_ssl: true,
            ..TlsSettings::default()
        };
        assert!(get(&unsafe_ssl, addr).await.is_ok());
        assert!(get(&TlsSettings::default(), addr).await.is_err());
    }

    #[tokio::test]
    async fn client_certificate_is_presented_to_servers_that_require_one() {
        let (addr, _server) = tls_server(true).await;
        let without = TlsSettings {
            ca_pem: Some(CA.into()),
            ..TlsSettings::default()
        };
        assert!(get(&without, addr).await.is_err());
        let with = TlsSettings {
            ca_pem: Some(CA.into()),
            client_cert: Some(ClientCert {
                cert_pem: CLIENT_CERT.into(),
                key_pem: Secret::new(CLIENT_KEY),
            }),
            unsafe_ssl: false,
        };
        assert!(get(&with, addr).await.is_ok());
    }

    #[test]
    fn ca_without_certificates_is_invalid() {
        let tls = TlsSettings {
            ca_pem: Some("not pem".into()),
            ..TlsSettings::default()
        };
        assert_eq!(
            tls_config(&tls).unwrap_err().kind(),
            promscaler_proto::v1::QueryErrorKind::InvalidArgument
        );
    }
}
