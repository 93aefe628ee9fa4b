//! A Kubernetes API for end-to-end tests: the emulator, in process, serving promscaler's CRDs
//! (the chart's generated YAML) with the workload simulator on; a kubeconfig file for the
//! actuator process and kubectl; a kube-rs client for the test's own reads and writes.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};
use promscaler_api::PromScaler;
use promscaler_kube_emulator::{Emulator, EmulatorHandle, SimConfig, UserInfo};
use promscaler_sandbox::process::poll_until;

/// The repository root (for the chart's CRDs and other files tests read).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests lives in the repository")
        .to_path_buf()
}

/// A bearer token the emulator's TokenReview accepts as `test-admin`, a member of
/// `system:masters` (allowed everything): what tests that are not about authorization send to
/// the actuator.
pub const ADMIN_TOKEN: &str = "promscaler-test-admin-token";

/// A running API emulator and what tests need to reach it.
pub struct Cluster {
    emulator: EmulatorHandle,
    client: Client,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("url", &self.emulator.url())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts the emulator with the chart's CRDs; simulated pods become ready after `startup`.
    pub async fn start(startup: Duration) -> Result<Self> {
        let emulator = Emulator::builder()
            .workload_sim(SimConfig {
                startup_delay: startup,
            })
            .crds_dir(repo_root().join("charts/promscaler/crds"))
            .token(
                ADMIN_TOKEN,
                UserInfo {
                    username: "test-admin".into(),
                    uid: "test-admin".into(),
                    groups: vec!["system:masters".into()],
                },
            )
            .start("127.0.0.1:0")
            .await?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        emulator.write_kubeconfig(&kubeconfig)?;
        let config = kube::Config::new(emulator.url().parse()?);
        let client = Client::try_from(config)?;
        Ok(Self {
            emulator,
            client,
            kubeconfig,
            _dir: dir,
        })
    }

    /// The emulator (faults, direct applies).
    pub fn emulator(&self) -> &EmulatorHandle {
        &self.emulator
    }

    /// A kube-rs client.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The kubeconfig file pointing at the emulator.
    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// Applies multi-document YAML (create or replace).
    pub fn apply(&self, yaml: &str) -> Result<()> {
        self.emulator
            .apply_yaml(yaml)
            .context("applying YAML to the emulator")?;
        Ok(())
    }

    /// `spec.replicas` of a Deployment.
    pub async fn deployment_replicas(&self, namespace: &str, name: &str) -> Result<i32> {
        let api: Api<Deployment> = Api::namespaced(self.client(), namespace);
        let deployment = tokio::time::timeout(Duration::from_secs(10), api.get(name)).await??;
        Ok(deployment.spec.and_then(|s| s.replicas).unwrap_or(1))
    }

    /// Waits until a Deployment's `spec.replicas` equals `expected`.
    pub async fn wait_replicas(
        &self,
        namespace: &str,
        name: &str,
        expected: i32,
        timeout: Duration,
    ) -> Result<()> {
        poll_until(
            &format!("deployment {namespace}/{name} at {expected} replicas"),
            timeout,
            || async move {
                let replicas = self.deployment_replicas(namespace, name).await?;
                Ok((replicas == expected).then_some(()))
            },
        )
        .await
    }

    /// A PromScaler as the API serves it.
    pub async fn scaler(&self, namespace: &str, name: &str) -> Result<PromScaler> {
        let api: Api<PromScaler> = Api::namespaced(self.client(), namespace);
        Ok(tokio::time::timeout(Duration::from_secs(10), api.get(name)).await??)
    }

    /// Waits until the PromScaler's condition `type_` has `status`.
    pub async fn wait_condition(
        &self,
        namespace: &str,
        name: &str,
        type_: &str,
        status: &str,
        timeout: Duration,
    ) -> Result<PromScaler> {
        poll_until(
            &format!("{namespace}/{name} condition {type_}={status}"),
            timeout,
            || async move {
                let scaler = self.scaler(namespace, name).await?;
                let matches = scaler.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == type_ && c.status == status)
                });
                Ok(matches.then_some(scaler))
            },
        )
        .await
    }
}

/// A Deployment like the seed's `sample-app` (the sandbox's).
pub use promscaler_sandbox::seed::sample_app_deployment;
