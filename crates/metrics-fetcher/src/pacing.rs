//! A request budget per upstream server (`--upstream-qps`, `--upstream-burst`): a token bucket
//! whose waiters queue in arrival order instead of failing.
//!
//! AMP limits each workspace's query requests per second and answers 429 above it; a thousand
//! PromScalers created at once would otherwise all ask in the same second. With a budget, the
//! fetcher spreads them over time: the first `burst` go at once, the rest one every `1/qps`.
//!
//! The queue is a fair (FIFO) async mutex held while a waiter sleeps for its token, so a waiter
//! that gives up (its caller cancelled, or the gRPC deadline passed) leaves without consuming a
//! token and without leaving a hole in the schedule. A queue longer than `max_wait` worth of
//! tokens is refused at once (`THROTTLED`, saying how long the queue is) rather than grown.
//!
//! The budget is per server address: scheme, host, port and path of the source's base URL, so
//! for AMP it is per workspace (`/workspaces/<id>`), AMP's own unit of throttling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The budget's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Sustained requests per second.
    pub qps: f64,
    /// Requests that may go at once after a quiet period (at least 1).
    pub burst: u32,
    /// Longest a request may be expected to wait in the queue; a request that would wait
    /// longer is refused at once.
    pub max_wait: Duration,
}

impl Budget {
    /// Checks the numbers; `qps` must be positive and finite, `burst` at least 1.
    pub fn new(qps: f64, burst: u32, max_wait: Duration) -> Result<Self, String> {
        if !qps.is_finite() || qps <= 0.0 {
            return Err(format!(
                "--upstream-qps must be a positive number of requests per second, got {qps}"
            ));
        }
        if burst == 0 {
            return Err("--upstream-burst must be at least 1".into());
        }
        Ok(Self {
            qps,
            burst,
            max_wait,
        })
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.qps)
    }
}

/// Why a request was not given a token.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFull {
    /// Requests already waiting for this server.
    pub waiting: usize,
    /// How long this request would have waited.
    pub expected_wait: Duration,
    /// The budget that refused it.
    pub budget: Budget,
}

/// One server's bucket.
#[derive(Debug)]
struct Bucket {
    budget: Budget,
    /// Tokens at `at` (fractional), at most `burst`.
    state: tokio::sync::Mutex<(f64, Instant)>,
    /// Requests queued or holding the queue.
    waiting: AtomicUsize,
}

impl Bucket {
    fn new(budget: Budget) -> Self {
        Self {
            budget,
            state: tokio::sync::Mutex::new((f64::from(budget.burst), Instant::now())),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Waits for a token; returns how long it waited.
    async fn acquire(&self) -> Result<Duration, QueueFull> {
        let started = Instant::now();
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        // Everyone ahead takes a token, then this one: at best the burst is there, and each
        // token past it costs an interval.
        let expected_wait = self
            .budget
            .interval()
            .mul_f64((ahead + 1).saturating_sub(self.budget.burst as usize) as f64);
        if expected_wait > self.budget.max_wait {
            return Err(QueueFull {
                waiting: ahead,
                expected_wait,
                budget: self.budget,
            });
        }
        let mut state = self.state.lock().await;
        let (tokens, at) = refill(*state, self.budget, Instant::now());
        *state = (tokens, at);
        if tokens < 1.0 {
            let missing = Duration::from_secs_f64((1.0 - tokens) / self.budget.qps);
            tokio::time::sleep(missing).await;
            *state = refill(*state, self.budget, Instant::now());
        }
        // A sleep may wake a little early in float terms; never go below zero.
        state.0 = (state.0 - 1.0).max(0.0);
        Ok(started.elapsed())
    }

    /// Whether the bucket is full and nobody waits: dropping it changes nothing.
    fn is_idle(&self) -> bool {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            return false;
        }
        match self.state.try_lock() {
            Ok(state) => {
                refill(*state, self.budget, Instant::now()).0 >= f64::from(self.budget.burst)
            }
            Err(_) => false,
        }
    }
}

/// Decrements the waiting count however the wait ends (token, refusal or cancellation).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn refill((tokens, at): (f64, Instant), budget: Budget, now: Instant) -> (f64, Instant) {
    let earned = now.saturating_duration_since(at).as_secs_f64() * budget.qps;
    ((tokens + earned).min(f64::from(budget.burst)), now)
}

/// The budgets of every server, created on first use; `None` budget = unlimited.
#[derive(Debug, Default)]
pub struct Pacer {
    budget: Option<Budget>,
    buckets: Mutex<HashMap<String, Arc<Bucket>>>,
}

impl Pacer {
    /// A pacer with `budget` per server, or none (every request goes at once).
    pub fn new(budget: Option<Budget>) -> Self {
        Self {
            budget,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for `server`'s next token. `Ok(waited)`, or the queue is too long.
    pub async fn acquire(&self, server: &str) -> Result<Duration, QueueFull> {
        let Some(budget) = self.budget else {
            return Ok(Duration::ZERO);
        };
        let bucket = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            buckets
                .entry(server.to_owned())
                .or_insert_with(|| Arc::new(Bucket::new(budget)))
                .clone()
        };
        bucket.acquire().await
    }

    /// Forgets buckets that are full with nobody waiting (recreating one is the same), so a
    /// map keyed by caller-chosen servers does not grow without bound.
    pub fn prune_idle(&self) {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, b| Arc::strong_count(b) > 1 || !b.is_idle());
    }

    /// Requests waiting for `server`'s budget (tests and diagnostics).
    pub fn waiting(&self, server: &str) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(server)
            .map_or(0, |b| b.waiting.load(Ordering::SeqCst))
    }

    /// Buckets held (tests).
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(qps: f64, burst: u32) -> Budget {
        Budget::new(qps, burst, Duration::from_secs(60)).unwrap()
    }

    /// Grants tokens to `n` concurrent requests and returns when each got its token, relative
    /// to the start (paused time: exact).
    async fn grant_times(pacer: Arc<Pacer>, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.acquire("http://amp/workspaces/ws-1").await.unwrap();
                    start.elapsed()
                })
            })
            .collect();
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        times.sort();
        times
    }

    #[test]
    fn bad_budgets_are_refused_with_the_flag_to_fix() {
        for qps in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = Budget::new(qps, 1, Duration::from_secs(1)).unwrap_err();
            assert!(err.contains("--upstream-qps"), "{err}");
        }
        let err = Budget::new(1.0, 0, Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("--upstream-burst"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_herd_goes_as_the_burst_then_one_per_interval() {
        let pacer = Arc::new(Pacer::new(Some(budget(10.0, 3))));
        let times = grant_times(pacer, 8).await;
        let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        // Three at once, then one every 100 ms.
        assert_eq!(ms, vec![0, 0, 0, 100, 200, 300, 400, 500]);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_budget_nobody_waits() {
        let pacer = Arc::new(Pacer::new(None));
        let times = grant_times(pacer.clone(), 50).await;
        assert!(times.iter().all(|t| t.is_zero()), "{times:?}");
        assert!(pacer.is_empty(), "no bucket without a budget");
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_refills_at_the_rate_up_to_the_burst() {
        let pacer = Pacer::new(Some(budget(2.0, 2)));
        for _ in 0..2 {
            assert_eq!(pacer.acquire("s").await.unwrap(), Duration::ZERO);
        }
        // Ten quiet seconds earn 20 tokens, but only the burst (2) is kept.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(pacer.acquire("s").await.unwrap(), Duration::ZERO);
        assert_eq!(pacer.acquire("s").await.unwrap(), Duration::ZERO);
        assert_eq!(
            pacer.acquire("s").await.unwrap(),
            Duration::from_millis(500)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn servers_have_budgets_of_their_own() {
        let pacer = Pacer::new(Some(budget(1.0, 1)));
        assert_eq!(pacer.acquire("a").await.unwrap(), Duration::ZERO);
        assert_eq!(pacer.acquire("b").await.unwrap(), Duration::ZERO);
        assert_eq!(pacer.acquire("a").await.unwrap(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_leaves_no_hole_in_the_schedule() {
        let pacer = Arc::new(Pacer::new(Some(budget(1.0, 1))));
        assert_eq!(pacer.acquire("s").await.unwrap(), Duration::ZERO);
        // The next token is due in 1 s; this waiter is cancelled after 0.5 s.
        let gave_up = tokio::time::timeout(Duration::from_millis(500), pacer.acquire("s")).await;
        assert!(gave_up.is_err());
        // The following request gets the token the cancelled one would have had, at 1 s.
        let waited = pacer.acquire("s").await.unwrap();
        assert_eq!(waited, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_longer_than_the_longest_wait_is_refused_at_once() {
        let budget = Budget::new(1.0, 1, Duration::from_secs(3)).unwrap();
        let pacer = Arc::new(Pacer::new(Some(budget)));
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move { pacer.acquire("s").await })
            })
            .collect();
        // Let all five join the queue (paused time: they only wait on the mutex and sleeps).
        tokio::task::yield_now().await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let err = pacer.acquire("s").await.unwrap_err();
        // The first took the only token at once; four wait (1 s each); this would be fifth.
        assert_eq!(err.waiting, 4);
        assert_eq!(err.expected_wait, Duration::from_secs(4));
        for q in queued {
            q.await.unwrap().unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_buckets_are_forgotten_and_busy_ones_kept() {
        let pacer = Arc::new(Pacer::new(Some(budget(1.0, 2))));
        pacer.acquire("s").await.unwrap();
        pacer.prune_idle();
        assert_eq!(pacer.len(), 1, "one token spent: not yet full");
        tokio::time::advance(Duration::from_secs(1)).await;
        pacer.prune_idle();
        assert!(pacer.is_empty(), "full again and nobody waits");
    }
}
