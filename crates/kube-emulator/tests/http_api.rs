//! The wire details clients depend on: discovery content types, Tables, Status bodies, watch
//! events (410 inside the stream, bookmarks, selector transitions), StatefulSets in the
//! workload simulator, and manifests loaded without HTTP.

mod common;

use common::{client, eventually, start, within};
use futures::{StreamExt as _, TryStreamExt as _};
use http::Request;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use serde_json::{Value, json};

async fn get_json(c: &kube::Client, path: &str, accept: &str) -> Value {
    let req = Request::get(path)
        .header("accept", accept)
        .body(Vec::new())
        .unwrap();
    serde_json::from_str(&within(c.request_text(req)).await.unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_is_aggregated_and_legacy() {
    let emulator = start().await;
    let c = client(&emulator);
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let req = Request::get("/apis")
        .header("accept", accept)
        .body(Vec::new())
        .unwrap();
    let resp = within(c.send(req.map(Into::into))).await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let apis = get_json(&c, "/apis", accept).await;
    let apps = apis["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deployments = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(deployments["shortNames"], json!(["deploy"]));
    assert_eq!(
        deployments["subresources"][1]["responseKind"]["kind"],
        "Scale"
    );

    let legacy = get_json(&c, "/apis/apps/v1", "application/json").await;
    let names: Vec<&str> = legacy["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"deployments/scale") && names.contains(&"statefulsets/status"));
    assert_eq!(
        get_json(&c, "/api", "application/json").await["versions"],
        json!(["v1"])
    );
    assert_eq!(
        get_json(&c, "/version", "application/json").await["major"],
        "1"
    );

    // kube's own discovery works against it
    let discovery = within(kube::Discovery::new(c.clone()).run()).await.unwrap();
    assert!(discovery.has_group("coordination.k8s.io"));
    emulator.shutdown().await;
}

#[tokio::test]
async fn errors_are_status_objects_and_tables_render() {
    let emulator = start().await;
    let c = client(&emulator);
    let req = Request::get("/api/v1/namespaces/default/configmaps/missing")
        .body(Vec::new())
        .unwrap();
    match within(c.request_text(req)).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (404, "NotFound"));
            assert_eq!(s.message, "configmaps \"missing\" not found");
        }
        other => panic!("{other:?}"),
    }
    // objects in a namespace that does not exist are refused like the real API does
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "nowhere");
    let err = within(cms.create(
        &Default::default(),
        &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap(),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 404 && s.message.contains("namespaces \"nowhere\""))
    );

    let table = get_json(
        &c,
        "/api/v1/namespaces",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["columnDefinitions"][0]["name"], "Name");
    assert_eq!(table["rows"].as_array().unwrap().len(), 4);
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    emulator.shutdown().await;
}

#[tokio::test]
async fn watches_resume_bookmark_and_expire() {
    let emulator = start().await;
    let c = client(&emulator);
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let list = within(cms.list(&ListParams::default())).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();

    let mut stream = within(cms.watch(&WatchParams::default().labels("team=a").timeout(30), &rv))
        .await
        .unwrap()
        .boxed();
    let cm = |labels: Value| {
        serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": "w", "labels": labels}}))
            .unwrap()
    };
    within(cms.create(&Default::default(), &cm(json!({"team": "b"}))))
        .await
        .unwrap();
    // relabelling into the selector is an ADDED, out of it a DELETED
    within(cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
    ))
    .await
    .unwrap();
    within(cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "c"}}})),
    ))
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match within(stream.try_next()).await.unwrap().unwrap() {
            WatchEvent::Added(o) => seen.push(("ADDED", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(("DELETED", o.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![("ADDED", "w".to_string()), ("DELETED", "w".to_string())]
    );

    // bookmarks carry a resourceVersion
    let mut bookmarks = within(cms.watch(&WatchParams::default().timeout(30), "0"))
        .await
        .unwrap()
        .boxed();
    let bookmark = within(async {
        loop {
            if let WatchEvent::Bookmark(b) = bookmarks.try_next().await.unwrap().unwrap() {
                break b;
            }
        }
    })
    .await;
    assert!(!bookmark.metadata.resource_version.is_empty());

    // a resourceVersion from the future (a restarted emulator) gets 410 too, so clients re-list
    let mut future = within(cms.watch(&WatchParams::default(), "999999999"))
        .await
        .unwrap()
        .boxed();
    assert!(
        matches!(within(future.try_next()).await.unwrap().unwrap(), WatchEvent::Error(e) if e.code == 410)
    );

    // a resourceVersion older than the history gets 410 inside the stream
    emulator.faults().expire_watches();
    let mut expired = within(cms.watch(&WatchParams::default(), &rv))
        .await
        .unwrap()
        .boxed();
    match within(expired.try_next()).await.unwrap().unwrap() {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected 410, got {other:?}"),
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn metadata_and_streaming_list_watchers_work() {
    let emulator = start().await;
    let c = client(&emulator);
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    for name in ["m1", "m2"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"big": "x"}}))
                .unwrap();
        within(cms.create(&Default::default(), &cm)).await.unwrap();
    }
    let meta = within(cms.list_metadata(&ListParams::default()))
        .await
        .unwrap();
    assert_eq!(meta.items.len(), 2);
    assert_eq!(
        within(cms.get_metadata("m1"))
            .await
            .unwrap()
            .metadata
            .name
            .as_deref(),
        Some("m1")
    );

    for config in [
        watcher::Config::default().streaming_lists(),
        watcher::Config::default().any_semantic(),
    ] {
        let metas: Api<PartialObjectMeta<ConfigMap>> = Api::namespaced(c.clone(), "default");
        let mut stream = watcher(metas, config).boxed();
        let mut names = Vec::new();
        loop {
            match within(stream.try_next()).await.unwrap().unwrap() {
                watcher::Event::InitApply(o) => names.push(o.metadata.name.unwrap()),
                watcher::Event::InitDone => break,
                _ => {}
            }
        }
        names.sort();
        assert_eq!(names, vec!["m1", "m2"]);
    }
    emulator.shutdown().await;
}

#[tokio::test]
async fn watches_end_on_timeout_and_when_dropped() {
    let emulator = start().await;
    let c = client(&emulator);
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    // timeoutSeconds ends the stream
    let mut timed = within(cms.watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0"))
        .await
        .unwrap()
        .boxed();
    assert!(within(timed.try_next()).await.unwrap().is_none());

    // the admin API drops every watch
    let mut open = within(cms.watch(&WatchParams::default().disable_bookmarks(), "0"))
        .await
        .unwrap()
        .boxed();
    let admin = |method: &str, path: &str, body: Value| {
        Request::builder()
            .method(method)
            .uri(path)
            .body(body.to_string().into_bytes())
            .unwrap()
    };
    within(c.request_text(admin("POST", "/_emulator/faults/drop-watches", json!({}))))
        .await
        .unwrap();
    assert!(within(open.try_next()).await.unwrap().is_none());

    // latency and rules show in the admin API and clear
    within(c.request_text(admin(
        "POST",
        "/_emulator/faults/latency",
        json!({"millis": 1}),
    )))
    .await
    .unwrap();
    within(c.request_text(admin(
        "POST",
        "/_emulator/faults/fail",
        json!({"path": "/never", "status": 500, "count": 3}),
    )))
    .await
    .unwrap();
    let state = get_json(&c, "/_emulator/faults", "application/json").await;
    assert_eq!(state["latencyMillis"], 1);
    assert_eq!(state["rules"][0]["count"], 3);
    within(c.request_text(admin("DELETE", "/_emulator/faults", json!({}))))
        .await
        .unwrap();
    let state = get_json(&c, "/_emulator/faults", "application/json").await;
    assert_eq!(
        (state["latencyMillis"].clone(), state["rules"].clone()),
        (json!(0), json!([]))
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn statefulsets_get_ordinal_pods_and_status() {
    let emulator = start().await;
    let c = client(&emulator);
    let sts: Api<StatefulSet> = Api::namespaced(c.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let manifest = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "pg"}]}}}
    });
    within(sts.patch("db", &PatchParams::apply("test"), &Patch::Apply(manifest)))
        .await
        .unwrap();
    eventually("3 ready", || async {
        let s = sts.get("db").await.ok()?.status?;
        (s.ready_replicas == Some(3)).then_some(())
    })
    .await;
    let mut names: Vec<String> = within(pods.list(&ListParams::default().labels("app=db")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name.unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["db-0", "db-1", "db-2"]);

    // a deleted pod is replaced; scaling down removes the highest ordinal
    within(pods.delete("db-1", &Default::default()))
        .await
        .unwrap();
    eventually("db-1 back", || async {
        pods.get_opt("db-1").await.ok()?.map(|_| ())
    })
    .await;
    within(sts.patch_scale(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    ))
    .await
    .unwrap();
    eventually("db-2 gone", || async {
        pods.get_opt("db-2").await.ok()?.is_none().then_some(())
    })
    .await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn manifests_load_without_http() {
    let emulator = start().await;
    let written = emulator
        .apply_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: demo}\ndata: {k: v}\n",
        )
        .unwrap();
    assert_eq!(written, 2);
    let cms: Api<ConfigMap> = Api::namespaced(client(&emulator), "demo");
    assert_eq!(within(cms.get("a")).await.unwrap().data.unwrap()["k"], "v");
    assert!(
        emulator
            .apply_yaml("apiVersion: v1\nkind: Nope\nmetadata: {name: a}\n")
            .is_err()
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn changes_carry_the_commit_of_a_scale_patch() {
    let emulator = start().await;
    emulator
        .apply_yaml(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: app, image: app:1}]}\n",
        )
        .unwrap();
    let mut changes = emulator.changes();
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client(&emulator), "default");
    within(deployments.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    ))
    .await
    .unwrap();
    let answered = std::time::Instant::now();
    let change = within(async {
        loop {
            let change = changes.next().await.expect("the emulator runs");
            if change.resource == "apps/deployments" && change.object["spec"]["replicas"] == 3 {
                return change;
            }
        }
    })
    .await;
    assert_eq!(change.kind, "MODIFIED");
    assert_eq!(change.object["metadata"]["name"], "web");
    assert!(
        change.at <= answered,
        "committed before the PATCH was answered"
    );
    assert_eq!(
        change.resource_version.to_string(),
        change.object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
    );
    assert_eq!(changes.lost(), 0);
    emulator.shutdown().await;
}

#[tokio::test]
async fn custom_resources_are_pruned_and_defaulted_by_their_schema() {
    let crd = "
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: things, kind: Thing}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer, default: 3}
          status:
            type: object
            properties:
              phase: {type: string}
";
    let thing = json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {"typo": 1}});
    for (pruning, want) in [(true, json!({"size": 3})), (false, json!({"typo": 1}))] {
        let emulator = within(
            promscaler_kube_emulator::Emulator::builder()
                .crd_yaml(crd)
                .schema_pruning(pruning)
                .start("127.0.0.1:0"),
        )
        .await
        .unwrap();
        let ar = kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("example.com", "v1", "Thing"),
            "things",
        );
        let things: Api<kube::core::DynamicObject> =
            Api::namespaced_with(client(&emulator), "default", &ar);
        let created = within(things.create(
            &Default::default(),
            &serde_json::from_value(thing.clone()).unwrap(),
        ))
        .await
        .unwrap();
        assert_eq!(created.data["spec"], want, "pruning {pruning}");
        if pruning {
            // status writes are pruned too: a field the schema lacks does not survive
            let patched = within(things.patch_status(
                "t",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": "Ready", "decisionStat": {"x": 1}}})),
            ))
            .await
            .unwrap();
            assert_eq!(patched.data["status"], json!({"phase": "Ready"}));
        }
        emulator.shutdown().await;
    }
}

/// A metadata-only watch of Secrets carries no data, and the read log tells it apart from a full
/// list and records each GET by object.
#[tokio::test]
async fn secret_metadata_watches_carry_no_data_and_reads_are_logged_per_object() {
    use k8s_openapi::api::core::v1::Secret;
    use promscaler_kube_emulator::Read;

    let emulator = start().await;
    emulator
        .apply_yaml(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: default}\nstringData: {token: s3cret}\n",
        )
        .unwrap();
    let c = client(&emulator);
    let metas: Api<PartialObjectMeta<Secret>> = Api::namespaced(c.clone(), "default");
    let mut stream = watcher(metas, watcher::Config::default().any_semantic()).boxed();
    loop {
        match within(stream.try_next()).await.unwrap().unwrap() {
            watcher::Event::InitApply(o) => assert_eq!(o.metadata.name.as_deref(), Some("creds")),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    // The same list on the wire: metadata only, no `data`.
    let raw = get_json(
        &c,
        "/api/v1/namespaces/default/secrets",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await;
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert!(raw["items"][0].get("data").is_none(), "{raw}");
    assert_eq!(raw["items"][0]["metadata"]["name"], "creds");
    let secrets: Api<Secret> = Api::namespaced(c, "default");
    within(secrets.get("creds")).await.unwrap();

    let read = |verb: &str, name: &str, metadata_only: bool| Read {
        verb: verb.into(),
        resource: "/secrets".into(),
        namespace: "default".into(),
        name: name.into(),
        metadata_only,
    };
    let reads = emulator.reads();
    assert_eq!(reads.get(&read("list", "", true)), Some(&2), "{reads:?}");
    assert_eq!(
        reads.get(&read("get", "creds", false)),
        Some(&1),
        "{reads:?}"
    );
    assert_eq!(reads.get(&read("list", "", false)), None, "{reads:?}");
    emulator.shutdown().await;
}

/// `POST /_emulator/tokens` adds a token that TokenReviews then authenticate; a body without a
/// token or user name is refused with what to send.
#[tokio::test]
async fn tokens_added_over_the_admin_api_authenticate() {
    let emulator = start().await;
    let c = client(&emulator);
    let post = |path: &'static str, body: Value| {
        let c = c.clone();
        async move {
            let req = Request::post(path)
                .header("content-type", "application/json")
                .body(body.to_string().into_bytes())
                .unwrap();
            within(c.request_text(req)).await
        }
    };
    let refused = post("/_emulator/tokens", json!({"token": "t"}))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("username"), "{refused}");
    post(
        "/_emulator/tokens",
        json!({"token": "t0k3n", "username": "carol", "groups": ["ops"]}),
    )
    .await
    .unwrap();
    let review: Value = serde_json::from_str(
        &post(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "t0k3n"}}),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(review["status"]["authenticated"], true);
    assert_eq!(review["status"]["user"]["username"], "carol");
    assert_eq!(
        review["status"]["user"]["groups"],
        json!(["ops", "system:authenticated"])
    );
    emulator.shutdown().await;
}
