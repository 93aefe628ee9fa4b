//! Fault injection: failing requests, added latency, dropped or expired watches. Driven from
//! tests through [`Faults`] or over HTTP under `/_emulator/faults`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::store::Store;

/// Fail the next `count` requests that match `verb` and `path` with HTTP `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailRule {
    /// Kubernetes verb to match (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`); `None` matches every verb.
    #[serde(default)]
    pub verb: Option<String>,
    /// Substring of the request path to match (e.g. `/scale`, `/deployments/web`); `None`
    /// matches every path.
    #[serde(default)]
    pub path: Option<String>,
    /// The HTTP status to answer with (409, 429, 500, 503, ...).
    pub status: u16,
    /// How many matching requests fail before the rule is used up.
    #[serde(default = "one")]
    pub count: u32,
    /// The `Status` message; a generic one when `None`.
    #[serde(default)]
    pub message: Option<String>,
}

fn one() -> u32 {
    1
}

impl FailRule {
    /// A rule failing the next request of any verb whose path contains `path` with `status`.
    pub fn new(path: impl Into<String>, status: u16) -> Self {
        Self {
            verb: None,
            path: Some(path.into()),
            status,
            count: 1,
            message: None,
        }
    }

    /// Only requests with this verb match.
    pub fn verb(mut self, verb: impl Into<String>) -> Self {
        self.verb = Some(verb.into());
        self
    }

    /// The rule fails this many matching requests.
    pub fn times(mut self, count: u32) -> Self {
        self.count = count;
        self
    }
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<FailRule>,
    latency: Duration,
    injected: u64,
}

/// The fault-injection controls of a running emulator. Cloning shares them.
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
    drops: Arc<watch::Sender<u64>>,
    store: Arc<Store>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("state", &self.state)
            .finish()
    }
}

impl Faults {
    pub(crate) fn new(store: Arc<Store>) -> Self {
        Self {
            state: Arc::default(),
            drops: Arc::new(watch::channel(0).0),
            store,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a rule: the next `rule.count` matching requests fail with `rule.status`.
    pub fn fail_next(&self, rule: FailRule) {
        self.lock().rules.push(rule);
    }

    /// Delays every API request (admin requests excepted) by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Ends every open watch now (clients see the stream close and re-watch).
    pub fn drop_watches(&self) {
        self.drops.send_modify(|g| *g += 1);
    }

    /// Compacts the watch history and drops every watch: clients that re-watch from a
    /// resourceVersion they had get `410 Gone` ("too old resource version") and must re-list.
    pub fn expire_watches(&self) {
        self.store.compact();
        self.drop_watches();
    }

    /// Removes every rule and the latency.
    pub fn clear(&self) {
        let mut st = self.lock();
        st.rules.clear();
        st.latency = Duration::ZERO;
    }

    /// How many requests were failed by rules so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// The rules still pending (for the admin API).
    pub(crate) fn snapshot(&self) -> serde_json::Value {
        let st = self.lock();
        serde_json::json!({
            "rules": st.rules,
            "latencyMillis": st.latency.as_millis() as u64,
            "injected": st.injected,
        })
    }

    pub(crate) fn drop_signal(&self) -> watch::Receiver<u64> {
        self.drops.subscribe()
    }

    /// The latency to add and the error to answer with, if a rule matches.
    pub(crate) fn check(&self, verb: &str, path: &str) -> (Duration, Option<ApiError>) {
        let mut st = self.lock();
        let latency = st.latency;
        let pos = st.rules.iter().position(|r| {
            r.count > 0
                && r.verb
                    .as_deref()
                    .is_none_or(|v| v.eq_ignore_ascii_case(verb))
                && r.path.as_deref().is_none_or(|p| path.contains(p))
        });
        let err = pos.map(|i| {
            let rule = &mut st.rules[i];
            rule.count -= 1;
            let err = ApiError::injected(rule.status, rule.message.clone());
            if rule.count == 0 {
                st.rules.remove(i);
            }
            st.injected += 1;
            err
        });
        (latency, err)
    }
}
