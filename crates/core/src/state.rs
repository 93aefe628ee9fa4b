//! What the decision carries from one tick to the next, and how it is kept bounded.

use std::collections::BTreeMap;

use crate::time::Timestamp;

/// Most entries kept in each history list. Histories are pruned by age first (to the longest
/// window or period that can still read them); this cap only bites for callers that decide far
/// more often than once a second, and then the oldest entries go first.
pub const MAX_HISTORY: usize = 4096;

/// A replica count at a point in time (a recommendation, or the size of a scale event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampedReplicas {
    /// Replicas (for events: the absolute change).
    pub replicas: i32,
    /// When.
    pub at: Timestamp,
}

impl TimestampedReplicas {
    /// `replicas` at `at`.
    pub const fn new(replicas: i32, at: Timestamp) -> Self {
        Self { replicas, at }
    }
}

/// A trigger's last good value (for last-known-good).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimestampedValue {
    /// The value.
    pub value: f64,
    /// When it was observed.
    pub at: Timestamp,
}

/// State in, state out: everything a decision needs from earlier ticks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecisionState {
    /// Recent unstabilized recommendations (stabilization windows).
    pub recommendations: Vec<TimestampedReplicas>,
    /// Recent scale-up events (rate policies).
    pub scale_up_events: Vec<TimestampedReplicas>,
    /// Recent scale-down events (rate policies).
    pub scale_down_events: Vec<TimestampedReplicas>,
    /// Last time any trigger (or the formula) was active.
    pub last_active_time: Option<Timestamp>,
    /// Consecutive failures per trigger name.
    pub consecutive_failures: BTreeMap<String, i32>,
    /// When the scaler was created (set on the first decision when absent).
    pub created_at: Option<Timestamp>,
    /// Last good value per trigger name.
    pub last_good_values: BTreeMap<String, TimestampedValue>,
    /// The HPA has seen this target: its first decision recorded the current replicas as a
    /// recommendation. `false` is a fresh state (a new target, a restarted controller without
    /// persisted state, an HPA re-created after a pause); recommendations that aged out of
    /// every window since then are simply gone, never a reason to record current replicas again.
    pub initialized: bool,
}

impl DecisionState {
    /// A state that has never been through a decision: not marked as initialized and with no
    /// recommendation. (A caller that predates `initialized` but sends recommendations has
    /// decided before.)
    pub fn is_fresh(&self) -> bool {
        !self.initialized && self.recommendations.is_empty()
    }
}

/// Drops entries at or before `cutoff` and keeps at most `MAX_HISTORY - 1` of the newest, so
/// the entry this decision adds keeps the list within [`MAX_HISTORY`].
pub(crate) fn prune(list: &mut Vec<TimestampedReplicas>, cutoff: Timestamp) {
    list.retain(|r| r.at > cutoff);
    if list.len() >= MAX_HISTORY {
        list.sort_by_key(|r| r.at);
        let excess = list.len() + 1 - MAX_HISTORY;
        list.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_drops_old_entries_and_caps_length() {
        let mut list: Vec<_> = (0..5000)
            .map(|i| TimestampedReplicas::new(i, Timestamp::from_secs(i.into())))
            .collect();
        prune(&mut list, Timestamp::from_secs(10));
        assert_eq!(list.len(), MAX_HISTORY - 1);
        assert_eq!(list.last().map(|r| r.replicas), Some(4999));
        assert!(list.iter().all(|r| r.at > Timestamp::from_secs(10)));
    }
}
