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
use crate::error::{Redactor, error_chain, quote};
use crate::metrics::Metrics;
use crate::pacing::{Budget, Pacer};
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
    /// Connect to link-local and cloud metadata addresses (`--allow-link-local`).
    pub allow_link_local: bool,
    /// Longest `Retry-After` honoured; a server asking for more is asked again after this.
    pub max_retry_after: Duration,
    /// Requests per second per server address (`--upstream-qps`); `None` = unlimited.
    pub budget: Option<Budget>,
    /// Ask instant queries for their statistics (`stats=all`) to report samples processed.
    pub query_stats: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            // Conservative: proxies and load balancers commonly cap request lines at 4-8 KiB.
            max_get_url_len: 2048,
            per_server_concurrency: 16,
            allow_link_local: false,
            max_retry_after: Duration::from_secs(5 * 60),
            budget: None,
            query_stats: true,
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

/// A label set quoted in an error or a Check report is cut to this many bytes.
pub const MAX_LABEL_TEXT_BYTES: usize = 160;

impl Series {
    /// `{a="b",c="d"}`, as PromQL prints label sets, cut to [`MAX_LABEL_TEXT_BYTES`] (label
    /// values come from the upstream and are unbounded).
    pub fn label_text(&self) -> String {
        let mut out = String::from("{");
        for (i, (k, v)) in self.labels.iter().enumerate() {
            if out.len() > MAX_LABEL_TEXT_BYTES {
                break;
            }
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{}={:?}",
                quote(k, 64),
                quote(v, MAX_LABEL_TEXT_BYTES)
            ));
        }
        out.push('}');
        quote(&out, MAX_LABEL_TEXT_BYTES)
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

/// At most this many series of an answer are kept (their number is counted whole): enough to
/// name them in `MULTIPLE_SERIES` and `Check`, whatever the answer's size.
pub const MAX_KEPT_SERIES: usize = 20;

/// Labels kept per series in a [`Answer::summary`].
const MAX_KEPT_LABELS: usize = 16;

/// A parsed answer: at most [`MAX_KEPT_SERIES`] series and how many there were.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The result (vectors and matrices cut to [`MAX_KEPT_SERIES`] series).
    pub data: QueryData,
    /// How many series the server returned (a scalar or string counts as one).
    pub series_count: usize,
    /// Samples the server processed for it (`stats=all`: `totalQueryableSamples`), when it
    /// reported them.
    pub samples: Option<u64>,
}

impl From<QueryData> for Answer {
    fn from(data: QueryData) -> Self {
        Self {
            series_count: data.series_count(),
            data,
            samples: None,
        }
    }
}

impl Answer {
    /// What an instant query keeps for its callers (and the cache): each kept series with its
    /// first sample only and at most 16 labels cut to [`MAX_LABEL_TEXT_BYTES`], sample texts
    /// cut to 64 bytes. Every caller's reduction (`ignore_null_values` differs per caller) and
    /// `Check` work on it alike; its size is bounded whatever the answer's.
    pub fn summary(mut self) -> Self {
        fn cut(sample: &mut RawSample) {
            if sample.value.len() > 64 {
                sample.value = quote(&sample.value, 64);
            }
        }
        match &mut self.data {
            QueryData::Vector(series) | QueryData::Matrix(series) => {
                series.truncate(MAX_KEPT_SERIES);
                for s in series.iter_mut() {
                    s.samples.truncate(1);
                    s.samples.iter_mut().for_each(cut);
                    let labels = std::mem::take(&mut s.labels);
                    s.labels = labels
                        .into_iter()
                        .take(MAX_KEPT_LABELS)
                        .map(|(k, v)| (quote(&k, 64), quote(&v, MAX_LABEL_TEXT_BYTES)))
                        .collect();
                    s.samples.shrink_to_fit();
                }
                series.shrink_to_fit();
            }
            QueryData::Scalar(sample) | QueryData::String(sample) => cut(sample),
        }
        self
    }

    /// Approximately the heap and inline bytes this answer holds (for the cache's budget).
    pub fn approx_bytes(&self) -> usize {
        const STRING: usize = std::mem::size_of::<String>();
        let sample = |s: &RawSample| std::mem::size_of::<RawSample>() + s.value.len();
        let series_bytes = |s: &Series| {
            std::mem::size_of::<Series>()
                + s.labels
                    .iter()
                    // BTreeMap nodes: about the two Strings and a share of the node per entry.
                    .map(|(k, v)| 2 * STRING + 16 + k.len() + v.len())
                    .sum::<usize>()
                + s.samples.iter().map(sample).sum::<usize>()
        };
        std::mem::size_of::<Self>()
            + match &self.data {
                QueryData::Vector(series) | QueryData::Matrix(series) => {
                    series.iter().map(series_bytes).sum()
                }
                QueryData::Scalar(s) | QueryData::String(s) => s.value.len(),
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
pub fn reduce_instant(answer: &Answer, ignore_null_values: bool) -> Result<Value, Error> {
    let sample = match &answer.data {
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
                    count: answer.series_count.max(many.len()),
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
            value: quote(&sample.value, 64),
        })
    }
}

/// Reduces a range result to the samples of its single series.
pub fn reduce_range(answer: &Answer) -> Result<Vec<Value>, Error> {
    let data = &answer.data;
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
            count: answer.series_count.max(many.len()),
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
struct Envelope<'a> {
    status: String,
    #[serde(default, borrow)]
    data: Option<Data<'a>>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "resultType")]
    result_type: String,
    /// Left unparsed until the type is known, then parsed without building a tree of the
    /// whole answer (a 7 MB answer of 90k series would otherwise take hundreds of MB).
    #[serde(borrow)]
    result: &'a serde_json::value::RawValue,
    /// Query statistics, when asked for (`stats=all`); only the samples are read.
    #[serde(default)]
    stats: Option<Stats>,
}

/// `data.stats` of a Prometheus answer (Prometheus ≥ 2.35 and AMP with `stats=all`).
#[derive(Deserialize)]
struct Stats {
    #[serde(default)]
    samples: Option<SampleStats>,
}

#[derive(Deserialize)]
struct SampleStats {
    /// Samples loaded from storage to evaluate the query: what AMP bills as samples processed.
    #[serde(rename = "totalQueryableSamples", default)]
    total_queryable_samples: Option<u64>,
}

/// The first [`MAX_KEPT_SERIES`] series of a result and how many there are; the rest are only
/// counted (skipped without being built).
struct BoundedSeries {
    kept: Vec<WireSeries>,
    total: usize,
}

impl BoundedSeries {
    /// Reads a JSON list of series, keeping the first `keep`.
    fn read(json: &str, keep: usize) -> Result<Self, serde_json::Error> {
        use serde::de::DeserializeSeed as _;
        let mut de = serde_json::Deserializer::from_str(json);
        let out = Keep(keep).deserialize(&mut de)?;
        de.end()?;
        Ok(out)
    }
}

/// How many series [`BoundedSeries`] keeps.
struct Keep(usize);

impl<'de> serde::de::DeserializeSeed<'de> for Keep {
    type Value = BoundedSeries;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<BoundedSeries, D::Error> {
        struct Visit(usize);
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = BoundedSeries;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of series")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<BoundedSeries, A::Error> {
                let mut kept = Vec::new();
                let mut total = 0;
                loop {
                    let more = if kept.len() < self.0 {
                        seq.next_element::<WireSeries>()?.map(|s| kept.push(s))
                    } else {
                        seq.next_element::<serde::de::IgnoredAny>()?.map(|_| ())
                    };
                    if more.is_none() {
                        break;
                    }
                    total += 1;
                }
                Ok(BoundedSeries { kept, total })
            }
        }
        d.deserialize_seq(Visit(self.0))
    }
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
) -> Result<Answer, Error> {
    interpret_keeping(host, status, headers, body, MAX_KEPT_SERIES)
}

/// [`interpret`] keeping the first `keep` series instead of [`MAX_KEPT_SERIES`] (a fused
/// query's answer has one series per member).
pub fn interpret_keeping(
    host: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    keep: usize,
) -> Result<Answer, Error> {
    let envelope: Option<Envelope<'_>> = serde_json::from_slice(body).ok();
    let code = status.as_u16();
    let server_message = || server_message(envelope.as_ref(), code, body);
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
            message: not_prometheus(code, body),
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
    let series = |raw: &serde_json::value::RawValue| -> Result<Answer, Error> {
        let wire: BoundedSeries =
            BoundedSeries::read(raw.get(), keep).map_err(|e| malformed(&e.to_string()))?;
        let kept: Vec<Series> = wire
            .kept
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
            .collect();
        Ok(Answer {
            data: QueryData::Vector(kept),
            series_count: wire.total,
            samples: None,
        })
    };
    let sample = |raw: &serde_json::value::RawValue| -> Result<RawSample, Error> {
        let (at, value): (f64, String) =
            serde_json::from_str(raw.get()).map_err(|e| malformed(&e.to_string()))?;
        Ok(RawSample { at, value })
    };
    let samples = data.stats.and_then(|s| s.samples?.total_queryable_samples);
    let answer = match data.result_type.as_str() {
        "vector" => series(data.result),
        "matrix" => series(data.result).map(|a| Answer {
            data: match a.data {
                QueryData::Vector(s) => QueryData::Matrix(s),
                other => other,
            },
            ..a
        }),
        "scalar" => Ok(QueryData::Scalar(sample(data.result)?).into()),
        "string" => Ok(QueryData::String(sample(data.result)?).into()),
        other => Err(malformed(&format!(
            "unknown resultType {:?}",
            truncate(other, 32)
        ))),
    };
    answer.map(|a| Answer { samples, ..a })
}

fn is_timeout(envelope: Option<&Envelope<'_>>) -> bool {
    envelope.is_some_and(|e| {
        e.error_type.as_deref() == Some("timeout")
            || e.error.as_deref().is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t.contains("timed out") || t.contains("timeout")
            })
    })
}

fn bad_query(code: u16, e: &Envelope<'_>) -> Error {
    Error::BadQuery {
        status: code,
        error_type: e.error_type.clone().unwrap_or_else(|| "unknown".into()),
        message: e.error.clone().unwrap_or_default(),
    }
}

/// The server's own words: Prometheus `error`, AMP's `message`/`Message`; any other body is not
/// quoted at all (only its size): the fetcher must not read arbitrary URLs back to whoever can
/// write a PromScaler (SSRF). The caller bounds and scrubs the text ([`Error::redacted`]).
fn server_message(envelope: Option<&Envelope<'_>>, status: u16, body: &[u8]) -> String {
    if let Some(text) = envelope.and_then(|e| e.error.clone()) {
        return text;
    }
    #[derive(Deserialize)]
    struct AwsError {
        #[serde(alias = "Message", alias = "error")]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<AwsError>(body) {
        return e.message;
    }
    not_prometheus(status, body)
}

fn not_prometheus(status: u16, body: &[u8]) -> String {
    format!(
        "not a Prometheus answer (HTTP {status}, {} bytes)",
        body.len()
    )
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

/// The key of a source's throttling: everything that tells one tenant's requests from another's.
fn throttle_key(source: &Source) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    source.fingerprint(&mut h);
    h.finalize().into()
}

/// The resolver's refusal, when that is why the connection failed.
fn refused_address<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a crate::auth::RefusedAddress> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<crate::auth::RefusedAddress>() {
            return Some(r);
        }
        next = e.source();
    }
    None
}

/// The secrets `source` sends: header values and the parts an upstream might echo alone (the
/// token after `Bearer `, the base64 and the password of basic auth), AWS static keys.
fn redactor_for(source: &Source) -> Redactor {
    let mut r = Redactor::default();
    let header = match &source.auth {
        Auth::Header(a) => Some(a),
        Auth::Tls(t) => {
            if let Some(c) = &t.client_cert {
                r.add(c.key_pem.expose());
            }
            t.header.as_ref()
        }
        Auth::Aws(aws) => {
            if let Some(k) = &aws.static_keys {
                r.add(k.secret_access_key.expose());
                r.add(k.session_token.as_ref().map_or("", |t| t.expose()));
            }
            None
        }
        Auth::None => None,
    };
    if let Some(a) = header {
        let value = a.value.expose();
        r.add(value);
        if let Some((scheme, rest)) = value.split_once(' ') {
            r.add(rest);
            if scheme.eq_ignore_ascii_case("basic") {
                use base64::Engine as _;
                if let Ok(plain) = base64::engine::general_purpose::STANDARD.decode(rest.trim())
                    && let Ok(plain) = String::from_utf8(plain)
                {
                    r.add(&plain);
                    if let Some((_, password)) = plain.split_once(':') {
                        r.add(password);
                    }
                }
            }
        }
    }
    r
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
    /// The request budget per server address (`--upstream-qps`).
    pacer: Pacer,
    /// Sources that were asked to wait (Retry-After), until when; keyed by a digest of the whole
    /// source (URL with path, tenant headers, parameters, credentials identity — secrets only
    /// hashed), so one tenant's 429 does not silence another on the same host.
    throttled: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Upstream {
    /// Creates the client.
    pub fn new(
        config: UpstreamConfig,
        credentials: Arc<CredentialStore>,
        metrics: Metrics,
    ) -> Self {
        Self {
            clients: ClientCache::new(config.allow_link_local),
            pacer: Pacer::new(config.budget),
            config,
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
    ) -> Result<Answer, Error> {
        self.instant_keeping(source, query, time, MAX_KEPT_SERIES)
            .await
    }

    /// [`Upstream::instant`] keeping the first `keep` series of the answer.
    pub async fn instant_keeping(
        &self,
        source: &Source,
        query: &str,
        time: Option<SystemTime>,
        keep: usize,
    ) -> Result<Answer, Error> {
        let mut params = vec![("query", query.to_owned())];
        if let Some(t) = time {
            params.push(("time", format_time(t)));
        }
        if self.config.query_stats {
            params.push(("stats", "all".to_owned()));
        }
        self.execute(source, "/api/v1/query", &params, keep).await
    }

    /// `GET /api/v1/query_range`.
    pub async fn range(
        &self,
        source: &Source,
        query: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<Answer, Error> {
        let params = [
            ("query", query.to_owned()),
            ("start", format_time(start)),
            ("end", format_time(end)),
            ("step", format!("{}", step.as_secs_f64())),
        ];
        self.execute(source, "/api/v1/query_range", &params, MAX_KEPT_SERIES)
            .await
    }

    #[tracing::instrument(skip_all, fields(server = %source.host))]
    async fn execute(
        &self,
        source: &Source,
        path: &str,
        params: &[(&str, String)],
        keep: usize,
    ) -> Result<Answer, Error> {
        // Queueing for the budget is the fetcher's own wait, not the server's latency: it is
        // measured apart and is not part of the request's timeout.
        self.wait_for_budget(source).await?;
        let started = Instant::now();
        let mut redactor = redactor_for(source);
        let result = self
            .execute_inner(source, path, params, keep, &mut redactor)
            .await
            .map_err(|e| e.redacted(&redactor));
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
        keep: usize,
        redactor: &mut Redactor,
    ) -> Result<Answer, Error> {
        let throttle_key = throttle_key(source);
        if let Some(until) = self.throttled_until(&throttle_key) {
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
            redactor.add(creds.secret_access_key());
            redactor.add(creds.session_token().unwrap_or_default());
            crate::sigv4::sign(&mut req, &creds, &region, &aws.service, SystemTime::now())
                .map_err(|cause| Error::Signing {
                    host: source.host.clone(),
                    cause,
                })?;
            if let Some(auth) = req.headers().get(header::AUTHORIZATION)
                && let Ok(text) = auth.to_str()
                && let Some((_, signature)) = text.rsplit_once("Signature=")
            {
                redactor.add(signature);
            }
        }
        let client = self.clients.client(&source.tls_settings())?;
        // The timeout covers waiting for a per-server slot, the exchange and the body.
        let mut result = tokio::time::timeout(source.timeout, self.send(client, req, source, keep))
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
        }) = &mut result
        {
            *wait = (*wait).min(self.config.max_retry_after);
            self.throttle(throttle_key, *wait);
        }
        result
    }

    /// Waits for the server's budget (outside the request timeout: queueing is ours, not the
    /// server's; a caller that stops waiting leaves the queue).
    async fn wait_for_budget(&self, source: &Source) -> Result<(), Error> {
        let server = source.base.as_str();
        match self.pacer.acquire(server).await {
            Ok(waited) => {
                if !waited.is_zero() {
                    self.metrics
                        .queued(&self.metrics.host_label(&source.host), waited);
                }
                Ok(())
            }
            Err(full) => {
                self.metrics
                    .queue_refused(&self.metrics.host_label(&source.host));
                Err(Error::QueueFull {
                    server: server.to_owned(),
                    qps: full.budget.qps,
                    waiting: full.waiting,
                    expected_wait: full.expected_wait,
                    max_wait: full.budget.max_wait,
                })
            }
        }
    }

    async fn send(
        &self,
        client: crate::auth::HttpClient,
        req: Request<Full<Bytes>>,
        source: &Source,
        keep: usize,
    ) -> Result<Answer, Error> {
        let semaphore = self.semaphore(&source.host);
        let _permit = semaphore
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let response = client.request(req).await.map_err(|e| {
            if let Some(refused) = refused_address(&e) {
                tracing::warn!(server = %source.host, error = %refused, "connection refused by policy");
                return Error::DeniedByPolicy {
                    reason: refused.to_string(),
                };
            }
            Error::Unreachable {
                host: source.host.clone(),
                cause: error_chain(&e),
                source: Some(Arc::new(e)),
            }
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
        interpret_keeping(&source.host, parts.status, &parts.headers, &body, keep)
    }

    /// Forgets what no request needs any more: per-host slots nobody holds or waits for,
    /// expired throttling, and clients and credentials unused for `idle`. Called periodically
    /// so maps keyed by caller-chosen hosts and identities do not grow without bound.
    pub fn prune_idle(&self, idle: Duration) {
        // A semaphore referenced only by the map has every permit free: recreating it later
        // is the same.
        self.limits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| Arc::strong_count(s) > 1);
        let now = Instant::now();
        self.throttled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
        self.pacer.prune_idle();
        self.clients.prune_idle(idle);
        self.credentials.prune_idle(idle);
    }

    /// Requests waiting for the budget of `source`'s server (tests).
    pub fn queued(&self, source: &Source) -> usize {
        self.pacer.waiting(source.base.as_str())
    }

    /// Entries of the per-host and throttling maps (tests).
    pub fn map_sizes(&self) -> (usize, usize) {
        (
            self.limits.lock().unwrap_or_else(|e| e.into_inner()).len(),
            self.throttled
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len(),
        )
    }

    fn semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut limits = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        limits
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.config.per_server_concurrency.max(1))))
            .clone()
    }

    fn throttled_until(&self, key: &[u8; 32]) -> Option<Instant> {
        let mut map = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some(until) if *until > Instant::now() => Some(*until),
            Some(_) => {
                map.remove(key);
                None
            }
            None => None,
        }
    }

    fn throttle(&self, key: [u8; 32], wait: Duration) {
        if wait.is_zero() {
            return;
        }
        let mut map = self.throttled.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key, Instant::now() + wait);
    }
}

#[cfg(test)]
mod tests;
