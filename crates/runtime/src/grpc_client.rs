//! gRPC client channels to the other services.
//!
//! An address is either a URL (`http://127.0.0.1:50051`, `https://fetcher:50051`), one
//! long-lived HTTP/2 connection, or `dns:///name:port`: the name is resolved every
//! [`DNS_REFRESH`] and requests are balanced over every address it returns. Point the latter at a
//! headless Service so the actuator spreads load over all fetcher and decision replicas (a
//! ClusterIP Service would pin one HTTP/2 connection to one pod).

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use tonic::transport::{Channel, Endpoint, channel::Change};

use crate::{Error, Result, Shutdown};

/// How often `dns:///` addresses are re-resolved.
pub const DNS_REFRESH: Duration = Duration::from_secs(15);

/// Connection settings shared by every channel.
fn endpoint(uri: String, flag: &'static str, original: &str) -> Result<Endpoint> {
    Ok(Endpoint::from_shared(uri)
        .map_err(|e| Error::ClientAddr {
            flag,
            addr: original.to_owned(),
            message: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true))
}

/// Builds a lazily-connecting channel for `addr` (given by `flag`, for error messages). For
/// `dns:///` addresses a resolver task runs until `shutdown` fires.
pub fn channel(flag: &'static str, addr: &str, shutdown: &Shutdown) -> Result<Channel> {
    if let Some(target) = addr.strip_prefix("dns:///") {
        let (host, port) = split_host_port(target).ok_or_else(|| Error::ClientAddr {
            flag,
            addr: addr.to_owned(),
            message: "dns:/// needs host:port".to_owned(),
        })?;
        let (channel, changes) = Channel::balance_channel::<SocketAddr>(64);
        let target = format!("{host}:{port}");
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
                            let Ok(endpoint) = endpoint(format!("http://{new}"), flag, &target)
                            else {
                                continue;
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
    if !(addr.starts_with("http://") || addr.starts_with("https://")) {
        return Err(Error::ClientAddr {
            flag,
            addr: addr.to_owned(),
            message: "missing scheme".to_owned(),
        });
    }
    Ok(endpoint(addr.to_owned(), flag, addr)?.connect_lazy())
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
        let err = channel("--fetcher-addr", "127.0.0.1:50051", &Shutdown::new()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("--fetcher-addr"), "{message}");
        assert!(message.contains("http://127.0.0.1:50051"), "{message}");
    }

    #[tokio::test]
    async fn accepts_urls_and_dns_targets() {
        let shutdown = Shutdown::new();
        assert!(channel("--decision-addr", "http://127.0.0.1:50052", &shutdown).is_ok());
        assert!(channel("--decision-addr", "dns:///localhost:50052", &shutdown).is_ok());
        assert!(channel("--decision-addr", "dns:///localhost", &shutdown).is_err());
        shutdown.trigger();
    }
}
