//! The fetcher: policy → coalescing/cache → upstream (signed) → interpretation.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt as _;

use crate::Error;
use crate::aws::CredentialStore;
use crate::cache::{Coalescer, Key, Limits, Pending, Served};
use crate::check::{CheckReport, diagnose};
use crate::fusion::{Fuser, FusionConfig, Member, Scope};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::prometheus::{Answer, Upstream, UpstreamConfig, Value, reduce_instant, reduce_range};
use crate::source::{InstantQuery, RangeQuery};

/// Credentials, HTTP clients and per-host state not used for this long are forgotten (they are
/// rebuilt on next use: one credential fetch, one new connection).
pub const IDLE_EVICTION: Duration = Duration::from_secs(15 * 60);

/// Settings of the fetcher.
#[derive(Debug, Clone)]
pub struct Config {
    /// Upstream client settings.
    pub upstream: UpstreamConfig,
    /// Largest `QueryBatch`.
    pub max_batch: usize,
    /// How long results are kept for `max_age` (longer `max_age`s are capped by it).
    pub cache_retention: Duration,
    /// Most results kept at once.
    pub cache_entries: usize,
    /// Most bytes of results kept at once (least recently used go first).
    pub cache_max_bytes: usize,
    /// Largest accepted `source.timeout`; a larger one is rejected (INVALID_ARGUMENT), so one
    /// caller cannot hold per-server slots for an hour.
    pub max_query_timeout: Duration,
    /// Query fusion.
    pub fusion: FusionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            upstream: UpstreamConfig::default(),
            max_batch: 1000,
            cache_retention: Duration::from_secs(10 * 60),
            cache_entries: 10_000,
            cache_max_bytes: 64 * 1024 * 1024,
            max_query_timeout: Duration::from_secs(30),
            fusion: FusionConfig::default(),
        }
    }
}

/// The answer to one instant query.
#[derive(Debug, Clone)]
pub struct QueryOutcome {
    /// The value or why there is none.
    pub result: Result<Value, Error>,
    /// Served from a cached result.
    pub from_cache: bool,
    /// Samples the upstream processed for this caller: the server's figure for the caller
    /// whose request it was, 0 for a cached or coalesced answer, `None` when unknown.
    pub samples: Option<u64>,
}

/// Queries Prometheus-compatible servers for the gRPC service.
pub struct Fetcher {
    config: Config,
    upstream: Arc<Upstream>,
    cache: Coalescer<Arc<Answer>>,
    fuser: Arc<Fuser>,
    policy: Policy,
    metrics: Metrics,
}

impl Fetcher {
    /// Creates a fetcher.
    pub fn new(
        config: Config,
        policy: Policy,
        credentials: Arc<CredentialStore>,
        metrics: Metrics,
    ) -> Self {
        let upstream = Arc::new(Upstream::new(
            config.upstream.clone(),
            credentials,
            metrics.clone(),
        ));
        let fuser = Arc::new(Fuser::new(config.fusion, upstream.clone(), metrics.clone()));
        Self {
            fuser,
            cache: Coalescer::new(
                Limits {
                    retention: config.cache_retention,
                    max_entries: config.cache_entries,
                    max_bytes: config.cache_max_bytes,
                },
                |a| a.approx_bytes(),
            ),
            config,
            upstream,
            policy,
            metrics,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The query fuser.
    pub fn fuser(&self) -> &Fuser {
        &self.fuser
    }

    /// Largest accepted batch.
    pub fn max_batch(&self) -> usize {
        self.config.max_batch
    }

    /// Drops expired cached results, and per-host state, clients and credentials not used
    /// for [`IDLE_EVICTION`]; call periodically.
    pub fn prune_cache(&self) {
        self.cache.prune();
        self.upstream.prune_idle(IDLE_EVICTION);
    }

    /// Runs one instant query and reduces it to one value.
    pub async fn query(&self, q: &InstantQuery) -> QueryOutcome {
        let pending = self.begin(q, &Scope::none());
        self.finish(q, pending).await
    }

    /// Runs queries concurrently (bounded per server by the upstream's semaphores); results in
    /// request order. Look-alike queries of the batch are fused (every one of them reaches its
    /// family's bucket before the bucket's window starts).
    pub async fn query_batch(&self, queries: &[InstantQuery]) -> Result<Vec<QueryOutcome>, Error> {
        if queries.len() > self.config.max_batch {
            return Err(Error::BatchTooLarge {
                len: queries.len(),
                max: self.config.max_batch,
            });
        }
        let scope = self.fuser.scope();
        let pending: Vec<_> = queries.iter().map(|q| self.begin(q, &scope)).collect();
        drop(scope);
        Ok(
            futures::future::join_all(queries.iter().zip(pending).map(|(q, p)| self.finish(q, p)))
                .await,
        )
    }

    #[tracing::instrument(skip_all, fields(namespace = %q.caller.namespace, name = %q.caller.name, server = %q.source.host))]
    async fn finish(
        &self,
        q: &InstantQuery,
        pending: Result<Pending<Arc<Answer>>, Error>,
    ) -> QueryOutcome {
        let (data, served) = match pending {
            Ok(p) => self.wait(p).await,
            Err(e) => (Err(e), Served::Upstream),
        };
        // A request is charged to the caller that sent it; cached and coalesced answers cost
        // nothing (a fused member's share is in its answer, see crate::fusion).
        let samples = match (&data, served) {
            (Ok(answer), Served::Upstream) => answer.samples,
            (Ok(_), Served::Coalesced | Served::Cache) => Some(0),
            (Err(_), _) => None,
        };
        let result = data.and_then(|d| reduce_instant(&d, q.ignore_null_values));
        let served_label = match served {
            Served::Upstream => "upstream",
            Served::Coalesced => "coalesced",
            Served::Cache => "cache",
        };
        self.metrics
            .query(result.as_ref().map(|_| ()), served_label);
        QueryOutcome {
            result,
            from_cache: served == Served::Cache,
            samples,
        }
    }

    /// Runs a range query that must yield one series.
    #[tracing::instrument(skip_all, fields(namespace = %q.caller.namespace, name = %q.caller.name, server = %q.source.host))]
    pub async fn query_range(&self, q: &RangeQuery) -> Result<Vec<Value>, Error> {
        self.deny_unless_allowed(&q.source, &q.caller)?;
        let data = self
            .upstream
            .range(&q.source, &q.query, q.start, q.end, q.step)
            .await?;
        reduce_range(&data)
    }

    /// Runs a query and explains whether it is usable for scaling.
    pub async fn check(&self, q: &InstantQuery) -> CheckReport {
        let (data, _) = self.instant_data(q).await;
        diagnose(data.map(Arc::unwrap_or_clone), q.ignore_null_values)
    }

    async fn instant_data(&self, q: &InstantQuery) -> (Result<Arc<Answer>, Error>, Served) {
        match self.begin(q, &Scope::none()) {
            Ok(p) => self.wait(p).await,
            Err(e) => (Err(e), Served::Upstream),
        }
    }

    /// Decides synchronously how `q` is answered: from the cache, by joining an identical
    /// request in flight, or by a new upstream request — fused with look-alikes when its shape
    /// allows (it then joins its family's bucket now, so a batch's members meet).
    fn begin(&self, q: &InstantQuery, scope: &Scope) -> Result<Pending<Arc<Answer>>, Error> {
        self.deny_unless_allowed(&q.source, &q.caller)?;
        if q.query.trim().is_empty() {
            return Err(Error::invalid("query", "empty; give a PromQL expression"));
        }
        let key = Key::for_instant(q);
        Ok(self.cache.begin(key, q.max_age, || {
            let (source, query, time) = (q.source.clone(), q.query.clone(), q.time);
            // Only the bounded summary outlives the request (and is cached).
            match self.fuser.analyse(&q.query) {
                Some(fusable) => {
                    let answer = self.fuser.submit(
                        Member {
                            source,
                            query,
                            time,
                            fusable,
                        },
                        scope,
                    );
                    async move {
                        answer
                            .await
                            .unwrap_or_else(|_| {
                                Err(Error::Internal("the fused query was dropped".into()))
                            })
                            .map(|a| Arc::new(a.summary()))
                    }
                    .boxed()
                }
                None => {
                    let upstream = self.upstream.clone();
                    async move {
                        upstream
                            .instant(&source, &query, time)
                            .await
                            .map(|a| Arc::new(a.summary()))
                    }
                    .boxed()
                }
            }
        }))
    }

    async fn wait(&self, pending: Pending<Arc<Answer>>) -> (Result<Arc<Answer>, Error>, Served) {
        let (result, served) = pending.wait().await;
        match served {
            Served::Cache => self.metrics.cache_hit(),
            Served::Coalesced => self.metrics.coalesced(),
            Served::Upstream => {}
        }
        (result, served)
    }

    /// Checks what the fetcher's flags bound (the timeout), then the policy.
    fn deny_unless_allowed(
        &self,
        source: &crate::source::Source,
        caller: &crate::source::Caller,
    ) -> Result<(), Error> {
        if source.timeout > self.config.max_query_timeout {
            return Err(Error::invalid(
                "source.timeout",
                format!(
                    "{} is more than the fetcher accepts (--max-query-timeout {}); lower the \
                     trigger's timeout",
                    humantime::format_duration(source.timeout),
                    humantime::format_duration(self.config.max_query_timeout)
                ),
            ));
        }
        self.policy.check(source, caller).inspect_err(|_| {
            self.metrics.policy_denial();
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::Full;
    use promscaler_proto::v1::QueryErrorKind;

    use super::*;
    use crate::source::{Auth, Caller, Source};
    use crate::testing::serve;

    const ONE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"140"]}]}}"#;

    fn fetcher(config: Config) -> Arc<Fetcher> {
        Arc::new(Fetcher::new(
            config,
            Policy::default(),
            Arc::new(CredentialStore::new(None, Metrics::default())),
            Metrics::default(),
        ))
    }

    fn query(addr: std::net::SocketAddr, q: &str, timeout: Duration) -> InstantQuery {
        let (base, host) = Source::parse_base(&format!("http://{addr}")).unwrap();
        InstantQuery {
            source: Arc::new(Source {
                base,
                host,
                custom_headers: vec![],
                query_parameters: vec![],
                namespace: None,
                unsafe_ssl: false,
                timeout,
                auth: Auth::None,
            }),
            query: q.into(),
            ignore_null_values: false,
            time: None,
            caller: Caller::default(),
            max_age: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn timeouts_above_the_maximum_are_rejected_with_the_limit() {
        let f = fetcher(Config::default());
        let addr = "127.0.0.1:9".parse().unwrap();
        let err = f
            .query(&query(addr, "up", Duration::from_secs(3600)))
            .await
            .result
            .unwrap_err();
        assert_eq!(err.kind(), QueryErrorKind::InvalidArgument, "{err}");
        assert!(err.to_string().contains("--max-query-timeout 30s"), "{err}");
    }

    #[tokio::test]
    async fn a_cancelled_call_frees_its_per_server_slot() {
        // "slow" is never answered; anything else is.
        let (_hold, gate) = tokio::sync::watch::channel(());
        let server = serve(move |req: http::Request<hyper::body::Incoming>| {
            let mut gate = gate.clone();
            async move {
                if req.uri().query().unwrap_or_default().contains("slow") {
                    let _ = gate.changed().await;
                }
                http::Response::new(Full::new(Bytes::from_static(ONE.as_bytes())))
            }
        })
        .await;
        let mut config = Config::default();
        config.upstream.per_server_concurrency = 1;
        let f = fetcher(config);
        let slow = {
            let (f, q) = (
                f.clone(),
                query(server.addr, "slow", Duration::from_secs(30)),
            );
            tokio::spawn(async move { f.query(&q).await })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while server.requests.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no request arrived");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The gRPC call goes away (tonic drops the handler future).
        slow.abort();
        let _ = slow.await;
        // With the one slot still held by the abandoned request, this would time out.
        let fast = f
            .query(&query(server.addr, "fast", Duration::from_secs(10)))
            .await;
        assert_eq!(fast.result.unwrap().value, 140.0);
    }

    /// The server's samples go to the caller whose request it was; a cached answer costs
    /// nothing; a server that does not report them leaves the figure unknown.
    #[tokio::test]
    async fn samples_processed_are_the_servers_for_its_request_and_zero_from_the_cache() {
        const WITH_STATS: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"140"]}],"stats":{"timings":{"evalTotalTime":0.001},"samples":{"totalQueryableSamples":4242,"peakSamples":12}}}}"#;
        let server = serve(|req: http::Request<hyper::body::Incoming>| async move {
            let asked = req.uri().query().unwrap_or_default().contains("stats=all");
            let body = if asked { WITH_STATS } else { ONE };
            http::Response::new(Full::new(Bytes::from_static(body.as_bytes())))
        })
        .await;
        let f = fetcher(Config::default());
        let mut q = query(server.addr, "sum(up)", Duration::from_secs(5));
        q.max_age = Duration::from_secs(60);
        let first = f.query(&q).await;
        assert_eq!(first.result.unwrap().value, 140.0);
        assert_eq!(first.samples, Some(4242));
        let cached = f.query(&q).await;
        assert!(cached.from_cache);
        assert_eq!(cached.samples, Some(0));

        let mut config = Config::default();
        config.upstream.query_stats = false;
        let unknown = fetcher(config)
            .query(&query(server.addr, "sum(up)", Duration::from_secs(5)))
            .await;
        assert_eq!(unknown.result.unwrap().value, 140.0);
        assert_eq!(unknown.samples, None, "not asked, not reported");
    }
}
