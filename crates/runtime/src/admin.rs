//! The admin HTTP server, on its own port so probes and scrapes never queue behind gRPC:
//! - `GET /live`: 200 while the process runs;
//! - `GET /ready`: 200 once the service said it is ready ([`Readiness::set_ready`]), 503 before
//!   that and again while shutting down;
//! - `GET /metrics`: the process's prometheus-client registry in OpenMetrics text.
//!
//! The port is reachable by anything in the cluster, so a client cannot hold it open for free:
//! a connection must send a whole request head within [`AdminLimits::header_read_timeout`]
//! (also while idle between keep-alive requests), and at most
//! [`AdminLimits::max_connections`] connections are served at once; further ones wait in the
//! kernel's accept queue until one ends.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::Semaphore};

use crate::{Error, Result, Shutdown};

/// Whether the service is ready to take traffic. Cloneable; all clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the service ready (or not).
    pub fn set_ready(&self, ready: bool) {
        let was = self.0.swap(ready, Ordering::SeqCst);
        if was != ready {
            tracing::info!(ready, "readiness changed");
        }
    }

    /// Whether the service is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// OpenMetrics text content type, as prometheus-client encodes it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How much one client may hold of the admin server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    /// How long a connection may take to send a whole request head (request line and headers),
    /// counted from when the server starts waiting for it: on a new connection and after each
    /// response. A connection that is slower is closed. Without it, half-sent requests keep
    /// their connections (and a task each) open forever.
    pub header_read_timeout: Duration,
    /// How many connections are served at once. Further connections are accepted only when one
    /// ends; until then they wait in the listen backlog.
    pub max_connections: usize,
}

impl AdminLimits {
    /// Production defaults: probes (kubelet's default timeout is 1 s) and scrapes send their
    /// request head in one packet, so 10 s is generous for them and short for a slow client;
    /// 64 connections is far more than kubelet and a few Prometheus replicas keep open.
    pub const DEFAULT: Self = Self {
        header_read_timeout: Duration::from_secs(10),
        max_connections: 64,
    };
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` fires, with [`AdminLimits::DEFAULT`].
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<()> {
    serve_with_limits(
        listener,
        registry,
        readiness,
        shutdown,
        AdminLimits::DEFAULT,
    )
    .await
}

/// Serves the admin endpoints on `listener` until `shutdown` fires, within `limits`.
pub async fn serve_with_limits(
    listener: TcpListener,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: Shutdown,
    limits: AdminLimits,
) -> Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        // Take a connection slot before accepting, so a flood waits in the kernel's backlog
        // instead of costing a task each.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; treat it as shutdown rather than panic.
                Err(_) => return Ok(()),
            },
            () = shutdown.wait() => return Ok(()),
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(Error::Admin)?,
            () = shutdown.wait() => return Ok(()),
        };
        let registry = registry.clone();
        let readiness = readiness.clone();
        let conn = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| {
                let response = respond(&req, &registry, &readiness);
                async move { Ok::<_, Infallible>(response) }
            }),
        );
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, "admin connection ended with an error");
            }
            drop(permit);
        });
    }
}

fn respond(
    req: &Request<Incoming>,
    registry: &Registry,
    readiness: &Readiness,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match req.uri().path() {
        "/live" | "/livez" | "/healthz" => text(StatusCode::OK, "ok\n"),
        "/ready" | "/readyz" => {
            if readiness.is_ready() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        "/metrics" => {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, registry) {
                Ok(()) => Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, OPENMETRICS)
                    .body(Full::new(Bytes::from(body)))
                    .unwrap_or_else(|_| {
                        text(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n")
                    }),
                Err(error) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("encoding metrics failed: {error}\n"),
                ),
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /live, /ready or /metrics\n",
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::copy_from_slice(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    async fn bounded<F: std::future::Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(5), f)
            .await
            .expect("admin server answers within 5 s")
    }

    #[tokio::test]
    async fn ready_follows_the_flag_and_metrics_are_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut registry = Registry::with_prefix("test");
        let counter = Counter::<u64>::default();
        registry.register("things", "Things seen", counter.clone());
        counter.inc_by(7);
        let readiness = Readiness::default();
        let shutdown = Shutdown::new();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(registry),
            readiness.clone(),
            shutdown.clone(),
        ));

        assert!(
            bounded(get(addr, "/live"))
                .await
                .starts_with("HTTP/1.1 200")
        );
        assert!(
            bounded(get(addr, "/ready"))
                .await
                .starts_with("HTTP/1.1 503")
        );
        readiness.set_ready(true);
        assert!(
            bounded(get(addr, "/ready"))
                .await
                .starts_with("HTTP/1.1 200")
        );
        let metrics = bounded(get(addr, "/metrics")).await;
        assert!(metrics.contains("test_things_total 7"), "{metrics}");
        assert!(
            bounded(get(addr, "/nope"))
                .await
                .starts_with("HTTP/1.1 404")
        );

        shutdown.trigger();
        bounded(server).await.unwrap().unwrap();
    }

    /// Starts a server with `limits` on 127.0.0.1:0.
    async fn start(limits: AdminLimits) -> (std::net::SocketAddr, Shutdown) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        tokio::spawn(serve_with_limits(
            listener,
            Arc::new(Registry::default()),
            Readiness::default(),
            shutdown.clone(),
            limits,
        ));
        (addr, shutdown)
    }

    /// Reads until the server closes the connection; what it sent before (e.g. a 408) is fine.
    async fn read_until_closed(stream: &mut tokio::net::TcpStream) {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    #[tokio::test]
    async fn closes_a_connection_that_sends_half_a_request_head() {
        let (addr, shutdown) = start(AdminLimits {
            header_read_timeout: Duration::from_millis(200),
            ..AdminLimits::DEFAULT
        })
        .await;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"GET /li").await.unwrap();
        // Generous deadline: the server's limit is 200 ms; without it the read never ends.
        tokio::time::timeout(Duration::from_secs(20), read_until_closed(&mut stream))
            .await
            .expect("the server closes a half-sent request within its header read timeout");

        // A connection that sends nothing at all is closed too.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), read_until_closed(&mut silent))
            .await
            .expect("the server closes a silent connection within its header read timeout");

        // And the server still answers whole requests.
        assert!(
            bounded(get(addr, "/live"))
                .await
                .starts_with("HTTP/1.1 200")
        );
        shutdown.trigger();
    }

    #[tokio::test]
    async fn serves_at_most_max_connections_at_once() {
        let (addr, shutdown) = start(AdminLimits {
            header_read_timeout: Duration::from_secs(600),
            max_connections: 1,
        })
        .await;
        // The only slot, held by a slow client.
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /li").await.unwrap();

        let waiting = tokio::spawn(get(addr, "/live"));
        // One-sided check: under the limit the second request must not be answered, so this
        // sleep can only make the test pass late, never fail spuriously on a slow machine.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "a second connection was served while the only slot was taken"
        );

        drop(slow);
        let answer = tokio::time::timeout(Duration::from_secs(20), waiting)
            .await
            .expect("the waiting connection is served once the slot is free")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        shutdown.trigger();
    }
}
