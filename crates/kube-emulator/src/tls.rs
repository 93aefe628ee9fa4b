//! HTTPS with a certificate generated at start: a throw-away CA (its PEM goes into the
//! kubeconfig as `certificate-authority-data`) and a server certificate for `localhost` and
//! `127.0.0.1` signed by it (rustls does not accept a CA certificate as the server's own).

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// The server's TLS acceptor and the CA that clients must trust.
pub(crate) struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    pub(crate) ca_pem: String,
}

fn tls_error(message: impl std::fmt::Display) -> Error {
    Error::Tls {
        message: message.to_string(),
    }
}

/// Generates the CA and the server certificate (ECDSA P-256) and builds the acceptor.
pub(crate) fn generate() -> Result<Tls, Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_error)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "promscaler-kube-emulator CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(tls_error)?)
        .map_err(tls_error)?;

    let key = KeyPair::generate().map_err(tls_error)?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(tls_error)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "promscaler-kube-emulator");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca).map_err(tls_error)?;

    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone(), ca.der().clone()];
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls_error)?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(tls_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca_pem: ca.pem(),
    })
}
