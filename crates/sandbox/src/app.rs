//! The emulated `sample-app` and the Prometheus that follows its pods.
//!
//! [`EmulatedApp`] watches (polls every 500 ms) the Pods of a Deployment in the Kubernetes API
//! emulator and gives every Ready pod its own `/metrics` endpoint ([`ScrapeTarget`]) serving
//! `websocket_active_connection_count{app_kubernetes_io_name="sample-app",pod="<name>"}`: the
//! app's connections shared among its ready pods (each reports `total / ready`). It writes the
//! endpoints to a file-based service-discovery JSON file, which [`FileSdPrometheus`] (a real
//! Prometheus with `file_sd_configs`) follows, as a Kubernetes SD would in a cluster.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::process::{ChildProcess, free_port, http, poll_until};
use crate::prometheus::{SAMPLE_METRIC, ScrapeTarget, single_value};

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

#[derive(Debug, Default)]
struct AppState {
    connections: f64,
    pods: BTreeMap<String, ScrapeTarget>,
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
    }
}

/// The emulated app: one `/metrics` endpoint per Ready pod of a Deployment, and the file-SD
/// file listing them. Stops (endpoints and poller) on drop.
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
        std::fs::write(sd_file, file_sd_json(&[]))
            .with_context(|| format!("writing {}", sd_file.display()))?;
        let state = Arc::new(Mutex::new(AppState::default()));
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
                    st.pods.values().map(ScrapeTarget::addr).collect::<Vec<_>>()
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

/// A real Prometheus (Debian's `prometheus` on the PATH) scraping, every second, the targets
/// of a file-SD JSON file (re-read when it changes). Killed on drop.
#[derive(Debug)]
pub struct FileSdPrometheus {
    process: Option<ChildProcess>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl FileSdPrometheus {
    /// Starts Prometheus following `sd_file` and waits until it is ready (15 s).
    pub async fn start(sd_file: &Path) -> Result<Self> {
        let binary = which("prometheus").context(
            "the prometheus binary is not on the PATH: `apt-get update && apt-get install -y \
             --no-install-recommends prometheus`",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("promscaler-prom-sd-")
            .tempdir()?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - \
             job_name: sample-app\n    honor_labels: true\n    file_sd_configs:\n      - files: \
             ['{}']\n        refresh_interval: 1s\n",
            sd_file.display()
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let process = ChildProcess::spawn("prometheus", cmd, &dir.path().join("prometheus.log"))?;
        let ready = poll_until(
            "prometheus /-/ready",
            Duration::from_secs(15),
            || async move {
                let (status, _) = http(addr, "GET", "/-/ready", "").await?;
                Ok((status == 200).then_some(()))
            },
        )
        .await;
        if let Err(e) = ready {
            bail!("{e:#}\nprometheus log:\n{}", process.log_tail());
        }
        Ok(Self {
            process: Some(process),
            addr,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops Prometheus.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Runs an instant query and returns the JSON body.
    pub async fn query(&self, query: &str) -> Result<String> {
        let body = format!("query={}", form_encode(query));
        let (status, text) = http(self.addr, "POST", "/api/v1/query", &body).await?;
        if status != 200 {
            bail!("prometheus answered {status}: {text}");
        }
        Ok(text)
    }

    /// The single value `query` returns now (`None` when empty or several series).
    pub async fn value(&self, query: &str) -> Result<Option<f64>> {
        Ok(single_value(&self.query(query).await?))
    }
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A program on the PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
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

    #[test]
    fn pod_metrics_names_the_pod() {
        let text = pod_metrics("sample-app", "sample-app-x", 70.0);
        assert!(text.contains(
            "websocket_active_connection_count{app_kubernetes_io_name=\"sample-app\",pod=\"sample-app-x\"} 70"
        ));
    }
}
