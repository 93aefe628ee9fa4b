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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;
use crate::source::TlsSettings;

/// The HTTP client type used upstream.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Distinct TLS configurations kept at once; past this the cache starts over (a caller cycling
/// through certificates must not grow memory without bound).
const MAX_CLIENTS: usize = 256;

/// Idle keep-alive connections are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Clients by TLS settings digest.
#[derive(Default)]
pub struct ClientCache {
    clients: Mutex<HashMap<[u8; 32], HttpClient>>,
}

impl ClientCache {
    /// The client for `tls`, built on first use.
    pub fn client(&self, tls: &TlsSettings) -> Result<HttpClient, Error> {
        let key = tls.fingerprint();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = build_client(tls)?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
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

fn build_client(tls: &TlsSettings) -> Result<HttpClient, Error> {
    let config = tls_config(tls)?;
    let mut http = HttpConnector::new();
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
    use crate::source::{ClientCert, Secret};

    const CA: &str = include_str!("../testdata/ca.pem");
    const CLIENT_CERT: &str = include_str!("../testdata/client.pem");
    const CLIENT_KEY: &str = include_str!("../testdata/client.key");

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
