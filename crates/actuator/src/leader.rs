//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! the holder renews `renewTime` every `retry_period`; a candidate takes the Lease over once
//! `renewTime + leaseDurationSeconds` has passed; every write carries the `resourceVersion` it
//! read, so two candidates can never both win (the loser gets 409 Conflict). Only the leader
//! writes to the cluster; standbys keep their watch caches warm so a takeover is immediate.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::SignedDuration,
};
use kube::{Api, api::PostParams};
use promscaler_runtime::Shutdown;
use tokio::sync::watch;

use crate::clock::Clock;

/// Lease timing (client-go's defaults are 15 s / 10 s / 2 s).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseTiming {
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and candidates retry.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Campaigns for one Lease and publishes whether this process holds it.
#[derive(Debug, Clone)]
pub(crate) struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    clock: Clock,
}

/// What one attempt concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease (acquired or renewed).
    Leading,
    /// Someone else holds a valid Lease.
    Following(String),
}

impl LeaderElector {
    /// An elector for Lease `name` in the namespace of `api`, as `identity` (usually the pod name).
    pub(crate) fn new(
        api: Api<Lease>,
        name: impl Into<String>,
        identity: impl Into<String>,
        timing: LeaseTiming,
    ) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            timing,
            clock: Clock::system(),
        }
    }

    /// Reads the time written into the Lease (and compared with its renewals) from `clock`.
    #[cfg(test)]
    pub(crate) fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Campaigns until `shutdown`, publishing leadership on `leading`. Leadership is dropped when
    /// the Lease could not be renewed for a whole lease duration (another candidate may have
    /// taken it by then). At shutdown a held Lease is released so a standby takes over at once.
    /// `holder` carries the current holder's identity while another replica leads (empty while
    /// this one does, or nobody is known to).
    pub(crate) async fn run(
        self,
        leading: watch::Sender<bool>,
        holder: watch::Sender<String>,
        shutdown: Shutdown,
    ) {
        let mut last_renewal: Option<tokio::time::Instant> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => {
                    last_renewal = Some(tokio::time::Instant::now());
                    if !*leading.borrow() {
                        tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                    }
                    leading.send_replace(true);
                    holder.send_replace(String::new());
                }
                Ok(Attempt::Following(other)) => {
                    if *leading.borrow() {
                        tracing::warn!(lease = %self.name, holder = %other, "lost leadership");
                    }
                    last_renewal = None;
                    leading.send_replace(false);
                    holder.send_replace(other);
                }
                Err(error) => {
                    let expired =
                        last_renewal.is_none_or(|at| at.elapsed() >= self.timing.lease_duration);
                    tracing::warn!(lease = %self.name, %error, "cannot acquire or renew the Lease");
                    if expired && *leading.borrow() {
                        tracing::warn!(lease = %self.name, "stepping down: the Lease was not renewed within its duration");
                        leading.send_replace(false);
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.timing.retry_period) => {}
                () = shutdown.wait() => break,
            }
        }
        if *leading.borrow() {
            leading.send_replace(false);
            if let Err(error) = self.release().await {
                tracing::warn!(lease = %self.name, %error, "cannot release the Lease at shutdown");
            } else {
                tracing::info!(lease = %self.name, "released the Lease");
            }
        }
    }

    async fn try_acquire_or_renew(&self) -> Result<Attempt, kube::Error> {
        let now = self.clock.jiff();
        let duration_secs = i32::try_from(self.timing.lease_duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Following(
                    "(another candidate created it)".to_owned(),
                )),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let valid_for = SignedDuration::from_secs(i64::from(
            spec.lease_duration_seconds.unwrap_or(duration_secs),
        ));
        let expired = spec
            .renew_time
            .as_ref()
            .is_none_or(|renewed| renewed.0 + valid_for <= now);
        if holder == self.identity {
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(duration_secs);
        } else if holder.is_empty() || expired {
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.renew_time = Some(MicroTime(now));
            spec.lease_duration_seconds = Some(duration_secs);
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        } else {
            return Ok(Attempt::Following(holder));
        }
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Attempt::Following(
                "(another candidate wrote first)".to_owned(),
            )),
            Err(error) => Err(error),
        }
    }

    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        // As client-go's ReleaseOnCancel: an empty holder lets any candidate take over now.
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(self.clock.jiff()));
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        sync::{Arc, Mutex},
        time::SystemTime,
    };

    use kube::client::Body;

    use super::*;

    const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ns/leases";

    /// One Lease behind an in-memory API: GET, POST and PUT with resourceVersion checks, or
    /// 500 for everything while `failing`.
    #[derive(Debug, Default)]
    struct FakeApi {
        lease: Option<Lease>,
        version: u64,
        failing: bool,
    }

    fn status(code: u16, reason: &str) -> http::Response<Body> {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": reason, "reason": reason, "code": code,
        });
        http::Response::builder()
            .status(code)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap()
    }

    impl FakeApi {
        fn handle(
            &mut self,
            method: &http::Method,
            path: &str,
            body: &[u8],
        ) -> http::Response<Body> {
            if self.failing {
                return status(500, "InternalError");
            }
            let ok =
                |lease: &Lease| http::Response::new(Body::from(serde_json::to_vec(lease).unwrap()));
            match (method.as_str(), path.strip_prefix(LEASES)) {
                ("GET", Some("/lease")) => match &self.lease {
                    Some(lease) => ok(lease),
                    None => status(404, "NotFound"),
                },
                ("POST", Some("")) if self.lease.is_some() => status(409, "AlreadyExists"),
                ("PUT", Some("/lease"))
                    if serde_json::from_slice::<Lease>(body)
                        .unwrap()
                        .metadata
                        .resource_version
                        != Some(self.version.to_string()) =>
                {
                    status(409, "Conflict")
                }
                ("POST", Some("")) | ("PUT", Some("/lease")) => {
                    let mut lease: Lease = serde_json::from_slice(body).unwrap();
                    self.version += 1;
                    lease.metadata.resource_version = Some(self.version.to_string());
                    self.lease = Some(lease.clone());
                    ok(&lease)
                }
                _ => status(404, "NotFound"),
            }
        }
    }

    fn client(api: &Arc<Mutex<FakeApi>>) -> kube::Client {
        let api = api.clone();
        let service = tower::service_fn(move |request: http::Request<Body>| {
            let api = api.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect_bytes().await.unwrap();
                let response = api
                    .lock()
                    .unwrap()
                    .handle(&parts.method, parts.uri.path(), &body);
                Ok::<_, Infallible>(response)
            }
        });
        kube::Client::new(service, "ns")
    }

    const START: Duration = Duration::from_secs(1_700_000_000);
    const TIMING: LeaseTiming = LeaseTiming {
        lease_duration: Duration::from_secs(15),
        retry_period: Duration::from_secs(2),
    };

    /// Runs an elector named `identity` over `api`, on a clock that starts at [`START`] and
    /// follows tokio's paused time.
    fn campaign(
        api: &Arc<Mutex<FakeApi>>,
        identity: &str,
    ) -> (watch::Receiver<bool>, watch::Receiver<String>, Shutdown) {
        let elector = LeaderElector::new(
            Api::namespaced(client(api), "ns"),
            "lease",
            identity,
            TIMING,
        )
        .with_clock(Clock::tokio_from(SystemTime::UNIX_EPOCH + START));
        let (leading_tx, leading) = watch::channel(false);
        let (holder_tx, holder) = watch::channel(String::new());
        let shutdown = Shutdown::new();
        tokio::spawn(elector.run(leading_tx, holder_tx, shutdown.clone()));
        (leading, holder, shutdown)
    }

    fn seconds(time: Option<&MicroTime>) -> i64 {
        time.unwrap().0.as_second() - i64::try_from(START.as_secs()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_takes_over_once_the_holder_stops_renewing() {
        let api = Arc::new(Mutex::new(FakeApi::default()));
        // Another replica renewed the Lease just now, then went silent.
        api.lock().unwrap().lease = Some(Lease {
            metadata: ObjectMeta {
                name: Some("lease".into()),
                resource_version: Some("0".into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some("other".into()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(
                    Clock::tokio_from(SystemTime::UNIX_EPOCH + START).jiff(),
                )),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        });
        let started = tokio::time::Instant::now();
        let (mut leading, mut holder, _shutdown) = campaign(&api, "me");
        holder.wait_for(|h| h == "other").await.unwrap();
        assert!(!*leading.borrow());
        leading.wait_for(|l| *l).await.unwrap();
        // Taken at the first retry after renewTime + 15 s: 16 s on a 2 s retry period.
        assert_eq!(started.elapsed(), Duration::from_secs(16));
        let spec = api.lock().unwrap().lease.clone().unwrap().spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_transitions, Some(1));
        assert_eq!(seconds(spec.acquire_time.as_ref()), 16);
        assert_eq!(holder.borrow().as_str(), "");
        // Renewed every retry period, with the injected clock's time.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let spec = api.lock().unwrap().lease.clone().unwrap().spec.unwrap();
        assert_eq!(seconds(spec.renew_time.as_ref()), 18);
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_cannot_renew_steps_down_after_a_lease_duration() {
        let api = Arc::new(Mutex::new(FakeApi::default()));
        let (mut leading, _holder, _shutdown) = campaign(&api, "me");
        leading.wait_for(|l| *l).await.unwrap();
        let renewed = tokio::time::Instant::now();
        api.lock().unwrap().failing = true;
        leading.wait_for(|l| !*l).await.unwrap();
        // Still leading at 14 s (the Lease is valid for 15), stepped down at the first retry
        // after that.
        assert_eq!(renewed.elapsed(), Duration::from_secs(16));
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_is_released_at_shutdown_for_a_standby_to_take_at_once() {
        let api = Arc::new(Mutex::new(FakeApi::default()));
        let (mut leading, _holder, shutdown) = campaign(&api, "me");
        leading.wait_for(|l| *l).await.unwrap();
        shutdown.trigger();
        leading.wait_for(|l| !*l).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let released = api
                    .lock()
                    .unwrap()
                    .lease
                    .as_ref()
                    .and_then(|l| l.spec.as_ref())
                    .is_some_and(|s| s.holder_identity.is_none());
                if released {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the Lease is released");
        let (mut other, _holder, _shutdown) = campaign(&api, "other");
        let started = tokio::time::Instant::now();
        other.wait_for(|l| *l).await.unwrap();
        assert!(
            started.elapsed() < TIMING.retry_period,
            "{:?}",
            started.elapsed()
        );
    }
}
