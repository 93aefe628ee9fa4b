//! A throwaway PKI for gRPC TLS tests: a CA, a server certificate for `localhost` and
//! `127.0.0.1` (what the services listen on in tests), the actuator's client certificate (SAN
//! [`ACTUATOR_IDENTITY`]) and an intruder's (same CA, SAN [`INTRUDER_IDENTITY`]), all signed by
//! the CA and written as PEM files the way cert-manager writes a `kubernetes.io/tls` Secret.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

/// The SAN of the actuator's client certificate (`client.crt`), what the services pin with
/// `--allowed-client-identities`.
pub const ACTUATOR_IDENTITY: &str = "promscaler-actuator";
/// The SAN of `intruder.crt`: signed by the same CA, but not the actuator.
pub const INTRUDER_IDENTITY: &str = "promscaler-intruder";

/// The files, deleted on drop.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Generates the CA and both certificates.
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("promscaler-pki-")
            .tempdir()?;
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "promscaler test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        std::fs::write(dir.path().join("ca.crt"), ca.pem())?;

        let leaf = |name: &str, sans: &[&str], usage: ExtendedKeyUsagePurpose| -> Result<()> {
            let key = KeyPair::generate()?;
            let mut params =
                CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer)?;
            std::fs::write(dir.path().join(format!("{name}.crt")), cert.pem())?;
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem())?;
            Ok(())
        };
        leaf(
            "server",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        leaf(
            "client",
            &[ACTUATOR_IDENTITY],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        leaf(
            "intruder",
            &[INTRUDER_IDENTITY],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        Ok(Self { dir })
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The CA certificate file.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.crt")
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Server flags: TLS with the server certificate, client certificates required.
    pub fn server_args(&self) -> Vec<String> {
        self.args(&[
            ("--grpc-tls-cert", "server.crt"),
            ("--grpc-tls-key", "server.key"),
            ("--grpc-tls-client-ca", "ca.crt"),
        ])
    }

    /// Client flags: verify servers against the CA, present the client certificate.
    pub fn peer_args(&self) -> Vec<String> {
        self.args(&[
            ("--peer-tls-ca", "ca.crt"),
            ("--peer-tls-cert", "client.crt"),
            ("--peer-tls-key", "client.key"),
        ])
    }

    fn args(&self, pairs: &[(&str, &str)]) -> Vec<String> {
        pairs
            .iter()
            .flat_map(|(flag, file)| [(*flag).to_owned(), self.path(file).display().to_string()])
            .collect()
    }

    /// Client TLS settings for a test's own connections; `with_identity` = present the client
    /// certificate.
    pub fn client_tls(&self, with_identity: bool) -> Result<tonic::transport::ClientTlsConfig> {
        self.client_tls_as(with_identity.then_some("client"))
    }

    /// Client TLS settings presenting the certificate `name` (`client` = the actuator's,
    /// `intruder`), or none.
    pub fn client_tls_as(&self, name: Option<&str>) -> Result<tonic::transport::ClientTlsConfig> {
        let mut config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(
                self.ca(),
            )?))
            .domain_name("localhost");
        if let Some(name) = name {
            config = config.identity(tonic::transport::Identity::from_pem(
                std::fs::read(self.path(&format!("{name}.crt")))?,
                std::fs::read(self.path(&format!("{name}.key")))?,
            ));
        }
        Ok(config)
    }
}
