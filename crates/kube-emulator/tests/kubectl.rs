//! `kubectl` (from the machine image) against the emulator over HTTP. Each test gives kubectl
//! its own HOME and cache directory and asserts the resulting state through kube-rs.

mod common;

use std::path::{Path, PathBuf};

use common::{client, eventually, start, within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{ApiResource, GroupVersionKind};
use promscaler_kube_emulator::EmulatorHandle;

struct Kubectl {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn new(emulator: &EmulatorHandle) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        emulator.write_kubeconfig(&kubeconfig).unwrap();
        Self { dir, kubeconfig }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs kubectl; panics with its output when it fails.
    async fn run(&self, args: &[&str]) -> String {
        let (ok, out) = self.try_run(args).await;
        assert!(ok, "kubectl {args:?} failed:\n{out}");
        out
    }

    async fn try_run(&self, args: &[&str]) -> (bool, String) {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let out = within(
            tokio::process::Command::new(
                std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()),
            )
            .args([
                "--kubeconfig",
                path(&self.kubeconfig),
                "--cache-dir",
                path(&home.join("cache")),
            ])
            .args(args)
            .env("HOME", &home)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true)
            .output(),
        )
        .await
        .expect("kubectl runs (it comes with the machine image)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The whitespace-separated cells of each output line.
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

/// Line `n` of a kubectl table, cut at the header's column starts (cells may be empty).
fn aligned_cells(out: &str, n: usize) -> std::collections::HashMap<String, String> {
    let lines: Vec<&str> = out.lines().collect();
    let header = lines[0];
    let mut starts: Vec<(usize, &str)> = Vec::new();
    let mut prev_space = true;
    for (i, c) in header.char_indices() {
        if c != ' ' && prev_space {
            let word = header[i..].split(' ').next().unwrap();
            starts.push((i, word));
        }
        prev_space = c == ' ';
    }
    let line = lines[n];
    starts
        .iter()
        .enumerate()
        .map(|(k, (start, name))| {
            let end = starts
                .get(k + 1)
                .map_or(line.len(), |(s, _)| *s)
                .min(line.len());
            let cell = line
                .get((*start).min(line.len())..end)
                .unwrap_or_default()
                .trim();
            (name.to_string(), cell.to_string())
        })
        .collect()
}

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:1
        env: [{name: A, value: '1'}]
      - name: side
        image: side:1
";

#[tokio::test]
async fn kubectl_applies_gets_scales_and_deletes_a_deployment() {
    let emulator = start().await;
    let kubectl = Kubectl::new(&emulator);
    let deployments: Api<Deployment> = Api::namespaced(client(&emulator), "default");
    let pods: Api<Pod> = Api::namespaced(client(&emulator), "default");

    let file = kubectl.write("deploy.yaml", DEPLOYMENT);
    let out = kubectl.run(&["apply", "-f", path(&file)]).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    assert_eq!(
        within(deployments.get("web"))
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(2)
    );

    // printer columns, once the simulated pods are ready
    let table = eventually("kubectl get to show 2/2", || async {
        let out = kubectl.run(&["get", "deployments"]).await;
        rows(&out)
            .iter()
            .any(|r| r.len() == 5 && r[0] == "web" && r[1] == "2/2")
            .then_some(out)
    })
    .await;
    assert_eq!(
        rows(&table)[0],
        vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    let pod_table = kubectl.run(&["get", "pods", "-l", "app=web"]).await;
    assert_eq!(
        rows(&pod_table)[0],
        vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    assert_eq!(
        rows(&pod_table)
            .iter()
            .filter(|r| r.get(2).map(String::as_str) == Some("Running"))
            .count(),
        2
    );

    let yaml = kubectl
        .run(&["get", "deployment", "web", "-o", "yaml"])
        .await;
    let obj: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(obj["spec"]["replicas"], 2);
    assert_eq!(obj["status"]["readyReplicas"], 2);

    // client-side apply of a change: a strategic merge patch that keeps both containers
    let changed = kubectl.write("deploy2.yaml", &DEPLOYMENT.replace("nginx:1", "nginx:2"));
    let out = kubectl.run(&["apply", "-f", path(&changed)]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let d = within(deployments.get("web")).await.unwrap();
    let containers = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(
        containers
            .iter()
            .map(|c| (c.name.as_str(), c.image.as_deref().unwrap()))
            .collect::<Vec<_>>(),
        vec![("app", "nginx:2"), ("side", "side:1")]
    );
    assert!(
        d.metadata
            .annotations
            .unwrap()
            .contains_key("kubectl.kubernetes.io/last-applied-configuration")
    );

    let out = kubectl
        .run(&["scale", "deployment", "web", "--replicas=4"])
        .await;
    assert!(out.contains("scaled"), "{out}");
    eventually("4 ready replicas", || async {
        let s = deployments.get("web").await.ok()?.status?;
        (s.ready_replicas == Some(4)).then_some(())
    })
    .await;

    let out = kubectl.run(&["delete", "-f", path(&changed)]).await;
    assert!(out.contains("deleted"), "{out}");
    assert!(within(deployments.get_opt("web")).await.unwrap().is_none());
    eventually("the pods to go", || async {
        pods.list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn kubectl_server_side_apply_owns_and_prunes_its_fields() {
    let emulator = start().await;
    let kubectl = Kubectl::new(&emulator);
    let cms: Api<ConfigMap> = Api::namespaced(client(&emulator), "default");
    let first = kubectl.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '1'\n  b: '2'\n",
    );
    let out = kubectl
        .run(&["apply", "--server-side", "-f", path(&first)])
        .await;
    assert!(
        out.contains("configmap/settings serverside-applied"),
        "{out}"
    );
    let cm = within(cms.get("settings")).await.unwrap();
    assert_eq!(cm.data.as_ref().unwrap().len(), 2);
    assert_eq!(
        cm.metadata.managed_fields.unwrap()[0].manager.as_deref(),
        Some("kubectl")
    );

    // applying the same file again changes nothing (same resourceVersion)
    let rv = cm.metadata.resource_version.clone();
    kubectl
        .run(&["apply", "--server-side", "-f", path(&first)])
        .await;
    assert_eq!(
        within(cms.get("settings"))
            .await
            .unwrap()
            .metadata
            .resource_version,
        rv
    );

    let second = kubectl.write(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: '3'\n",
    );
    kubectl
        .run(&["apply", "--server-side", "-f", path(&second)])
        .await;
    let cm = within(cms.get("settings")).await.unwrap();
    assert_eq!(
        cm.data.unwrap().into_iter().collect::<Vec<_>>(),
        vec![("a".to_string(), "3".to_string())]
    );

    let out = kubectl.run(&["get", "configmaps", "settings"]).await;
    assert_eq!(rows(&out)[0], vec!["NAME", "DATA", "AGE"]);
    assert_eq!(
        rows(&out)[1][..2],
        ["settings".to_string(), "1".to_string()]
    );
    emulator.shutdown().await;
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wg]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Kinds, type: string, jsonPath: '.spec.parts[*].kind'}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"#;

#[tokio::test]
async fn kubectl_serves_crds_with_printer_columns_and_scale() {
    let emulator = start().await;
    let kubectl = Kubectl::new(&emulator);
    let crd = kubectl.write("crd.yaml", CRD);
    kubectl.run(&["apply", "-f", path(&crd)]).await;
    let widget = kubectl.write(
        "widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec:\n  size: 3\n  replicas: 1\n  parts: [{kind: gear}, {kind: bolt}]\n",
    );
    let out = kubectl.run(&["apply", "-f", path(&widget)]).await;
    assert!(out.contains("widget.example.com/w1 created"), "{out}");

    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client(&emulator), "default", &ar);
    within(widgets.patch_status(
        "w1",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(
            serde_json::json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        ),
    ))
    .await
    .unwrap();

    let out = kubectl.run(&["get", "wg"]).await;
    let table = rows(&out);
    assert_eq!(table[0], vec!["NAME", "SIZE", "KINDS", "READY", "AGE"]);
    assert_eq!(
        table[1][..4],
        ["w1", "3", "gear,bolt", "True"].map(String::from)
    );

    kubectl
        .run(&["scale", "widget", "w1", "--replicas=5"])
        .await;
    assert_eq!(
        within(widgets.get("w1")).await.unwrap().data["spec"]["replicas"],
        5
    );

    let out = kubectl.run(&["delete", "widget", "w1"]).await;
    assert!(out.contains("deleted"), "{out}");
    assert!(within(widgets.get_opt("w1")).await.unwrap().is_none());
    let out = kubectl.run(&["get", "widgets"]).await;
    assert!(out.contains("No resources found"), "{out}");
    emulator.shutdown().await;
}

#[tokio::test]
async fn the_charts_crds_load_from_their_directory_and_print_their_columns() {
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/promscaler/crds");
    let emulator = within(
        promscaler_kube_emulator::Emulator::builder()
            .no_workload_sim()
            .crds_dir(&crds)
            .start("127.0.0.1:0"),
    )
    .await
    .expect("the chart's CRDs load");
    emulator
        .apply_yaml(
            "apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata: {name: sample-app, namespace: default}
spec:
  scaleTargetRef: {name: sample-app}
  minReplicaCount: 1
  maxReplicaCount: 5
  triggers:
  - type: prometheus
    metadata: {serverAddress: 'http://prometheus:9090', query: 'sum(up)', threshold: '50'}
status:
  desiredReplicas: 3
  conditions: [{type: Ready, status: 'True'}]
",
        )
        .unwrap();
    let kubectl = Kubectl::new(&emulator);
    let out = kubectl.run(&["get", "psc"]).await;
    let header = rows(&out).remove(0);
    assert_eq!(
        header[..5],
        ["NAME", "SCALETARGETKIND", "SCALETARGETNAME", "MIN", "MAX"].map(String::from)
    );
    assert_eq!(header.last().map(String::as_str), Some("AGE"));
    let row = aligned_cells(&out, 1);
    assert_eq!(row["NAME"], "sample-app");
    assert_eq!(
        row["SCALETARGETKIND"], "",
        "no status.scaleTargetKind: an empty cell"
    );
    assert_eq!(row["SCALETARGETNAME"], "sample-app");
    assert_eq!(row["MAX"], "5");
    assert_eq!(row["READY"], "True");
    assert_eq!(row["DESIRED"], "3");
    emulator.shutdown().await;
}

#[tokio::test]
async fn kubectl_create_generators_that_send_protobuf_work() {
    let emulator = start().await;
    let kubectl = Kubectl::new(&emulator);
    kubectl.run(&["create", "namespace", "demo"]).await;
    kubectl
        .run(&[
            "-n",
            "demo",
            "create",
            "configmap",
            "cm",
            "--from-literal=a=b",
        ])
        .await;
    kubectl
        .run(&[
            "-n",
            "demo",
            "create",
            "secret",
            "generic",
            "s",
            "--from-literal=user=admin",
        ])
        .await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&emulator), "demo");
    assert_eq!(within(cms.get("cm")).await.unwrap().data.unwrap()["a"], "b");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client(&emulator), "demo");
    let s = within(secrets.get("s")).await.unwrap();
    assert_eq!(s.data.unwrap()["user"].0, b"admin");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    // generators of other kinds are refused (415) rather than misread
    let (ok, out) = kubectl
        .try_run(&["-n", "demo", "create", "deployment", "web", "--image=nginx"])
        .await;
    assert!(!ok && out.contains("unknown format"), "{out}");
    emulator.shutdown().await;
}

/// RBAC objects made by kubectl's generators (protobuf) decide SubjectAccessReviews, and
/// TokenReviews authenticate the tokens given to the emulator.
#[tokio::test]
async fn kubectl_made_rbac_decides_access_reviews_and_tokens_authenticate() {
    use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    use promscaler_kube_emulator::UserInfo;

    let emulator = start().await;
    emulator.add_token(
        "alice-token",
        UserInfo {
            username: "alice".into(),
            uid: "1".into(),
            groups: vec!["devs".into()],
        },
    );
    let kubectl = Kubectl::new(&emulator);
    kubectl.run(&["create", "namespace", "team-a"]).await;
    kubectl
        .run(&[
            "create",
            "clusterrole",
            "editor",
            "--verb=get,patch",
            "--resource=deployments.apps,configmaps",
        ])
        .await;
    kubectl
        .run(&[
            "-n",
            "team-a",
            "create",
            "rolebinding",
            "devs-edit",
            "--clusterrole=editor",
            "--group=devs",
            "--serviceaccount=team-a:deployer",
        ])
        .await;
    let shown = kubectl
        .run(&[
            "-n",
            "team-a",
            "get",
            "rolebinding",
            "devs-edit",
            "-o",
            "yaml",
        ])
        .await;
    assert!(
        shown.contains("name: devs") && shown.contains("kind: ClusterRole"),
        "{shown}"
    );

    let c = client(&emulator);
    let tokens: Api<TokenReview> = Api::all(c.clone());
    let review = |token: &str| TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.into()),
            audiences: None,
        },
        ..Default::default()
    };
    let answer = within(tokens.create(&Default::default(), &review("alice-token")))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(answer.authenticated, Some(true));
    let user = answer.user.unwrap();
    assert_eq!(user.username.as_deref(), Some("alice"));
    assert_eq!(
        user.groups.unwrap(),
        vec!["devs".to_owned(), "system:authenticated".to_owned()]
    );
    let answer = within(tokens.create(&Default::default(), &review("forged")))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(answer.authenticated, Some(false));

    let access: Api<SubjectAccessReview> = Api::all(c);
    let allowed = |user: &'static str,
                   groups: &'static [&'static str],
                   verb: &'static str,
                   ns: &'static str,
                   group: &'static str,
                   resource: &'static str| {
        let access = access.clone();
        async move {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.into()),
                    groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(ns.into()),
                        verb: Some(verb.into()),
                        group: Some(group.into()),
                        resource: Some(resource.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            within(access.create(&Default::default(), &review))
                .await
                .unwrap()
                .status
                .unwrap()
                .allowed
        }
    };
    assert!(allowed("alice", &["devs"], "patch", "team-a", "apps", "deployments").await);
    assert!(allowed("alice", &["devs"], "get", "team-a", "", "configmaps").await);
    assert!(
        !allowed(
            "alice",
            &["devs"],
            "delete",
            "team-a",
            "apps",
            "deployments"
        )
        .await
    );
    assert!(
        !allowed(
            "alice",
            &["devs"],
            "patch",
            "default",
            "apps",
            "deployments"
        )
        .await
    );
    assert!(!allowed("alice", &["devs"], "patch", "team-a", "", "deployments").await);
    assert!(!allowed("bob", &[], "get", "team-a", "", "configmaps").await);
    assert!(
        allowed(
            "system:serviceaccount:team-a:deployer",
            &[],
            "get",
            "team-a",
            "",
            "configmaps"
        )
        .await
    );
    emulator.shutdown().await;
}

/// What the actuator's `identityOwner: workload` needs: ServiceAccounts created and annotated
/// with kubectl, read back (annotation included) and listed with kubectl's columns.
#[tokio::test]
async fn kubectl_creates_annotates_and_lists_service_accounts() {
    let emulator = start().await;
    let kubectl = Kubectl::new(&emulator);
    kubectl
        .run(&["create", "serviceaccount", "app-reader"])
        .await;
    kubectl
        .run(&[
            "annotate",
            "sa",
            "app-reader",
            "eks.amazonaws.com/role-arn=arn:aws:iam::123456789012:role/app",
        ])
        .await;
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client(&emulator), "default");
    let account = within(accounts.get("app-reader")).await.unwrap();
    assert_eq!(
        account
            .metadata
            .annotations
            .unwrap_or_default()
            .get("eks.amazonaws.com/role-arn")
            .map(String::as_str),
        Some("arn:aws:iam::123456789012:role/app")
    );
    let out = kubectl.run(&["get", "serviceaccounts"]).await;
    assert_eq!(rows(&out)[0], vec!["NAME", "SECRETS", "AGE"]);
    assert_eq!(
        rows(&out)[1][..2],
        ["app-reader".to_string(), "0".to_string()]
    );
    emulator.shutdown().await;
}
