//! Watches: the initial events (history replay or current state), then the live broadcast,
//! filtered per watcher, with bookmarks, timeouts, drops and 410 for expired versions.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiError;
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::{Body, Query, Render, Shared, Target, partial, present};
use crate::store::{EventKind, StoreEvent, meta_str};
use crate::table;

fn event_line(kind: &str, object: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(object.len() + 40);
    b.extend_from_slice(b"{\"type\":\"");
    b.extend_from_slice(kind.as_bytes());
    b.extend_from_slice(b"\",\"object\":");
    b.extend_from_slice(object);
    b.extend_from_slice(b"}\n");
    b.freeze()
}

struct WatchFilter {
    def: Arc<ResourceDef>,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    render: Render,
    include_object: String,
}

impl WatchFilter {
    fn matches(&self, obj: &Value) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|ns| meta_str(obj, "namespace") == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The line for an event, or `None` when the watcher does not see it.
    fn line(&self, ev: &StoreEvent) -> Option<Bytes> {
        if ev.storage != self.def.storage_key() {
            return None;
        }
        if self.ns.as_deref().is_some_and(|ns| ev.namespace() != ns) {
            return None;
        }
        let mut kind = ev.kind;
        if !self.labels.is_empty() || !self.fields.is_empty() {
            let now = self.matches(&ev.object);
            let before = ev.prev.as_ref().is_some_and(|p| self.matches(p));
            kind = match (ev.kind, before, now) {
                (EventKind::Deleted, _, true) | (EventKind::Added, _, true) => ev.kind,
                (EventKind::Modified, true, true) => EventKind::Modified,
                (EventKind::Modified, false, true) => EventKind::Added,
                (EventKind::Modified, true, false) => EventKind::Deleted,
                _ => return None,
            };
        }
        let same_version = ev.object.get("apiVersion").and_then(Value::as_str)
            == Some(self.def.api_version().as_str());
        Some(match self.render {
            Render::Object if same_version => event_line(kind.as_str(), ev.object_json()),
            Render::Object => event_line(
                kind.as_str(),
                &(*present(&self.def, &ev.object)).to_string().into_bytes(),
            ),
            Render::Metadata => {
                event_line(kind.as_str(), &partial(&ev.object).to_string().into_bytes())
            }
            Render::Table => {
                let t = table::table(
                    &self.def,
                    [&*ev.object],
                    Some(ev.rv.to_string()),
                    None,
                    &self.include_object,
                );
                event_line(kind.as_str(), &t.to_string().into_bytes())
            }
        })
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta});
        event_line("BOOKMARK", &obj.to_string().into_bytes())
    }
}

pub(crate) fn watch_resp(
    shared: &Arc<Shared>,
    t: &Target,
    q: &Query,
    render: Render,
) -> Result<Response<Body>, ApiError> {
    let def = t.def.clone();
    let filter = WatchFilter {
        def: def.clone(),
        ns: def
            .namespaced
            .then(|| t.ns.clone())
            .filter(|n| !n.is_empty()),
        labels: LabelSelector::parse(q.get("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?,
        fields: FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?,
        render,
        include_object: q.get("includeObject").unwrap_or("Metadata").to_string(),
    };
    let send_initial = q.flag("sendInitialEvents");
    let from = match q.get("resourceVersion") {
        None | Some("0") => None,
        Some(_) if send_initial => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?,
        ),
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(StreamBody::new(stream).boxed())
        .expect("valid response");
    let start = shared.store.watch_from(&def, from);
    // marked seen now, before the client can see the response and drop watches
    let mut drops = shared.faults.drop_signal();
    drops.borrow_and_update();
    let mut shutdown = shared.shutdown.clone();
    let interval = shared.bookmark_interval;
    tokio::spawn(async move {
        let (initial, mut events, start_rv) = match start {
            Ok(s) => s,
            Err(e) => {
                // the real API answers an expired resourceVersion inside the watch stream
                let _ = tx
                    .send(event_line("ERROR", &e.to_status().to_string().into_bytes()))
                    .await;
                return;
            }
        };
        let mut last_rv = start_rv;
        for ev in &initial {
            if let Some(line) = filter.line(ev)
                && tx.send(line).await.is_err()
            {
                return;
            }
        }
        if send_initial && tx.send(filter.bookmark(start_rv, true)).await.is_err() {
            return;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        loop {
            let line = tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) => {
                        last_rv = last_rv.max(ev.rv);
                        match filter.line(&ev) { Some(l) => l, None => continue }
                    }
                    // a watcher that fell behind is closed; the client resumes from its last
                    // resourceVersion out of the history
                    Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => filter.bookmark(last_rv, false),
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => return,
                _ = drops.changed() => return,
                _ = shutdown.changed() => return,
                _ = tx.closed() => return,
            };
            if tx.send(line).await.is_err() {
                return;
            }
        }
    });
    Ok(response)
}
