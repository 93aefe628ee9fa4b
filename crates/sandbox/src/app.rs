//! The emulated `sample-app`, whose pods a real Prometheus follows.
//!
//! [`EmulatedApp`] watches (polls every 500 ms) the Pods of a Deployment in the Kubernetes API
//! emulator and gives every Ready pod its own `/metrics` endpoint ([`ScrapeTarget`]) serving
//! `websocket_active_connection_count{app_kubernetes_io_name="sample-app",pod="<name>"}`: the
//! app's connections shared among its ready pods (each reports `total / ready`). While no pod is
//! ready, the app's front (think of a load balancer holding the connections) reports the total
//! under `pod="front"`, so a scaled-to-zero app still has a signal to be woken by. It writes the
//! endpoints to a file-based service-discovery JSON file, which a real Prometheus with
//! `file_sd_configs` ([`crate::prometheus::Prometheus::following`]) follows, as a Kubernetes
//! SD would in a cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::process::http;
use crate::prometheus::{SAMPLE_METRIC, ScrapeTarget};

/// The exposition text one pod serves.
pub fn pod_metrics(app: &str, pod: &str, connections: f64) -> String {
    format!(
        "# HELP {SAMPLE_METRIC} Open websocket connections.\n# TYPE {SAMPLE_METRIC} gauge\n\
         {SAMPLE_METRIC}{{app_kubernetes_io_name=\"{app}\",pod=\"{pod}\"}} {connections}\n"
    )
}

/// Ready pods named in a PodList JSON (not terminating, condition Ready=True).
pub fn ready_pods(pod_list: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    for pod in pod_list["items"].as_array().into_iter().flatten() {
        if pod["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if ready && let Some(name) = pod["metadata"]["name"].as_str() {
            names.push(name.to_owned());
        }
    }
    names.sort();
    names
}

/// The file-SD JSON for `targets`.
pub fn file_sd_json(targets: &[SocketAddr]) -> String {
    let list: Vec<String> = targets.iter().map(ToString::to_string).collect();
    serde_json::json!([{ "targets": list, "labels": { "job": "sample-app" } }]).to_string()
}

/// The `pod` label of the series the app's front reports while no pod is ready.
pub const FRONT: &str = "front";

#[derive(Debug)]
struct AppState {
    connections: f64,
    pods: BTreeMap<String, ScrapeTarget>,
    /// The app's front (a load balancer holding connections): it reports the connections
    /// while no pod is ready, so an app scaled to zero can be woken by its load, and nothing
    /// while pods serve them.
    front: ScrapeTarget,
}

impl AppState {
    fn per_pod(&self) -> f64 {
        if self.pods.is_empty() {
            0.0
        } else {
            self.connections / self.pods.len() as f64
        }
    }

    fn refresh_texts(&self, app: &str) {
        let each = self.per_pod();
        for (name, target) in &self.pods {
            target.set(pod_metrics(app, name, each));
        }
        if self.pods.is_empty() {
            self.front.set(pod_metrics(app, FRONT, self.connections));
        } else {
            self.front.set(String::new());
        }
    }

    /// The scrape targets: the front first, then the ready pods.
    fn targets(&self) -> Vec<SocketAddr> {
        std::iter::once(self.front.addr())
            .chain(self.pods.values().map(ScrapeTarget::addr))
            .collect()
    }
}

/// The emulated app: one `/metrics` endpoint per Ready pod of a Deployment, one for the app's
/// front (reporting the connections only while no pod is ready), and the file-SD file listing
/// them. Stops (endpoints and poller) on drop.
#[derive(Debug)]
pub struct EmulatedApp {
    state: Arc<Mutex<AppState>>,
    app: String,
    sd_file: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl EmulatedApp {
    /// Follows the pods labelled `app.kubernetes.io/name=<app>` in `namespace` of the emulator
    /// at `api` (plain HTTP), writing `sd_file` whenever the set of ready pods changes.
    pub async fn start(
        api: SocketAddr,
        namespace: &str,
        app: &str,
        sd_file: &Path,
    ) -> Result<Self> {
        let state = AppState {
            connections: 0.0,
            pods: BTreeMap::new(),
            front: ScrapeTarget::start(String::new()).await?,
        };
        state.refresh_texts(app);
        std::fs::write(sd_file, file_sd_json(&state.targets()))
            .with_context(|| format!("writing {}", sd_file.display()))?;
        let state = Arc::new(Mutex::new(state));
        let path = format!(
            "/api/v1/namespaces/{namespace}/pods?labelSelector=app.kubernetes.io%2Fname%3D{app}"
        );
        let task = tokio::spawn(follow_pods(
            api,
            path,
            app.to_owned(),
            sd_file.to_owned(),
            state.clone(),
        ));
        Ok(Self {
            state,
            app: app.to_owned(),
            sd_file: sd_file.to_owned(),
            task,
        })
    }

    /// Sets the app's total connections (shared among ready pods at once).
    pub fn set_connections(&self, connections: f64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.connections = connections;
        state.refresh_texts(&self.app);
    }

    /// The total connections.
    pub fn connections(&self) -> f64 {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .connections
    }

    /// How many pods serve metrics now.
    pub fn ready_pods(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pods
            .len()
    }

    /// The file-SD file Prometheus reads.
    pub fn sd_file(&self) -> &Path {
        &self.sd_file
    }
}

impl Drop for EmulatedApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow_pods(
    api: SocketAddr,
    path: String,
    app: String,
    sd_file: PathBuf,
    state: Arc<Mutex<AppState>>,
) {
    loop {
        if let Ok((200, body)) = http(api, "GET", &path, "").await
            && let Ok(list) = serde_json::from_str::<serde_json::Value>(&body)
        {
            let ready = ready_pods(&list);
            let current: Vec<String> = state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pods
                .keys()
                .cloned()
                .collect();
            if current != ready {
                // Start endpoints for new pods outside the lock, then swap the set in.
                let mut added = Vec::new();
                for name in ready.iter().filter(|n| !current.contains(n)) {
                    if let Ok(target) = ScrapeTarget::start(String::new()).await {
                        added.push((name.clone(), target));
                    }
                }
                let targets = {
                    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                    st.pods.retain(|name, _| ready.contains(name));
                    st.pods.extend(added);
                    st.refresh_texts(&app);
                    st.targets()
                };
                let tmp = sd_file.with_extension("json.tmp");
                if std::fs::write(&tmp, file_sd_json(&targets)).is_ok() {
                    let _ = std::fs::rename(&tmp, &sd_file);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_pods_skips_pending_and_terminating() {
        let list = serde_json::json!({"items": [
            {"metadata": {"name": "b"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "c"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
            {"metadata": {"name": "d", "deletionTimestamp": "2026-01-01T00:00:00Z"},
             "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        ]});
        assert_eq!(ready_pods(&list), vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn file_sd_lists_targets() {
        let json = file_sd_json(&["127.0.0.1:9000".parse().unwrap()]);
        assert!(json.contains("\"127.0.0.1:9000\""), "{json}");
    }

    #[tokio::test]
    async fn the_front_reports_the_connections_only_while_no_pod_is_ready() {
        let mut state = AppState {
            connections: 140.0,
            pods: BTreeMap::new(),
            front: ScrapeTarget::start(String::new()).await.unwrap(),
        };
        state.refresh_texts("sample-app");
        assert_eq!(state.per_pod(), 0.0);
        assert!(
            state.front.text().contains("pod=\"front\"} 140"),
            "{}",
            state.front.text()
        );
        assert_eq!(state.targets(), vec![state.front.addr()]);

        for pod in ["sample-app-a", "sample-app-b"] {
            let target = ScrapeTarget::start(String::new()).await.unwrap();
            state.pods.insert(pod.to_owned(), target);
        }
        state.refresh_texts("sample-app");
        assert_eq!(state.front.text(), "");
        assert!(
            state.pods["sample-app-a"]
                .text()
                .contains("pod=\"sample-app-a\"} 70")
        );
        assert_eq!(state.targets().len(), 3);
        assert_eq!(state.targets()[0], state.front.addr());
    }

    #[test]
    fn pod_metrics_names_the_pod() {
        let text = pod_metrics("sample-app", "sample-app-x", 70.0);
        assert!(text.contains(
            "websocket_active_connection_count{app_kubernetes_io_name=\"sample-app\",pod=\"sample-app-x\"} 70"
        ));
    }
}
