//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! the holder renews `renewTime` every `retry_period`; a candidate takes the Lease over once
//! `renewTime + leaseDurationSeconds` has passed; every write carries the `resourceVersion` it
//! read, so two candidates can never both win (the loser gets 409 Conflict). Only the leader
//! writes to the cluster; standbys keep their watch caches warm so a takeover is immediate.

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{Api, api::PostParams};
use promscaler_runtime::Shutdown;
use tokio::sync::watch;

/// Lease timing (client-go's defaults are 15 s / 10 s / 2 s).
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
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
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
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
    pub fn new(
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
        }
    }

    /// Campaigns until `shutdown`, publishing leadership on `leading`. Leadership is dropped when
    /// the Lease could not be renewed for a whole lease duration (another candidate may have
    /// taken it by then). At shutdown a held Lease is released so a standby takes over at once.
    /// `holder` carries the current holder's identity while another replica leads (empty while
    /// this one does, or nobody is known to).
    pub async fn run(
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
        let now = Timestamp::now();
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
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }
}
