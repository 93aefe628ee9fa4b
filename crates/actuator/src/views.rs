//! What the actuator knows about each PromScaler in memory: the decision state carried between
//! ticks, the last decision (served by ActuatorService, so last values and explanations need no
//! status write), and the last status written (so unchanged status is never written again).

use std::{collections::HashMap, sync::RwLock};

use promscaler_api::PromScalerStatus;
use promscaler_proto::v1::{DecisionEvent, DecisionState};

use crate::controller::ScalerKey;

/// One PromScaler's in-memory record.
#[derive(Debug, Clone, Default)]
pub struct ScalerView {
    /// Decision state to send with the next Decide; `None` = restore from status.
    pub state: Option<DecisionState>,
    /// The last tick's decision.
    pub last_event: Option<DecisionEvent>,
    /// The status as last written (or read at restore); `None` = unknown.
    pub last_status: Option<PromScalerStatus>,
}

/// All records, keyed by namespace/name.
#[derive(Debug, Default)]
pub struct Views {
    inner: RwLock<HashMap<ScalerKey, ScalerView>>,
}

impl Views {
    /// A copy of `key`'s record.
    pub fn get(&self, key: &ScalerKey) -> Option<ScalerView> {
        self.inner.read().ok()?.get(key).cloned()
    }

    /// Changes `key`'s record (creating it).
    pub fn update<R>(&self, key: &ScalerKey, change: impl FnOnce(&mut ScalerView) -> R) -> R {
        let mut inner = self
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(inner.entry(key.clone()).or_default())
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &ScalerKey) {
        if let Ok(mut inner) = self.inner.write() {
            inner.remove(key);
        }
    }

    /// Forgets every carried state and written status (at a change of leadership), keeping the
    /// last decisions for ActuatorService.
    pub fn forget_states(&self) {
        if let Ok(mut inner) = self.inner.write() {
            for view in inner.values_mut() {
                view.state = None;
                view.last_status = None;
            }
        }
    }

    /// The last decision of every PromScaler.
    pub fn last_events(&self) -> HashMap<ScalerKey, DecisionEvent> {
        self.inner
            .read()
            .map(|inner| {
                inner
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.last_event.clone()?)))
                    .collect()
            })
            .unwrap_or_default()
    }
}
