//! Per-workload AWS identity (KEDA's `identityOwner: workload`, issue 18 item 4), end to end:
//! the actuator reads the `eks.amazonaws.com/role-arn` annotation of the ServiceAccount the scale
//! target's pods run as and sends that role; the metrics-fetcher assumes it (moto's STS) on top
//! of its own IRSA identity and signs the queries with it, as the AMP-like gateway (botocore
//! SigV4 verification) reports per role. A workload whose ServiceAccount lacks the annotation is
//! held with a condition saying what to add, until `kubectl annotate` fixes it; a namespace whose
//! workload names another team's role is refused by the fetcher's namespace policy.
//!
//! Real processes throughout: the fetcher, the decision service and the actuator as binaries,
//! the API emulator (driven with kubectl), Prometheus, moto and the gateway. Needs
//! `PROMSCALER_TEST_PYTHON`.

use std::{process::Command, time::Duration};

use anyhow::{Context as _, Result, bail};
use promscaler_api::PromScaler;
use promscaler_integration_tests::cluster::Cluster;
use promscaler_integration_tests::irsa::{Services, irsa_env};
use promscaler_sandbox::gateway::{AmpGateway, WORKSPACE_ID};
use promscaler_sandbox::process::{poll_until, test_python};
use promscaler_sandbox::prometheus::{Prometheus, SEED_QUERY, ScrapeTarget};
use promscaler_sandbox::sts::Sts;

const REGION: &str = "ap-northeast-2";
/// The fetcher's own IRSA role.
const FETCHER_ROLE: &str = "arn:aws:iam::123456789012:role/promscaler-metrics-fetcher";
/// team-a's workload role (on its ServiceAccounts).
const ROLE_A: &str = "arn:aws:iam::123456789012:role/team-a-app";
/// team-b's allowed role; team-b's workload names ROLE_A instead.
const ROLE_B: &str = "arn:aws:iam::123456789012:role/team-b-app";
const WAIT: Duration = Duration::from_secs(60);

fn deployment(namespace: &str, name: &str, replicas: i32, account: Option<&str>) -> String {
    let account = account
        .map(|a| format!("\n      serviceAccountName: {a}"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {namespace}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:{account}
      containers:
        - name: app
          image: sample-app:1.0
---
"#
    )
}

/// A PromScaler on `name` whose query yields 140 (⇒ 3 replicas at threshold 50); `owner` is
/// the trigger's identityOwner, or `None` for an authenticationRef to `workload-identity`.
fn scaler(namespace: &str, name: &str, server: &str, owner: Option<&str>) -> String {
    let identity = match owner {
        Some(owner) => format!("\n        identityOwner: {owner}"),
        None => String::new(),
    };
    let auth = match owner {
        Some(_) => String::new(),
        None => "\n      authenticationRef:\n        name: workload-identity".to_owned(),
    };
    format!(
        r#"apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata:
  name: {name}
  namespace: {namespace}
spec:
  scaleTargetRef:
    name: {name}
  minReplicaCount: 1
  maxReplicaCount: 5
  pollingInterval: 1
  triggers:
    - type: prometheus{auth}
      metadata:
        serverAddress: {server}
        query: '{SEED_QUERY}'
        threshold: "50"
        awsRegion: {REGION}{identity}
---
"#
    )
}

fn kubectl(cluster: &Cluster, home: &std::path::Path, args: &[&str]) -> Command {
    let mut kubectl = Command::new("kubectl");
    kubectl
        .env("HOME", home)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["--cache-dir", &home.join("cache").display().to_string()])
        .args(["--request-timeout", "20s"])
        .args(args);
    kubectl
}

/// Runs kubectl off the test's runtime (the emulator runs on it).
async fn run(mut command: Command) -> Result<String> {
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    if !output.status.success() {
        bail!(
            "kubectl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The Ready condition's (status, reason, message).
fn ready(scaler: &PromScaler) -> Option<(String, String, String)> {
    scaler
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

/// Waits until `namespace/name`'s Ready condition has `status` and `reason`; returns its message.
async fn wait_ready(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    status: &str,
    reason: &str,
) -> Result<String> {
    poll_until(
        &format!("{namespace}/{name} Ready={status} ({reason})"),
        WAIT,
        || async move {
            let scaler = cluster.scaler(namespace, name).await?;
            Ok(ready(&scaler)
                .filter(|(s, r, _)| s == status && r == reason)
                .map(|(_, _, m)| m))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_owner_workload_signs_with_the_service_accounts_role_and_says_what_to_annotate()
-> Result<()> {
    let python = test_python()?;
    let app = ScrapeTarget::sample_app(&[70.0, 70.0]).await?;
    let prometheus = Prometheus::start(&[app.addr()]).await?;
    prometheus
        .wait_for_value(SEED_QUERY, 140.0, Duration::from_secs(60))
        .await?;
    let sts = Sts::start(&python).await?;
    let gateway = AmpGateway::start(&python, &prometheus.url(), &sts.endpoint(), REGION).await?;
    let cluster = Cluster::start(Duration::from_millis(200)).await?;

    let dir = tempfile::tempdir()?;
    // Each namespace may assume its own role only.
    let policy = dir.path().join("namespaces.yaml");
    std::fs::write(
        &policy,
        format!(
            "namespaces:\n  team-a:\n    roleArns: [\"{ROLE_A}\"]\n    workspaces: [{WORKSPACE_ID}]\n  \
             team-b:\n    roleArns: [\"{ROLE_B}\"]\n    workspaces: [{WORKSPACE_ID}]\n"
        ),
    )?;
    let irsa = irsa_env(dir.path(), FETCHER_ROLE, REGION, &sts.endpoint())?;
    let Services {
        fetcher,
        decision: _decision,
        actuator,
    } = Services::start(
        &cluster,
        &irsa,
        &[format!("--namespace-policy-file={}", policy.display())],
        "workload-identity",
    )
    .await?;
    let logs = || {
        format!(
            "--- fetcher ---\n{}\n--- actuator ---\n{}\n--- gateway ---\n{}",
            fetcher.log_tail(),
            actuator.log_tail(),
            gateway.log_tail()
        )
    };

    let server = gateway.workspace_url();
    let home = tempfile::tempdir()?;
    let mut objects = String::new();
    for namespace in ["team-a", "team-b"] {
        objects.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n"
        ));
    }
    // team-a/app: its own ServiceAccount, annotated; the trigger says identityOwner: workload.
    objects.push_str(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: app-reader\n  namespace: team-a\n  \
         annotations:\n    eks.amazonaws.com/role-arn: {ROLE_A}\n---\n"
    ));
    objects.push_str(&deployment("team-a", "app", 1, Some("app-reader")));
    objects.push_str(&scaler("team-a", "app", &server, Some("workload")));
    // team-a/plain: no serviceAccountName (so `default`, which does not exist yet), through a
    // PromScalerAuthentication with podIdentity identityOwner: workload.
    objects.push_str(
        "apiVersion: promscaler.io/v1alpha1\nkind: PromScalerAuthentication\nmetadata:\n  \
         name: workload-identity\n  namespace: team-a\nspec:\n  podIdentity:\n    provider: aws\n    \
         identityOwner: workload\n---\n",
    );
    objects.push_str(&deployment("team-a", "plain", 2, None));
    objects.push_str(&scaler("team-a", "plain", &server, None));
    // team-b/app: its ServiceAccount names team-a's role, which team-b may not assume.
    objects.push_str(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: borrower\n  namespace: team-b\n  \
         annotations:\n    eks.amazonaws.com/role-arn: {ROLE_A}\n---\n"
    ));
    objects.push_str(&deployment("team-b", "app", 2, Some("borrower")));
    objects.push_str(&scaler("team-b", "app", &server, Some("workload")));
    let manifest = dir.path().join("objects.yaml");
    std::fs::write(&manifest, &objects)?;
    run(kubectl(
        &cluster,
        home.path(),
        &["apply", "-f", &manifest.display().to_string()],
    ))
    .await
    .with_context(logs)?;

    // team-a/app scales 1 → 3 on queries signed with its ServiceAccount's role.
    cluster
        .wait_replicas("team-a", "app", 3, WAIT)
        .await
        .with_context(logs)?;
    wait_ready(&cluster, "team-a", "app", "True", "ScaledObjectReady")
        .await
        .with_context(logs)?;

    // team-a/plain: held at 2 with a condition naming the ServiceAccount and the annotation.
    let message = wait_ready(
        &cluster,
        "team-a",
        "plain",
        "False",
        "ServiceAccountNotFound",
    )
    .await
    .with_context(logs)?;
    assert!(
        message.contains("ServiceAccount team-a/default (the ServiceAccount of Deployment team-a/plain) not found"),
        "{message}"
    );
    assert!(message.contains("eks.amazonaws.com/role-arn"), "{message}");
    assert_eq!(cluster.deployment_replicas("team-a", "plain").await?, 2);
    // The ServiceAccount appears without the annotation: the condition follows (the watch).
    run(kubectl(
        &cluster,
        home.path(),
        &["create", "serviceaccount", "default", "-n", "team-a"],
    ))
    .await?;
    poll_until("team-a/plain to report the missing annotation", WAIT, || {
        let cluster = &cluster;
        async move {
            let scaler = cluster.scaler("team-a", "plain").await?;
            Ok(ready(&scaler).filter(|(s, r, m)| {
                s == "False"
                    && r == "WorkloadIdentityNotFound"
                    && m.contains("ServiceAccount team-a/default (the ServiceAccount of Deployment team-a/plain) has no eks.amazonaws.com/role-arn annotation")
                    && m.contains("kubectl annotate serviceaccount -n team-a default eks.amazonaws.com/role-arn=")
            }))
        }
    })
    .await
    .with_context(logs)?;
    assert_eq!(cluster.deployment_replicas("team-a", "plain").await?, 2);

    // team-b/app: the fetcher's namespace policy refuses team-a's role; replicas held.
    let message = poll_until("team-b/app to fail on the namespace policy", WAIT, || {
        let cluster = &cluster;
        async move {
            let scaler = cluster.scaler("team-b", "app").await?;
            Ok(ready(&scaler)
                .filter(|(s, _, m)| s == "False" && m.contains(ROLE_A))
                .map(|(_, _, m)| m))
        }
    })
    .await
    .with_context(logs)?;
    assert!(message.contains("team-b"), "{message}");
    assert_eq!(cluster.deployment_replicas("team-b", "app").await?, 2);

    // Annotating team-a's default ServiceAccount takes effect: plain scales 2 → 3.
    run(kubectl(
        &cluster,
        home.path(),
        &[
            "annotate",
            "serviceaccount",
            "default",
            "-n",
            "team-a",
            &format!("eks.amazonaws.com/role-arn={ROLE_A}"),
        ],
    ))
    .await?;
    cluster
        .wait_replicas("team-a", "plain", 3, WAIT)
        .await
        .with_context(logs)?;
    wait_ready(&cluster, "team-a", "plain", "True", "ScaledObjectReady")
        .await
        .with_context(logs)?;

    // Every query reaching AMP was signed with team-a's role, none with the fetcher's own.
    let stats = gateway.stats().await?;
    assert!(
        stats.signed_by.get(ROLE_A).is_some_and(|n| *n >= 2),
        "{stats:?}"
    );
    assert_eq!(
        stats.signed_by.keys().collect::<Vec<_>>(),
        [ROLE_A],
        "{stats:?}"
    );
    // Credentials cached per role: one AssumeRoleWithWebIdentity for the fetcher's identity
    // and one AssumeRole for team-a's role, however many ticks and PromScalers used it.
    assert_eq!(sts.issued_credentials().await?, 2, "{}", logs());
    let metrics = fetcher.metrics_text().await?;
    assert!(
        metrics
            .contains(r#"promscaler_fetcher_credential_refreshes_total{identity="assume_role"} 1"#),
        "{metrics}"
    );
    Ok(())
}
