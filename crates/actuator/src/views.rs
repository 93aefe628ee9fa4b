//! What the actuator knows about each PromScaler in memory: the decision state carried between
//! ticks, the last decision (served by ActuatorService, so last values and explanations need no
//! status write), and the last status written (so unchanged status is never written again).
//!
//! Readers borrow a record under the lock instead of copying it: a tick needs one field, not
//! the whole record, and at 10,000 PromScalers whole copies were a large part of the per-tick
//! allocations.

use std::{
    collections::HashMap,
    sync::{RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use kube::ResourceExt as _;
use promscaler_api::{PromScaler, PromScalerStatus};
use promscaler_proto::v1::{DecisionEvent, DecisionState};
use prost::Message;

use crate::{status::same_significant, types::ScalerKey};

/// A status this replica wrote, with the resourceVersion the write produced.
#[derive(Debug, Clone)]
pub(crate) struct WrittenStatus {
    /// `metadata.resourceVersion` returned by the status write.
    pub resource_version: String,
    /// The status as sent.
    pub status: PromScalerStatus,
}

/// One PromScaler's in-memory record.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScalerView {
    /// Decision state to send with the next Decide, protobuf-encoded like the last decision;
    /// `None` = restore from status.
    state: Option<Vec<u8>>,
    /// The last tick's decision, protobuf-encoded: one allocation instead of dozens of small
    /// strings and vectors per PromScaler; decoded only when ActuatorService serves it.
    last_event: Option<Vec<u8>>,
    /// The status as last written by this replica, until the watch cache holds that write;
    /// `None` = the cached object's status is the one to build on.
    pub last_status: Option<Box<WrittenStatus>>,
    /// Upstream samples its queries processed since this record was created (the sum of every
    /// recorded event's `samples_processed`).
    samples_total: u64,
}

impl ScalerView {
    /// Remembers the decision state to carry to the next tick (`None` = restore from status).
    pub(crate) fn set_state(&mut self, state: Option<&DecisionState>) {
        match state {
            Some(state) => encode_into(&mut self.state, state),
            None => self.state = None,
        }
    }

    /// The carried decision state.
    pub(crate) fn state(&self) -> Option<DecisionState> {
        DecisionState::decode(self.state.as_deref()?).ok()
    }

    /// Remembers `event` as the last decision, without its decision state: that is the state
    /// just carried ([`Self::set_state`]), and keeping it twice was a fifth of this record.
    /// [`Self::last_event`] puts the carried state back.
    pub(crate) fn set_last_event(&mut self, event: &mut DecisionEvent) {
        self.samples_total = self
            .samples_total
            .saturating_add(event.samples_processed.unwrap_or(0));
        let state = event.decision.as_mut().and_then(|d| d.state.take());
        encode_into(&mut self.last_event, event);
        if let Some(decision) = event.decision.as_mut() {
            decision.state = state;
        }
    }

    /// Upstream samples processed by this PromScaler's queries so far.
    pub(crate) fn samples_total(&self) -> u64 {
        self.samples_total
    }

    /// The last decision, its `decision.state` being the state carried to the next tick (none
    /// after a change of leadership, when the next tick restores it from status).
    pub(crate) fn last_event(&self) -> Option<DecisionEvent> {
        let mut event = DecisionEvent::decode(self.last_event.as_deref()?).ok()?;
        if let Some(decision) = event.decision.as_mut() {
            decision.state = self.state();
        }
        Some(event)
    }
}

/// Encodes `message` into `buffer`, reusing its allocation: records are rewritten every tick, and
/// a fresh allocation each time would scatter long-lived data over the heap.
fn encode_into(buffer: &mut Option<Vec<u8>>, message: &impl Message) {
    let buffer = buffer.get_or_insert_with(Vec::new);
    buffer.clear();
    buffer.reserve_exact(message.encoded_len());
    message
        .encode(buffer)
        .expect("a Vec grows to fit any message");
}

/// All records, keyed by namespace/name. Records are boxed: a table slot then costs a pointer,
/// not the record's inline size times the table's spare capacity.
#[derive(Debug, Default)]
pub(crate) struct Views {
    inner: RwLock<HashMap<ScalerKey, Box<ScalerView>>>,
}

impl Views {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<ScalerKey, Box<ScalerView>>> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<ScalerKey, Box<ScalerView>>> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads `key`'s record (`None` when there is none) without copying it.
    pub(crate) fn with<R>(
        &self,
        key: &ScalerKey,
        read: impl FnOnce(Option<&ScalerView>) -> R,
    ) -> R {
        let inner = self.read();
        read(inner.get(key).map(|view| &**view))
    }

    /// A copy of `key`'s decision state.
    pub(crate) fn state(&self, key: &ScalerKey) -> Option<DecisionState> {
        self.with(key, |view| view?.state())
    }

    /// A copy of `key`'s last decision.
    pub(crate) fn last_event(&self, key: &ScalerKey) -> Option<DecisionEvent> {
        self.with(key, |view| view?.last_event())
    }

    /// A copy of `key`'s record.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &ScalerKey) -> Option<ScalerView> {
        self.with(key, |view| view.cloned())
    }

    /// Changes `key`'s record (creating it).
    pub(crate) fn update<R>(
        &self,
        key: &ScalerKey,
        change: impl FnOnce(&mut ScalerView) -> R,
    ) -> R {
        let mut inner = self.write();
        match inner.get_mut(key) {
            Some(view) => change(view),
            None => change(inner.entry(key.clone()).or_default()),
        }
    }

    /// Drops `key`'s written status once the watch cache holds that write: `scaler` (the cached
    /// object) has the resourceVersion the write produced and a status that agrees on everything
    /// significant. From then on the cached status is the one to build on, so each PromScaler's
    /// status is kept once, not twice. Returns whether a written status is still kept.
    pub(crate) fn settle_status(&self, key: &ScalerKey, scaler: &PromScaler) -> bool {
        let caught_up = |written: &WrittenStatus| {
            scaler.resource_version().as_deref() == Some(written.resource_version.as_str())
                && scaler
                    .status
                    .as_ref()
                    .is_some_and(|cached| same_significant(cached, &written.status))
        };
        let pending = self.with(key, |view| {
            view.and_then(|v| v.last_status.as_ref())
                .map(|written| !caught_up(written))
        });
        match pending {
            Some(false) => {
                let mut inner = self.write();
                if let Some(view) = inner.get_mut(key)
                    && view.last_status.as_deref().is_some_and(caught_up)
                {
                    view.last_status = None;
                }
                false
            }
            Some(true) => true,
            None => false,
        }
    }

    /// Forgets `key`.
    pub(crate) fn remove(&self, key: &ScalerKey) {
        self.write().remove(key);
    }

    /// Forgets every carried state and written status (at a change of leadership), keeping the
    /// last decisions for ActuatorService.
    pub(crate) fn forget_states(&self) {
        for view in self.write().values_mut() {
            view.state = None;
            view.last_status = None;
        }
    }

    /// Calls `visit` with each PromScaler's last decision (without its decision state), under
    /// the read lock: for the scrape-time metrics, which read every record once.
    pub(crate) fn for_each_last_event(
        &self,
        mut visit: impl FnMut(&ScalerKey, DecisionEvent, u64),
    ) {
        for (key, view) in self.read().iter() {
            if let Some(event) = view
                .last_event
                .as_deref()
                .and_then(|bytes| DecisionEvent::decode(bytes).ok())
            {
                visit(key, event, view.samples_total);
            }
        }
    }

    /// Upstream samples processed by `key`'s queries so far (0 when unknown).
    pub(crate) fn samples_total(&self, key: &ScalerKey) -> u64 {
        self.with(key, |view| view.map_or(0, ScalerView::samples_total))
    }

    /// The last decision of every PromScaler.
    #[cfg(test)]
    pub(crate) fn last_events(&self) -> HashMap<ScalerKey, DecisionEvent> {
        self.read()
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.last_event()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler(resource_version: &str, desired: i32) -> PromScaler {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "promscaler.io/v1alpha1",
            "kind": "PromScaler",
            "metadata": { "name": "s", "namespace": "ns", "resourceVersion": resource_version },
            "spec": { "scaleTargetRef": { "name": "app" }, "triggers": [] },
            "status": { "desiredReplicas": desired }
        }))
        .unwrap()
    }

    fn written(resource_version: &str, desired: i32) -> Box<WrittenStatus> {
        Box::new(WrittenStatus {
            resource_version: resource_version.to_owned(),
            status: PromScalerStatus {
                desired_replicas: Some(desired),
                ..PromScalerStatus::default()
            },
        })
    }

    #[test]
    fn a_written_status_is_kept_until_the_watch_cache_holds_that_write() {
        let views = Views::default();
        let key = ScalerKey {
            namespace: "ns".into(),
            name: "s".into(),
        };
        views.update(&key, |v| v.last_status = Some(written("5", 3)));
        // The cache still has the object from before the write.
        assert!(views.settle_status(&key, &scaler("4", 2)));
        // Same resourceVersion but a different status (not ours): keep ours.
        assert!(views.settle_status(&key, &scaler("5", 2)));
        assert!(views.get(&key).unwrap().last_status.is_some());
        // Our write came back: one copy is enough.
        assert!(!views.settle_status(&key, &scaler("5", 3)));
        assert!(views.get(&key).unwrap().last_status.is_none());
    }

    #[test]
    fn the_last_decision_round_trips_through_its_encoding() {
        let views = Views::default();
        let key = ScalerKey {
            namespace: "ns".into(),
            name: "s".into(),
        };
        let mut event = DecisionEvent {
            error: "metrics-fetcher failed: boom; holding 3 replicas".into(),
            scaled: true,
            ..DecisionEvent::default()
        };
        views.update(&key, |v| v.set_last_event(&mut event));
        assert_eq!(views.last_event(&key), Some(event.clone()));
        assert_eq!(views.last_events().get(&key), Some(&event));
    }

    #[test]
    fn the_last_decision_is_stored_without_its_state_and_served_with_the_carried_one() {
        let views = Views::default();
        let key = ScalerKey {
            namespace: "ns".into(),
            name: "s".into(),
        };
        let state = DecisionState {
            recommendations: vec![promscaler_proto::v1::TimestampedReplicas {
                replicas: 3,
                at: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
            }],
            ..DecisionState::default()
        };
        let mut event = DecisionEvent {
            decision: Some(promscaler_proto::v1::DecideResponse {
                desired_replicas: 3,
                explanation: vec!["trigger rps: 140 / 50 ⇒ 3".into()],
                state: Some(state.clone()),
                ..Default::default()
            }),
            ..DecisionEvent::default()
        };
        views.update(&key, |v| {
            v.set_state(Some(&state));
            v.set_last_event(&mut event);
        });
        // The caller's event is left whole.
        assert_eq!(event.decision.as_ref().unwrap().state, Some(state.clone()));
        // Stored once: the encoded last decision carries no state.
        let stored = views.with(&key, |v| v.unwrap().last_event.clone().unwrap());
        let decoded = DecisionEvent::decode(stored.as_slice()).unwrap();
        assert_eq!(decoded.decision.as_ref().unwrap().state, None);
        assert_eq!(
            decoded.decision.as_ref().unwrap().explanation,
            ["trigger rps: 140 / 50 ⇒ 3"]
        );
        // Served with the carried state.
        assert_eq!(views.last_event(&key), Some(event.clone()));
        // After a change of leadership the state is gone until restored from status.
        views.forget_states();
        let served = views.last_event(&key).unwrap();
        assert_eq!(served.decision.unwrap().state, None);
    }
}
