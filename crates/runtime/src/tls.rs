//! TLS on the gRPC connections between the services.
//!
//! Server side (every service, [`GrpcTlsArgs`]): with `--grpc-tls-cert` and `--grpc-tls-key` the
//! gRPC port speaks TLS only; with `--grpc-tls-client-ca` as well, every client must present a
//! certificate signed by that CA (mutual TLS). The admin port (probes, /metrics) stays plain HTTP.
//!
//! Client side (the actuator and `promscalerctl`, [`PeerTlsArgs`]): with `--peer-tls-ca`, `https://`
//! and `dns:///` addresses connect over TLS and verify the service's certificate against that CA,
//! for the address's host name (or `--peer-tls-server-name`); `--peer-tls-cert`/`--peer-tls-key`
//! present a client certificate to services that require one.
//!
//! Files are PEM (what cert-manager writes into a `kubernetes.io/tls` Secret: `tls.crt`,
//! `tls.key`, `ca.crt`). They are read once at start: after a certificate is renewed, restart the
//! pods (the chart's pods can be restarted by e.g. Reloader).

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::{Error, Result};

/// TLS of the gRPC server.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GrpcTlsArgs {
    /// PEM certificate chain the gRPC server presents; with --grpc-tls-key the gRPC port accepts
    /// TLS only.
    #[arg(long, env = "PROMSCALER_GRPC_TLS_CERT", requires = "grpc_tls_key")]
    pub grpc_tls_cert: Option<PathBuf>,

    /// PEM private key of --grpc-tls-cert.
    #[arg(long, env = "PROMSCALER_GRPC_TLS_KEY", requires = "grpc_tls_cert")]
    pub grpc_tls_key: Option<PathBuf>,

    /// PEM CA certificates: require every gRPC client to present a certificate they signed
    /// (mutual TLS). Needs --grpc-tls-cert.
    #[arg(
        long,
        env = "PROMSCALER_GRPC_TLS_CLIENT_CA",
        requires = "grpc_tls_cert"
    )]
    pub grpc_tls_client_ca: Option<PathBuf>,

    /// With --grpc-tls-client-ca: only clients whose certificate names one of these identities
    /// in its subject alternative names may call (comma-separated DNS names, compared
    /// case-insensitively, or URIs such as spiffe://..., compared exactly); any other client
    /// gets PERMISSION_DENIED. gRPC health checks stay open. Empty = any client the CA signed.
    #[arg(
        long,
        env = "PROMSCALER_ALLOWED_CLIENT_IDENTITIES",
        value_delimiter = ',',
        requires = "grpc_tls_client_ca",
        value_parser = crate::client_identity::parse_identity
    )]
    pub allowed_client_identities: Vec<String>,
}

impl GrpcTlsArgs {
    /// The server's TLS settings, `None` when TLS is off. Fails when a file cannot be read or
    /// holds no PEM certificate or key.
    pub fn server_config(&self) -> Result<Option<ServerTlsConfig>> {
        let (Some(cert), Some(key)) = (&self.grpc_tls_cert, &self.grpc_tls_key) else {
            return Ok(None);
        };
        install_crypto_provider();
        let identity = Identity::from_pem(
            read_pem("--grpc-tls-cert", cert, Pem::Certificate)?,
            read_pem("--grpc-tls-key", key, Pem::PrivateKey)?,
        );
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.grpc_tls_client_ca {
            config = config.client_ca_root(Certificate::from_pem(read_pem(
                "--grpc-tls-client-ca",
                ca,
                Pem::Certificate,
            )?));
        }
        Ok(Some(config))
    }

    /// The identities pinned by --allowed-client-identities (empty = none pinned).
    pub fn allowed_clients(&self) -> crate::client_identity::AllowedClients {
        crate::client_identity::AllowedClients::from_parsed(&self.allowed_client_identities)
    }
}

/// TLS of the connections to the other services.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PeerTlsArgs {
    /// PEM CA certificates that signed the services' certificates: https:// and dns:///
    /// addresses then connect over TLS and verify against them.
    #[arg(long, env = "PROMSCALER_PEER_TLS_CA", global = true)]
    pub peer_tls_ca: Option<PathBuf>,

    /// PEM client certificate for services that require one (--grpc-tls-client-ca).
    #[arg(
        long,
        env = "PROMSCALER_PEER_TLS_CERT",
        requires_all = ["peer_tls_key", "peer_tls_ca"],
        global = true
    )]
    pub peer_tls_cert: Option<PathBuf>,

    /// PEM private key of --peer-tls-cert.
    #[arg(
        long,
        env = "PROMSCALER_PEER_TLS_KEY",
        requires = "peer_tls_cert",
        global = true
    )]
    pub peer_tls_key: Option<PathBuf>,

    /// Name to verify in the services' certificates instead of each address's host (e.g. when
    /// connecting through a port-forward to 127.0.0.1).
    #[arg(
        long,
        env = "PROMSCALER_PEER_TLS_SERVER_NAME",
        requires = "peer_tls_ca",
        global = true
    )]
    pub peer_tls_server_name: Option<String>,
}

impl PeerTlsArgs {
    /// The client's TLS settings, `None` when TLS is off.
    pub fn load(&self) -> Result<Option<ClientTls>> {
        let Some(ca) = &self.peer_tls_ca else {
            return Ok(None);
        };
        let ca = Certificate::from_pem(read_pem("--peer-tls-ca", ca, Pem::Certificate)?);
        let identity = match (&self.peer_tls_cert, &self.peer_tls_key) {
            (Some(cert), Some(key)) => Some(Identity::from_pem(
                read_pem("--peer-tls-cert", cert, Pem::Certificate)?,
                read_pem("--peer-tls-key", key, Pem::PrivateKey)?,
            )),
            _ => None,
        };
        Ok(Some(ClientTls {
            ca,
            identity,
            server_name: self.peer_tls_server_name.clone(),
        }))
    }
}

/// Loaded client TLS settings, applied to every connection to a peer.
#[derive(Debug, Clone)]
pub struct ClientTls {
    ca: Certificate,
    identity: Option<Identity>,
    server_name: Option<String>,
}

impl ClientTls {
    /// The TLS settings for a connection to `host` (the name the certificate must carry, unless
    /// `--peer-tls-server-name` overrides it).
    pub fn config(&self, host: &str) -> ClientTlsConfig {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let mut config = ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .domain_name(name)
            .assume_http2(true);
        if let Some(identity) = &self.identity {
            config = config.identity(identity.clone());
        }
        config
    }
}

/// tonic builds its server TLS settings with rustls' process-wide crypto provider: make it
/// ring, the one every TLS client in this workspace uses (a no-op when one is installed).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// Reads a PEM file and checks it holds what the flag needs, so a wrong path or a swapped
/// certificate and key fail at start with the flag's name, not at the first handshake.
fn read_pem(flag: &'static str, path: &Path, expected: Pem) -> Result<Vec<u8>> {
    let error = |message: String| Error::Tls {
        flag,
        path: path.to_owned(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| error(format!("cannot read it: {e}")))?;
    let mut reader = pem.as_slice();
    let mut found = false;
    for item in rustls_pemfile::read_all(&mut reader) {
        let item = item.map_err(|e| error(format!("not valid PEM: {e}")))?;
        found |= matches!(
            (expected, item),
            (Pem::Certificate, rustls_pemfile::Item::X509Certificate(_))
                | (
                    Pem::PrivateKey,
                    rustls_pemfile::Item::Pkcs1Key(_)
                        | rustls_pemfile::Item::Pkcs8Key(_)
                        | rustls_pemfile::Item::Sec1Key(_),
                )
        );
    }
    if !found {
        return Err(error(match expected {
            Pem::Certificate => "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into(),
            Pem::PrivateKey => "no PEM private key (-----BEGIN ... PRIVATE KEY-----) in it".into(),
        }));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        server: GrpcTlsArgs,
        #[command(flatten)]
        peer: PeerTlsArgs,
    }

    fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.path().join("tls.crt");
        let key_path = dir.path().join("tls.key");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (dir, cert_path, key_path)
    }

    #[test]
    fn no_flags_no_tls() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert!(cli.server.server_config().unwrap().is_none());
        assert!(cli.peer.load().unwrap().is_none());
    }

    #[test]
    fn certificate_and_key_load_on_both_sides() {
        let (_dir, cert, key) = files();
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let cli = Cli::try_parse_from([
            "x",
            "--grpc-tls-cert",
            cert,
            "--grpc-tls-key",
            key,
            "--grpc-tls-client-ca",
            cert,
            "--peer-tls-ca",
            cert,
            "--peer-tls-cert",
            cert,
            "--peer-tls-key",
            key,
        ])
        .unwrap();
        assert!(cli.server.server_config().unwrap().is_some());
        assert!(cli.peer.load().unwrap().is_some());
    }

    #[test]
    fn a_certificate_needs_its_key_and_a_client_certificate_needs_a_ca() {
        let err = Cli::try_parse_from(["x", "--grpc-tls-cert", "/c"]).unwrap_err();
        assert!(err.to_string().contains("--grpc-tls-key"), "{err}");
        let err = Cli::try_parse_from(["x", "--peer-tls-cert", "/c", "--peer-tls-key", "/k"])
            .unwrap_err();
        assert!(err.to_string().contains("--peer-tls-ca"), "{err}");
    }

    #[test]
    fn swapped_or_missing_files_name_the_flag_and_what_is_wrong() {
        let (dir, cert, key) = files();
        let swapped = GrpcTlsArgs {
            grpc_tls_cert: Some(key.clone()),
            grpc_tls_key: Some(cert.clone()),
            grpc_tls_client_ca: None,
            allowed_client_identities: vec![],
        };
        let err = swapped.server_config().unwrap_err().to_string();
        assert!(err.contains("--grpc-tls-cert"), "{err}");
        assert!(err.contains("no PEM certificate"), "{err}");

        let missing = PeerTlsArgs {
            peer_tls_ca: Some(dir.path().join("absent.crt")),
            ..PeerTlsArgs::default()
        };
        let err = missing.load().unwrap_err().to_string();
        assert!(err.contains("--peer-tls-ca"), "{err}");
        assert!(err.contains("absent.crt"), "{err}");
        assert!(err.contains("cannot read it"), "{err}");
    }
}
