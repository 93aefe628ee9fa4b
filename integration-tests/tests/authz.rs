//! Who may call ActuatorService, over the real actuator process and the API emulator: the
//! caller's bearer token is reviewed with a TokenReview, each call with a SubjectAccessReview that
//! the emulator answers from RBAC objects created with kubectl, or rendered by the chart for the
//! actuator's own ServiceAccount (needs `PROMSCALER_TEST_PYTHON`, as the chart checks do).

use std::{io::Write as _, process::Command, time::Duration};

use anyhow::{Context as _, Result, ensure};
use promscaler_integration_tests::{
    cluster::{Cluster, sample_app_deployment},
    system::{System, seed_promscaler},
};
use promscaler_kube_emulator::UserInfo;
use promscaler_proto::v1::{
    ListScalersRequest, ScalerRef, WatchDecisionsRequest,
    actuator_service_client::ActuatorServiceClient,
};
use promscaler_sandbox::{process::poll_until, prometheus::SEED_QUERY};
use tonic::Code;

const SCALER: &str = "sample-app-prometheus-scaler";
const WAIT: Duration = Duration::from_secs(60);
const TEAM_A_TOKEN: &str = "team-a-developer-token";

/// Runs kubectl against the emulator (off the test's runtime, which serves the emulator).
async fn kubectl(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let home = tempfile::tempdir()?;
    let mut command = Command::new("kubectl");
    command
        .env("HOME", home.path())
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args([
            "--cache-dir",
            &home.path().join("cache").display().to_string(),
        ])
        .args(["--request-timeout", "20s"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let stdin = stdin.map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || {
        let mut child = command.spawn()?;
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .context("kubectl's stdin")?
                .write_all(text.as_bytes())?;
        }
        drop(child.stdin.take());
        Ok::<_, anyhow::Error>(child.wait_with_output()?)
    })
    .await??;
    ensure!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

const ACTUATOR_SA_TOKEN: &str = "actuator-service-account-token";

/// The cluster-scoped RBAC the chart renders (release `promscaler` in namespace `promscaler`,
/// default values), as YAML: rendered by the chart checks' Python with the Helm SDK.
async fn chart_cluster_rbac() -> Result<String> {
    let python = promscaler_sandbox::process::test_python()?;
    let script = r#"
import sys, yaml
sys.path.insert(0, "charts/tests")
import test_chart as t
docs = t.documents(t.render(t.CHART, t.load_values("default")))
print(yaml.safe_dump_all([t.strip(d) for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]))
"#;
    let mut command = Command::new(python);
    command
        .current_dir(promscaler_integration_tests::cluster::repo_root())
        .args(["-c", script]);
    let output = tokio::task::spawn_blocking(move || command.output()).await??;
    ensure!(
        output.status.success(),
        "rendering the chart: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml = String::from_utf8(output.stdout)?;
    ensure!(
        yaml.contains("kind: ClusterRoleBinding") && yaml.contains("promscaler-actuator"),
        "{yaml}"
    );
    Ok(yaml)
}

fn reference(namespace: &str) -> ScalerRef {
    ScalerRef {
        namespace: namespace.into(),
        name: SCALER.into(),
    }
}

/// A team-a developer (a token the emulator authenticates as `alice`, group `team-a-devs`, bound
/// with kubectl to a ClusterRole for promscalers in team-a only) can pause team-a's PromScaler
/// but not team-b's, lists only team-a's, and a call without a token is refused with a message
/// saying how to pass one. Reviews are cached: repeated calls do not repeat them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_token_acts_on_its_own_namespace_only() -> Result<()> {
    let mut system = System::start(&[70.0, 70.0]).await?;
    let server = system.prometheus.url();
    for team in ["team-a", "team-b"] {
        system.cluster.apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {team}}}\n"
        ))?;
        system.cluster.apply(&sample_app_deployment(team, 2))?;
        system
            .cluster
            .apply(&seed_promscaler(team, &server, SEED_QUERY, 1))?;
    }
    system.cluster.emulator().add_token(
        TEAM_A_TOKEN,
        UserInfo {
            username: "alice".into(),
            uid: "alice-uid".into(),
            groups: vec!["team-a-devs".into()],
        },
    );
    kubectl(
        &system.cluster,
        &[
            "create",
            "clusterrole",
            "promscaler-editor",
            "--verb=get,list,watch,patch",
            "--resource=promscalers.promscaler.io",
        ],
        None,
    )
    .await?;
    kubectl(
        &system.cluster,
        &[
            "create",
            "rolebinding",
            "team-a-devs-edit-promscalers",
            "-n",
            "team-a",
            "--clusterrole=promscaler-editor",
            "--group=team-a-devs",
        ],
        None,
    )
    .await?;
    // A long TTL, so the count of reviews below does not depend on how fast the calls run.
    system
        .start_actuator_with("actuator-a", &["--authz-cache-ttl", "1h"])
        .await?;
    let mut admin = system.actuator_client(0)?;
    poll_until("the actuator to list both PromScalers", WAIT, || {
        let mut admin = admin.clone();
        async move {
            let listed = admin
                .list_scalers(ListScalersRequest::default())
                .await?
                .into_inner();
            Ok((listed.scalers.len() == 2).then_some(()))
        }
    })
    .await
    .with_context(|| system.logs())?;

    let mut alice = system.actuator_client_as(0, TEAM_A_TOKEN)?;
    let paused = alice.pause(reference("team-a")).await?.into_inner();
    assert!(paused.paused);
    let annotations = system
        .cluster
        .scaler("team-a", SCALER)
        .await?
        .metadata
        .annotations
        .unwrap_or_default();
    assert_eq!(
        annotations.get("promscaler.io/paused").map(String::as_str),
        Some("true")
    );

    let denied = alice.pause(reference("team-b")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    assert_eq!(
        denied.message(),
        r#"alice may not patch promscalers.promscaler.io in namespace "team-b" (PromScaler "sample-app-prometheus-scaler"; grant it with a Role and RoleBinding)"#
    );
    for rpc in ["Resume", "Reconcile", "GetScaler"] {
        let answer = match rpc {
            "Resume" => alice.resume(reference("team-b")).await.map(|_| ()),
            "Reconcile" => alice.reconcile(reference("team-b")).await.map(|_| ()),
            _ => alice.get_scaler(reference("team-b")).await.map(|_| ()),
        };
        let status = answer.expect_err(rpc);
        assert_eq!(status.code(), Code::PermissionDenied, "{rpc}: {status:?}");
    }
    let team_b = system.cluster.scaler("team-b", SCALER).await?;
    assert!(
        !team_b
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("promscaler.io/paused"),
        "team-b's PromScaler must not be paused"
    );

    // ListScalers: filtered to what alice may list, in every form of the request.
    for namespace in ["", "team-a", "team-b"] {
        let listed = alice
            .list_scalers(ListScalersRequest {
                namespace: namespace.into(),
            })
            .await?
            .into_inner();
        let namespaces: Vec<String> = listed
            .scalers
            .iter()
            .filter_map(|s| Some(s.r#ref.as_ref()?.namespace.clone()))
            .collect();
        let expected: &[&str] = if namespace == "team-b" {
            &[]
        } else {
            &["team-a"]
        };
        assert_eq!(namespaces, expected, "ListScalers {namespace:?}");
    }
    let all = admin
        .list_scalers(ListScalersRequest::default())
        .await?
        .into_inner();
    assert_eq!(all.scalers.len(), 2, "the admin still sees both");
    let watch = alice
        .watch_decisions(WatchDecisionsRequest {
            namespace: Some("team-b".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(watch.code(), Code::PermissionDenied, "{watch:?}");
    // Watching every namespace: alice may not watch cluster-wide, so she gets team-a's decisions
    // only, while both PromScalers are evaluated every second (the admin sees both).
    let namespaces_seen = |mut client: promscaler_integration_tests::system::ActuatorClient| async move {
        let mut stream = client
            .watch_decisions(WatchDecisionsRequest { namespace: None })
            .await?
            .into_inner();
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        // Until the stream has carried four decisions of team-a: with ticks every second for
        // both, team-b's decisions came in between unless they are filtered out.
        while seen.get("team-a").copied().unwrap_or(0) < 4 {
            let event = tokio::time::timeout(WAIT, stream.message())
                .await
                .context("a decision")??
                .context("the stream ended")?;
            let namespace = event.r#ref.map(|r| r.namespace).unwrap_or_default();
            *seen.entry(namespace).or_default() += 1;
        }
        Ok::<_, anyhow::Error>(seen)
    };
    let seen = namespaces_seen(alice.clone()).await?;
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["team-a"], "{seen:?}");
    let seen = namespaces_seen(admin.clone()).await?;
    assert!(
        seen.contains_key("team-b"),
        "the admin sees team-b too: {seen:?}"
    );

    // promscalerctl with alice's token (from a file, as a pod's ServiceAccount token would be):
    // team-a only. Without a token: the actuator's message says how to pass one.
    let token_dir = tempfile::tempdir()?;
    let token_file = token_dir.path().join("token");
    std::fs::write(&token_file, format!("{TEAM_A_TOKEN}\n"))?;
    let actuator_url = system.actuators[0].grpc_url();
    let ctl = |args: Vec<String>| async move {
        let mut command = Command::new(promscaler_sandbox::process::bin_path("promscalerctl")?);
        command
            .args(&args)
            .env_remove("PROMSCALER_TOKEN")
            .env_remove("PROMSCALER_TOKEN_FILE");
        Ok::<_, anyhow::Error>(tokio::task::spawn_blocking(move || command.output()).await??)
    };
    let listed = ctl(vec![
        "--actuator-addr".into(),
        actuator_url.clone(),
        "--token-file".into(),
        token_file.display().to_string(),
        "-o".into(),
        "json".into(),
        "status".into(),
    ])
    .await?;
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        stdout.contains("\"team-a\"") && !stdout.contains("\"team-b\""),
        "{stdout}"
    );
    let refused = ctl(vec![
        "--actuator-addr".into(),
        actuator_url,
        "status".into(),
    ])
    .await?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("Unauthenticated") && stderr.contains("--token"),
        "{stderr}"
    );

    // No token, or a token the API server does not know: UNAUTHENTICATED, saying what to send.
    let mut anonymous = ActuatorServiceClient::new(system.actuators[0].channel()?);
    let refused = anonymous
        .list_scalers(ListScalersRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("`authorization: Bearer <token>` metadata"),
        "{}",
        refused.message()
    );
    let mut stranger = system.actuator_client_as(0, "not-a-known-token")?;
    let refused = stranger.pause(reference("team-a")).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    // The actuator's own ServiceAccount, with the RBAC the chart renders for it (what
    // promscalerctl inside the actuator's pod sends: the pod's token), may list everything and
    // pause any PromScaler: no exemption, its rights are enough.
    system.cluster.apply(&chart_cluster_rbac().await?)?;
    system.cluster.emulator().add_token(
        ACTUATOR_SA_TOKEN,
        UserInfo {
            username: "system:serviceaccount:promscaler:promscaler-actuator".into(),
            uid: "actuator-sa-uid".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:serviceaccounts:promscaler".into(),
            ],
        },
    );
    let mut in_pod = system.actuator_client_as(0, ACTUATOR_SA_TOKEN)?;
    let listed = in_pod
        .list_scalers(ListScalersRequest::default())
        .await?
        .into_inner();
    assert_eq!(listed.scalers.len(), 2, "{listed:?}");
    let resumed = in_pod.resume(reference("team-a")).await?.into_inner();
    assert!(!resumed.paused);
    in_pod.reconcile(reference("team-b")).await?;

    // A client in a loop: the reviews already made are reused.
    let reviews = |cluster: &Cluster, resource: &str| {
        cluster
            .emulator()
            .requests()
            .into_iter()
            .filter(|(k, _)| k.verb == "create" && k.resource == resource)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let (tokens, accesses) = (
        reviews(&system.cluster, "authentication.k8s.io/tokenreviews"),
        reviews(&system.cluster, "authorization.k8s.io/subjectaccessreviews"),
    );
    for _ in 0..20 {
        alice.pause(reference("team-a")).await?;
        alice.pause(reference("team-b")).await.unwrap_err();
        alice.list_scalers(ListScalersRequest::default()).await?;
    }
    assert_eq!(
        reviews(&system.cluster, "authentication.k8s.io/tokenreviews"),
        tokens
    );
    assert_eq!(
        reviews(&system.cluster, "authorization.k8s.io/subjectaccessreviews"),
        accesses
    );
    Ok(())
}
