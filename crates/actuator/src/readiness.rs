//! The actuator is ready when both what it reads (its watch caches have synced) and what it
//! calls (the metrics-fetcher and the decision service report SERVING) are there.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use promscaler_runtime::Readiness;

/// Combines the two conditions into the process's `/ready`.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    readiness: Readiness,
    synced: Arc<AtomicBool>,
    peers: Arc<AtomicBool>,
}

impl Gate {
    /// A gate driving `readiness`; both conditions start false.
    pub(crate) fn new(readiness: Readiness) -> Self {
        Self {
            readiness,
            synced: Arc::default(),
            peers: Arc::default(),
        }
    }

    /// Records whether the watch caches are synced.
    pub(crate) fn set_caches_synced(&self, synced: bool) {
        self.synced.store(synced, Ordering::SeqCst);
        self.update();
    }

    /// Records whether both peers serve.
    pub(crate) fn set_peers_serving(&self, serving: bool) {
        self.peers.store(serving, Ordering::SeqCst);
        self.update();
    }

    fn update(&self) {
        self.readiness
            .set_ready(self.synced.load(Ordering::SeqCst) && self.peers.load(Ordering::SeqCst));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_synced_and_peers_serve() {
        let readiness = Readiness::default();
        let gate = Gate::new(readiness.clone());
        gate.set_peers_serving(true);
        assert!(!readiness.is_ready());
        gate.set_caches_synced(true);
        assert!(readiness.is_ready());
        gate.set_peers_serving(false);
        assert!(!readiness.is_ready());
    }
}
