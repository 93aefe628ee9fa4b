//! The metrics-fetcher service: Prometheus and AMP (SigV4) queries, credentials, coalescing, caching, policy
