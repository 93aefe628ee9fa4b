//! gRPC client channels to the other services.
//!
//! An address is either a URL (`http://127.0.0.1:50051`, `https://fetcher:50051`), one
//! long-lived HTTP/2 connection, or `dns:///name:port`: the name is resolved every
//! [`DNS_REFRESH`] and requests are balanced over every address it returns. Point the latter at a
//! headless Service so the actuator spreads load over all fetcher and decision replicas (a
//! ClusterIP Service would pin one HTTP/2 connection to one pod).
//!
//! With [`ClientTls`] (`--peer-tls-ca`, see [`crate::tls`]) `https://` and `dns:///` addresses
//! connect over TLS and `http://` is refused; without it `https://` is refused: there is no
//! trust store to verify against, and a silent plaintext fallback would send Secrets in clear.

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use tonic::transport::{Channel, Endpoint, channel::Change};

use crate::{Error, Result, Shutdown, tls::ClientTls};

/// How often `dns:///` addresses are re-resolved.
pub const DNS_REFRESH: Duration = Duration::from_secs(15);

/// Connection settings shared by every channel; `tls` = verify the server as `host`.
fn endpoint(
    uri: String,
    flag: &'static str,
    original: &str,
    tls: Option<(&ClientTls, &str)>,
) -> Result<Endpoint> {
    let error = |message: String| Error::ClientAddr {
        flag,
        addr: original.to_owned(),
        message,
    };
    let mut endpoint = Endpoint::from_shared(uri)
        .map_err(|e| error(e.to_string()))?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    if let Some((tls, host)) = tls {
        endpoint = endpoint
            .tls_config(tls.config(host))
            .map_err(|e| error(format!("TLS settings rejected: {e}")))?;
    }
    Ok(endpoint)
}

/// Builds a lazily-connecting channel for `addr` (given by `flag`, for error messages), over TLS
/// when `tls` is set. For `dns:///` addresses a resolver task runs until `shutdown` fires.
pub fn channel(
    flag: &'static str,
    addr: &str,
    tls: Option<&ClientTls>,
    shutdown: &Shutdown,
) -> Result<Channel> {
    if let Some(target) = addr.strip_prefix("dns:///") {
        let (host, port) = split_host_port(target).ok_or_else(|| Error::ClientAddr {
            flag,
            addr: addr.to_owned(),
            message: "dns:/// needs host:port".to_owned(),
        })?;
        let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
        let target = format!("{host}:{port}");
        let host = host.to_owned();
        let tls = tls.cloned();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut known = BTreeSet::<SocketAddr>::new();
            loop {
                match tokio::net::lookup_host(&target).await {
                    Ok(found) => {
                        let found: BTreeSet<SocketAddr> = found.collect();
                        for gone in known.difference(&found) {
                            if changes.send(Change::Remove(*gone)).await.is_err() {
                                return;
                            }
                        }
                        for new in found.difference(&known) {
                            let endpoint = endpoint(
                                format!("{scheme}://{new}"),
                                flag,
                                &target,
                                tls.as_ref().map(|tls| (tls, host.as_str())),
                            );
                            let endpoint = match endpoint {
                                Ok(endpoint) => endpoint,
                                Err(error) => {
                                    tracing::warn!(flag, %target, %error, "skipping a resolved address");
                                    continue;
                                }
                            };
                            if changes.send(Change::Insert(*new, endpoint)).await.is_err() {
                                return;
                            }
                        }
                        if found != known {
                            tracing::info!(flag, %target, endpoints = found.len(), "resolved gRPC endpoints");
                        }
                        known = found;
                    }
                    Err(error) => {
                        // Keep the endpoints we have: a DNS hiccup must not empty the pool.
                        tracing::warn!(flag, %target, %error, "cannot resolve gRPC endpoints; keeping the previous ones");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(DNS_REFRESH) => {}
                    () = shutdown.wait() => return,
                }
            }
        });
        return Ok(channel);
    }
    let error = |message: &str| Error::ClientAddr {
        flag,
        addr: addr.to_owned(),
        message: message.to_owned(),
    };
    let host = match (addr.split_once("://"), tls) {
        (Some(("http", _)), None) => None,
        (Some(("https", _)), Some(_)) => {
            let uri: http::Uri = addr.parse().map_err(|e| error(&format!("{e}")))?;
            Some(uri.host().unwrap_or_default().to_owned())
        }
        (Some(("http", _)), Some(_)) => {
            return Err(error(
                "--peer-tls-ca is set, so peers are reached over TLS: use https:// or dns:///",
            ));
        }
        (Some(("https", _)), None) => {
            return Err(error(
                "https:// needs --peer-tls-ca, the CA that signed the service's certificate",
            ));
        }
        _ => return Err(error("missing scheme")),
    };
    let tls = tls.zip(host.as_deref());
    Ok(endpoint(addr.to_owned(), flag, addr, tls)?.connect_lazy())
}

fn split_host_port(target: &str) -> Option<(&str, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rejects_addresses_without_scheme_with_a_hint() {
        let err = channel("--fetcher-addr", "127.0.0.1:50051", None, &Shutdown::new()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("--fetcher-addr"), "{message}");
        assert!(message.contains("http://127.0.0.1:50051"), "{message}");
    }

    #[tokio::test]
    async fn accepts_urls_and_dns_targets() {
        let shutdown = Shutdown::new();
        assert!(channel("--decision-addr", "http://127.0.0.1:50052", None, &shutdown).is_ok());
        assert!(channel("--decision-addr", "dns:///localhost:50052", None, &shutdown).is_ok());
        assert!(channel("--decision-addr", "dns:///localhost", None, &shutdown).is_err());
        shutdown.trigger();
    }

    #[tokio::test]
    async fn tls_and_scheme_must_agree() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let tls = crate::tls::PeerTlsArgs {
            peer_tls_ca: Some(ca_path),
            ..Default::default()
        }
        .load()
        .unwrap()
        .unwrap();
        let shutdown = Shutdown::new();
        let addr = "https://fetcher.promscaler.svc:50051";
        assert!(channel("--fetcher-addr", addr, Some(&tls), &shutdown).is_ok());
        let dns = "dns:///fetcher.promscaler.svc:50051";
        assert!(channel("--fetcher-addr", dns, Some(&tls), &shutdown).is_ok());
        // No plaintext when TLS is configured, and no TLS without a CA to verify against.
        let err = channel("--fetcher-addr", "http://f:50051", Some(&tls), &shutdown).unwrap_err();
        assert!(err.to_string().contains("use https://"), "{err}");
        let err = channel("--fetcher-addr", addr, None, &shutdown).unwrap_err();
        assert!(err.to_string().contains("needs --peer-tls-ca"), "{err}");
        shutdown.trigger();
    }
}
