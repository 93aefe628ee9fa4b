//! The three services as an EKS cluster on AMP runs them: the metrics-fetcher with an IRSA
//! identity (a web identity token file and STS at the given endpoint, no other AWS source),
//! the decision service, and an actuator against a [`Cluster`].

use std::path::Path;

use anyhow::Result;

use crate::cluster::Cluster;
use crate::services::{Kind, ServiceProcess};
use crate::system::STARTUP;

/// The environment IRSA gives a pod: `AWS_ROLE_ARN`, a web identity token file (written into
/// `dir`) and the region, with STS at `sts_endpoint`; no instance metadata, no AWS files.
pub fn irsa_env(
    dir: &Path,
    role_arn: &str,
    region: &str,
    sts_endpoint: &str,
) -> Result<Vec<(&'static str, String)>> {
    let token = dir.join("token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.test-service-account-token.sig",
    )?;
    let absent = dir.join("absent").display().to_string();
    Ok(vec![
        ("AWS_ROLE_ARN", role_arn.to_owned()),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
        ("AWS_REGION", region.to_owned()),
        ("AWS_ENDPOINT_URL_STS", sts_endpoint.to_owned()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_CONFIG_FILE", absent.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE", absent),
    ])
}

/// The three running services.
#[derive(Debug)]
pub struct Services {
    /// The metrics-fetcher, with the IRSA environment.
    pub fetcher: ServiceProcess,
    /// The decision service.
    pub decision: ServiceProcess,
    /// The actuator (leading: it is alone), with its defaults otherwise.
    pub actuator: ServiceProcess,
}

impl Services {
    /// Starts the fetcher with `irsa` and `fetcher_args`, the decision service, and an actuator
    /// named `identity` against `cluster`, and waits until each serves.
    pub async fn start(
        cluster: &Cluster,
        irsa: &[(&str, String)],
        fetcher_args: &[String],
        identity: &str,
    ) -> Result<Self> {
        let mut fetcher = ServiceProcess::start(Kind::Fetcher, fetcher_args, irsa)?;
        let mut decision = ServiceProcess::start(Kind::Decision, &[], &[])?;
        fetcher.wait_serving(STARTUP).await?;
        decision.wait_serving(STARTUP).await?;
        let args: Vec<String> = [
            "--fetcher-addr",
            &fetcher.grpc_url(),
            "--decision-addr",
            &decision.grpc_url(),
            "--lease-namespace",
            "default",
            "--identity",
            identity,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let kubeconfig = cluster.kubeconfig().display().to_string();
        let mut actuator =
            ServiceProcess::start(Kind::Actuator, &args, &[("KUBECONFIG", kubeconfig)])?;
        actuator.wait_serving(STARTUP).await?;
        Ok(Self {
            fetcher,
            decision,
            actuator,
        })
    }
}
