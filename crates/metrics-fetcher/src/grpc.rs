//! `MetricsFetcherService`: wire ↔ domain conversion (the only place) and the handlers, which
//! read as validate → fetch → convert. Per-query failures travel in-band (`QueryError`); only a
//! malformed RPC as a whole becomes a `tonic::Status` (through `From<Error>`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use http::{HeaderName, HeaderValue};
use promscaler_proto::v1 as pb;
use promscaler_proto::v1::metrics_fetcher_service_server::MetricsFetcherService;
use tonic::{Request, Response, Status};

use crate::Error;
use crate::check::CheckReport;
use crate::fetcher::{Fetcher, QueryOutcome};
use crate::prometheus::Value;
use crate::source::{
    Auth, AwsAuth, Caller, ClientCert, DEFAULT_TIMEOUT, HeaderAuth, InstantQuery, RangeQuery,
    Secret, Source, StaticKeys, TlsAuth,
};

/// The gRPC service.
#[derive(Clone)]
pub struct FetcherService {
    fetcher: Arc<Fetcher>,
}

impl FetcherService {
    /// Serves `fetcher`.
    pub fn new(fetcher: Arc<Fetcher>) -> Self {
        Self { fetcher }
    }

    /// The tonic server for this service.
    pub fn into_server(
        self,
    ) -> promscaler_proto::v1::metrics_fetcher_service_server::MetricsFetcherServiceServer<Self>
    {
        promscaler_proto::v1::metrics_fetcher_service_server::MetricsFetcherServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl MetricsFetcherService for FetcherService {
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let response = match InstantQuery::try_from(request.into_inner()) {
            Ok(q) => self.fetcher.query(&q).await.into(),
            Err(err) => QueryOutcome {
                result: Err(err),
                from_cache: false,
                samples: None,
            }
            .into(),
        };
        Ok(Response::new(response))
    }

    async fn query_batch(
        &self,
        request: Request<pb::QueryBatchRequest>,
    ) -> Result<Response<pb::QueryBatchResponse>, Status> {
        let queries = request.into_inner().queries;
        if queries.len() > self.fetcher.max_batch() {
            return Err(Error::BatchTooLarge {
                len: queries.len(),
                max: self.fetcher.max_batch(),
            }
            .into());
        }
        // Invalid entries answer in-band in their slot; valid ones run concurrently.
        let parsed: Vec<Result<InstantQuery, Error>> =
            queries.into_iter().map(InstantQuery::try_from).collect();
        let valid: Vec<InstantQuery> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().cloned())
            .collect();
        let mut outcomes = self.fetcher.query_batch(&valid).await?.into_iter();
        let results = parsed
            .into_iter()
            .map(|p| match p {
                Ok(_) => outcomes
                    .next()
                    .map(pb::QueryResponse::from)
                    .unwrap_or_else(|| {
                        QueryOutcome {
                            result: Err(Error::Internal("missing batch result".into())),
                            from_cache: false,
                            samples: None,
                        }
                        .into()
                    }),
                Err(err) => QueryOutcome {
                    result: Err(err),
                    from_cache: false,
                    samples: None,
                }
                .into(),
            })
            .collect();
        Ok(Response::new(pb::QueryBatchResponse { results }))
    }

    async fn query_range(
        &self,
        request: Request<pb::QueryRangeRequest>,
    ) -> Result<Response<pb::QueryRangeResponse>, Status> {
        let query = RangeQuery::try_from(request.into_inner())?;
        let response = match self.fetcher.query_range(&query).await {
            Ok(values) => pb::QueryRangeResponse {
                samples: values.into_iter().map(pb::Sample::from).collect(),
                error: None,
            },
            Err(err) => pb::QueryRangeResponse {
                samples: Vec::new(),
                error: Some(err.into()),
            },
        };
        Ok(Response::new(response))
    }

    async fn check(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let query = InstantQuery::try_from(request.into_inner())?;
        Ok(Response::new(self.fetcher.check(&query).await.into()))
    }
}

// ---------------------------------------------------------------------------------------------
// Wire → domain.

impl TryFrom<pb::QueryRequest> for InstantQuery {
    type Error = Error;

    fn try_from(req: pb::QueryRequest) -> Result<Self, Error> {
        let source = req
            .source
            .ok_or_else(|| Error::invalid("source", "missing; give the server and its auth"))?;
        let caller = caller(req.caller);
        let mut source = Source::try_from(source)?;
        source.tag_session(&caller.namespace)?;
        Ok(Self {
            source: Arc::new(source),
            query: req.query,
            ignore_null_values: req.ignore_null_values,
            time: req.time.map(|t| timestamp(&t, "time")).transpose()?,
            caller,
            max_age: req
                .max_age
                .map(|d| duration(&d, "max_age"))
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

impl TryFrom<pb::QueryRangeRequest> for RangeQuery {
    type Error = Error;

    fn try_from(req: pb::QueryRangeRequest) -> Result<Self, Error> {
        let source = req
            .source
            .ok_or_else(|| Error::invalid("source", "missing; give the server and its auth"))?;
        let start = req
            .start
            .ok_or_else(|| Error::invalid("start", "missing"))
            .and_then(|t| timestamp(&t, "start"))?;
        let end = req
            .end
            .ok_or_else(|| Error::invalid("end", "missing"))
            .and_then(|t| timestamp(&t, "end"))?;
        let step = req
            .step
            .ok_or_else(|| Error::invalid("step", "missing; e.g. 30s"))
            .and_then(|d| duration(&d, "step"))?;
        if step.is_zero() {
            return Err(Error::invalid("step", "must be greater than zero"));
        }
        if end < start {
            return Err(Error::invalid("end", "is before start"));
        }
        if req.query.trim().is_empty() {
            return Err(Error::invalid("query", "empty; give a PromQL expression"));
        }
        let caller = caller(req.caller);
        let mut source = Source::try_from(source)?;
        source.tag_session(&caller.namespace)?;
        Ok(Self {
            source: Arc::new(source),
            query: req.query,
            start,
            end,
            step,
            caller,
        })
    }
}

impl TryFrom<pb::PrometheusSource> for Source {
    type Error = Error;

    fn try_from(src: pb::PrometheusSource) -> Result<Self, Error> {
        let (base, host) = Source::parse_base(&src.server_address)?;
        let mut custom_headers = Vec::with_capacity(src.custom_headers.len());
        for (k, v) in src.custom_headers {
            let name = HeaderName::from_bytes(k.trim().as_bytes()).map_err(|_| {
                Error::invalid(
                    "source.custom_headers",
                    format!("{k:?} is not a header name"),
                )
            })?;
            refuse_reserved_header("source.custom_headers", &name)?;
            let value = HeaderValue::from_str(v.trim()).map_err(|_| {
                Error::invalid(
                    "source.custom_headers",
                    format!("the value of {name} is not a valid header value"),
                )
            })?;
            custom_headers.push((name, value));
        }
        custom_headers.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let mut query_parameters: Vec<(String, String)> =
            src.query_parameters.into_iter().collect();
        query_parameters.sort();
        let timeout = match src.timeout {
            Some(d) => match duration(&d, "source.timeout")? {
                d if d.is_zero() => DEFAULT_TIMEOUT,
                d => d,
            },
            None => DEFAULT_TIMEOUT,
        };
        let auth = match src.auth.and_then(|a| a.method) {
            None => Auth::None,
            Some(m) => Auth::try_from(m)?,
        };
        Ok(Self {
            base,
            host,
            custom_headers,
            query_parameters,
            namespace: Some(src.namespace).filter(|n| !n.is_empty()),
            unsafe_ssl: src.unsafe_ssl,
            timeout,
            auth,
        })
    }
}

impl TryFrom<pb::upstream_auth::Method> for Auth {
    type Error = Error;

    fn try_from(m: pb::upstream_auth::Method) -> Result<Self, Error> {
        use pb::upstream_auth::Method;
        Ok(match m {
            Method::Aws(a) => Auth::Aws(AwsAuth::try_from(a)?),
            Method::Bearer(b) => Auth::Header(bearer(b, "source.auth.bearer")?),
            Method::Basic(b) => {
                if b.username.is_empty() {
                    return Err(Error::invalid("source.auth.basic.username", "empty"));
                }
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", b.username, b.password));
                Auth::Header(HeaderAuth {
                    name: http::header::AUTHORIZATION,
                    value: Secret::new(format!("Basic {encoded}")),
                })
            }
            Method::Tls(t) => {
                let client_cert = match (t.cert_pem.is_empty(), t.key_pem.is_empty()) {
                    (true, true) => None,
                    (false, false) => Some(ClientCert {
                        cert_pem: t.cert_pem,
                        key_pem: Secret::new(t.key_pem),
                    }),
                    _ => {
                        return Err(Error::invalid(
                            "source.auth.tls",
                            "give both cert_pem and key_pem, or neither",
                        ));
                    }
                };
                Auth::Tls(TlsAuth {
                    client_cert,
                    ca_pem: Some(t.ca_pem).filter(|c| !c.is_empty()),
                    header: t
                        .bearer
                        .filter(|b| !b.token.is_empty())
                        .map(|b| bearer(b, "source.auth.tls.bearer"))
                        .transpose()?,
                })
            }
        })
    }
}

impl TryFrom<pb::AwsAuth> for AwsAuth {
    type Error = Error;

    fn try_from(a: pb::AwsAuth) -> Result<Self, Error> {
        let static_keys = match (a.access_key_id.is_empty(), a.secret_access_key.is_empty()) {
            (true, true) => None,
            (false, false) => Some(StaticKeys {
                access_key_id: a.access_key_id,
                secret_access_key: Secret::new(a.secret_access_key),
                session_token: Some(a.session_token)
                    .filter(|t| !t.is_empty())
                    .map(Secret::new),
            }),
            _ => {
                return Err(Error::invalid(
                    "source.auth.aws",
                    "give both access_key_id and secret_access_key, or neither to use the \
                     fetcher's own identity",
                ));
            }
        };
        let region = Some(a.region).filter(|r| !r.is_empty());
        if let Some(r) = &region {
            crate::aws::validate_name("source.auth.aws.region", r)?;
        }
        let service = Some(a.service)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "aps".to_owned());
        crate::aws::validate_name("source.auth.aws.service", &service)?;
        Ok(Self {
            region,
            role_arn: Some(a.role_arn).filter(|r| !r.is_empty()),
            session_namespace: None,
            static_keys,
            service,
        })
    }
}

fn bearer(b: pb::BearerAuth, field: &'static str) -> Result<HeaderAuth, Error> {
    if b.token.is_empty() {
        return Err(Error::invalid(field, "empty token"));
    }
    if b.header_name.is_empty() {
        return Ok(HeaderAuth {
            name: http::header::AUTHORIZATION,
            value: Secret::new(format!("Bearer {}", b.token)),
        });
    }
    let name = HeaderName::from_bytes(b.header_name.trim().as_bytes())
        .map_err(|_| Error::invalid(field, format!("{:?} is not a header name", b.header_name)))?;
    if name != http::header::AUTHORIZATION {
        refuse_reserved_header(field, &name)?;
    }
    Ok(HeaderAuth {
        name,
        value: Secret::new(b.token),
    })
}

/// Headers a caller may not set: `Host` (it would reach another virtual host than the one the
/// allow-list checked), hop-by-hop headers (they change how the request is framed or proxied),
/// `X-Amz-*` (the SigV4 signer owns them) and `Authorization` (set by `source.auth`).
fn refuse_reserved_header(field: &'static str, name: &HeaderName) -> Result<(), Error> {
    const HOP_BY_HOP: [&str; 6] = [
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    let n = name.as_str(); // lower-case
    let why = if n == "host" {
        "the fetcher sets Host from serverAddress"
    } else if HOP_BY_HOP.contains(&n) || n.starts_with("proxy-") {
        "hop-by-hop and proxy headers are not forwarded"
    } else if n.starts_with("x-amz-") {
        "X-Amz-* headers belong to SigV4 signing"
    } else if n == "authorization" {
        "set credentials with the authentication settings (bearer, basic, aws)"
    } else {
        return Ok(());
    };
    Err(Error::invalid(
        field,
        format!("header {name} may not be set: {why}; remove it"),
    ))
}

fn caller(r: Option<pb::ScalerRef>) -> Caller {
    r.map(|r| Caller {
        namespace: r.namespace,
        name: r.name,
    })
    .unwrap_or_default()
}

fn timestamp(t: &prost_types::Timestamp, field: &'static str) -> Result<SystemTime, Error> {
    SystemTime::try_from(*t).map_err(|e| Error::invalid(field, e.to_string()))
}

fn duration(d: &prost_types::Duration, field: &'static str) -> Result<Duration, Error> {
    Duration::try_from(*d).map_err(|_| Error::invalid(field, "must be a non-negative duration"))
}

// ---------------------------------------------------------------------------------------------
// Domain → wire.

impl From<Value> for pb::Sample {
    fn from(v: Value) -> Self {
        pb::Sample {
            value: v.value,
            timestamp: v.at.map(prost_types::Timestamp::from),
        }
    }
}

impl From<QueryOutcome> for pb::QueryResponse {
    fn from(o: QueryOutcome) -> Self {
        use pb::query_response::Result as R;
        pb::QueryResponse {
            result: Some(match o.result {
                Ok(v) => R::Sample(v.into()),
                Err(e) => R::Error(e.into()),
            }),
            from_cache: o.from_cache,
            samples_processed: o.samples,
        }
    }
}

impl From<CheckReport> for pb::CheckResponse {
    fn from(r: CheckReport) -> Self {
        pb::CheckResponse {
            result_type: r.result_type,
            series_count: r.series_count,
            series: r.series,
            usable: r.usable,
            advice: r.advice,
            sample: r.sample.map(pb::Sample::from),
            error: r.error.map(pb::QueryError::from),
        }
    }
}

impl From<Error> for tonic::Status {
    /// Used when a whole RPC fails; per-query failures travel in-band instead.
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            // Client mistakes.
            Error::InvalidArgument { .. }
            | Error::BatchTooLarge { .. }
            | Error::BadQuery { .. } => tonic::Status::invalid_argument(message),
            Error::DeniedByPolicy { .. } | Error::Forbidden { .. } => {
                tonic::Status::permission_denied(message)
            }
            Error::Credentials { .. } | Error::Signing { .. } | Error::Unauthorized { .. } => {
                tonic::Status::unauthenticated(message)
            }
            // The query ran but its result cannot be used as it is.
            Error::EmptyResult
            | Error::MultipleSeries { .. }
            | Error::NotFinite { .. }
            | Error::UnusableResult { .. } => tonic::Status::failed_precondition(message),
            // Upstream faults.
            Error::Timeout { .. } | Error::UpstreamTimeout { .. } => {
                tonic::Status::deadline_exceeded(message)
            }
            Error::Throttled { .. } | Error::QueueFull { .. } => {
                tonic::Status::resource_exhausted(message)
            }
            Error::Unreachable { .. } | Error::Upstream { .. } => {
                tonic::Status::unavailable(message)
            }
            // Our fault.
            Error::Internal(_) => tonic::Status::internal(message),
        }
    }
}

#[cfg(test)]
mod tests;
