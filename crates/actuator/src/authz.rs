//! Who may call ActuatorService: the caller's Kubernetes identity, from the bearer token in the
//! `authorization` metadata, authenticated with a `TokenReview` and authorized per verb and
//! namespace with a `SubjectAccessReview` on `promscalers` (what `kubectl` would need for the
//! same change). Answers are cached briefly, in bounded maps, so a client in a loop costs the
//! API server at most one review per token and question per TTL.
//!
//! The actuator's own CLI inside its pod needs no exemption: it sends the pod's ServiceAccount
//! token, which authenticates as the actuator's ServiceAccount, whose RBAC already allows what
//! the RPCs do.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    hash::Hash,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, api::PostParams};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use crate::metrics::{AuthzResult, Metrics, ReviewKind};

/// The API group of PromScalers (the CRD's, in `promscaler-api`).
pub(crate) const GROUP: &str = "promscaler.io";
/// The resource reviews ask about.
pub(crate) const RESOURCE: &str = "promscalers";

/// How a caller passes its token, for the messages that ask for one.
const HOW_TO_AUTHENTICATE: &str = "send a Kubernetes bearer token in the `authorization: Bearer <token>` metadata (promscalerctl: --token, --token-file, $PROMSCALER_TOKEN or $PROMSCALER_TOKEN_FILE; inside a pod the ServiceAccount token is used; e.g. --token \"$(kubectl create token <serviceaccount>)\")";

/// A caller as the API server authenticated it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Caller {
    /// `user.username`.
    pub username: String,
    /// `user.uid`.
    pub uid: String,
    /// `user.groups`.
    pub groups: Vec<String>,
    /// `user.extra`, sorted (passed on to SubjectAccessReviews as the API server would).
    pub extra: Vec<(String, Vec<String>)>,
}

/// A Kubernetes verb on promscalers in a namespace ("" = all namespaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Access<'a> {
    /// `get`, `list`, `watch` or `patch`.
    pub verb: &'static str,
    /// The namespace ("" = cluster-wide).
    pub namespace: &'a str,
    /// One PromScaler's name ("" = any).
    pub name: &'a str,
}

/// Why a call is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No usable token.
    #[error("{0}; {HOW_TO_AUTHENTICATE}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("{user} may not {verb} {RESOURCE}.{GROUP} {}{}", describe_ns(.namespace), describe_name(.name))]
    Denied {
        /// Who asked.
        user: String,
        /// The verb needed.
        verb: &'static str,
        /// Where ("" = cluster-wide).
        namespace: String,
        /// Which PromScaler ("" = any).
        name: String,
    },
    /// The review could not be made.
    #[error("cannot check the caller's access with the Kubernetes API: {0}")]
    Review(String),
}

fn describe_ns(namespace: &str) -> String {
    if namespace.is_empty() {
        "in all namespaces".into()
    } else {
        format!("in namespace {namespace:?}")
    }
}

fn describe_name(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(" (PromScaler {name:?}; grant it with a Role and RoleBinding)")
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The two questions asked of the API server (a seam: the Kubernetes API, or a test double).
pub(crate) trait Reviewer: Send + Sync + fmt::Debug {
    /// Who `token` is (`None`: not a valid token).
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Caller>, String>>;
    /// Whether `caller` may do `access`.
    fn authorize<'a>(
        &'a self,
        caller: &'a Caller,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<bool, String>>;
}

/// [`Reviewer`] over the Kubernetes API: `TokenReview` and `SubjectAccessReview` creates (the
/// actuator's ClusterRole has `create` on both, like `system:auth-delegator`).
#[derive(Clone)]
pub(crate) struct KubeReviewer(kube::Client);

impl KubeReviewer {
    /// Reviews through `client`.
    pub(crate) fn new(client: kube::Client) -> Self {
        Self(client)
    }
}

impl fmt::Debug for KubeReviewer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KubeReviewer")
    }
}

impl Reviewer for KubeReviewer {
    fn authenticate<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Caller>, String>> {
        Box::pin(async move {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_owned()),
                    audiences: None,
                },
                ..Default::default()
            };
            let api: Api<TokenReview> = Api::all(self.0.clone());
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| e.to_string())?;
            let status = answer.status.unwrap_or_default();
            if status.authenticated != Some(true) {
                return Ok(None);
            }
            let user = status.user.unwrap_or_default();
            let Some(username) = user.username.filter(|u| !u.is_empty()) else {
                return Ok(None);
            };
            let mut extra: Vec<(String, Vec<String>)> =
                user.extra.unwrap_or_default().into_iter().collect();
            extra.sort();
            Ok(Some(Caller {
                username,
                uid: user.uid.unwrap_or_default(),
                groups: user.groups.unwrap_or_default(),
                extra,
            }))
        })
    }

    fn authorize<'a>(
        &'a self,
        caller: &'a Caller,
        access: Access<'a>,
    ) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(caller.username.clone()),
                    uid: some(&caller.uid),
                    groups: Some(caller.groups.clone()),
                    extra: (!caller.extra.is_empty())
                        .then(|| caller.extra.iter().cloned().collect()),
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(GROUP.to_owned()),
                        resource: Some(RESOURCE.to_owned()),
                        verb: Some(access.verb.to_owned()),
                        namespace: some(access.namespace),
                        name: some(access.name),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let api: Api<SubjectAccessReview> = Api::all(self.0.clone());
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| e.to_string())?;
            Ok(answer
                .status
                .is_some_and(|s| s.allowed && s.denied != Some(true)))
        })
    }
}

/// A map whose entries expire after `ttl`, holding at most `capacity` of them: when full, expired
/// entries go first, then the oldest.
#[derive(Debug)]
struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (Instant, V)>>,
    ttl: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn get(&self, key: &K) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(key) {
            Some((at, value)) if at.elapsed() < self.ttl => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn insert(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= self.capacity
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (Instant::now(), value));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// A cached access decision's key: who, which verb, where.
type DecisionKey = (Arc<Caller>, &'static str, String, String);

/// Authentication and authorization of ActuatorService calls.
#[derive(Clone)]
pub(crate) struct Authz {
    inner: Option<Arc<Inner>>,
    metrics: Option<Metrics>,
}

struct Inner {
    reviewer: Arc<dyn Reviewer>,
    /// By the SHA-256 of the token (the token itself is not kept).
    tokens: TtlCache<[u8; 32], Option<Arc<Caller>>>,
    decisions: TtlCache<DecisionKey, bool>,
}

impl fmt::Debug for Authz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authz")
            .field("enabled", &self.inner.is_some())
            .finish_non_exhaustive()
    }
}

/// Who made a call: a reviewed caller, or anyone when authorization is off.
#[derive(Debug, Clone)]
pub(crate) struct Identity(Option<Arc<Caller>>);

impl Identity {
    /// The user name, for logs ("" when authorization is off).
    pub(crate) fn username(&self) -> &str {
        self.0.as_deref().map_or("", |c| c.username.as_str())
    }
}

impl Authz {
    /// Reviews every call through `reviewer`, caching answers for `ttl`, at most `capacity`
    /// tokens and `capacity` decisions.
    pub(crate) fn new(reviewer: Arc<dyn Reviewer>, ttl: Duration, capacity: usize) -> Self {
        Self {
            inner: Some(Arc::new(Inner {
                reviewer,
                tokens: TtlCache::new(ttl, capacity),
                decisions: TtlCache::new(ttl, capacity),
            })),
            metrics: None,
        }
    }

    /// Lets every caller do everything (`--grpc-authz=false`).
    pub(crate) fn disabled() -> Self {
        Self {
            inner: None,
            metrics: None,
        }
    }

    /// Counts checks and reviews in `metrics` (`promscaler_actuator_grpc_authz_total`,
    /// `promscaler_actuator_authz_reviews_total`).
    pub(crate) fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    fn count(&self, result: AuthzResult) {
        if let Some(m) = &self.metrics {
            m.authz(result);
        }
    }

    fn count_review(&self, kind: ReviewKind) {
        if let Some(m) = &self.metrics {
            m.review(kind);
        }
    }

    /// Who sent `metadata`'s bearer token.
    pub(crate) async fn authenticate(&self, metadata: &MetadataMap) -> Result<Identity, AuthError> {
        let answer = self.authenticate_uncounted(metadata).await;
        match &answer {
            Ok(_) => {}
            Err(AuthError::Unauthenticated(_)) => self.count(AuthzResult::Unauthenticated),
            Err(_) => self.count(AuthzResult::Error),
        }
        answer
    }

    async fn authenticate_uncounted(&self, metadata: &MetadataMap) -> Result<Identity, AuthError> {
        let Some(inner) = &self.inner else {
            return Ok(Identity(None));
        };
        let token = bearer(metadata)?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let caller = match inner.tokens.get(&key) {
            Some(caller) => caller,
            None => {
                self.count_review(ReviewKind::Token);
                let caller = inner
                    .reviewer
                    .authenticate(token)
                    .await
                    .map_err(AuthError::Review)?
                    .map(Arc::new);
                inner.tokens.insert(key, caller.clone());
                caller
            }
        };
        caller.map(|c| Identity(Some(c))).ok_or_else(|| {
            AuthError::Unauthenticated(
                "the Kubernetes API did not accept the bearer token (expired, revoked or not a Kubernetes token)".into(),
            )
        })
    }

    /// Whether `identity` may do `access` (always, when authorization is off).
    pub(crate) async fn allowed(
        &self,
        identity: &Identity,
        access: Access<'_>,
    ) -> Result<bool, AuthError> {
        let (Some(inner), Some(caller)) = (&self.inner, &identity.0) else {
            return Ok(true);
        };
        let key = (
            caller.clone(),
            access.verb,
            access.namespace.to_owned(),
            access.name.to_owned(),
        );
        let allowed = match inner.decisions.get(&key) {
            Some(allowed) => allowed,
            None => {
                self.count_review(ReviewKind::Access);
                let answer = inner.reviewer.authorize(caller, access).await;
                let allowed = answer.map_err(|e| {
                    self.count(AuthzResult::Error);
                    AuthError::Review(e)
                })?;
                inner.decisions.insert(key, allowed);
                allowed
            }
        };
        self.count(if allowed {
            AuthzResult::Allowed
        } else {
            AuthzResult::Denied
        });
        Ok(allowed)
    }

    /// Fails with [`AuthError::Denied`] unless `identity` may do `access`.
    pub(crate) async fn require(
        &self,
        identity: &Identity,
        access: Access<'_>,
    ) -> Result<(), AuthError> {
        if self.allowed(identity, access).await? {
            Ok(())
        } else {
            Err(AuthError::Denied {
                user: identity.username().to_owned(),
                verb: access.verb,
                namespace: access.namespace.to_owned(),
                name: access.name.to_owned(),
            })
        }
    }

    /// How many answers are cached (tokens, decisions; tests).
    #[cfg(test)]
    pub(crate) fn cached(&self) -> (usize, usize) {
        self.inner
            .as_ref()
            .map_or((0, 0), |i| (i.tokens.len(), i.decisions.len()))
    }
}

/// The token of `authorization: Bearer <token>`.
fn bearer(metadata: &MetadataMap) -> Result<&str, AuthError> {
    let Some(value) = metadata.get("authorization") else {
        return Err(AuthError::Unauthenticated(
            "no bearer token: the call has no `authorization` metadata".into(),
        ));
    };
    let value = value.to_str().map_err(|_| {
        AuthError::Unauthenticated("the `authorization` metadata is not printable ASCII".into())
    })?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AuthError::Unauthenticated(
                "the `authorization` metadata is not `Bearer <token>`".into(),
            )
        })?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Tokens `<user>-token`; `<user>` may do what `rules` lists: (user, verb, namespace).
    #[derive(Debug, Default)]
    struct Fake {
        rules: Vec<(&'static str, &'static str, &'static str)>,
        token_reviews: AtomicUsize,
        access_reviews: AtomicUsize,
        fail: bool,
    }

    impl Reviewer for Fake {
        fn authenticate<'a>(
            &'a self,
            token: &'a str,
        ) -> BoxFuture<'a, Result<Option<Caller>, String>> {
            self.token_reviews.fetch_add(1, Ordering::SeqCst);
            let answer = if self.fail {
                Err("connection refused".to_owned())
            } else {
                Ok(token.strip_suffix("-token").map(|user| Caller {
                    username: user.to_owned(),
                    uid: String::new(),
                    groups: vec!["system:authenticated".into()],
                    extra: Vec::new(),
                }))
            };
            Box::pin(async move { answer })
        }

        fn authorize<'a>(
            &'a self,
            caller: &'a Caller,
            access: Access<'a>,
        ) -> BoxFuture<'a, Result<bool, String>> {
            self.access_reviews.fetch_add(1, Ordering::SeqCst);
            let allowed = self.rules.iter().any(|(user, verb, ns)| {
                *user == caller.username && *verb == access.verb && *ns == access.namespace
            });
            Box::pin(async move { Ok(allowed) })
        }
    }

    fn metadata(authorization: Option<&str>) -> MetadataMap {
        let mut m = MetadataMap::new();
        if let Some(v) = authorization {
            m.insert("authorization", v.parse().unwrap());
        }
        m
    }

    fn access(verb: &'static str, namespace: &'static str) -> Access<'static> {
        Access {
            verb,
            namespace,
            name: "",
        }
    }

    fn authz(fake: Fake) -> (Authz, Arc<Fake>) {
        let fake = Arc::new(fake);
        (Authz::new(fake.clone(), Duration::from_secs(10), 4), fake)
    }

    #[tokio::test]
    async fn a_call_without_a_usable_token_is_unauthenticated_and_says_how_to_pass_one() {
        let (authz, fake) = authz(Fake::default());
        for (header, why) in [
            (None, "no bearer token"),
            (Some("Basic dTpw"), "is not `Bearer <token>`"),
            (Some("Bearer "), "is not `Bearer <token>`"),
            (Some("Bearer nobody"), "did not accept the bearer token"),
        ] {
            let error = authz.authenticate(&metadata(header)).await.unwrap_err();
            assert!(matches!(error, AuthError::Unauthenticated(_)), "{error}");
            let message = error.to_string();
            assert!(message.contains(why), "{message}");
            assert!(
                message.contains("authorization: Bearer <token>"),
                "{message}"
            );
            assert!(message.contains("--token"), "{message}");
        }
        assert_eq!(
            fake.token_reviews.load(Ordering::SeqCst),
            1,
            "only the well-formed token is reviewed"
        );
    }

    #[tokio::test]
    async fn the_decision_follows_the_review_per_verb_and_namespace() {
        let (authz, _) = authz(Fake {
            rules: vec![("alice", "patch", "team-a"), ("alice", "get", "team-a")],
            ..Fake::default()
        });
        let alice = authz
            .authenticate(&metadata(Some("Bearer alice-token")))
            .await
            .unwrap();
        assert_eq!(alice.username(), "alice");
        authz
            .require(&alice, access("patch", "team-a"))
            .await
            .unwrap();
        let denied = authz
            .require(&alice, access("patch", "team-b"))
            .await
            .unwrap_err();
        assert_eq!(
            denied.to_string(),
            r#"alice may not patch promscalers.promscaler.io in namespace "team-b""#
        );
        assert!(!authz.allowed(&alice, access("list", "")).await.unwrap());
        assert!(
            authz
                .allowed(&alice, access("get", "team-a"))
                .await
                .unwrap()
        );
        let denied = authz
            .require(
                &alice,
                Access {
                    verb: "get",
                    namespace: "team-b",
                    name: "web",
                },
            )
            .await
            .unwrap_err();
        assert!(
            denied.to_string().starts_with(
                r#"alice may not get promscalers.promscaler.io in namespace "team-b" (PromScaler "web""#
            ),
            "{denied}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_cached_until_the_ttl_then_reviewed_again() {
        let (authz, fake) = authz(Fake {
            rules: vec![("alice", "patch", "team-a")],
            ..Fake::default()
        });
        for _ in 0..100 {
            let alice = authz
                .authenticate(&metadata(Some("Bearer alice-token")))
                .await
                .unwrap();
            authz
                .require(&alice, access("patch", "team-a"))
                .await
                .unwrap();
            assert!(
                authz
                    .authenticate(&metadata(Some("Bearer x")))
                    .await
                    .is_err()
            );
        }
        assert_eq!(fake.token_reviews.load(Ordering::SeqCst), 2);
        assert_eq!(fake.access_reviews.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(11)).await;
        let alice = authz
            .authenticate(&metadata(Some("Bearer alice-token")))
            .await
            .unwrap();
        authz
            .require(&alice, access("patch", "team-a"))
            .await
            .unwrap();
        assert_eq!(fake.token_reviews.load(Ordering::SeqCst), 3);
        assert_eq!(fake.access_reviews.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_caches_stay_within_their_capacity_under_many_tokens() {
        let (authz, fake) = authz(Fake::default());
        for i in 0..1000 {
            let token = format!("Bearer user{i}-token");
            let caller = authz.authenticate(&metadata(Some(&token))).await.unwrap();
            assert!(!authz.allowed(&caller, access("get", "ns")).await.unwrap());
        }
        assert_eq!(authz.cached(), (4, 4));
        assert_eq!(fake.token_reviews.load(Ordering::SeqCst), 1000);
    }

    #[tokio::test]
    async fn a_failed_review_is_an_error_and_is_not_cached() {
        let (authz, fake) = authz(Fake {
            fail: true,
            ..Fake::default()
        });
        for _ in 0..2 {
            let error = authz
                .authenticate(&metadata(Some("Bearer alice-token")))
                .await
                .unwrap_err();
            assert!(matches!(error, AuthError::Review(_)), "{error}");
        }
        assert_eq!(fake.token_reviews.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn checks_and_reviews_are_counted() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        let fake = Arc::new(Fake {
            rules: vec![("alice", "get", "team-a")],
            ..Fake::default()
        });
        let authz = Authz::new(fake, Duration::from_secs(10), 4).with_metrics(metrics);
        let alice = authz
            .authenticate(&metadata(Some("Bearer alice-token")))
            .await
            .unwrap();
        for _ in 0..3 {
            authz
                .require(&alice, access("get", "team-a"))
                .await
                .unwrap();
        }
        authz
            .require(&alice, access("get", "team-b"))
            .await
            .unwrap_err();
        authz.authenticate(&metadata(None)).await.unwrap_err();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            r#"actuator_grpc_authz_total{result="allowed"} 3"#,
            r#"actuator_grpc_authz_total{result="denied"} 1"#,
            r#"actuator_grpc_authz_total{result="unauthenticated"} 1"#,
            r#"actuator_authz_reviews_total{kind="token"} 1"#,
            r#"actuator_authz_reviews_total{kind="access"} 2"#,
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[tokio::test]
    async fn disabled_lets_anyone_do_anything() {
        let authz = Authz::disabled();
        let anyone = authz.authenticate(&metadata(None)).await.unwrap();
        authz
            .require(&anyone, access("patch", "team-b"))
            .await
            .unwrap();
    }
}
