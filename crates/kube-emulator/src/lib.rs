//! An in-memory Kubernetes API server for tests, the sandbox and benchmarks.
//!
//! kube-rs clients and `kubectl` talk to it over HTTP as to a real API server, for what
//! promscaler uses: discovery (aggregated and legacy), CRDs that become served resources,
//! get/list/watch/create/update/patch (merge, JSON, strategic, server-side apply)/delete,
//! `/scale` and `/status`, Tables for `kubectl get`, and a workload simulator that gives
//! Deployments and StatefulSets Pods and a status that follows `spec.replicas`.
//!
//! Objects are `serde_json::Value`s in one store with a global resourceVersion; watches fan
//! out from a broadcast channel of `Arc`ed events. Fault injection ([`Faults`]) fails requests,
//! adds latency and drops or expires watches; [`EmulatorHandle::changes`] hands a harness every
//! committed change with its commit time. See `docs/kube-emulator.md` for exactly what is
//! emulated and what is not.
//!
//! ```no_run
//! # async fn demo() -> Result<(), promscaler_kube_emulator::Error> {
//! use promscaler_kube_emulator::{Emulator, SimConfig};
//! let emulator = Emulator::builder()
//!     .workload_sim(SimConfig { startup_delay: std::time::Duration::from_millis(100) })
//!     .start("127.0.0.1:0")
//!     .await?;
//! emulator.write_kubeconfig("/tmp/kubeconfig")?;
//! println!("API at {}", emulator.url());
//! emulator.shutdown().await;
//! # Ok(()) }
//! ```

mod admin;
mod auth;
mod discovery;
mod error;
mod faults;
mod jsonpath;
mod patch;
mod proto;
mod requests;
mod resources;
mod schema;
mod selectors;
mod server;
mod sim;
mod store;
mod table;
mod time;
mod tls;
mod watches;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use crate::auth::UserInfo;
pub use crate::error::Error;
pub use crate::faults::{FailRule, Faults};
pub use crate::requests::{Read, RequestKind};
pub use crate::sim::SimConfig;

use crate::store::Store;

/// Entry point: `Emulator::builder()`.
#[derive(Debug)]
pub struct Emulator;

impl Emulator {
    /// A builder with the defaults: workload simulator on (1 s start-up delay), no CRDs,
    /// 100,000 watch events of history, bookmarks every 5 s.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }
}

/// Configures and starts an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorBuilder {
    sim: Option<SimConfig>,
    crd_dirs: Vec<PathBuf>,
    manifests: Vec<(String, String)>,
    history: usize,
    bookmark_interval: Duration,
    https: bool,
    prune: bool,
    tokens: Vec<(String, UserInfo)>,
    token_files: Vec<PathBuf>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            sim: Some(SimConfig::default()),
            crd_dirs: Vec::new(),
            manifests: Vec::new(),
            history: 100_000,
            bookmark_interval: Duration::from_secs(5),
            https: false,
            prune: true,
            tokens: Vec::new(),
            token_files: Vec::new(),
        }
    }
}

impl EmulatorBuilder {
    /// Runs the workload simulator with these settings (it is on by default).
    pub fn workload_sim(mut self, cfg: SimConfig) -> Self {
        self.sim = Some(cfg);
        self
    }

    /// Turns the workload simulator off: Deployments and StatefulSets keep whatever status
    /// clients write.
    pub fn no_workload_sim(mut self) -> Self {
        self.sim = None;
        self
    }

    /// Serves the CRDs of every `*.yaml`, `*.yml` and `*.json` file in `dir` from the start
    /// (multi-document files allowed; documents of other kinds are ignored).
    pub fn crds_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.crd_dirs.push(dir.into());
        self
    }

    /// Serves the CRDs in this YAML text from the start (like a file in [`Self::crds_dir`]).
    pub fn crd_yaml(mut self, yaml: impl Into<String>) -> Self {
        self.manifests.push(("<inline>".into(), yaml.into()));
        self
    }

    /// How many watch events are kept for watches that resume from a resourceVersion; older
    /// resourceVersions get `410 Gone`.
    pub fn watch_history(mut self, events: usize) -> Self {
        self.history = events;
        self
    }

    /// How often watches that allow bookmarks receive one.
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// Whether custom resources are pruned and defaulted by their CRD's structural schema, as
    /// the real API server does (on by default: a field the schema lacks is silently dropped).
    pub fn schema_pruning(mut self, on: bool) -> Self {
        self.prune = on;
        self
    }

    /// Serves HTTPS with a certificate for `localhost` and `127.0.0.1` generated at start,
    /// signed by a throw-away CA that the kubeconfig trusts (plain HTTP by default).
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    /// Makes `TokenReview` authenticate `token` as `user` (more can be added while it runs with
    /// [`EmulatorHandle::add_token`] or `POST /_emulator/tokens`).
    pub fn token(mut self, token: impl Into<String>, user: UserInfo) -> Self {
        self.tokens.push((token.into(), user));
        self
    }

    /// Reads tokens from a file in kube-apiserver's `--token-auth-file` format: one
    /// `token,user,uid,"group1,group2"` a line.
    pub fn token_auth_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_files.push(path.into());
        self
    }

    /// Loads the CRDs, binds `addr` (`127.0.0.1:0` picks a free port) and starts serving.
    pub async fn start(self, addr: &str) -> Result<EmulatorHandle, Error> {
        let store = Arc::new(Store::new(self.history, self.prune));
        let mut manifests = self.manifests.clone();
        for dir in &self.crd_dirs {
            manifests.extend(read_manifest_dir(dir)?);
        }
        for (path, text) in &manifests {
            load_crds(&store, path, text)?;
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::Bind {
            addr: addr.to_string(),
            source,
        })?;
        let tls = if self.https {
            Some(tls::generate()?)
        } else {
            None
        };
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let faults = Faults::new(store.clone());
        let requests = requests::Requests::default();
        let tokens = auth::Tokens::default();
        for path in &self.token_files {
            tokens.load_file(path)?;
        }
        for (token, user) in self.tokens.clone() {
            tokens.insert(token, user);
        }
        let shared = Arc::new(server::Shared {
            store: store.clone(),
            faults: faults.clone(),
            requests: requests.clone(),
            tokens: tokens.clone(),
            bookmark_interval: self.bookmark_interval,
            shutdown: shutdown_rx.clone(),
        });
        let mut tasks = JoinSet::new();
        if let Some(cfg) = self.sim.clone() {
            tasks.spawn(sim::run(store.clone(), cfg, shutdown_rx.clone()));
        }
        tasks.spawn(serve(
            listener,
            shared,
            tls.map(|t| t.acceptor),
            shutdown_rx,
        ));
        tracing::info!(addr = %local, "Kubernetes API emulator listening");
        Ok(EmulatorHandle {
            addr: local,
            ca_pem,
            faults,
            requests,
            tokens,
            store,
            shutdown: shutdown_tx,
            tasks,
        })
    }
}

async fn serve(
    listener: TcpListener,
    shared: Arc<server::Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| server::handle(shared.clone(), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    conns.abort_all();
}

fn read_manifest_dir(dir: &Path) -> Result<Vec<(String, String)>, Error> {
    let io = |source| Error::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            std::fs::read_to_string(&p)
                .map(|t| (p.display().to_string(), t))
                .map_err(|source| Error::Io {
                    path: p.display().to_string(),
                    source,
                })
        })
        .collect()
}

fn load_crds(store: &Store, path: &str, text: &str) -> Result<(), Error> {
    apply_manifest(store, path, text, true).map(|_| ())
}

/// Creates or replaces the objects of a multi-document YAML/JSON manifest (only CRDs when
/// `crds_only`).
fn apply_manifest(store: &Store, path: &str, text: &str, crds_only: bool) -> Result<usize, Error> {
    use serde::Deserialize as _;
    let mut written = 0;
    for doc in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(doc).map_err(|e| Error::Manifest {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        if v.is_null() {
            continue;
        }
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if crds_only && kind != "CustomResourceDefinition" {
            continue;
        }
        let rejected = |message: String| Error::Rejected {
            path: path.to_string(),
            kind: kind.clone(),
            message,
        };
        let api_version = v
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let def = store
            .registry()
            .all()
            .iter()
            .find(|d| d.group == group && d.version == version && d.kind == kind)
            .cloned()
            .ok_or_else(|| rejected(format!("no resource serves {api_version} {kind}")))?;
        let ns = if def.namespaced {
            v.pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match store.create(&def, &ns, v.clone(), true, false) {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {
                store
                    .update(
                        &def,
                        &ns,
                        &name,
                        store::UpdateMode::Internal,
                        false,
                        false,
                        |_| {
                            let mut new = v.clone();
                            if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
                            {
                                m.remove("resourceVersion");
                            }
                            Ok(new)
                        },
                    )
                    .map_err(|e| rejected(e.message))?;
            }
            Err(e) => return Err(rejected(e.message)),
        }
        written += 1;
    }
    Ok(written)
}

/// A running emulator. Dropping it stops it abruptly; [`EmulatorHandle::shutdown`] waits for
/// its tasks to end.
#[derive(Debug)]
pub struct EmulatorHandle {
    addr: SocketAddr,
    ca_pem: Option<String>,
    faults: Faults,
    requests: requests::Requests,
    tokens: auth::Tokens,
    store: Arc<Store>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl EmulatorHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://...` when serving HTTPS.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The PEM of the CA that signed the HTTPS certificate (`None` for plain HTTP).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kubeconfig (YAML) whose current context points at this emulator, namespace `default`
    /// (with the CA as `certificate-authority-data` when serving HTTPS).
    pub fn kubeconfig(&self) -> String {
        kubeconfig_yaml(&self.url(), self.ca_pem.as_deref())
    }

    /// Writes [`Self::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        std::fs::write(path, self.kubeconfig()).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The fault-injection controls.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// How many API requests were served so far, by verb and resource (faulted ones included;
    /// discovery and `/_emulator` excluded).
    pub fn requests(&self) -> BTreeMap<RequestKind, u64> {
        self.requests.snapshot()
    }

    /// Every `get`, `list` and `watch` served so far, down to the object and whether it asked for
    /// metadata only (faulted ones included).
    pub fn reads(&self) -> BTreeMap<Read, u64> {
        self.requests.reads()
    }

    /// Makes `TokenReview` authenticate `token` as `user` from now on.
    pub fn add_token(&self, token: impl Into<String>, user: UserInfo) {
        self.tokens.insert(token.into(), user);
    }

    /// Creates or replaces every object of a multi-document YAML/JSON manifest (any served kind;
    /// namespaced objects default to `default`), without going through HTTP. Status in the
    /// manifest is kept. Returns how many objects were written.
    pub fn apply_yaml(&self, yaml: &str) -> Result<usize, Error> {
        apply_manifest(&self.store, "<inline>", yaml, false)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store.current_rv()
    }

    /// Every change committed from now on, timestamped at the commit: lets a harness time a
    /// client's write without the delay a watch's serialization and HTTP delivery add.
    pub fn changes(&self) -> Changes {
        Changes {
            rx: self.store.subscribe(),
            lost: 0,
        }
    }

    /// Stops serving: closes the listener, every connection and watch, and the simulator.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Resolves when a background task ends (it only does at shutdown or on a bug); lets a
    /// binary `select!` on it.
    pub async fn wait(&mut self) {
        self.tasks.join_next().await;
    }
}

/// One committed change of one object (see [`EmulatorHandle::changes`]).
#[derive(Debug, Clone)]
pub struct Change {
    /// When the store committed it, before any watch or response carried it.
    pub at: std::time::Instant,
    /// The resourceVersion it was given.
    pub resource_version: u64,
    /// `<group>/<plural>` of the resource: `apps/deployments`, `/pods` for the core group.
    pub resource: String,
    /// `ADDED`, `MODIFIED` or `DELETED`, as a watch would say.
    pub kind: &'static str,
    /// The object after the change (the last state, for a deletion).
    pub object: Arc<Value>,
}

/// The changes committed after [`EmulatorHandle::changes`] was called, in commit order.
#[derive(Debug)]
pub struct Changes {
    rx: tokio::sync::broadcast::Receiver<Arc<store::StoreEvent>>,
    lost: u64,
}

impl Changes {
    /// The next change; `None` once the emulator has stopped. A reader more than 65,536
    /// changes behind skips the oldest ones (counted by [`Changes::lost`]).
    pub async fn next(&mut self) -> Option<Change> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self.rx.recv().await {
                Ok(ev) => {
                    return Some(Change {
                        at: ev.at,
                        resource_version: ev.rv,
                        resource: ev.storage.clone(),
                        kind: ev.kind.as_str(),
                        object: ev.object.clone(),
                    });
                }
                Err(RecvError::Lagged(n)) => self.lost += n,
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// How many changes were skipped because this reader fell behind.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

/// A kubeconfig for an emulator at `server`, trusting `ca_pem` when given.
pub fn kubeconfig_yaml(server: &str, ca_pem: Option<&str>) -> String {
    use base64::Engine as _;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: promscaler-emulator
  cluster:
    server: {server}{ca}
users:
- name: promscaler-emulator
  user:
    token: promscaler-emulator
contexts:
- name: promscaler-emulator
  context:
    cluster: promscaler-emulator
    user: promscaler-emulator
    namespace: default
current-context: promscaler-emulator
"
    )
}
