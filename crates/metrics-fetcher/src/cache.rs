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

/// A stored result.
struct Stored<V> {
    /// When the answer arrived (its age for `max_age`).
    at: Instant,
    /// When a caller last used it (least recently used goes first).
    used: Instant,
    /// Its weight against the byte budget.
    bytes: usize,
    value: V,
}

struct Inner<V> {
    inflight: HashMap<Key, Flight<V>>,
    done: HashMap<Key, Stored<V>>,
    /// Sum of `done`'s weights.
    bytes: usize,
    next_id: u64,
}

impl<V> Inner<V> {
    fn remove_done(&mut self, key: &Key) {
        if let Some(old) = self.done.remove(key) {
            self.bytes -= old.bytes;
        }
    }

    /// Drops entries older than `retention`, then the least recently used ones until both
    /// limits hold (down to 90% of them, so a full store does not sort on every insert).
    fn evict(&mut self, now: Instant, limits: Limits) {
        let retention = limits.retention;
        let mut freed = 0;
        self.done.retain(|_, e| {
            let keep = now.duration_since(e.at) < retention;
            if !keep {
                freed += e.bytes;
            }
            keep
        });
        self.bytes -= freed;
        if self.bytes <= limits.max_bytes && self.done.len() <= limits.max_entries {
            return;
        }
        let bytes_goal = limits.max_bytes - limits.max_bytes / 10;
        let entries_goal = limits.max_entries - limits.max_entries / 10;
        let mut by_use: Vec<(Instant, Key)> = self.done.iter().map(|(k, e)| (e.used, *k)).collect();
        by_use.sort_unstable_by_key(|(used, _)| *used);
        for (_, key) in by_use {
            if self.bytes <= bytes_goal && self.done.len() <= entries_goal {
                break;
            }
            self.remove_done(&key);
        }
    }
}

/// How much the store may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Results are served for at most this long (longer `max_age`s are capped by it).
    pub retention: Duration,
    /// Most results kept.
    pub max_entries: usize,
    /// Most bytes kept (by the weight function given to [`Coalescer::new`]).
    pub max_bytes: usize,
}

/// A result on its way ([`Coalescer::begin`]); dropping it gives up this caller's interest.
pub struct Pending<V>(PendingState<V>);

enum PendingState<V> {
    Ready(Outcome<V>),
    Waiting {
        shared: Shared<BoxFuture<'static, Outcome<V>>>,
        served: Served,
        _waiter: Waiter<V>,
    },
}

impl<V: Clone> Pending<V> {
    /// The result and how it was obtained.
    pub async fn wait(self) -> (Outcome<V>, Served) {
        match self.0 {
            PendingState::Ready(v) => (v, Served::Cache),
            PendingState::Waiting {
                shared,
                served,
                _waiter,
            } => (shared.await, served),
        }
    }

    /// How the result will be obtained.
    pub fn served(&self) -> Served {
        match &self.0 {
            PendingState::Ready(_) => Served::Cache,
            PendingState::Waiting { served, .. } => *served,
        }
    }
}

/// Coalesces identical in-flight requests and keeps recent results.
pub struct Coalescer<V> {
    inner: Arc<Mutex<Inner<V>>>,
    limits: Limits,
    weigh: fn(&V) -> usize,
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
    /// Results are kept within `limits`; `weigh` says how many bytes a result holds.
    pub fn new(limits: Limits, weigh: fn(&V) -> usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                inflight: HashMap::new(),
                done: HashMap::new(),
                bytes: 0,
                next_id: 0,
            })),
            limits: Limits {
                max_entries: limits.max_entries.max(1),
                ..limits
            },
            weigh,
        }
    }

    /// A result for `key`: from the cache when younger than `max_age`, else from an in-flight
    /// identical request, else from `fetch` (run in its own task, which is aborted when every
    /// caller waiting for it has gone). A successful result is stored only when the request
    /// that started it has a `max_age` (a caller with none can never use a stored result).
    pub async fn get<F>(&self, key: Key, max_age: Duration, fetch: F) -> (Outcome<V>, Served)
    where
        F: Future<Output = Outcome<V>> + Send + 'static,
    {
        self.begin(key, max_age, || fetch).wait().await
    }

    /// [`Coalescer::get`] in two steps: this one decides, synchronously, how the result will be
    /// obtained (calling `make_fetch` only when a new upstream request is needed, under the
    /// store's lock: it must be quick and must not use this store); [`Pending::wait`] gets it.
    pub fn begin<F>(
        &self,
        key: Key,
        max_age: Duration,
        make_fetch: impl FnOnce() -> F,
    ) -> Pending<V>
    where
        F: Future<Output = Outcome<V>> + Send + 'static,
    {
        let mut inner = self.lock();
        if !max_age.is_zero()
            && let Some(e) = inner.done.get_mut(&key)
            && e.at.elapsed() <= max_age.min(self.limits.retention)
        {
            e.used = Instant::now();
            return Pending(PendingState::Ready(Ok(e.value.clone())));
        }
        if let Some(f) = inner.inflight.get_mut(&key) {
            f.waiters += 1;
            let waiter = Waiter {
                state: self.inner.clone(),
                key,
                id: f.id,
            };
            return Pending(PendingState::Waiting {
                shared: f.shared.clone(),
                served: Served::Coalesced,
                _waiter: waiter,
            });
        }
        let fetch = make_fetch();
        let state = self.inner.clone();
        let (limits, weigh, store) = (self.limits, self.weigh, !max_age.is_zero());
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
            if store
                && let Ok(v) = &result
                && let bytes = weigh(v)
                && bytes <= limits.max_bytes
            {
                let mut inner = state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                inner.remove_done(&key);
                inner.done.insert(
                    key,
                    Stored {
                        at: now,
                        used: now,
                        bytes,
                        value: v.clone(),
                    },
                );
                inner.bytes += bytes;
                inner.evict(now, limits);
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
        Pending(PendingState::Waiting {
            shared,
            served: Served::Upstream,
            _waiter: waiter,
        })
    }

    /// Drops stored results older than the retention (called periodically).
    pub fn prune(&self) {
        let limits = self.limits;
        self.lock().evict(Instant::now(), limits);
    }

    /// Bytes stored, by the weight function.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
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

    /// A store of u32s, each weighing its value in bytes.
    fn coalescer(retention_secs: u64, max_entries: usize) -> Coalescer<u32> {
        Coalescer::new(
            Limits {
                retention: Duration::from_secs(retention_secs),
                max_entries,
                max_bytes: 1000,
            },
            |v| *v as usize,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_identical_requests_share_one_fetch() {
        let c = Arc::new(coalescer(60, 100));
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
        let c = coalescer(600, 100);
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
        let c = coalescer(600, 100);
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
        let c = coalescer(60, 100);
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
        let c = Arc::new(coalescer(60, 100));
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
    async fn store_is_bounded_and_drops_least_recently_used_first() {
        let c = coalescer(600, 3);
        let minute = Duration::from_secs(60);
        for n in 0..3 {
            c.get(key(n), minute, async { Ok(1) }).await.0.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // key 0 is used again, so key 1 is now the least recently used.
        assert_eq!(
            c.get(key(0), minute, async { Ok(9) }).await.1,
            Served::Cache
        );
        c.get(key(3), minute, async { Ok(1) }).await.0.unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.get(key(1), minute, async { Ok(1) }).await.1,
            Served::Upstream
        );
        tokio::time::advance(Duration::from_secs(601)).await;
        c.prune();
        assert!(c.is_empty());
        assert_eq!(c.bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn byte_budget_evicts_and_oversized_results_are_not_kept() {
        let c = coalescer(600, 100); // 1000 bytes
        let minute = Duration::from_secs(60);
        for n in 0..5 {
            c.get(key(n), minute, async { Ok(300) }).await.0.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
            assert!(c.bytes() <= 1000, "{}", c.bytes());
        }
        assert!(c.len() <= 3);
        // The newest is kept, the oldest went first.
        assert_eq!(
            c.get(key(4), minute, async { Ok(1) }).await.1,
            Served::Cache
        );
        assert_eq!(
            c.get(key(0), minute, async { Ok(1) }).await.1,
            Served::Upstream
        );
        c.get(key(9), minute, async { Ok(5000) }).await.0.unwrap();
        assert_eq!(
            c.get(key(9), minute, async { Ok(1) }).await.1,
            Served::Upstream
        );
    }

    #[tokio::test(start_paused = true)]
    async fn results_of_requests_without_max_age_are_not_kept() {
        let c = coalescer(600, 100);
        c.get(key(1), Duration::ZERO, async { Ok(1) })
            .await
            .0
            .unwrap();
        assert!(c.is_empty());
    }
}
