//! A recording HTTP/1.1 proxy for Prometheus's query API, and the keep-alive client it forwards
//! with. The proxy sits between the metrics-fetcher and Prometheus (a PromScaler's
//! `serverAddress` points at it) and timestamps each `/api/v1/query` as it passes: when the
//! request arrived, when it went upstream, when Prometheus answered, and the value in the answer.
//! It keeps connections alive on both sides, as the fetcher's pool does with a real server, and
//! sets TCP_NODELAY on both, so it adds a forward and a copy, not a connection per query.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::{body::Incoming, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, task::JoinSet};

/// One `/api/v1/query` that went through the proxy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueryRecord {
    /// The request's head was read.
    pub(crate) arrived: Instant,
    /// Forwarded to Prometheus.
    pub(crate) upstream_sent: Instant,
    /// Prometheus's whole answer was read.
    pub(crate) upstream_answered: Instant,
    /// The answer was handed back to the connection towards the fetcher.
    pub(crate) answered: Instant,
    /// The value of a one-element result (`None` for errors and other shapes).
    pub(crate) value: Option<f64>,
}

/// One HTTP/1.1 keep-alive connection to `addr`, re-opened when it has closed.
#[derive(Debug)]
pub(crate) struct KeepAlive {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl KeepAlive {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    async fn connect(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP/1.1 handshake with {}", self.addr))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(self.sender.insert(sender))
    }

    /// Sends `method path` with `headers` and `body`; returns the answer with its whole body.
    pub(crate) async fn send(
        &mut self,
        method: http::Method,
        path_and_query: &str,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> Result<Response<Bytes>> {
        let addr = self.addr;
        let open = match self.sender.as_mut() {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        let sender = if open {
            self.sender.as_mut().context("no connection")?
        } else {
            self.connect().await?
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, addr.to_string());
        for (name, value) in headers {
            if name != header::HOST && name != header::CONNECTION {
                request = request.header(name, value);
            }
        }
        let response = sender
            .send_request(request.body(Full::new(body))?)
            .await
            .with_context(|| format!("{path_and_query} to {addr}"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }

    /// `GET path`, returning the status and body.
    pub(crate) async fn get(&mut self, path_and_query: &str) -> Result<(StatusCode, Bytes)> {
        let response = self
            .send(
                http::Method::GET,
                path_and_query,
                &http::HeaderMap::new(),
                Bytes::new(),
            )
            .await?;
        Ok((response.status(), response.into_body()))
    }
}

/// The proxy: listens on 127.0.0.1, forwards everything to one upstream, records queries.
/// Stops (with every connection) on drop.
#[derive(Debug)]
pub(crate) struct RecordingProxy {
    addr: SocketAddr,
    records: Arc<Mutex<Vec<QueryRecord>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    /// Starts a proxy to `upstream` on a free port.
    pub(crate) async fn start(upstream: SocketAddr) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let records = Arc::new(Mutex::new(Vec::new()));
        let shared = records.clone();
        let task = tokio::spawn(async move {
            // Dropped with the accept loop, so aborting the loop closes every connection.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                // One upstream connection per downstream one: HTTP/1.1 carries one request at
                // a time, so the pairing never makes a query wait for another.
                let upstream = Arc::new(tokio::sync::Mutex::new(KeepAlive::new(upstream)));
                let records = shared.clone();
                let service = hyper::service::service_fn(move |request| {
                    forward(request, upstream.clone(), records.clone())
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            records,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The queries recorded so far, in arrival order.
    pub(crate) fn records(&self) -> Vec<QueryRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    request: Request<Incoming>,
    upstream: Arc<tokio::sync::Mutex<KeepAlive>>,
    records: Arc<Mutex<Vec<QueryRecord>>>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let is_query = parts.uri.path() == "/api/v1/query";
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let result = async {
        let body = body.collect().await?.to_bytes();
        let mut upstream = upstream.lock().await;
        let upstream_sent = Instant::now();
        let response = upstream
            .send(parts.method, &path_and_query, &parts.headers, body)
            .await?;
        anyhow::Ok((upstream_sent, Instant::now(), response))
    }
    .await;
    let (upstream_sent, upstream_answered, response) = match result {
        Ok(r) => r,
        Err(error) => {
            let mut response = Response::new(Full::new(Bytes::from(format!(
                "recording proxy: {error:#}"
            ))));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(response);
        }
    };
    let (upstream_parts, body) = response.into_parts();
    let value = (is_query && upstream_parts.status == StatusCode::OK)
        .then(|| promscaler_sandbox::prometheus::single_value(&String::from_utf8_lossy(&body)))
        .flatten();
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = upstream_parts.status;
    for (name, value) in &upstream_parts.headers {
        // The body is re-framed by hyper from its known length.
        if name != header::TRANSFER_ENCODING
            && name != header::CONTENT_LENGTH
            && name != header::CONNECTION
        {
            out.headers_mut().append(name, value.clone());
        }
    }
    if is_query {
        records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(QueryRecord {
                arrived,
                upstream_sent,
                upstream_answered,
                answered: Instant::now(),
                value,
            });
    }
    Ok(out)
}
