//! The fetcher's own metrics (prometheus-client), named `promscaler_fetcher_*`.
//!
//! Label values are bounded: `server` is the upstream host, but only the first
//! [`MAX_SERVER_LABELS`] distinct hosts get their own value (later ones are `other`); `kind` is
//! one of the `QueryErrorKind`s; identity kinds are `own`, `static`, `assume_role`. No query,
//! namespace or secret is ever a label.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::Error;

/// Distinct `server` label values before hosts are folded into `other`.
pub const MAX_SERVER_LABELS: usize = 50;

type Labels = Vec<(&'static str, String)>;

fn new_histogram() -> Histogram {
    // 5 ms .. ~20 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

/// The fetcher's metrics; cheap to clone (shared counters).
#[derive(Clone)]
pub struct Metrics {
    upstream_duration: Family<Labels, Histogram, fn() -> Histogram>,
    upstream_errors: Family<Labels, Counter>,
    queries: Family<Labels, Counter>,
    cache_hits: Counter,
    coalesced_waiters: Counter,
    credential_refreshes: Family<Labels, Counter>,
    credential_failures: Family<Labels, Counter>,
    policy_denials: Counter,
    queue_wait: Family<Labels, Histogram, fn() -> Histogram>,
    queue_refusals: Family<Labels, Counter>,
    fused_requests: Counter,
    fused_members: Histogram,
    fusion_fallbacks: Counter,
    unfusable: Family<Labels, Counter>,
    servers: Arc<Mutex<HashSet<String>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            upstream_duration: Family::new_with_constructor(new_histogram),
            upstream_errors: Family::default(),
            queries: Family::default(),
            cache_hits: Counter::default(),
            coalesced_waiters: Counter::default(),
            credential_refreshes: Family::default(),
            credential_failures: Family::default(),
            policy_denials: Counter::default(),
            queue_wait: Family::new_with_constructor(new_histogram),
            queue_refusals: Family::default(),
            fused_requests: Counter::default(),
            // 2 .. 1024 members.
            fused_members: Histogram::new(exponential_buckets(2.0, 2.0, 10)),
            fusion_fallbacks: Counter::default(),
            unfusable: Family::default(),
            servers: Arc::new(Mutex::new(HashSet::new())),
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric in `registry` under the `fetcher` prefix (the runtime's registry
    /// is prefixed `promscaler`, so names are `promscaler_fetcher_*`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("fetcher");
        r.register_with_unit(
            "upstream_request_duration",
            "Latency of upstream Prometheus/AMP requests, by server host",
            Unit::Seconds,
            self.upstream_duration.clone(),
        );
        r.register(
            "upstream_errors",
            "Failed upstream requests by server host and QueryErrorKind",
            self.upstream_errors.clone(),
        );
        r.register(
            "queries",
            "Instant queries answered, by outcome (ok or a QueryErrorKind) and how they were served (upstream, coalesced, cache)",
            self.queries.clone(),
        );
        r.register(
            "cache_hits",
            "Queries answered from a result younger than their max_age",
            self.cache_hits.clone(),
        );
        r.register(
            "coalesced_waiters",
            "Queries that waited on an identical in-flight upstream request instead of sending their own",
            self.coalesced_waiters.clone(),
        );
        r.register(
            "credential_refreshes",
            "AWS credentials obtained (STS calls for IRSA and AssumeRole), by identity kind",
            self.credential_refreshes.clone(),
        );
        r.register(
            "credential_failures",
            "Failures to obtain AWS credentials, by identity kind",
            self.credential_failures.clone(),
        );
        r.register(
            "policy_denials",
            "Queries denied by --allowed-servers or --operator-identity-namespaces",
            self.policy_denials.clone(),
        );
        r.register_with_unit(
            "upstream_queue_wait",
            "Time upstream requests waited for their server's budget (--upstream-qps), by server host; only requests that waited",
            Unit::Seconds,
            self.queue_wait.clone(),
        );
        r.register(
            "upstream_queue_refusals",
            "Requests refused because their server's budget queue was longer than --upstream-max-queue-wait, by server host",
            self.queue_refusals.clone(),
        );
        r.register(
            "fused_requests",
            "Upstream requests that answered several look-alike queries at once (query fusion)",
            self.fused_requests.clone(),
        );
        r.register(
            "fused_request_members",
            "Distinct label values (members) per fused upstream request",
            self.fused_members.clone(),
        );
        r.register(
            "fusion_fallbacks",
            "Fused requests (or members of one) sent again as each member's own query: the fused query failed for a reason that depends on the query, or its answer could not be split",
            self.fusion_fallbacks.clone(),
        );
        r.register(
            "unfusable_queries",
            "Queries sent upstream unfused because of their shape, by reason",
            self.unfusable.clone(),
        );
    }

    /// The `server` label value for `host` (bounded).
    pub fn host_label(&self, host: &str) -> String {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        if servers.contains(host) {
            return host.to_owned();
        }
        if servers.len() < MAX_SERVER_LABELS {
            servers.insert(host.to_owned());
            return host.to_owned();
        }
        "other".to_owned()
    }

    /// Records one upstream request.
    pub fn observe_upstream(&self, server: &str, elapsed: Duration, error: Option<&Error>) {
        self.upstream_duration
            .get_or_create(&vec![("server", server.to_owned())])
            .observe(elapsed.as_secs_f64());
        if let Some(err) = error {
            self.upstream_errors
                .get_or_create(&vec![
                    ("server", server.to_owned()),
                    ("kind", err.kind_label().to_owned()),
                ])
                .inc();
        }
    }

    /// Records one answered instant query.
    pub fn query(&self, outcome: Result<(), &Error>, served: &'static str) {
        let outcome = match outcome {
            Ok(()) => "ok",
            Err(e) => e.kind_label(),
        };
        self.queries
            .get_or_create(&vec![
                ("outcome", outcome.to_owned()),
                ("served", served.to_owned()),
            ])
            .inc();
    }

    /// A cache hit.
    pub fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    /// A coalesced waiter.
    pub fn coalesced(&self) {
        self.coalesced_waiters.inc();
    }

    /// Credentials obtained for an identity kind.
    pub fn credential_refresh(&self, kind: &'static str) {
        self.credential_refreshes
            .get_or_create(&vec![("identity", kind.to_owned())])
            .inc();
    }

    /// Credentials could not be obtained.
    pub fn credential_failure(&self, kind: &'static str) {
        self.credential_failures
            .get_or_create(&vec![("identity", kind.to_owned())])
            .inc();
    }

    /// A request that waited `waited` for its server's budget.
    pub fn queued(&self, server: &str, waited: Duration) {
        self.queue_wait
            .get_or_create(&vec![("server", server.to_owned())])
            .observe(waited.as_secs_f64());
    }

    /// A request refused because its server's budget queue was too long.
    pub fn queue_refused(&self, server: &str) {
        self.queue_refusals
            .get_or_create(&vec![("server", server.to_owned())])
            .inc();
    }

    /// A policy denial.
    pub fn policy_denial(&self) {
        self.policy_denials.inc();
    }

    /// One fused upstream request for `members` distinct values.
    pub fn fused_request(&self, members: usize) {
        self.fused_requests.inc();
        self.fused_members.observe(members as f64);
    }

    /// A fused request (or some of its members) sent again unfused.
    pub fn fusion_fallback(&self) {
        self.fusion_fallbacks.inc();
    }

    /// A query that cannot be fused, by [`crate::fusion::Reason`] label.
    pub fn unfusable(&self, reason: &'static str) {
        self.unfusable
            .get_or_create(&vec![("reason", reason.to_owned())])
            .inc();
    }

    /// Fused requests so far (tests).
    pub fn fused_request_count(&self) -> u64 {
        self.fused_requests.get()
    }

    /// Fallbacks so far (tests).
    pub fn fusion_fallback_count(&self) -> u64 {
        self.fusion_fallbacks.get()
    }

    /// Unfusable queries of `reason` so far (tests).
    pub fn unfusable_count(&self, reason: &'static str) -> u64 {
        self.unfusable
            .get_or_create(&vec![("reason", reason.to_owned())])
            .get()
    }

    /// Credential refreshes so far, all kinds (tests).
    pub fn credential_refresh_count(&self, kind: &'static str) -> u64 {
        self.credential_refreshes
            .get_or_create(&vec![("identity", kind.to_owned())])
            .get()
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn server_labels_are_bounded() {
        let m = Metrics::default();
        for i in 0..(MAX_SERVER_LABELS + 10) {
            m.host_label(&format!("host-{i}"));
        }
        assert_eq!(m.host_label("host-0"), "host-0");
        assert_eq!(m.host_label("brand-new"), "other");
    }

    #[test]
    fn metrics_are_exposed_with_prefix_and_seconds_unit() {
        let m = Metrics::default();
        let mut registry = Registry::with_prefix("promscaler");
        m.register(&mut registry);
        m.observe_upstream(
            "prom:9090",
            Duration::from_millis(12),
            Some(&Error::EmptyResult),
        );
        m.cache_hit();
        m.credential_refresh("own");
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("promscaler_fetcher_upstream_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(
            text.contains(r#"promscaler_fetcher_upstream_errors_total{server="prom:9090",kind="empty_result"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("promscaler_fetcher_cache_hits_total 1"),
            "{text}"
        );
        assert!(
            text.contains(r#"promscaler_fetcher_credential_refreshes_total{identity="own"} 1"#),
            "{text}"
        );
    }
}
