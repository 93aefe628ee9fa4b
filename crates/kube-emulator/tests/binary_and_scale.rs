//! The `promscaler-kube-emulator` binary with its flags, and the emulator under the load of
//! the 10,000-PromScaler benchmark (many objects, several watchers).

mod common;

use std::time::Duration;

use common::{eventually, within};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use promscaler_kube_emulator::Emulator;
use serde_json::json;

const CRD: &str = "
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    subresources: {status: {}}
";

fn widgets(c: kube::Client, ns: Option<&str>) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("example.com", "v1", "Widget"),
        "widgets",
    );
    match ns {
        Some(ns) => Api::namespaced_with(c, ns, &ar),
        None => Api::all_with(c, &ar),
    }
}

#[tokio::test]
async fn binary_serves_crds_from_a_directory_and_writes_a_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("crds")).unwrap();
    std::fs::write(dir.path().join("crds/widgets.yaml"), CRD).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_promscaler-kube-emulator"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--no-workload-sim",
            "--log-level",
            "warn",
        ])
        .arg("--kubeconfig-out")
        .arg(&kubeconfig)
        .arg("--crds")
        .arg(dir.path().join("crds"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let text = eventually("the kubeconfig", || async {
        std::fs::read_to_string(&kubeconfig).ok()
    })
    .await;
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let config = within(kube::Config::from_custom_kubeconfig(
        kc,
        &Default::default(),
    ))
    .await
    .unwrap();
    assert_eq!(config.default_namespace, "default");
    let c = kube::Client::try_from(config).unwrap();

    let w = widgets(c.clone(), Some("default"));
    let created = within(w.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "a"}, "spec": {}}))
            .unwrap(),
    ))
    .await
    .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    // without the simulator nobody writes a Deployment's status or creates its Pods
    let deployments: Api<Deployment> = Api::default_namespaced(c.clone());
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    within(deployments.patch("d", &PatchParams::apply("t"), &Patch::Apply(d)))
        .await
        .unwrap();
    within(deployments.patch_status(
        "d",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"readyReplicas": 1}})),
    ))
    .await
    .unwrap();
    let pods: Api<Pod> = Api::default_namespaced(c.clone());
    assert!(
        within(pods.list(&ListParams::default()))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        within(deployments.get("d"))
            .await
            .unwrap()
            .status
            .unwrap()
            .ready_replicas,
        Some(1)
    );

    child.start_kill().unwrap();
    within(child.wait()).await.unwrap();
}

#[tokio::test]
async fn ten_thousand_objects_fan_out_to_many_watchers() {
    const OBJECTS: usize = 10_000;
    const WATCHERS: usize = 8;
    let emulator = Emulator::builder()
        .no_workload_sim()
        .crd_yaml(CRD)
        .start("127.0.0.1:0")
        .await
        .unwrap();
    let mut manifest = String::new();
    for i in 0..OBJECTS {
        manifest.push_str(&format!(
            "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {{name: w{i}, namespace: default}}\nspec: {{n: {i}}}\n"
        ));
    }
    assert_eq!(emulator.apply_yaml(&manifest).unwrap(), OBJECTS);
    let c = common::client(&emulator);

    let mut streams = Vec::new();
    for _ in 0..WATCHERS {
        let stream = watcher(widgets(c.clone(), None), watcher::Config::default()).boxed();
        streams.push(stream);
    }
    // every watcher lists all objects (in pages of 500) and starts watching
    let mut listed = Vec::new();
    for s in &mut streams {
        let mut n = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(60), s.try_next())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
            {
                watcher::Event::InitApply(_) => n += 1,
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        listed.push(n);
    }
    assert_eq!(listed, vec![OBJECTS; WATCHERS]);

    // one change reaches every watcher
    within(widgets(c.clone(), Some("default")).patch(
        "w42",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"n": -1}})),
    ))
    .await
    .unwrap();
    for s in &mut streams {
        let changed = within(async {
            loop {
                if let watcher::Event::Apply(o) = s.try_next().await.unwrap().unwrap() {
                    break o;
                }
            }
        })
        .await;
        assert_eq!(changed.data["spec"]["n"], -1);
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn https_with_a_generated_certificate_works_for_kube_and_kubectl() {
    let emulator = within(Emulator::builder().https().start("127.0.0.1:0"))
        .await
        .unwrap();
    assert!(emulator.url().starts_with("https://127.0.0.1:"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    emulator.write_kubeconfig(&path).unwrap();

    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = within(kube::Config::from_custom_kubeconfig(
        kc,
        &Default::default(),
    ))
    .await
    .unwrap();
    let c = kube::Client::try_from(config).unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(c);
    assert_eq!(
        within(namespaces.list(&ListParams::default()))
            .await
            .unwrap()
            .items
            .len(),
        4
    );

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = within(
        tokio::process::Command::new(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()))
            .arg("--kubeconfig")
            .arg(&path)
            .arg("--cache-dir")
            .arg(home.join("cache"))
            .args(["get", "namespace", "default", "-o", "name"])
            .env("HOME", &home)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/default"
    );
    emulator.shutdown().await;
}
