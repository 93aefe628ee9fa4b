//! One timer wheel for every PromScaler: each key is due at most once, re-scheduling replaces
//! the previous due time. 10,000 PromScalers are 10,000 entries in one `DelayQueue`, not 10,000
//! tasks or timers.
//!
//! Delays of [`BATCH_FROM`] or more end on a [`BATCH`] grid: PromScalers that come due within
//! the same 100 ms start together, so their gRPC calls share HTTP/2 writes and reads and the
//! process wakes ~10 times a second instead of once per PromScaler (333 times a second at
//! 10,000 PromScalers every 30 s, most of the actuator's CPU in syscalls and thread wake-ups).
//! A polling interval of 10 s or more thus runs up to 100 ms long; shorter delays (immediate
//! ticks on spec changes and Reconcile, short polling intervals, first backoffs) are exact.

use std::{collections::HashMap, hash::Hash, time::Duration};

use futures::StreamExt as _;
use tokio::time::Instant;
use tokio_util::time::{DelayQueue, delay_queue};

/// The grid due times of long delays are rounded up to.
pub(crate) const BATCH: Duration = Duration::from_millis(100);

/// Delays from this long on are rounded up to the [`BATCH`] grid (so at most 1 % longer). Short
/// polling intervals, chosen for fast reactions, keep their exact timing.
pub(crate) const BATCH_FROM: Duration = Duration::from_secs(10);

/// Keys due at some time, each at most once.
#[derive(Debug)]
pub(crate) struct Scheduler<K> {
    queue: DelayQueue<K>,
    entries: HashMap<K, delay_queue::Key>,
    /// Origin of the [`BATCH`] grid.
    origin: Instant,
}

impl<K: Hash + Eq + Clone> Default for Scheduler<K> {
    fn default() -> Self {
        Self {
            queue: DelayQueue::new(),
            entries: HashMap::new(),
            origin: Instant::now(),
        }
    }
}

impl<K: Hash + Eq + Clone> Scheduler<K> {
    /// When something scheduled `delay` from now is due.
    fn due(&self, delay: Duration) -> Instant {
        let at = Instant::now() + delay;
        if delay < BATCH_FROM {
            return at;
        }
        let grid = BATCH.as_nanos();
        let since = (at - self.origin).as_nanos();
        let rounded = since.div_ceil(grid) * grid;
        self.origin + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX))
    }

    fn schedule_at(&mut self, key: K, when: Instant) {
        match self.entries.get(&key) {
            Some(entry) => self.queue.reset_at(entry, when),
            None => {
                let entry = self.queue.insert_at(key.clone(), when);
                self.entries.insert(key, entry);
            }
        }
    }

    /// Makes `key` due after `delay`, replacing any earlier schedule of it.
    pub(crate) fn schedule(&mut self, key: K, delay: Duration) {
        let when = self.due(delay);
        self.schedule_at(key, when);
    }

    /// Makes `key` due after `delay` unless it is already due sooner.
    pub(crate) fn schedule_no_later_than(&mut self, key: K, delay: Duration) {
        let when = self.due(delay);
        match self.entries.get(&key) {
            Some(entry) if self.queue.deadline(entry) <= when => {}
            _ => self.schedule_at(key, when),
        }
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.queue.remove(&entry);
        }
    }

    /// Whether `key` is scheduled.
    #[cfg(test)]
    pub(crate) fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Number of scheduled keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is scheduled.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The next due key; pending forever while nothing is scheduled (use inside `select!`).
    pub(crate) async fn next_due(&mut self) -> K {
        loop {
            if self.queue.is_empty() {
                std::future::pending::<()>().await;
            }
            if let Some(expired) = self.queue.next().await {
                let key = expired.into_inner();
                self.entries.remove(&key);
                return key;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keys_come_due_in_order_and_rescheduling_replaces() {
        let mut scheduler = Scheduler::default();
        scheduler.schedule("a", Duration::from_secs(30));
        scheduler.schedule("b", Duration::from_secs(10));
        scheduler.schedule("a", Duration::from_secs(5));
        assert_eq!(scheduler.len(), 2);
        assert_eq!(scheduler.next_due().await, "a");
        assert_eq!(scheduler.next_due().await, "b");
        assert!(scheduler.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn schedule_no_later_than_keeps_an_earlier_due_time() {
        let mut scheduler = Scheduler::default();
        scheduler.schedule("a", Duration::from_secs(1));
        scheduler.schedule_no_later_than("a", Duration::from_secs(60));
        scheduler.schedule("b", Duration::from_secs(2));
        assert_eq!(scheduler.next_due().await, "a");
        scheduler.schedule_no_later_than("b", Duration::from_millis(1));
        let start = tokio::time::Instant::now();
        assert_eq!(scheduler.next_due().await, "b");
        assert!(tokio::time::Instant::now() - start <= Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn long_delays_end_on_the_batch_grid_and_short_ones_do_not_wait() {
        let mut scheduler = Scheduler::default();
        let start = Instant::now();
        tokio::time::advance(Duration::from_millis(30)).await;
        scheduler.schedule("a", Duration::from_secs(30));
        tokio::time::advance(Duration::from_millis(40)).await;
        scheduler.schedule("b", Duration::from_secs(30));
        scheduler.schedule("now", Duration::ZERO);
        assert_eq!(scheduler.next_due().await, "now");
        assert_eq!(Instant::now() - start, Duration::from_millis(70));
        // Both were asked for within the same 100 ms: due together, at most 100 ms late.
        let first = scheduler.next_due().await;
        let at = Instant::now() - start;
        let second = scheduler.next_due().await;
        assert_eq!(Instant::now() - start, at);
        assert_eq!(at, Duration::from_millis(30_100));
        let mut both = [first, second];
        both.sort_unstable();
        assert_eq!(both, ["a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn short_polling_intervals_keep_their_exact_timing() {
        let mut scheduler = Scheduler::default();
        let start = Instant::now();
        tokio::time::advance(Duration::from_millis(30)).await;
        scheduler.schedule("fast", Duration::from_secs(1));
        assert_eq!(scheduler.next_due().await, "fast");
        assert_eq!(Instant::now() - start, Duration::from_millis(1_030));
    }

    #[tokio::test(start_paused = true)]
    async fn removed_keys_never_come_due() {
        let mut scheduler = Scheduler::default();
        scheduler.schedule("a", Duration::from_secs(1));
        scheduler.schedule("b", Duration::from_secs(2));
        scheduler.remove(&"a");
        assert!(!scheduler.contains(&"a"));
        assert_eq!(scheduler.next_due().await, "b");
    }
}
