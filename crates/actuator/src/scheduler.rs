//! One timer wheel for every PromScaler: each key is due at most once, re-scheduling replaces
//! the previous due time. 10,000 PromScalers are 10,000 entries in one `DelayQueue`, not 10,000
//! tasks or timers.

use std::{collections::HashMap, hash::Hash, time::Duration};

use futures::StreamExt as _;
use tokio_util::time::{DelayQueue, delay_queue};

/// Keys due at some time, each at most once.
#[derive(Debug)]
pub struct Scheduler<K> {
    queue: DelayQueue<K>,
    entries: HashMap<K, delay_queue::Key>,
}

impl<K: Hash + Eq + Clone> Default for Scheduler<K> {
    fn default() -> Self {
        Self {
            queue: DelayQueue::new(),
            entries: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone> Scheduler<K> {
    /// Makes `key` due after `delay`, replacing any earlier schedule of it.
    pub fn schedule(&mut self, key: K, delay: Duration) {
        match self.entries.get(&key) {
            Some(entry) => self.queue.reset(entry, delay),
            None => {
                let entry = self.queue.insert(key.clone(), delay);
                self.entries.insert(key, entry);
            }
        }
    }

    /// Makes `key` due after `delay` unless it is already due sooner.
    pub fn schedule_no_later_than(&mut self, key: K, delay: Duration) {
        let deadline = tokio::time::Instant::now() + delay;
        match self.entries.get(&key) {
            Some(entry) if self.queue.deadline(entry) <= deadline => {}
            _ => self.schedule(key, delay),
        }
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.queue.remove(&entry);
        }
    }

    /// Whether `key` is scheduled.
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Number of scheduled keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The next due key; pending forever while nothing is scheduled (use inside `select!`).
    pub async fn next_due(&mut self) -> K {
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
    async fn removed_keys_never_come_due() {
        let mut scheduler = Scheduler::default();
        scheduler.schedule("a", Duration::from_secs(1));
        scheduler.schedule("b", Duration::from_secs(2));
        scheduler.remove(&"a");
        assert!(!scheduler.contains(&"a"));
        assert_eq!(scheduler.next_due().await, "b");
    }
}
