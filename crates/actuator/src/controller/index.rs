//! Where each PromScaler is in its lifecycle, for the controller loop: known (with the
//! generation last seen), due (in the timer), running, backing off, waited on by Reconcile
//! callers, or queued behind the concurrency limit. Synchronous: the loop's `select!` arms call
//! one method each and start the ticks it returns; the timer is a [`Timer`] (the
//! [`Scheduler`] in production, a recording double in the tests below).

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use promscaler_proto::v1::DecisionEvent;
use tokio::sync::oneshot;

use super::tick::TickOutcome;
use crate::{error::Error, scheduler::Scheduler, types::ScalerKey};

/// How long a standby waits before looking at a due PromScaler again (leadership changes
/// reschedule everything anyway).
const STANDBY_RECHECK: Duration = Duration::from_secs(30);

/// Where a Reconcile caller waits for the tick it asked for.
pub(crate) type Reply = oneshot::Sender<Result<DecisionEvent, Error>>;

/// When PromScalers come due.
pub(crate) trait Timer {
    /// Makes `key` due after `delay`, replacing any earlier schedule of it.
    fn schedule(&mut self, key: ScalerKey, delay: Duration);
    /// Makes `key` due after `delay` unless it is already due sooner.
    fn schedule_no_later_than(&mut self, key: ScalerKey, delay: Duration);
    /// Forgets `key`.
    fn remove(&mut self, key: &ScalerKey);
}

impl Timer for Scheduler<ScalerKey> {
    fn schedule(&mut self, key: ScalerKey, delay: Duration) {
        Scheduler::schedule(self, key, delay);
    }

    fn schedule_no_later_than(&mut self, key: ScalerKey, delay: Duration) {
        Scheduler::schedule_no_later_than(self, key, delay);
    }

    fn remove(&mut self, key: &ScalerKey) {
        Scheduler::remove(self, key);
    }
}

/// Limits of the loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Ticks running at once.
    pub(crate) max_running: usize,
    /// First retry delay after a failed tick.
    pub(crate) min_backoff: Duration,
    /// Longest retry delay.
    pub(crate) max_backoff: Duration,
}

/// The lifecycle of every PromScaler this replica owns.
#[derive(Debug)]
pub(crate) struct Index<T = Scheduler<ScalerKey>> {
    limits: Limits,
    leading: bool,
    /// Known PromScalers and the `metadata.generation` last seen of each.
    known: HashMap<ScalerKey, Option<i64>>,
    /// When each known PromScaler is next due.
    timer: T,
    /// Ticks under way (a deleted PromScaler's tick runs to its end).
    running: HashSet<ScalerKey>,
    /// The last retry delay of PromScalers whose last tick failed.
    backoff: HashMap<ScalerKey, Duration>,
    /// Reconcile callers, answered when the key's next tick ends.
    waiting: HashMap<ScalerKey, Vec<Reply>>,
    /// Due while `max_running` ticks ran; started as ticks end.
    queued: Vec<ScalerKey>,
}

impl<T: Timer> Index<T> {
    /// An empty index over `timer`; `leading` = whether this replica starts as the leader.
    pub(crate) fn new(limits: Limits, timer: T, leading: bool) -> Self {
        Self {
            limits,
            leading,
            known: HashMap::new(),
            timer,
            running: HashSet::new(),
            backoff: HashMap::new(),
            waiting: HashMap::new(),
            queued: Vec::new(),
        }
    }

    /// Number of known PromScalers.
    pub(crate) fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether this replica leads.
    pub(crate) fn is_leading(&self) -> bool {
        self.leading
    }

    /// A PromScaler was created or changed: due now when it is new, its generation changed (a
    /// spec change) or it is being deleted; otherwise (a status write, say) nothing changes.
    pub(crate) fn applied(&mut self, key: ScalerKey, generation: Option<i64>, deleting: bool) {
        let changed = self.known.insert(key.clone(), generation) != Some(generation);
        if changed || deleting {
            self.timer.schedule(key, Duration::ZERO);
        }
    }

    /// A PromScaler was deleted: forgotten (a tick under way still answers its callers).
    pub(crate) fn deleted(&mut self, key: &ScalerKey) {
        self.known.remove(key);
        self.timer.remove(key);
        self.backoff.remove(key);
    }

    /// Credentials that `readers` read changed: each known one not ticking is due now, its
    /// backoff forgotten, so a fixed credential does not wait out a backoff.
    pub(crate) fn credentials_changed(&mut self, readers: impl IntoIterator<Item = ScalerKey>) {
        for key in readers {
            if self.known.contains_key(&key) && !self.running.contains(&key) {
                tracing::debug!(scaler = %key, "credentials changed; evaluating now");
                self.backoff.remove(&key);
                self.timer.schedule(key, Duration::ZERO);
            }
        }
    }

    /// Leadership is now `leading`; returns whether it changed. A new leader evaluates every
    /// PromScaler at once.
    pub(crate) fn set_leading(&mut self, leading: bool) -> bool {
        if leading == self.leading {
            return false;
        }
        self.leading = leading;
        if leading {
            for key in self.known.keys() {
                self.timer.schedule(key.clone(), Duration::ZERO);
            }
        }
        true
    }

    /// A Reconcile call: answered when `key`'s next tick ends, which is due now unless one is
    /// under way; an unknown key is answered at once.
    pub(crate) fn reconcile(&mut self, key: ScalerKey, reply: Reply) {
        if !self.known.contains_key(&key) {
            let _ = reply.send(Err(Error::NotFound(key)));
            return;
        }
        self.waiting.entry(key.clone()).or_default().push(reply);
        if !self.running.contains(&key) {
            self.timer.schedule(key, Duration::ZERO);
        }
    }

    /// `key` came due: `Some(key)` when its tick should start now. A standby looks again
    /// later; at the concurrency limit the key is queued.
    pub(crate) fn due(&mut self, key: ScalerKey) -> Option<ScalerKey> {
        if !self.known.contains_key(&key) || self.running.contains(&key) {
            return None;
        }
        if !self.leading {
            self.timer.schedule(key, STANDBY_RECHECK);
            return None;
        }
        if self.running.len() >= self.limits.max_running {
            self.queued.push(key);
            return None;
        }
        self.running.insert(key.clone());
        Some(key)
    }

    /// `key`'s tick ended with `outcome`: its callers are answered, it is scheduled again (after
    /// its polling interval, or a doubled backoff after a failure), and the queued ticks that
    /// now fit under the limit are returned to start.
    pub(crate) fn finished(&mut self, key: &ScalerKey, outcome: TickOutcome) -> Vec<ScalerKey> {
        self.running.remove(key);
        for reply in self.waiting.remove(key).unwrap_or_default() {
            let _ = reply.send(match &outcome {
                TickOutcome::Done { event, .. } | TickOutcome::Failed { event } => {
                    Ok(event.clone())
                }
                TickOutcome::Gone => Err(Error::NotFound(key.clone())),
            });
        }
        match outcome {
            TickOutcome::Done { next, .. } => {
                self.backoff.remove(key);
                if self.known.contains_key(key) {
                    self.timer.schedule_no_later_than(key.clone(), next);
                }
            }
            TickOutcome::Failed { .. } => {
                let delay = self.next_backoff(key);
                if self.known.contains_key(key) {
                    self.backoff.insert(key.clone(), delay);
                    self.timer.schedule_no_later_than(key.clone(), delay);
                }
            }
            TickOutcome::Gone => {}
        }
        let mut start = Vec::new();
        while self.running.len() < self.limits.max_running {
            let Some(key) = self.queued.pop() else { break };
            if self.known.contains_key(&key) && self.running.insert(key.clone()) {
                start.push(key);
            }
        }
        start
    }

    /// The retry delay after another failure of `key`: `min_backoff`, then doubled up to
    /// `max_backoff`.
    fn next_backoff(&self, key: &ScalerKey) -> Duration {
        self.backoff
            .get(key)
            .map_or(self.limits.min_backoff, |last| {
                (*last * 2).min(self.limits.max_backoff)
            })
    }
}

impl Index<Scheduler<ScalerKey>> {
    /// The next due PromScaler; pending while none is scheduled (for `select!`).
    pub(crate) async fn next_due(&mut self) -> ScalerKey {
        self.timer.next_due().await
    }
}

#[cfg(test)]
mod tests;
