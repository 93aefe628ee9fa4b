//! AWS credentials and signing regions for Amazon Managed Prometheus.
//!
//! Identities:
//! - the fetcher's own (KEDA `identityOwner: operator`): aws-config's default chain — IRSA
//!   (`AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` ⇒ STS AssumeRoleWithWebIdentity, honouring
//!   `AWS_ENDPOINT_URL_STS` and the regional STS endpoint), EKS Pod Identity container
//!   credentials, the environment;
//! - static keys given in the request;
//! - either of those with `role_arn`: an STS AssumeRole chained on it.
//!
//! Each identity has one [`CachedCredentials`]: credentials are fetched once, shared by every
//! query, and refreshed shortly before they expire, with concurrent callers waiting on the same
//! refresh — one STS call per role per credential lifetime. A failure is
//! [`Error::Credentials`] (UNAUTHENTICATED) naming the identity and the cause; a request is never
//! sent unsigned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, future as provider_future,
};
use aws_smithy_http_client::tls;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::Error;
use crate::error::error_chain;
use crate::metrics::Metrics;
use crate::source::AwsAuth;

/// Credentials are refreshed this long before they expire (capped at half their lifetime).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// After a failed fetch, callers get the same error for this long instead of each retrying
/// STS (which already retries internally).
const FAILURE_HOLD: Duration = Duration::from_secs(1);

const SESSION_NAME: &str = "promscaler-metrics-fetcher";

/// Checks a region or signing-service name before it reaches aws-sigv4, which puts it in the
/// credential scope of a header and panics on characters such as CR/LF. AWS names are
/// lower-case letters, digits and '-' (`us-east-1`, `us-gov-west-1`, `aps`, `execute-api`).
pub fn validate_name(field: &'static str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{:?} is not a valid AWS name: use lower-case letters, digits and '-' only \
                 (e.g. us-east-1 for a region, aps for the service)",
                crate::error::quote(value, 64)
            ),
        ))
    }
}

/// Picks the signing region: the request's, else the one in an
/// `aps-workspaces.<region>.amazonaws.com` host, else the environment's. Never a guess that
/// disagrees with the workspace's region when the host names it.
pub fn signing_region(
    aws: &AwsAuth,
    host: &str,
    env_region: Option<&str>,
) -> Result<String, Error> {
    validate_name("source.auth.aws.service", &aws.service)?;
    if let Some(r) = aws.region.as_deref().filter(|r| !r.is_empty()) {
        validate_name("source.auth.aws.region", r)?;
        return Ok(r.to_owned());
    }
    if let Some(r) = region_from_host(host) {
        return Ok(r);
    }
    if let Some(r) = env_region.filter(|r| !r.is_empty()) {
        validate_name("AWS_REGION of the fetcher", r)?;
    }
    env_region
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::invalid(
                "source.auth.aws.region",
                format!(
                    "no signing region: {host} does not name one and AWS_REGION is not set; set \
                     awsRegion"
                ),
            )
        })
}

/// `aps-workspaces.<region>.amazonaws.com` (also `aps-workspaces-fips.` and `.com.cn`) ⇒ region.
pub fn region_from_host(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let mut labels = host.split('.');
    let first = labels.next()?;
    if first != "aps-workspaces" && first != "aps-workspaces-fips" {
        return None;
    }
    let region = labels.next()?;
    let rest: Vec<&str> = labels.collect();
    let is_aws = matches!(
        rest.as_slice(),
        ["amazonaws", "com"] | ["amazonaws", "com", "cn"]
    );
    let plausible = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (is_aws && plausible).then(|| region.to_owned())
}

/// Which credentials to use; the key of the per-identity cache. Secrets appear only hashed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum IdentityKey {
    Own,
    Static([u8; 32]),
    AssumeRole {
        base: Box<IdentityKey>,
        role_arn: String,
        /// The session tag: one session per namespace, never shared.
        session_namespace: Option<String>,
        region: String,
    },
}

/// Credential sources and their caches.
pub struct CredentialStore {
    env_region: Option<String>,
    metrics: Metrics,
    sdk_config: OnceCell<SdkConfig>,
    /// Overrides the default chain (tests).
    own_override: Option<SharedCredentialsProvider>,
    /// Each identity's credentials and when a query last used them (see [`Self::prune_idle`]).
    cached: Mutex<HashMap<IdentityKey, (Arc<CachedCredentials>, tokio::time::Instant)>>,
    /// Tag AssumeRole sessions with the caller's namespace ([`NAMESPACE_TAG`]).
    session_tags: bool,
}

impl CredentialStore {
    /// A store whose own identity comes from aws-config's default chain, loaded on first use.
    /// `env_region` is the fetcher's `AWS_REGION`/`AWS_DEFAULT_REGION`.
    pub fn new(env_region: Option<String>, metrics: Metrics) -> Self {
        Self {
            env_region,
            metrics,
            sdk_config: OnceCell::new(),
            own_override: None,
            cached: Mutex::new(HashMap::new()),
            session_tags: true,
        }
    }

    /// Whether AssumeRole sessions carry the [`NAMESPACE_TAG`] session tag (on by default;
    /// `--sts-session-tags=false` for roles whose trust policy does not allow `sts:TagSession`).
    pub fn with_session_tags(mut self, on: bool) -> Self {
        self.session_tags = on;
        self
    }

    /// A store whose own identity is `provider` (tests, benchmarks).
    pub fn with_own_provider(
        env_region: Option<String>,
        metrics: Metrics,
        provider: SharedCredentialsProvider,
    ) -> Self {
        Self {
            own_override: Some(provider),
            ..Self::new(env_region, metrics)
        }
    }

    /// The region of the fetcher's environment.
    pub fn env_region(&self) -> Option<&str> {
        self.env_region.as_deref()
    }

    /// Credentials for `aws`, signing in `region`.
    pub async fn credentials(&self, aws: &AwsAuth, region: &str) -> Result<Credentials, Error> {
        let base = match &aws.static_keys {
            None => IdentityKey::Own,
            Some(k) => {
                let mut h = Sha256::new();
                h.update(k.access_key_id.as_bytes());
                h.update([0]);
                h.update(k.secret_access_key.expose().as_bytes());
                h.update([0]);
                h.update(
                    k.session_token
                        .as_ref()
                        .map_or("", |t| t.expose())
                        .as_bytes(),
                );
                IdentityKey::Static(h.finalize().into())
            }
        };
        let key = match aws.role_arn.as_deref().filter(|r| !r.is_empty()) {
            None => base,
            Some(role) => IdentityKey::AssumeRole {
                base: Box::new(base),
                role_arn: role.to_owned(),
                session_namespace: aws.session_namespace.clone().filter(|_| self.session_tags),
                region: region.to_owned(),
            },
        };
        let cached = self.cached_for(&key, aws, region).await?;
        cached.get().await
    }

    async fn cached_for(
        &self,
        key: &IdentityKey,
        aws: &AwsAuth,
        region: &str,
    ) -> Result<Arc<CachedCredentials>, Error> {
        if let Some(c) = self.lookup(key) {
            return Ok(c);
        }
        let made = match key {
            IdentityKey::Own => self.own_provider().await?,
            IdentityKey::Static(_) => self.static_provider(aws),
            IdentityKey::AssumeRole {
                base,
                role_arn,
                session_namespace,
                ..
            } => {
                let base = match **base {
                    IdentityKey::Own => {
                        self.lookup_or_insert(&IdentityKey::Own, self.own_provider().await?)
                    }
                    IdentityKey::Static(_) => {
                        self.lookup_or_insert(base, self.static_provider(aws))
                    }
                    IdentityKey::AssumeRole { .. } => {
                        return Err(Error::Internal("nested role chains are not built".into()));
                    }
                };
                self.assume_role_provider(base, role_arn, session_namespace.as_deref(), region)
                    .await
            }
        };
        Ok(self.lookup_or_insert(key, made))
    }

    /// Forgets identities no query used for `idle`: a caller cycling through keys or roles
    /// must not grow the store without bound. A forgotten identity costs one credential fetch
    /// when it comes back.
    pub fn prune_idle(&self, idle: std::time::Duration) {
        let now = tokio::time::Instant::now();
        self.cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (_, used)| now.duration_since(*used) < idle);
    }

    /// Identities held (tests).
    pub fn len(&self) -> usize {
        self.cached.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no identity is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, key: &IdentityKey) -> Option<Arc<CachedCredentials>> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        let (creds, used) = cached.get_mut(key)?;
        *used = tokio::time::Instant::now();
        Some(creds.clone())
    }

    /// Inserts unless another task won the race; returns the entry in the map.
    fn lookup_or_insert(
        &self,
        key: &IdentityKey,
        made: Arc<CachedCredentials>,
    ) -> Arc<CachedCredentials> {
        self.cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_insert((made, tokio::time::Instant::now()))
            .0
            .clone()
    }

    async fn sdk_config(&self) -> &SdkConfig {
        self.sdk_config
            .get_or_init(|| async {
                // ring-based rustls: aws-config's default HTTPS client would pull aws-lc.
                let http_client = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(
                        tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                let timeouts = aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .operation_attempt_timeout(Duration::from_secs(5))
                    .operation_timeout(Duration::from_secs(10))
                    .build();
                aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http_client)
                    .timeout_config(timeouts)
                    .load()
                    .await
            })
            .await
    }

    async fn own_provider(&self) -> Result<Arc<CachedCredentials>, Error> {
        let provider = match &self.own_override {
            Some(p) => p.clone(),
            None => self
                .sdk_config()
                .await
                .credentials_provider()
                .ok_or_else(|| Error::Credentials {
                    identity: "the fetcher's own identity".into(),
                    cause: "aws-config found no credential provider".into(),
                })?,
        };
        Ok(Arc::new(CachedCredentials::new(
            provider,
            "the fetcher's own identity (IRSA, Pod Identity or environment)".into(),
            "own",
            self.metrics.clone(),
        )))
    }

    fn static_provider(&self, aws: &AwsAuth) -> Arc<CachedCredentials> {
        let keys = aws.static_keys.as_ref();
        let creds = Credentials::new(
            keys.map_or("", |k| k.access_key_id.as_str()),
            keys.map_or("", |k| k.secret_access_key.expose()),
            keys.and_then(|k| k.session_token.as_ref().map(|t| t.expose().to_owned())),
            None,
            "promscaler-static",
        );
        let identity = format!(
            "access key {}",
            keys.map_or("", |k| k.access_key_id.as_str())
        );
        Arc::new(CachedCredentials::new(
            SharedCredentialsProvider::new(creds),
            identity,
            "static",
            self.metrics.clone(),
        ))
    }

    async fn assume_role_provider(
        &self,
        base: Arc<CachedCredentials>,
        role_arn: &str,
        session_namespace: Option<&str>,
        region: &str,
    ) -> Arc<CachedCredentials> {
        let sdk = self.sdk_config().await;
        // The base credentials come from our cache: the STS client must not keep its own.
        let mut conf = sdk
            .clone()
            .into_builder()
            .identity_cache(aws_config::identity::IdentityCache::no_cache())
            .credentials_provider(SharedCredentialsProvider::new(SharedBase(base)));
        if sdk.region().is_none() {
            conf = conf.region(aws_config::Region::new(region.to_owned()));
        }
        let provider = TaggedAssumeRole {
            client: aws_sdk_sts::Client::new(&conf.build()),
            role_arn: role_arn.to_owned(),
            session_namespace: session_namespace.map(str::to_owned),
        };
        let identity = match session_namespace {
            Some(ns) => format!("role {role_arn} (session tagged {NAMESPACE_TAG}={ns})"),
            None => format!("role {role_arn}"),
        };
        Arc::new(CachedCredentials::new(
            SharedCredentialsProvider::new(provider),
            identity,
            "assume_role",
            self.metrics.clone(),
        ))
    }
}

/// The STS session tag carrying the PromScaler's namespace when the fetcher assumes a role ARN:
/// IAM policies can require it (`aws:PrincipalTag/promscaler-namespace` in the role's
/// permissions, `aws:RequestTag/promscaler-namespace` in its trust policy, which must also allow
/// `sts:TagSession`). It is transitive, so roles chained from the session keep it.
pub const NAMESPACE_TAG: &str = "promscaler-namespace";

/// STS AssumeRole with the namespace session tag (aws-config's AssumeRoleProvider cannot set
/// TransitiveTagKeys).
#[derive(Debug)]
struct TaggedAssumeRole {
    client: aws_sdk_sts::Client,
    role_arn: String,
    session_namespace: Option<String>,
}

impl TaggedAssumeRole {
    async fn assume(
        &self,
    ) -> Result<Credentials, aws_credential_types::provider::error::CredentialsError> {
        use aws_credential_types::provider::error::CredentialsError;
        let mut request = self
            .client
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(session_name(self.session_namespace.as_deref()));
        if let Some(ns) = &self.session_namespace {
            let tag = aws_sdk_sts::types::Tag::builder()
                .key(NAMESPACE_TAG)
                .value(ns)
                .build()
                .map_err(CredentialsError::invalid_configuration)?;
            request = request.tags(tag).transitive_tag_keys(NAMESPACE_TAG);
        }
        let output = request.send().await.map_err(|e| {
            CredentialsError::provider_error(aws_sdk_sts::error::DisplayErrorContext(e).to_string())
        })?;
        let creds = output.credentials.ok_or_else(|| {
            CredentialsError::unhandled("STS AssumeRole answered without credentials")
        })?;
        Ok(Credentials::new(
            creds.access_key_id,
            creds.secret_access_key,
            Some(creds.session_token),
            SystemTime::try_from(creds.expiration).ok(),
            "promscaler-assume-role",
        ))
    }
}

impl ProvideCredentials for TaggedAssumeRole {
    fn provide_credentials<'a>(&'a self) -> provider_future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider_future::ProvideCredentials::new(self.assume())
    }
}

/// `promscaler-<namespace>` (CloudTrail shows it), within STS's 64 characters.
fn session_name(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => {
            let mut name = format!("promscaler-{ns}");
            name.truncate(64);
            name
        }
        None => SESSION_NAME.to_owned(),
    }
}

/// Lets an AssumeRole provider draw its base credentials from our cache.
#[derive(Debug)]
struct SharedBase(Arc<CachedCredentials>);

impl ProvideCredentials for SharedBase {
    fn provide_credentials<'a>(&'a self) -> provider_future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider_future::ProvideCredentials::new(async move {
            self.0.get().await.map_err(|e| {
                aws_credential_types::provider::error::CredentialsError::provider_error(e)
            })
        })
    }
}

#[derive(Debug)]
enum State {
    Empty,
    Fresh {
        creds: Credentials,
        refresh_at: SystemTime,
    },
    Failed {
        error: Error,
        at: tokio::time::Instant,
        stale: Option<Credentials>,
    },
}

/// One identity's credentials, fetched once and refreshed before expiry.
pub struct CachedCredentials {
    provider: SharedCredentialsProvider,
    identity: String,
    kind: &'static str,
    metrics: Metrics,
    // A tokio mutex: held across the fetch so concurrent callers wait for one STS call.
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for CachedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedCredentials")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl CachedCredentials {
    /// Wraps `provider`; `identity` names it in errors and logs (never a secret), `kind` is the
    /// metrics label (`own`, `static`, `assume_role`).
    pub fn new(
        provider: SharedCredentialsProvider,
        identity: String,
        kind: &'static str,
        metrics: Metrics,
    ) -> Self {
        Self {
            provider,
            identity,
            kind,
            metrics,
            state: tokio::sync::Mutex::new(State::Empty),
        }
    }

    /// Cached credentials, or fresh ones when missing or about to expire.
    pub async fn get(&self) -> Result<Credentials, Error> {
        let mut state = self.state.lock().await;
        let now = SystemTime::now();
        let stale = match &*state {
            State::Fresh { creds, refresh_at } if now < *refresh_at => return Ok(creds.clone()),
            State::Fresh { creds, .. } => Some(creds.clone()),
            State::Failed { error, at, .. } if at.elapsed() < FAILURE_HOLD => {
                return Err(error.clone());
            }
            State::Failed { stale, .. } => stale.clone(),
            State::Empty => None,
        };
        match self.provider.provide_credentials().await {
            Ok(creds) => {
                self.metrics.credential_refresh(self.kind);
                let refresh_at = refresh_time(now, creds.expiry());
                tracing::info!(
                    identity = %self.identity,
                    access_key_id = %creds.access_key_id(),
                    expires_in_s = creds.expiry().and_then(|e| e.duration_since(now).ok()).map(|d| d.as_secs()),
                    "obtained AWS credentials"
                );
                *state = State::Fresh {
                    creds: creds.clone(),
                    refresh_at,
                };
                Ok(creds)
            }
            Err(err) => {
                self.metrics.credential_failure(self.kind);
                let error = Error::Credentials {
                    identity: self.identity.clone(),
                    cause: error_chain(&err),
                };
                tracing::warn!(identity = %self.identity, error = %error, "cannot obtain AWS credentials");
                // Credentials that failed to refresh but have not expired yet are still valid.
                let usable = stale.filter(|c| c.expiry().is_none_or(|e| e > now));
                *state = State::Failed {
                    error: error.clone(),
                    at: tokio::time::Instant::now(),
                    stale: usable.clone(),
                };
                usable.ok_or(error)
            }
        }
    }
}

/// When to refresh credentials that expire at `expiry`: [`REFRESH_MARGIN`] before, but never
/// earlier than halfway through their remaining lifetime (short-lived credentials would
/// otherwise be refreshed on every call).
pub fn refresh_time(now: SystemTime, expiry: Option<SystemTime>) -> SystemTime {
    match expiry {
        None => now + Duration::from_secs(365 * 24 * 3600),
        Some(exp) => {
            let left = exp.duration_since(now).unwrap_or_default();
            exp - REFRESH_MARGIN.min(left / 2)
        }
    }
}

/// Reads the fetcher's region from the environment (`AWS_REGION`, then `AWS_DEFAULT_REGION`).
pub fn env_region() -> Option<String> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::source::{Secret, StaticKeys};

    fn aws(region: Option<&str>) -> AwsAuth {
        AwsAuth {
            region: region.map(str::to_owned),
            role_arn: None,
            session_namespace: None,
            static_keys: None,
            service: "aps".into(),
        }
    }

    #[test]
    fn region_comes_from_request_then_host_then_environment() {
        let amp = "aps-workspaces.ap-northeast-2.amazonaws.com";
        assert_eq!(
            signing_region(&aws(Some("us-east-1")), amp, Some("eu-west-1")).unwrap(),
            "us-east-1"
        );
        assert_eq!(
            signing_region(&aws(None), amp, Some("eu-west-1")).unwrap(),
            "ap-northeast-2"
        );
        assert_eq!(
            signing_region(&aws(None), "127.0.0.1", Some("eu-west-1")).unwrap(),
            "eu-west-1"
        );
        let err = signing_region(&aws(None), "127.0.0.1", None).unwrap_err();
        assert!(err.to_string().contains("awsRegion"), "{err}");
    }

    #[test]
    fn regions_and_services_with_control_characters_are_invalid_arguments() {
        for (region, service) in [
            (Some("us-east-1\r\nX-Injected: 1"), "aps"),
            (Some("us-east-1"), "aps\n"),
            (Some("US East"), "aps"),
        ] {
            let mut a = aws(region);
            a.service = service.into();
            let err = signing_region(&a, "127.0.0.1", None).unwrap_err();
            assert_eq!(
                err.kind(),
                promscaler_proto::v1::QueryErrorKind::InvalidArgument,
                "{err}"
            );
            assert!(err.to_string().contains("lower-case letters"), "{err}");
        }
        assert!(signing_region(&aws(None), "127.0.0.1", Some("eu-west-1\n")).is_err());
    }

    #[test]
    fn only_amp_hosts_name_a_region() {
        assert_eq!(
            region_from_host("aps-workspaces-fips.us-gov-west-1.amazonaws.com").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(
            region_from_host("aps-workspaces.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(region_from_host("aps-workspaces.us-east-1.evil.com"), None);
        assert_eq!(region_from_host("prometheus.monitoring.svc"), None);
    }

    #[test]
    fn refresh_happens_before_expiry_but_not_immediately() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let hour = now + Duration::from_secs(3600);
        assert_eq!(refresh_time(now, Some(hour)), hour - REFRESH_MARGIN);
        let short = now + Duration::from_secs(60);
        assert_eq!(
            refresh_time(now, Some(short)),
            now + Duration::from_secs(30)
        );
    }

    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Option<Duration>,
        fail: bool,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> provider_future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let result = if self.fail {
                Err(
                    aws_credential_types::provider::error::CredentialsError::provider_error(
                        "sts unreachable: connection refused",
                    ),
                )
            } else {
                Ok(Credentials::new(
                    format!("ASIA{n}"),
                    "secret",
                    Some("token".into()),
                    self.lifetime.map(|l| SystemTime::now() + l),
                    "test",
                ))
            };
            provider_future::ProvideCredentials::ready(result)
        }
    }

    fn counting(
        lifetime: Option<Duration>,
        fail: bool,
    ) -> (SharedCredentialsProvider, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        (
            SharedCredentialsProvider::new(Counting {
                calls: calls.clone(),
                lifetime,
                fail,
            }),
            calls,
        )
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_per_lifetime() {
        let (provider, calls) = counting(Some(Duration::from_secs(3600)), false);
        let store = Arc::new(CredentialStore::with_own_provider(
            None,
            Metrics::default(),
            provider,
        ));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.credentials(&aws(None), "us-east-1").await.unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().access_key_id(), "ASIA0");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_close_to_expiry_are_refreshed() {
        // Already inside the refresh window: each call after the hold fetches again.
        let (provider, calls) = counting(Some(Duration::from_millis(1)), false);
        let cached = CachedCredentials::new(provider, "test".into(), "own", Metrics::default());
        cached.get().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let second = cached.get().await.unwrap();
        assert_eq!(second.access_key_id(), "ASIA1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failure_is_unauthenticated_and_names_the_cause() {
        let (provider, _) = counting(None, true);
        let store = CredentialStore::with_own_provider(None, Metrics::default(), provider);
        let err = store
            .credentials(&aws(None), "us-east-1")
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            promscaler_proto::v1::QueryErrorKind::Unauthenticated
        );
        assert!(err.to_string().contains("connection refused"), "{err}");
    }

    #[tokio::test]
    async fn static_keys_are_used_as_given_and_keyed_by_digest() {
        let store = CredentialStore::new(None, Metrics::default());
        let mut auth = aws(None);
        auth.static_keys = Some(StaticKeys {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI"),
            session_token: None,
        });
        let creds = store.credentials(&auth, "us-east-1").await.unwrap();
        assert_eq!(creds.secret_access_key(), "wJalrXUtnFEMI");
        let keys = store.cached.lock().unwrap();
        assert!(!format!("{:?}", keys.keys().collect::<Vec<_>>()).contains("wJalr"));
    }

    #[tokio::test(start_paused = true)]
    async fn identities_unused_for_the_idle_time_are_forgotten() {
        let store = CredentialStore::new(None, Metrics::default());
        for n in 0..3 {
            let mut auth = aws(None);
            auth.static_keys = Some(StaticKeys {
                access_key_id: format!("AKID{n}"),
                secret_access_key: Secret::new("k"),
                session_token: None,
            });
            store.credentials(&auth, "us-east-1").await.unwrap();
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        assert_eq!(store.len(), 3);
        // AKID0 was last used 3 min ago, AKID2 1 min ago.
        store.prune_idle(Duration::from_secs(150));
        assert_eq!(store.len(), 2);
        tokio::time::advance(Duration::from_secs(600)).await;
        store.prune_idle(Duration::from_secs(150));
        assert!(store.is_empty());
    }
}
