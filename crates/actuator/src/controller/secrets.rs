//! Secret values, read only when a tick needs them.
//!
//! The actuator watches Secrets as metadata only ([`super::watches`]): it learns which Secrets
//! exist and their resourceVersions, never their data. When a PromScaler's authentication refers
//! to a Secret's key, [`Secrets::read`] GETs that Secret and keeps the referenced keys' values,
//! keyed by the resourceVersion it read. The next read serves them from memory while the metadata
//! watch reports the same resourceVersion; a rotated Secret has a new one and is read again. Only
//! referenced keys of referenced Secrets are held, at most `capacity` Secrets (the least recently
//! used go first).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    core::PartialObjectMeta,
    runtime::reflector::{ObjectRef, Store},
};
use tokio::time::Instant;

use crate::spec::SecretValues;

/// The referenced keys of one Secret at one resourceVersion.
#[derive(Debug)]
struct Cached {
    resource_version: String,
    /// Only the keys some read asked for.
    keys: BTreeMap<String, Option<String>>,
    used: Instant,
}

/// Reads referenced Secret keys with a GET when the metadata watch says they changed.
pub(crate) struct Secrets {
    client: Client,
    metadata: Store<PartialObjectMeta<Secret>>,
    cache: Mutex<HashMap<SecretKey, Cached>>,
    capacity: usize,
    /// One lock per Secret being read: ticks that need the same changed Secret at once (many
    /// PromScalers sharing one credential, at start or after a rotation) wait for one GET.
    reading: Mutex<HashMap<SecretKey, ReadLock>>,
}

/// A Secret by namespace and name.
type SecretKey = (String, String);
/// Held while one tick reads a Secret.
type ReadLock = Arc<tokio::sync::Mutex<()>>;

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// A Secret's value as the actuator uses it: `data` (base64-decoded by the client), else
/// `stringData` (only set on objects that were never stored).
fn value_of(secret: &Secret, key: &str) -> Option<String> {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(bytes.0.clone()).ok();
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
}

impl Secrets {
    /// Reads through `client`; `metadata` is the metadata-only watch of Secrets; at most
    /// `capacity` Secrets' keys are kept (at least 1).
    pub(crate) fn new(
        client: Client,
        metadata: Store<PartialObjectMeta<Secret>>,
        capacity: usize,
    ) -> Self {
        Self {
            client,
            metadata,
            cache: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            reading: Mutex::new(HashMap::new()),
        }
    }

    /// How many Secrets' keys are held (tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SecretKey, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The values of `refs` (Secret name, key) in `namespace`: from memory when the metadata
    /// watch reports the resourceVersion they were read at, else with one GET per Secret.
    pub(crate) async fn read(
        &self,
        namespace: &str,
        refs: &[(&str, &str)],
    ) -> Result<SecretValues, kube::Error> {
        let mut values = SecretValues::default();
        let mut by_secret: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (secret, key) in refs {
            by_secret.entry(secret).or_default().push(key);
        }
        for (secret, keys) in by_secret {
            let cache_key = (namespace.to_owned(), secret.to_owned());
            let Some(meta) = self.metadata.get(&ObjectRef::new(secret).within(namespace)) else {
                // Not in the watch (deleted, never created, or a Helm release Secret).
                self.lock().remove(&cache_key);
                continue;
            };
            let watched_version = meta.metadata.resource_version.clone().unwrap_or_default();
            if let Some(hit) = self.cached(&cache_key, &watched_version, &keys) {
                values.found(secret);
                for (key, value) in hit {
                    values.insert(secret, &key, value);
                }
                continue;
            }
            let gate = self
                .reading
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(cache_key.clone())
                .or_default()
                .clone();
            let reading = gate.lock().await;
            // Another tick may have read it while this one waited.
            if let Some(hit) = self.cached(&cache_key, &watched_version, &keys) {
                drop(reading);
                self.done_reading(&cache_key, gate);
                values.found(secret);
                for (key, value) in hit {
                    values.insert(secret, &key, value);
                }
                continue;
            }
            let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
            let answer = api.get_opt(secret).await;
            let object = match answer {
                Ok(Some(object)) => object,
                Ok(None) => {
                    self.lock().remove(&cache_key);
                    drop(reading);
                    self.done_reading(&cache_key, gate);
                    continue;
                }
                Err(error) => {
                    drop(reading);
                    self.done_reading(&cache_key, gate);
                    return Err(error);
                }
            };
            values.found(secret);
            let read_version = object.metadata.resource_version.clone().unwrap_or_default();
            let mut cache = self.lock();
            // Keys other reads asked for at this version stay; a new version starts afresh.
            let mut kept = cache
                .remove(&cache_key)
                .filter(|c| c.resource_version == read_version)
                .map(|c| c.keys)
                .unwrap_or_default();
            for key in &keys {
                let value = value_of(&object, key);
                values.insert(secret, key, value.clone());
                kept.insert((*key).to_owned(), value);
            }
            if cache.len() >= self.capacity
                && let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, c)| c.used)
                    .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
            cache.insert(
                cache_key.clone(),
                Cached {
                    resource_version: read_version,
                    keys: kept,
                    used: Instant::now(),
                },
            );
            drop(cache);
            drop(reading);
            self.done_reading(&cache_key, gate);
        }
        Ok(values)
    }

    /// Forgets the read lock of `cache_key` once no other tick holds or waits for it, so the
    /// map holds only Secrets being read.
    fn done_reading(&self, cache_key: &SecretKey, gate: ReadLock) {
        let mut reading = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        // This clone and the map's: nobody else has it.
        if Arc::strong_count(&gate) == 2 {
            reading.remove(cache_key);
        }
    }

    /// The cached values of `keys`, if all were read at `version`.
    fn cached(
        &self,
        cache_key: &(String, String),
        version: &str,
        keys: &[&str],
    ) -> Option<Vec<(String, Option<String>)>> {
        let mut cache = self.lock();
        let entry = cache.get_mut(cache_key)?;
        if entry.resource_version != version || keys.iter().any(|k| !entry.keys.contains_key(*k)) {
            return None;
        }
        entry.used = Instant::now();
        Some(
            keys.iter()
                .map(|k| ((*k).to_owned(), entry.keys[*k].clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use kube::{
        client::Body,
        runtime::{reflector, watcher},
    };

    use super::*;
    use crate::spec::Lookup;

    /// Secrets as the API holds them: name → (resourceVersion, data).
    type World = Arc<Mutex<BTreeMap<String, (String, BTreeMap<String, String>)>>>;

    /// Answers GETs of Secrets in `ns` from `world`, recording each path asked for.
    fn client(world: &World, gets: &Arc<Mutex<Vec<String>>>) -> Client {
        let (world, gets) = (world.clone(), gets.clone());
        let service = tower::service_fn(move |request: http::Request<Body>| {
            let (world, gets) = (world.clone(), gets.clone());
            async move {
                let path = request.uri().path().to_owned();
                gets.lock().unwrap().push(path.clone());
                let name = path.rsplit('/').next().unwrap_or_default().to_owned();
                let found = world.lock().unwrap().get(&name).cloned();
                let response = match found {
                    Some((version, data)) => {
                        let secret = Secret {
                            metadata: kube::api::ObjectMeta {
                                name: Some(name),
                                namespace: Some("ns".into()),
                                resource_version: Some(version),
                                ..Default::default()
                            },
                            data: Some(
                                data.into_iter()
                                    .map(|(k, v)| (k, k8s_openapi::ByteString(v.into_bytes())))
                                    .collect(),
                            ),
                            ..Default::default()
                        };
                        http::Response::new(Body::from(serde_json::to_vec(&secret).unwrap()))
                    }
                    None => {
                        let mut response = http::Response::new(Body::from(
                            serde_json::to_vec(&serde_json::json!({
                                "apiVersion": "v1", "kind": "Status", "status": "Failure",
                                "reason": "NotFound", "code": 404, "message": "not found",
                            }))
                            .unwrap(),
                        ));
                        *response.status_mut() = http::StatusCode::NOT_FOUND;
                        response
                    }
                };
                Ok::<_, Infallible>(response)
            }
        });
        Client::new(service, "ns")
    }

    /// The metadata watch's view of `world`.
    fn watch_of(world: &World) -> Store<PartialObjectMeta<Secret>> {
        let mut writer = reflector::store::Writer::<PartialObjectMeta<Secret>>::default();
        for (name, (version, _)) in world.lock().unwrap().iter() {
            let meta: PartialObjectMeta<Secret> = serde_json::from_value(serde_json::json!({
                "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                "metadata": {"name": name, "namespace": "ns", "resourceVersion": version},
            }))
            .unwrap();
            writer.apply_watcher_event(&watcher::Event::Apply(meta));
        }
        writer.as_reader()
    }

    fn secret(world: &World, name: &str, version: &str, data: &[(&str, &str)]) {
        world.lock().unwrap().insert(
            name.into(),
            (
                version.into(),
                data.iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            ),
        );
    }

    #[tokio::test]
    async fn a_secret_is_read_once_per_resource_version_and_reread_when_it_rotates() {
        let (world, gets) = (World::default(), Arc::new(Mutex::new(Vec::new())));
        secret(&world, "creds", "1", &[("token", "first"), ("other", "x")]);
        let secrets = Secrets::new(client(&world, &gets), watch_of(&world), 8);
        for _ in 0..5 {
            let values = secrets.read("ns", &[("creds", "token")]).await.unwrap();
            assert_eq!(values.get("creds", "token"), Lookup::Value("first"));
        }
        assert_eq!(gets.lock().unwrap().len(), 1, "one GET for five reads");

        // Rotated: the watch reports a new resourceVersion, and the next read GETs it.
        secret(&world, "creds", "2", &[("token", "second")]);
        let secrets = Secrets {
            metadata: watch_of(&world),
            ..secrets
        };
        let values = secrets.read("ns", &[("creds", "token")]).await.unwrap();
        assert_eq!(values.get("creds", "token"), Lookup::Value("second"));
        assert_eq!(gets.lock().unwrap().len(), 2);
        assert_eq!(
            *gets.lock().unwrap(),
            ["/api/v1/namespaces/ns/secrets/creds"; 2]
        );
    }

    #[tokio::test]
    async fn only_referenced_keys_are_kept_and_missing_ones_are_told_apart() {
        let (world, gets) = (World::default(), Arc::new(Mutex::new(Vec::new())));
        secret(
            &world,
            "creds",
            "1",
            &[("token", "t"), ("password", "hunter2")],
        );
        let secrets = Secrets::new(client(&world, &gets), watch_of(&world), 8);
        let values = secrets
            .read(
                "ns",
                &[("creds", "token"), ("creds", "nope"), ("absent", "k")],
            )
            .await
            .unwrap();
        assert_eq!(values.get("creds", "token"), Lookup::Value("t"));
        assert_eq!(values.get("creds", "nope"), Lookup::NoKey);
        assert_eq!(values.get("absent", "k"), Lookup::NoSecret);
        // `absent` is not in the watch: no GET for it.
        assert_eq!(gets.lock().unwrap().len(), 1);
        let cache = secrets.lock();
        let held = &cache[&("ns".to_owned(), "creds".to_owned())].keys;
        assert_eq!(
            held.keys().collect::<Vec<_>>(),
            ["nope", "token"],
            "the unreferenced key `password` is not kept"
        );
    }

    #[tokio::test]
    async fn ticks_needing_the_same_secret_at_once_share_one_get() {
        let (world, gets) = (World::default(), Arc::new(Mutex::new(Vec::new())));
        secret(&world, "shared", "1", &[("token", "t")]);
        let secrets = Arc::new(Secrets::new(client(&world, &gets), watch_of(&world), 8));
        let reads = (0..20).map(|_| {
            let secrets = secrets.clone();
            tokio::spawn(async move { secrets.read("ns", &[("shared", "token")]).await })
        });
        for read in futures::future::join_all(reads).await {
            let values = read.unwrap().unwrap();
            assert_eq!(values.get("shared", "token"), Lookup::Value("t"));
        }
        assert_eq!(gets.lock().unwrap().len(), 1);
        assert!(secrets.reading.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_cache_holds_at_most_its_capacity() {
        let (world, gets) = (World::default(), Arc::new(Mutex::new(Vec::new())));
        for i in 0..50 {
            secret(&world, &format!("s{i}"), "1", &[("k", "v")]);
        }
        let secrets = Secrets::new(client(&world, &gets), watch_of(&world), 4);
        for i in 0..50 {
            let name = format!("s{i}");
            let values = secrets.read("ns", &[(name.as_str(), "k")]).await.unwrap();
            assert_eq!(values.get(&name, "k"), Lookup::Value("v"));
            assert!(secrets.len() <= 4);
        }
        assert_eq!(secrets.len(), 4);
    }
}
