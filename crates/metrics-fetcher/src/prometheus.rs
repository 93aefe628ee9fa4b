//! The Prometheus HTTP API client: builds `/api/v1/query` and `/api/v1/query_range` requests,
//! sends them (signed when the source uses AWS), and turns answers into [`QueryData`] or an
//! [`Error`] whose kind follows KEDA's prometheus scaler and AMP's status codes.
//!
//! Transport: one hyper-util legacy client per distinct TLS configuration ([`crate::auth`]),
//! each with its own keep-alive pool (connections are reused per server) and ALPN offering h2
//! then http/1.1. Upstream requests to one server are bounded by a semaphore per host
//! (`per_server_concurrency`), and a server that answered 429/503 with `Retry-After` is not
//! queried again before that time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::Error;
use crate::auth::ClientCache;
use crate::aws::CredentialStore;
use crate::error::error_chain;
use crate::metrics::Metrics;
use crate::source::{Auth, Source};

/// Settings of the upstream client.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Largest accepted response body, bytes.
    pub max_body_bytes: usize,
    /// GET URLs longer than this are sent as POST forms (Prometheus and AMP accept both).
    pub max_get_url_len: usize,
    /// Concurrent upstream requests per server host.
    pub per_server_concurrency: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            // Conservative: proxies and load balancers commonly cap request lines at 4-8 KiB.
            max_get_url_len: 2048,
            per_server_concurrency: 16,
        }
    }
}

/// A sample as the server wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample {
    /// Unix time, seconds.
    pub at: f64,
    /// The value as text ("1", "NaN", "+Inf").
    pub value: String,
}

/// One series of an instant or range result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels, sorted by name.
    pub labels: BTreeMap<String, String>,
    /// One sample for a vector, many for a matrix; empty for a native histogram.
    pub samples: Vec<RawSample>,
}

impl Series {
    /// `{a="b",c="d"}`, as PromQL prints label sets.
    pub fn label_text(&self) -> String {
        let inner: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        format!("{{{}}}", inner.join(","))
    }
}

/// The `data` of a successful query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryData {
    /// Instant vector.
    Vector(Vec<Series>),
    /// Range vector.
    Matrix(Vec<Series>),
    /// Scalar.
    Scalar(RawSample),
    /// String.
    String(RawSample),
}

impl QueryData {
    /// The Prometheus `resultType`.
    pub fn result_type(&self) -> &'static str {
        match self {
            Self::Vector(_) => "vector",
            Self::Matrix(_) => "matrix",
            Self::Scalar(_) => "scalar",
            Self::String(_) => "string",
        }
    }

    /// The series (a scalar or string counts as one, without labels).
    pub fn series_count(&self) -> usize {
        match self {
            Self::Vector(s) | Self::Matrix(s) => s.len(),
            Self::Scalar(_) | Self::String(_) => 1,
        }
    }
}

/// A value reduced from a result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Value {
    /// The number.
    pub value: f64,
    /// Its timestamp; `None` when made up (0 for an empty result under ignore_null_values).
    pub at: Option<SystemTime>,
}

/// Reduces an instant result to one value, as KEDA's prometheus scaler does: a one-element
/// vector or a scalar is the value; empty ⇒ [`Error::EmptyResult`] (0 with
/// `ignore_null_values`); several series ⇒ [`Error::MultipleSeries`]; NaN/±Inf ⇒
/// [`Error::NotFinite`] (0 with `ignore_null_values`).
pub fn reduce_instant(data: &QueryData, ignore_null_values: bool) -> Result<Value, Error> {
    let sample = match data {
        QueryData::Scalar(s) => s,
        QueryData::Vector(series) => match series.as_slice() {
            [] if ignore_null_values => {
                return Ok(Value {
                    value: 0.0,
                    at: None,
                });
            }
            [] => return Err(Error::EmptyResult),
            [one] => match one.samples.first() {
                Some(s) => s,
                None if ignore_null_values => {
                    return Ok(Value {
                        value: 0.0,
                        at: None,
                    });
                }
                None => {
                    return Err(Error::UnusableResult {
                        result_type: "vector",
                        advice: "the series has no plain value (a native histogram?); use \
                                 histogram_quantile(...) or histogram_sum(...)"
                            .into(),
                    });
                }
            },
            many => {
                return Err(Error::MultipleSeries {
                    count: many.len(),
                    series: many.iter().take(5).map(Series::label_text).collect(),
                });
            }
        },
        QueryData::Matrix(_) => {
            return Err(Error::UnusableResult {
                result_type: "matrix",
                advice: "a range vector cannot drive scaling; apply a function such as \
                         avg_over_time(...[1m]) and aggregate with sum(...)"
                    .into(),
            });
        }
        QueryData::String(_) => {
            return Err(Error::UnusableResult {
                result_type: "string",
                advice: "scaling needs a number".into(),
            });
        }
    };
    let value = parse_value(&sample.value)?;
    let at = timestamp(sample.at);
    if value.is_finite() {
        Ok(Value { value, at })
    } else if ignore_null_values {
        Ok(Value { value: 0.0, at })
    } else {
        Err(Error::NotFinite {
            value: sample.value.clone(),
        })
    }
}

/// Reduces a range result to the samples of its single series.
pub fn reduce_range(data: &QueryData) -> Result<Vec<Value>, Error> {
    let series = match data {
        QueryData::Matrix(series) => series,
        QueryData::Vector(_) | QueryData::Scalar(_) | QueryData::String(_) => {
            return Err(Error::Upstream {
                host: String::new(),
                status: 200,
                message: format!(
                    "query_range answered a {}, expected a matrix",
                    data.result_type()
                ),
            });
        }
    };
    match series.as_slice() {
        [] => Err(Error::EmptyResult),
        [one] => one
            .samples
            .iter()
            .map(|s| {
                Ok(Value {
                    value: parse_value(&s.value)?,
                    at: timestamp(s.at),
                })
            })
            .collect(),
        many => Err(Error::MultipleSeries {
            count: many.len(),
            series: many.iter().take(5).map(Series::label_text).collect(),
        }),
    }
}

fn parse_value(text: &str) -> Result<f64, Error> {
    // Prometheus writes "NaN", "+Inf", "-Inf"; Rust's parser accepts those spellings.
    text.parse::<f64>().map_err(|_| Error::Upstream {
        host: String::new(),
        status: 200,
        message: format!("sample value {:?} is not a number", truncate(text, 64)),
    })
}

fn timestamp(secs: f64) -> Option<SystemTime> {
    if (0.0..1e11).contains(&secs) {
        Some(UNIX_EPOCH + Duration::from_secs_f64(secs))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Response interpretation.

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct WireSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    value: Option<(f64, String)>,
    #[serde(default)]
    values: Option<Vec<(f64, String)>>,
}

/// Interprets an HTTP answer. Never panics, whatever the body (see the property test).
pub fn interpret(
    host: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<QueryData, Error> {
    let envelope: Option<Envelope> = serde_json::from_slice(body).ok();
    let code = status.as_u16();
    let server_message = || server_message(envelope.as_ref(), body);
    match code {
        200..=299 => {}
        401 => {
            return Err(Error::Unauthorized {
                host: host.into(),
                message: server_message(),
            });
        }
        403 => {
            return Err(Error::Forbidden {
                host: host.into(),
                message: server_message(),
            });
        }
        429 | 503 if !is_timeout(envelope.as_ref()) => {
            return Err(Error::Throttled {
                host: host.into(),
                status: code,
                retry_after: retry_after(headers),
            });
        }
        // Prometheus: errorType "timeout" ⇒ 503; AMP and Prometheus: execution errors,
        // including evaluation timeouts, ⇒ 422. 504 is a proxy's timeout.
        422 | 503 | 504 if code == 504 || is_timeout(envelope.as_ref()) => {
            return Err(Error::UpstreamTimeout {
                host: host.into(),
                status: code,
                message: server_message(),
            });
        }
        400 | 422 => {
            return Err(match &envelope {
                Some(e) if e.status == "error" => bad_query(code, e),
                _ => Error::BadQuery {
                    status: code,
                    error_type: "bad_data".into(),
                    message: server_message(),
                },
            });
        }
        404 => {
            return Err(Error::Upstream {
                host: host.into(),
                status: code,
                message: format!(
                    "not found: check that the server address is the base URL the /api/v1 \
                     paths hang off (for AMP: https://aps-workspaces.<region>.amazonaws.com/\
                     workspaces/<id>); {}",
                    server_message()
                ),
            });
        }
        _ => {
            return Err(Error::Upstream {
                host: host.into(),
                status: code,
                message: server_message(),
            });
        }
    }
    let Some(envelope) = envelope else {
        return Err(Error::Upstream {
            host: host.into(),
            status: code,
            message: format!(
                "the body is not a Prometheus API response: {:?}",
                truncate(&String::from_utf8_lossy(body), 200)
            ),
        });
    };
    if envelope.status != "success" {
        return Err(if is_timeout(Some(&envelope)) {
            Error::UpstreamTimeout {
                host: host.into(),
                status: code,
                message: envelope.error.clone().unwrap_or_default(),
            }
        } else {
            bad_query(code, &envelope)
        });
    }
    let malformed = |what: &str| Error::Upstream {
        host: host.into(),
        status: code,
        message: format!("malformed Prometheus response: {what}"),
    };
    let Some(data) = envelope.data else {
        return Err(malformed("no data"));
    };
    let series = |v: serde_json::Value| -> Result<Vec<Series>, Error> {
        let wire: Vec<WireSeries> =
            serde_json::from_value(v).map_err(|e| malformed(&e.to_string()))?;
        Ok(wire
            .into_iter()
            .map(|w| Series {
                labels: w.metric,
                samples: w
                    .value
                    .into_iter()
                    .chain(w.values.unwrap_or_default())
                    .map(|(at, value)| RawSample { at, value })
                    .collect(),
            })
            .collect())
    };
    let sample = |v: serde_json::Value| -> Result<RawSample, Error> {
        let (at, value): (f64, String) =
            serde_json::from_value(v).map_err(|e| malformed(&e.to_string()))?;
        Ok(RawSample { at, value })
    };
    match data.result_type.as_str() {
        "vector" => Ok(QueryData::Vector(series(data.result)?)),
        "matrix" => Ok(QueryData::Matrix(series(data.result)?)),
        "scalar" => Ok(QueryData::Scalar(sample(data.result)?)),
        "string" => Ok(QueryData::String(sample(data.result)?)),
        other => Err(malformed(&format!(
            "unknown resultType {:?}",
            truncate(other, 32)
        ))),
    }
}

fn is_timeout(envelope: Option<&Envelope>) -> bool {
    envelope.is_some_and(|e| {
        e.error_type.as_deref() == Some("timeout")
            || e.error.as_deref().is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t.contains("timed out") || t.contains("timeout")
            })
    })
}

fn bad_query(code: u16, e: &Envelope) -> Error {
    Error::BadQuery {
        status: code,
        error_type: e.error_type.clone().unwrap_or_else(|| "unknown".into()),
        message: e.error.clone().unwrap_or_default(),
    }
}

/// The server's own words: Prometheus `error`, AMP's `message`/`Message`, else the body's start.
fn server_message(envelope: Option<&Envelope>, body: &[u8]) -> String {
    if let Some(text) = envelope.and_then(|e| e.error.clone()) {
        return text;
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "Message", "error"] {
            if let Some(serde_json::Value::String(s)) = map.get(key) {
                return s.clone();
            }
        }
    }
    truncate(String::from_utf8_lossy(body).trim(), 300).to_owned()
}

/// `Retry-After` in delta-seconds (the form AMP and Prometheus proxies send; HTTP dates are
/// ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    let secs: u64 = text.trim().parse().ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// Percent-encodes everything but RFC 3986 unreserved characters, as SigV4 canonicalization
/// does; the same string is a valid query string and form body, so the signature computed by
/// aws-sigv4 and the one AMP (or botocore) computes over the received URL agree.
pub fn encode_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    fn enc(out: &mut String, s: &str) {
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    let mut out = String::new();
    for (k, v) in params {
        if !out.is_empty() {
            out.push('&');
        }
        enc(&mut out, k);
        out.push('=');
        enc(&mut out, v);
    }
    out
}

/// Unix seconds with millisecond precision, as Prometheus accepts for `time`, `start`, `end`.
pub fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:03}", d.as_secs(), d.subsec_millis())
}

/// Builds the HTTP request for `path` (`/api/v1/query`, ...) with `params` followed by the
/// source's namespace and query parameters; GET, or a POST form when the URL would be long.
pub fn build_request(
    source: &Source,
    path: &str,
    params: &[(&str, String)],
    max_get_url_len: usize,
) -> Result<Request<Full<Bytes>>, Error> {
    let mut all: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if let Some(ns) = &source.namespace {
        all.push(("namespace", ns));
    }
    for (k, v) in &source.query_parameters {
        all.push((k, v));
    }
    let encoded = encode_params(all);
    let endpoint = format!("{}{}", source.base.as_str().trim_end_matches('/'), path);
    let get_url = format!("{endpoint}?{encoded}");
    let mut builder = Request::builder()
        .header(
            header::USER_AGENT,
            concat!("promscaler-metrics-fetcher/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::ACCEPT, "application/json");
    let body = if get_url.len() <= max_get_url_len {
        builder = builder.method(Method::GET).uri(get_url);
        Bytes::new()
    } else {
        builder = builder
            .method(Method::POST)
            .uri(endpoint)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        Bytes::from(encoded)
    };
    let mut req = builder
        .body(Full::new(body))
        .map_err(|e| Error::invalid("source.server_address", e.to_string()))?;
    let headers = req.headers_mut();
    for (k, v) in &source.custom_headers {
        headers.insert(k.clone(), v.clone());
    }
    let header_auth = match &source.auth {
        Auth::Header(a) => Some(a),
        Auth::Tls(t) => t.header.as_ref(),
        Auth::None | Auth::Aws(_) => None,
    };
    if let Some(a) = header_auth {
        let mut value = http::HeaderValue::from_str(a.value.expose()).map_err(|_| {
            Error::invalid(
                "source.auth",
                "the credential contains characters not allowed in a header",
            )
        })?;
        value.set_sensitive(true);
        headers.insert(a.name.clone(), value);
    }
    Ok(req)
}

// ---------------------------------------------------------------------------------------------
// The client.

/// Sends queries upstream.
pub struct Upstream {
    config: UpstreamConfig,
    clients: ClientCache,
    credentials: Arc<CredentialStore>,
    metrics: Metrics,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Servers that asked us to wait (Retry-After), until when.
    throttled: Mutex<HashMap<String, Instant>>,
}

impl Upstream {
    /// Creates the client.
    pub fn new(
        config: UpstreamConfig,
        credentials: Arc<CredentialStore>,
        metrics: Metrics,
    ) -> Self {
        Self {
            config,
            clients: ClientCache::default(),
            credentials,
            metrics,
            limits: Mutex::new(HashMap::new()),
            throttled: Mutex::new(HashMap::new()),
        }
    }

    /// `GET /api/v1/query`.
    pub async fn instant(
        &self,
        source: &Source,
        query: &str,
        time: Option<SystemTime>,
    ) -> Result<QueryData, Error> {
        let mut params = vec![("query", query.to_owned())];
        if let Some(t) = time {
            params.push(("time", format_time(t)));
        }
        self.execute(source, "/api/v1/query", &params).await
    }

    /// `GET /api/v1/query_range`.
    pub async fn range(
        &self,
        source: &Source,
        query: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<QueryData, Error> {
        let params = [
            ("query", query.to_owned()),
            ("start", format_time(start)),
            ("end", format_time(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        self.execute(source, "/api/v1/query_range", &params).await
    }

    #[tracing::instrument(skip_all, fields(server = %source.host))]
    async fn execute(
        &self,
        source: &Source,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<QueryData, Error> {
        let started = Instant::now();
        let result = self.execute_inner(source, path, params).await;
        let host_label = self.metrics.host_label(&source.host);
        self.metrics
            .observe_upstream(&host_label, started.elapsed(), result.as_ref().err());
        if let Err(err) = &result {
            tracing::debug!(error = %err, "upstream query failed");
        }
        result
    }

    async fn execute_inner(
        &self,
        source: &Source,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<QueryData, Error> {
        if let Some(until) = self.throttled_until(&source.host) {
            return Err(Error::Throttled {
                host: source.host.clone(),
                status: 0,
                retry_after: Some(until.saturating_duration_since(Instant::now())),
            });
        }
        let mut req = build_request(source, path, params, self.config.max_get_url_len)?;
        if let Auth::Aws(aws) = &source.auth {
            // Outside the request timeout: STS has its own timeouts and retries, and a
            // credential failure must read as UNAUTHENTICATED with its cause, not as TIMEOUT.
            let region =
                crate::aws::signing_region(aws, source.host_name(), self.credentials.env_region())?;
            let creds = self.credentials.credentials(aws, &region).await?;
            crate::sigv4::sign(&mut req, &creds, &region, &aws.service, SystemTime::now())
                .map_err(|cause| Error::Signing {
                    host: source.host.clone(),
                    cause,
                })?;
        }
        let client = self.clients.client(&source.tls_settings())?;
        // The timeout covers waiting for a per-server slot, the exchange and the body.
        let result = tokio::time::timeout(source.timeout, self.send(client, req, source))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    host: source.host.clone(),
                    after: source.timeout,
                })
            });
        if let Err(Error::Throttled {
            retry_after: Some(wait),
            ..
        }) = &result
        {
            self.throttle(&source.host, *wait);
        }
        result
    }

    async fn send(
        &self,
        client: crate::auth::HttpClient,
        req: Request<Full<Bytes>>,
        source: &Source,
    ) -> Result<QueryData, Error> {
        let semaphore = self.semaphore(&source.host);
        let _permit = semaphore
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let response = client.request(req).await.map_err(|e| Error::Unreachable {
            host: source.host.clone(),
            cause: error_chain(&e),
            source: Some(Arc::new(e)),
        })?;
        let (parts, body) = response.into_parts();
        let max = self.config.max_body_bytes;
        let body = Limited::new(body, max)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Error::Upstream {
                        host: source.host.clone(),
                        status: parts.status.as_u16(),
                        message: format!(
                            "the response is larger than {max} bytes; narrow the query"
                        ),
                    }
                } else {
                    Error::Unreachable {
                        host: source.host.clone(),
                        cause: format!("reading the response: {}", error_chain(&*e)),
                        source: None,
                    }
                }
            })?
            .to_bytes();
        interpret(&source.host, parts.status, &parts.headers, &body)
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_server_concurrency.max(1))))
            .clone()
    }

    fn throttled_until(&self, host: &str) -> Option<Instant> {
        let mut map = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(host) {
            Some(until) if *until > Instant::now() => Some(*until),
            Some(_) => {
                map.remove(host);
                None
            }
            None => None,
        }
    }

    fn throttle(&self, host: &str, wait: Duration) {
        if wait.is_zero() {
            return;
        }
        let mut map = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(host.to_owned(), Instant::now() + wait);
    }
}

#[cfg(test)]
mod tests;
