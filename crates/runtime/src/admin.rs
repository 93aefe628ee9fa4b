//! The admin HTTP server, on its own port so probes and scrapes never queue behind gRPC:
//! - `GET /live`: 200 while the process runs;
//! - `GET /ready`: 200 once the service said it is ready ([`Readiness::set_ready`]), 503 before
//!   that and again while shutting down;
//! - `GET /metrics`: the process's prometheus-client registry in OpenMetrics text.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

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

/// Serves the admin endpoints on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    readiness: Readiness,
    shutdown: Shutdown,
) -> Result<()> {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted.map_err(Error::Admin)?,
            () = shutdown.wait() => return Ok(()),
        };
        let registry = registry.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = respond(&req, &registry, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = conn.await {
                tracing::debug!(%error, "admin connection ended with an error");
            }
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
}
