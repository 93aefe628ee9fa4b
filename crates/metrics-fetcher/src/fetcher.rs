//! The fetcher: policy → coalescing/cache → upstream (signed) → interpretation.

use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::aws::CredentialStore;
use crate::cache::{Coalescer, Key, Served};
use crate::check::{CheckReport, diagnose};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::prometheus::{QueryData, Upstream, UpstreamConfig, Value, reduce_instant, reduce_range};
use crate::source::{InstantQuery, RangeQuery};

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            upstream: UpstreamConfig::default(),
            max_batch: 1000,
            cache_retention: Duration::from_secs(10 * 60),
            cache_entries: 10_000,
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
}

/// Queries Prometheus-compatible servers for the gRPC service.
pub struct Fetcher {
    config: Config,
    upstream: Arc<Upstream>,
    cache: Coalescer<Arc<QueryData>>,
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
        Self {
            cache: Coalescer::new(config.cache_retention, config.cache_entries),
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

    /// Largest accepted batch.
    pub fn max_batch(&self) -> usize {
        self.config.max_batch
    }

    /// Drops expired cached results; call periodically.
    pub fn prune_cache(&self) {
        self.cache.prune();
    }

    /// Runs one instant query and reduces it to one value.
    #[tracing::instrument(skip_all, fields(namespace = %q.caller.namespace, name = %q.caller.name, server = %q.source.host))]
    pub async fn query(&self, q: &InstantQuery) -> QueryOutcome {
        let (data, served) = self.instant_data(q).await;
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
        }
    }

    /// Runs queries concurrently (bounded per server by the upstream's semaphores); results in
    /// request order.
    pub async fn query_batch(&self, queries: &[InstantQuery]) -> Result<Vec<QueryOutcome>, Error> {
        if queries.len() > self.config.max_batch {
            return Err(Error::BatchTooLarge {
                len: queries.len(),
                max: self.config.max_batch,
            });
        }
        Ok(futures::future::join_all(queries.iter().map(|q| self.query(q))).await)
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

    async fn instant_data(&self, q: &InstantQuery) -> (Result<Arc<QueryData>, Error>, Served) {
        if let Err(e) = self.deny_unless_allowed(&q.source, &q.caller) {
            return (Err(e), Served::Upstream);
        }
        if q.query.trim().is_empty() {
            return (
                Err(Error::invalid("query", "empty; give a PromQL expression")),
                Served::Upstream,
            );
        }
        let key = Key::for_instant(q);
        let upstream = self.upstream.clone();
        let (source, query, time) = (q.source.clone(), q.query.clone(), q.time);
        let (result, served) = self
            .cache
            .get(key, q.max_age, async move {
                upstream.instant(&source, &query, time).await.map(Arc::new)
            })
            .await;
        match served {
            Served::Cache => self.metrics.cache_hit(),
            Served::Coalesced => self.metrics.coalesced(),
            Served::Upstream => {}
        }
        (result, served)
    }

    fn deny_unless_allowed(
        &self,
        source: &crate::source::Source,
        caller: &crate::source::Caller,
    ) -> Result<(), Error> {
        self.policy.check(source, caller).inspect_err(|_| {
            self.metrics.policy_denial();
        })
    }
}
