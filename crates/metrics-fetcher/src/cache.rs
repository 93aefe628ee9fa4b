//! Coalescing and result caching.
//!
//! Concurrent requests with the same [`Key`] share one upstream request (the first caller's
//! fetch runs in its own task, so it completes even if that caller goes away); a successful
//! result younger than a request's `max_age` is served without an upstream request. Keys are
//! SHA-256 digests of source, auth identity (secrets included, hashed) and query, so no secret
//! is ever kept in clear. Failures are shared by the waiters of that one request but not cached.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::Error;
use crate::source::InstantQuery;

/// A cache key: a digest of everything that makes two upstream requests identical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of an instant query. `ignore_null_values`, `caller` and `max_age` are not part
    /// of it: they do not change the upstream request, only how its answer is used.
    pub fn for_instant(q: &InstantQuery) -> Self {
        let mut h = Sha256::new();
        h.update(b"instant\0");
        q.source.fingerprint(&mut h);
        h.update((q.query.len() as u64).to_le_bytes());
        h.update(q.query.as_bytes());
        match q.time {
            None => h.update([0]),
            Some(t) => {
                let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                h.update([1]);
                h.update(d.as_millis().to_le_bytes());
            }
        }
        Self(h.finalize().into())
    }
}

/// How a result was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// This caller's own upstream request.
    Upstream,
    /// Another caller's concurrent upstream request.
    Coalesced,
    /// A stored result younger than `max_age`.
    Cache,
}

type Outcome<V> = Result<V, Error>;

/// One upstream request in flight and who waits for it.
struct Flight<V> {
    /// Tells this flight from a later one under the same key.
    id: u64,
    shared: Shared<BoxFuture<'static, Outcome<V>>>,
    /// Callers awaiting `shared`; the request is aborted when the last one goes.
    waiters: usize,
    abort: tokio::task::AbortHandle,
}

struct Inner<V> {
    inflight: HashMap<Key, Flight<V>>,
    done: HashMap<Key, (Instant, V)>,
    next_id: u64,
}

/// Coalesces identical in-flight requests and keeps recent results.
pub struct Coalescer<V> {
    inner: Arc<Mutex<Inner<V>>>,
    retention: Duration,
    max_entries: usize,
}

/// Removes a flight's in-flight entry however its task ends: completed, panicked or aborted.
/// Without it, a panic left the entry behind and every later identical query got "task
/// panicked" until restart.
struct FlightGuard<V> {
    state: Arc<Mutex<Inner<V>>>,
    key: Key,
    id: u64,
}

impl<V> Drop for FlightGuard<V> {
    fn drop(&mut self) {
        let mut inner = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if inner
            .inflight
            .get(&self.key)
            .is_some_and(|f| f.id == self.id)
        {
            inner.inflight.remove(&self.key);
        }
    }
}

/// One caller's interest in a flight. When the last waiter is dropped before the answer (the
/// gRPC call was cancelled), the upstream request is aborted: it stops holding a per-server
/// slot and the server stops working for nobody.
struct Waiter<V> {
    state: Arc<Mutex<Inner<V>>>,
    key: Key,
    id: u64,
}

impl<V> Drop for Waiter<V> {
    fn drop(&mut self) {
        let mut inner = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = inner.inflight.get_mut(&self.key)
            && f.id == self.id
        {
            f.waiters = f.waiters.saturating_sub(1);
            if f.waiters == 0 {
                f.abort.abort();
                inner.inflight.remove(&self.key);
            }
        }
    }
}

impl<V: Clone + Send + Sync + 'static> Coalescer<V> {
    /// Results are kept for at most `retention` (longer `max_age`s are capped by it) and at
    /// most `max_entries` at a time.
    pub fn new(retention: Duration, max_entries: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                inflight: HashMap::new(),
                done: HashMap::new(),
                next_id: 0,
            })),
            retention,
            max_entries: max_entries.max(1),
        }
    }

    /// A result for `key`: from the cache when younger than `max_age`, else from an in-flight
    /// identical request, else from `fetch` (run in its own task, which is aborted when every
    /// caller waiting for it has gone).
    pub async fn get<F>(&self, key: Key, max_age: Duration, fetch: F) -> (Outcome<V>, Served)
    where
        F: Future<Output = Outcome<V>> + Send + 'static,
    {
        let (shared, served, _waiter) = {
            let mut inner = self.lock();
            if !max_age.is_zero()
                && let Some((at, v)) = inner.done.get(&key)
                && at.elapsed() <= max_age
            {
                return (Ok(v.clone()), Served::Cache);
            }
            if let Some(f) = inner.inflight.get_mut(&key) {
                f.waiters += 1;
                let waiter = Waiter {
                    state: self.inner.clone(),
                    key,
                    id: f.id,
                };
                (f.shared.clone(), Served::Coalesced, waiter)
            } else {
                let state = self.inner.clone();
                let (retention, max_entries) = (self.retention, self.max_entries);
                let id = inner.next_id;
                inner.next_id += 1;
                let guard = FlightGuard {
                    state: state.clone(),
                    key,
                    id,
                };
                // Spawned while holding the lock, so the task's removal of the in-flight entry
                // cannot run before its insertion below.
                let handle = tokio::spawn(async move {
                    let _guard = guard;
                    let result = fetch.await;
                    if let Ok(v) = &result {
                        let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
                        let now = Instant::now();
                        if inner.done.len() >= max_entries {
                            inner
                                .done
                                .retain(|_, (at, _)| now.duration_since(*at) < retention);
                            if inner.done.len() >= max_entries {
                                inner.done.clear();
                            }
                        }
                        inner.done.insert(key, (now, v.clone()));
                    }
                    result
                });
                let abort = handle.abort_handle();
                let shared = async move {
                    handle
                        .await
                        .unwrap_or_else(|e| Err(Error::Internal(format!("query task: {e}"))))
                }
                .boxed()
                .shared();
                inner.inflight.insert(
                    key,
                    Flight {
                        id,
                        shared: shared.clone(),
                        waiters: 1,
                        abort,
                    },
                );
                let waiter = Waiter {
                    state: self.inner.clone(),
                    key,
                    id,
                };
                (shared, Served::Upstream, waiter)
            }
        };
        (shared.await, served)
    }

    /// Drops stored results older than the retention (called periodically).
    pub fn prune(&self) {
        let now = Instant::now();
        let retention = self.retention;
        self.lock()
            .done
            .retain(|_, (at, _)| now.duration_since(*at) < retention);
    }

    /// Requests in flight (tests).
    pub fn inflight(&self) -> usize {
        self.lock().inflight.len()
    }

    /// Stored results (tests).
    pub fn len(&self) -> usize {
        self.lock().done.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_identical_requests_share_one_fetch() {
        let c = Arc::new(Coalescer::<u32>::new(Duration::from_secs(60), 100));
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (c, calls, mut gate) = (c.clone(), calls.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                c.get(key(1), Duration::ZERO, async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    gate.wait_for(|open| *open).await.unwrap();
                    Ok(7)
                })
                .await
            }));
        }
        // Let every task register before the one fetch completes.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        let mut served = Vec::new();
        for t in tasks {
            let (v, s) = t.await.unwrap();
            assert_eq!(v.unwrap(), 7);
            served.push(s);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(served.iter().filter(|s| **s == Served::Upstream).count(), 1);
        assert_eq!(
            served.iter().filter(|s| **s == Served::Coalesced).count(),
            99
        );
    }

    #[tokio::test(start_paused = true)]
    async fn results_younger_than_max_age_come_from_cache() {
        let c = Coalescer::<u32>::new(Duration::from_secs(600), 100);
        let (v, s) = c
            .get(key(1), Duration::from_secs(30), async { Ok(1) })
            .await;
        assert_eq!((v.unwrap(), s), (1, Served::Upstream));
        tokio::time::advance(Duration::from_secs(10)).await;
        let (v, s) = c
            .get(key(1), Duration::from_secs(30), async { Ok(2) })
            .await;
        assert_eq!((v.unwrap(), s), (1, Served::Cache));
        tokio::time::advance(Duration::from_secs(30)).await;
        let (v, s) = c
            .get(key(1), Duration::from_secs(30), async { Ok(3) })
            .await;
        assert_eq!((v.unwrap(), s), (3, Served::Upstream));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_max_age_always_queries_and_failures_are_not_cached() {
        let c = Coalescer::<u32>::new(Duration::from_secs(600), 100);
        c.get(key(1), Duration::ZERO, async { Ok(1) })
            .await
            .0
            .unwrap();
        let (_, s) = c.get(key(1), Duration::ZERO, async { Ok(2) }).await;
        assert_eq!(s, Served::Upstream);
        let (r, _) = c
            .get(key(2), Duration::from_secs(60), async {
                Err(Error::EmptyResult)
            })
            .await;
        assert!(r.is_err());
        let (r, s) = c
            .get(key(2), Duration::from_secs(60), async { Ok(5) })
            .await;
        assert_eq!((r.unwrap(), s), (5, Served::Upstream));
    }

    #[tokio::test]
    async fn a_panicking_fetch_does_not_poison_its_key() {
        let c = Coalescer::<u32>::new(Duration::from_secs(60), 100);
        let (r, _) = c
            .get(key(1), Duration::ZERO, async {
                if true {
                    panic!("signer panicked");
                }
                Ok(0)
            })
            .await;
        assert_eq!(
            r.unwrap_err().kind(),
            promscaler_proto::v1::QueryErrorKind::Upstream
        );
        assert_eq!(c.inflight(), 0);
        let (r, s) = c.get(key(1), Duration::ZERO, async { Ok(7) }).await;
        assert_eq!((r.unwrap(), s), (7, Served::Upstream));
    }

    #[tokio::test]
    async fn the_fetch_is_aborted_when_the_last_waiter_goes() {
        let c = Arc::new(Coalescer::<u32>::new(Duration::from_secs(60), 100));
        // Dropped (closing the channel) when the fetch future is dropped, i.e. aborted.
        let (alive, mut gone) = tokio::sync::mpsc::channel::<()>(1);
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let fetch = async move {
            let _alive = alive;
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
            Ok(0)
        };
        let first = {
            let c = c.clone();
            tokio::spawn(async move { c.get(key(1), Duration::ZERO, fetch).await })
        };
        started.await.unwrap();
        let second = {
            let c = c.clone();
            tokio::spawn(async move { c.get(key(1), Duration::ZERO, async { Ok(1) }).await })
        };
        // The second caller joins the flight, then both go away one after the other.
        for _ in 0..1000 {
            if c.lock().inflight.get(&key(1)).map(|f| f.waiters) == Some(2) {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(c.lock().inflight.get(&key(1)).map(|f| f.waiters), Some(2));
        first.abort();
        let _ = first.await;
        assert_eq!(c.inflight(), 1, "one waiter left: the fetch goes on");
        second.abort();
        let _ = second.await;
        let dropped = tokio::time::timeout(Duration::from_secs(10), gone.recv()).await;
        assert_eq!(dropped, Ok(None), "the fetch was dropped");
        assert_eq!(c.inflight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn store_is_bounded() {
        let c = Coalescer::<u32>::new(Duration::from_secs(600), 3);
        for n in 0..10 {
            c.get(key(n), Duration::ZERO, async { Ok(0) })
                .await
                .0
                .unwrap();
        }
        assert!(c.len() <= 3);
        tokio::time::advance(Duration::from_secs(601)).await;
        c.prune();
        assert!(c.is_empty());
    }
}
