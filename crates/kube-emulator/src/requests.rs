//! Counts of the API requests served, by verb and resource: how a harness measures how many
//! writes a client makes (e.g. the fault soak's bound on the actuator's writes per minute).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One kind of request: a Kubernetes verb on a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKind {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: String,
    /// `<group>/<plural>` (`/pods` for the core group), with `/<subresource>` when one was
    /// addressed: `apps/deployments/scale`, `promscaler.io/promscalers/status`.
    pub resource: String,
}

impl RequestKind {
    /// Whether the verb changes objects (create, update, patch, delete, deletecollection).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// One kind of read, down to the object: how a harness proves what a client did or did not read
/// (e.g. that the actuator never GETs a Secret no PromScaler references, and watches Secrets as
/// metadata only).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Read {
    /// `get`, `list` or `watch`.
    pub verb: String,
    /// As in [`RequestKind::resource`].
    pub resource: String,
    /// The namespace in the path ("" for all namespaces or a cluster-scoped resource).
    pub namespace: String,
    /// The object's name ("" for a list or watch).
    pub name: String,
    /// Whether the client asked for `PartialObjectMetadata` (metadata only, no `data`/`spec`).
    pub metadata_only: bool,
}

/// Request counters shared by the server and the handle. Every resource request counts,
/// including those failed by injected faults; discovery and `/_emulator` do not.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requests {
    counts: Arc<Mutex<BTreeMap<RequestKind, u64>>>,
    reads: Arc<Mutex<BTreeMap<Read, u64>>>,
}

impl Requests {
    pub(crate) fn record_read(&self, read: Read) {
        *self
            .reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(read)
            .or_default() += 1;
    }

    pub(crate) fn reads(&self) -> BTreeMap<Read, u64> {
        self.reads.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn record(&self, verb: &str, resource: String) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts
            .entry(RequestKind {
                verb: verb.to_owned(),
                resource,
            })
            .or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<RequestKind, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
