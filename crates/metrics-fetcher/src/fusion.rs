//! Query fusion: look-alike queries — equal apart from the value of one label's equality
//! matcher — that arrive within a short window are sent upstream as one query grouped by that
//! label, and each member is answered from its group ([`shape`] says which queries fuse and
//! why the answer is exact).
//!
//! A member joins the open *bucket* of its family (same source, auth identity, headers,
//! parameters, TLS, timeout, evaluation time, label and template). A bucket is sent when its
//! window ends (`--fusion-window`, from its first member) or at once when it holds
//! `--fusion-max-members`; members of one `QueryBatch` all join before its window can end
//! ([`Scope`]). A bucket with a single value is sent as the member's own query. A fused query
//! that the upstream rejects or cannot run (bad query, timeout, other upstream errors), or
//! whose answer cannot be split, is sent again as each member's own query, so a member never
//! gets an error it would not have got alone; transport, throttling and auth errors (the same
//! for every member of one source) are shared.
//!
//! Coalescing and caching stay per member (the [`crate::cache::Coalescer`] runs before this:
//! a member whose answer is cached or in flight never reaches a bucket).

pub mod shape;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;

use crate::Error;
use crate::metrics::Metrics;
use crate::prometheus::{Answer, QueryData, Series, Upstream};
use crate::source::Source;

pub use shape::{Candidate, Fusable, Reason};

/// Fusion settings (`--fusion`, `--fusion-window`, `--fusion-max-members`).
#[derive(Debug, Clone, Copy)]
pub struct FusionConfig {
    /// Fuse at all.
    pub enabled: bool,
    /// How long a bucket waits for more members after its first.
    pub window: Duration,
    /// Most members (distinct values) per fused query.
    pub max_members: usize,
}

impl Default for FusionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_millis(20),
            max_members: 100,
        }
    }
}

/// What one member's upstream request yields.
pub type Outcome = Result<Answer, Error>;

type FamilyKey = [u8; 32];

/// A query on its way to a bucket.
pub struct Member {
    /// Where to send it.
    pub source: Arc<Source>,
    /// Its own text (sent alone when it cannot be fused).
    pub query: String,
    /// Evaluation time.
    pub time: Option<SystemTime>,
    /// Its AST and candidate labels.
    pub fusable: Arc<Fusable>,
}

struct Waiting {
    member: Member,
    /// The value of the bucket's label (set once the label is).
    value: Option<String>,
    tx: oneshot::Sender<Outcome>,
}

struct Bucket {
    /// The label, once a second member fixed it (a first member may fit several).
    label: Option<String>,
    /// Keys under which it is open.
    keys: Vec<FamilyKey>,
    members: Vec<Waiting>,
    /// Distinct values so far (the cap counts these).
    values: BTreeSet<String>,
    /// Open batch scopes that created it: its window starts when the last one closes.
    holds: usize,
}

#[derive(Default)]
struct Open {
    by_key: HashMap<FamilyKey, u64>,
    buckets: HashMap<u64, Bucket>,
    next: u64,
}

impl Open {
    fn take(&mut self, id: u64) -> Option<Bucket> {
        let bucket = self.buckets.remove(&id)?;
        for k in &bucket.keys {
            if self.by_key.get(k) == Some(&id) {
                self.by_key.remove(k);
            }
        }
        Some(bucket)
    }
}

/// Fuses look-alike queries.
pub struct Fuser {
    config: FusionConfig,
    upstream: Arc<Upstream>,
    metrics: Metrics,
    open: Arc<Mutex<Open>>,
}

/// The members of one `QueryBatch`: buckets they open wait for the scope to close before their
/// window starts, so a batch's look-alikes always meet.
pub struct Scope {
    fuser: Option<Arc<Fuser>>,
    created: Mutex<Vec<u64>>,
}

impl Drop for Scope {
    fn drop(&mut self) {
        let Some(fuser) = self.fuser.take() else {
            return;
        };
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        for id in created {
            let start = {
                let mut open = fuser.lock();
                match open.buckets.get_mut(&id) {
                    Some(b) => {
                        b.holds -= 1;
                        b.holds == 0
                    }
                    None => false,
                }
            };
            if start {
                fuser.start_window(id);
            }
        }
    }
}

impl Scope {
    /// A scope that holds nothing (fusion off).
    pub fn none() -> Self {
        Self {
            fuser: None,
            created: Mutex::new(Vec::new()),
        }
    }
}

impl Fuser {
    /// A fuser sending through `upstream`.
    pub fn new(config: FusionConfig, upstream: Arc<Upstream>, metrics: Metrics) -> Self {
        Self {
            config: FusionConfig {
                max_members: config.max_members.max(1),
                ..config
            },
            upstream,
            metrics,
            open: Arc::new(Mutex::new(Open::default())),
        }
    }

    /// The settings.
    pub fn config(&self) -> FusionConfig {
        self.config
    }

    /// Analyses `query` for fusion; counts it by reason when it cannot fuse.
    pub fn analyse(&self, query: &str) -> Option<Arc<Fusable>> {
        if !self.config.enabled || self.config.max_members < 2 {
            return None;
        }
        match shape::analyse(query) {
            Ok(f) => Some(Arc::new(f)),
            Err(reason) => {
                self.metrics.unfusable(reason.label());
                None
            }
        }
    }

    /// A scope for one batch's members.
    pub fn scope(self: &Arc<Self>) -> Scope {
        Scope {
            fuser: Some(self.clone()),
            created: Mutex::new(Vec::new()),
        }
    }

    /// Adds `member` to its family's open bucket (or opens one); the answer comes on the
    /// receiver. Synchronous: members submitted one after the other land in one bucket.
    pub fn submit(self: &Arc<Self>, member: Member, scope: &Scope) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let fusable = member.fusable.clone();
        let keys: Vec<(FamilyKey, &Candidate)> = fusable
            .candidates
            .iter()
            .map(|c| (family_key(&member, c), c))
            .collect();
        let mut dispatch = None;
        let mut start = None;
        {
            let mut open = self.lock();
            // The fullest open bucket this member fits.
            let best = keys
                .iter()
                .filter_map(|(k, c)| {
                    let id = *open.by_key.get(k)?;
                    let b = open.buckets.get(&id)?;
                    let fits = b.label.as_deref().is_none_or(|l| l == c.label)
                        && (b.values.len() < self.config.max_members
                            || b.values.contains(&c.value));
                    fits.then_some((b.members.len(), id, *k, *c))
                })
                .max_by_key(|(n, ..)| *n);
            if let Some((_, id, key, c)) = best {
                let mut drop_keys = Vec::new();
                let full = {
                    let b = open.buckets.get_mut(&id).expect("indexed bucket exists");
                    if b.label.is_none() {
                        // The label is fixed now: the opener's other keys stop matching.
                        b.label = Some(c.label.clone());
                        drop_keys = b.keys.iter().copied().filter(|k| *k != key).collect();
                        b.keys = vec![key];
                        let label = c.label.clone();
                        for w in &mut b.members {
                            w.value = w
                                .member
                                .fusable
                                .candidates
                                .iter()
                                .find(|o| o.label == label)
                                .map(|o| o.value.clone());
                        }
                        b.values = b.members.iter().filter_map(|w| w.value.clone()).collect();
                    }
                    b.values.insert(c.value.clone());
                    b.members.push(Waiting {
                        value: Some(c.value.clone()),
                        member,
                        tx,
                    });
                    b.values.len() >= self.config.max_members
                };
                for k in drop_keys {
                    if open.by_key.get(&k) == Some(&id) {
                        open.by_key.remove(&k);
                    }
                }
                if full {
                    dispatch = open.take(id);
                }
            } else {
                let id = open.next;
                open.next += 1;
                let holds = usize::from(scope.fuser.is_some());
                let bucket = Bucket {
                    label: None,
                    keys: keys.iter().map(|(k, _)| *k).collect(),
                    members: vec![Waiting {
                        member,
                        value: None,
                        tx,
                    }],
                    values: BTreeSet::new(),
                    holds,
                };
                for (k, _) in &keys {
                    open.by_key.insert(*k, id);
                }
                open.buckets.insert(id, bucket);
                if holds > 0 {
                    scope
                        .created
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(id);
                } else {
                    start = Some(id);
                }
            }
        }
        if let Some(bucket) = dispatch {
            self.dispatch(bucket);
        }
        if let Some(id) = start {
            self.start_window(id);
        }
        rx
    }

    fn start_window(self: &Arc<Self>, id: u64) {
        let fuser = self.clone();
        let window = self.config.window;
        tokio::spawn(async move {
            if !window.is_zero() {
                tokio::time::sleep(window).await;
            }
            let bucket = fuser.lock().take(id);
            if let Some(bucket) = bucket {
                fuser.dispatch(bucket);
            }
        });
    }

    fn dispatch(self: &Arc<Self>, bucket: Bucket) {
        let fuser = self.clone();
        tokio::spawn(async move { fuser.send(bucket).await });
    }

    /// Sends a closed bucket and answers its members.
    async fn send(&self, bucket: Bucket) {
        let mut members: Vec<Waiting> = bucket
            .members
            .into_iter()
            .filter(|w| !w.tx.is_closed())
            .collect();
        let Some(first) = members.first() else {
            return;
        };
        let values: BTreeSet<&str> = members.iter().filter_map(|w| w.value.as_deref()).collect();
        let label = match &bucket.label {
            Some(label) if values.len() >= 2 => label.clone(),
            // One value: the members are one query (one AST); send the first one's text.
            _ => {
                let m = &first.member;
                let outcome = self.upstream.instant(&m.source, &m.query, m.time).await;
                // One request shared: its samples split evenly.
                let samples = outcome.as_ref().ok().and_then(|a| a.samples);
                let shares = shares(samples, &vec![1; members.len()]);
                for (w, share) in members.into_iter().zip(shares) {
                    let _ = w.tx.send(outcome.clone().map(|a| Answer {
                        samples: share,
                        ..a
                    }));
                }
                return;
            }
        };
        let values: Vec<&str> = values.into_iter().collect();
        let m = &first.member;
        let fused = match shape::fused_query(&m.fusable.expr, &label, &values) {
            Ok(q) => q,
            Err(reason) => {
                self.metrics.unfusable(reason.label());
                self.alone(members).await;
                return;
            }
        };
        self.metrics.fused_request(values.len());
        tracing::debug!(members = members.len(), values = values.len(), %label, "fused query");
        // One more than the members: an answer with more series than values is not split.
        let keep = values.len() + 1;
        let answer = self
            .upstream
            .instant_keeping(&m.source, &fused, m.time, keep)
            .await;
        match answer {
            Ok(answer) => {
                let Some(groups) = split(&answer, &label, values.len()) else {
                    self.metrics.fusion_fallback();
                    self.alone(members).await;
                    return;
                };
                let mut lonely = Vec::new();
                let mut answered = Vec::new();
                for w in members.drain(..) {
                    let value = w.value.as_deref().unwrap_or_default();
                    match groups.get(value) {
                        Some(series) if series.len() > 1 => lonely.push(w),
                        found => answered.push((w, found.cloned().unwrap_or_default())),
                    }
                }
                // The fused request's samples, attributed to its members by their share of
                // the answer's series (evenly when none has any).
                let weights: Vec<usize> = answered.iter().map(|(_, s)| s.len()).collect();
                let shares = shares(answer.samples, &weights);
                for ((w, series), share) in answered.into_iter().zip(shares) {
                    let _ = w.tx.send(Ok(Answer {
                        series_count: series.len(),
                        data: QueryData::Vector(series),
                        samples: share,
                    }));
                }
                if !lonely.is_empty() {
                    self.metrics.fusion_fallback();
                    self.alone(lonely).await;
                }
            }
            Err(e) if depends_on_query(&e) => {
                self.metrics.fusion_fallback();
                self.alone(members).await;
            }
            Err(e) => {
                for w in members {
                    let _ = w.tx.send(Err(e.clone()));
                }
            }
        }
    }

    /// Sends each member's own query (each is charged its own request's samples).
    async fn alone(&self, members: Vec<Waiting>) {
        futures::future::join_all(members.into_iter().map(|w| async move {
            let m = &w.member;
            let outcome = self.upstream.instant(&m.source, &m.query, m.time).await;
            let _ = w.tx.send(outcome);
        }))
        .await;
    }

    /// Open buckets (tests).
    pub fn open_buckets(&self) -> usize {
        self.lock().buckets.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Errors that another query might not get: the member's own query is sent instead.
fn depends_on_query(e: &Error) -> bool {
    matches!(
        e,
        Error::BadQuery { .. }
            | Error::UnusableResult { .. }
            | Error::UpstreamTimeout { .. }
            | Error::Timeout { .. }
            | Error::Upstream { .. }
            | Error::Internal(_)
    )
}

/// The fused answer's series by value of `label` (absent = ""), each without `label` — as the
/// member's own query answers (a root's series carries no other label). `None` when the answer
/// is not a vector or was cut.
fn split(answer: &Answer, label: &str, values: usize) -> Option<HashMap<String, Vec<Series>>> {
    let QueryData::Vector(series) = &answer.data else {
        return None;
    };
    if answer.series_count > series.len() || series.len() > values {
        return None;
    }
    let mut groups: HashMap<String, Vec<Series>> = HashMap::new();
    for s in series {
        let mut s = s.clone();
        let value = s.labels.remove(label).unwrap_or_default();
        groups.entry(value).or_default().push(s);
    }
    Some(groups)
}

/// Everything members of one fused query share: source (address, headers, parameters,
/// namespace, TLS, auth identity with secrets hashed), timeout, time, label and template.
fn family_key(m: &Member, c: &Candidate) -> FamilyKey {
    let mut h = Sha256::new();
    h.update(b"fusion\0");
    m.source.fingerprint(&mut h);
    h.update(m.source.timeout.as_nanos().to_le_bytes());
    match m.time {
        None => h.update([0]),
        Some(t) => {
            h.update([1]);
            let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            h.update(d.as_nanos().to_le_bytes());
        }
    }
    for text in [&c.label, &c.template] {
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.finalize().into()
}

/// `total` split in proportion to `weights` (evenly when they are all 0), in whole samples
/// that add up to `total` exactly (largest remainders get the leftover units); `None` stays
/// unknown for everyone.
fn shares(total: Option<u64>, weights: &[usize]) -> Vec<Option<u64>> {
    let Some(total) = total else {
        return vec![None; weights.len()];
    };
    if weights.is_empty() {
        return Vec::new();
    }
    let sum: u128 = weights.iter().map(|&w| w as u128).sum();
    let (weights, sum): (Vec<u128>, u128) = if sum == 0 {
        (vec![1; weights.len()], weights.len() as u128)
    } else {
        (weights.iter().map(|&w| w as u128).collect(), sum)
    };
    let total = u128::from(total);
    let mut parts: Vec<(u128, u128, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| (total * w / sum, total * w % sum, i))
        .collect();
    let given: u128 = parts.iter().map(|p| p.0).sum();
    let mut leftover = total - given;
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| parts[b].1.cmp(&parts[a].1).then(a.cmp(&b)));
    for i in order {
        if leftover == 0 {
            break;
        }
        parts[i].0 += 1;
        leftover -= 1;
    }
    parts
        .into_iter()
        .map(|(n, _, _)| Some(u64::try_from(n).unwrap_or(u64::MAX)))
        .collect()
}

#[cfg(test)]
mod tests;
