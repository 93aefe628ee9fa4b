//! kube-rs against the emulator over HTTP.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{client, eventually, start, within};
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt as _, Resource as _, ResourceExt as _};
use promscaler_kube_emulator::FailRule;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

fn deployment(name: &str, replicas: i32) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}
            }
        }
    })
}

fn api_error(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn deployments_apply_get_list_and_scale_with_simulated_pods() {
    let emulator = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&emulator), "default");
    let pods: Api<Pod> = Api::namespaced(client(&emulator), "default");

    let applied = within(deployments.patch(
        "web",
        &PatchParams::apply("test").force(),
        &Patch::Apply(deployment("web", 2)),
    ))
    .await
    .unwrap();
    assert_eq!(applied.metadata.generation, Some(1));
    assert!(applied.metadata.uid.is_some());
    assert_eq!(applied.managed_fields().len(), 1);
    within(deployments.patch(
        "other",
        &PatchParams::apply("test"),
        &Patch::Apply(deployment("other", 0)),
    ))
    .await
    .unwrap();

    let got = within(deployments.get("web")).await.unwrap();
    assert_eq!(got.spec.as_ref().unwrap().replicas, Some(2));
    let listed = within(deployments.list(&ListParams::default().labels("app=web")))
        .await
        .unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|d| d.name_any())
            .collect::<Vec<_>>(),
        vec!["web"]
    );
    assert!(listed.metadata.resource_version.is_some());

    let scale = within(deployments.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    ))
    .await
    .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=web")
    );

    let ready = eventually("3 ready replicas", || async {
        let d = deployments.get("web").await.ok()?;
        let s = d.status?;
        (s.ready_replicas == Some(3) && s.observed_generation == Some(2)).then_some(s)
    })
    .await;
    assert_eq!(
        (
            ready.replicas,
            ready.available_replicas,
            ready.updated_replicas
        ),
        (Some(3), Some(3), Some(3))
    );
    let web_pods = within(pods.list(&ListParams::default().labels("app=web")))
        .await
        .unwrap();
    assert_eq!(web_pods.items.len(), 3);
    assert!(
        web_pods
            .items
            .iter()
            .all(|p| p.status.as_ref().unwrap().phase.as_deref() == Some("Running"))
    );
    assert!(
        web_pods
            .items
            .iter()
            .all(|p| p.owner_references()[0].name == "web")
    );

    // the "deployment controller" records its scaling as Events, as `kubectl describe` shows them
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client(&emulator), "default");
    let scaled =
        within(events.list(
            &ListParams::default().fields("involvedObject.name=web,reason=ScalingReplicaSet"),
        ))
        .await
        .unwrap();
    assert!(scaled.items.iter().any(|e| {
        e.message
            .as_deref()
            .is_some_and(|m| m.ends_with("from 2 to 3"))
    }));

    let mut scale = within(deployments.get_scale("web")).await.unwrap();
    assert_eq!(scale.status.as_ref().unwrap().replicas, 3);
    // PUT /scale with the resourceVersion it read; a second PUT with the same one conflicts
    scale.spec.as_mut().unwrap().replicas = Some(2);
    let replaced = within(deployments.replace_scale("web", &PostParams::default(), &scale))
        .await
        .unwrap();
    assert_eq!(replaced.spec.unwrap().replicas, Some(2));
    assert_eq!(
        api_error(
            within(deployments.replace_scale("web", &PostParams::default(), &scale))
                .await
                .unwrap_err()
        ),
        409
    );

    // an applied configuration with a stale resourceVersion is refused
    let mut stale = deployment("web", 3);
    stale["metadata"]["resourceVersion"] =
        json!(applied.metadata.resource_version.clone().unwrap());
    let err = within(deployments.patch(
        "web",
        &PatchParams::apply("test").force(),
        &Patch::Apply(stale),
    ))
    .await
    .unwrap_err();
    assert_eq!(api_error(err), 409);

    // a template change rolls the pods: new ones from the new template replace the old ones
    let mut v2 = deployment("web", 2);
    v2["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let rolled = within(deployments.patch(
        "web",
        &PatchParams::apply("test").force(),
        &Patch::Apply(v2),
    ))
    .await
    .unwrap();
    let generation = rolled.metadata.generation;
    eventually("the rollout to finish", || async {
        let s = deployments.get("web").await.ok()?.status?;
        let done = s.observed_generation == generation
            && s.updated_replicas == Some(2)
            && s.replicas == Some(2)
            && s.ready_replicas == Some(2);
        done.then_some(())
    })
    .await;
    let images: Vec<String> = within(pods.list(&ListParams::default().labels("app=web")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.spec.unwrap().containers[0].image.clone().unwrap())
        .collect();
    assert_eq!(images, vec!["nginx:2", "nginx:2"]);

    // scaling down removes pods; SSA by the same manager can change replicas back
    within(deployments.patch(
        "web",
        &PatchParams::apply("test").force(),
        &Patch::Apply(deployment("web", 1)),
    ))
    .await
    .unwrap();
    eventually("one pod left", || async {
        let n = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items
            .len();
        (n == 1).then_some(())
    })
    .await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn writes_honour_resource_version_preconditions_and_the_status_split() {
    let emulator = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&emulator), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("c".into());
    cm.data = Some(BTreeMap::from([("k".to_string(), "v1".to_string())]));
    let created = within(cms.create(&PostParams::default(), &cm))
        .await
        .unwrap();
    assert_eq!(
        api_error(
            within(cms.create(&PostParams::default(), &cm))
                .await
                .unwrap_err()
        ),
        409
    );

    let mut update = created.clone();
    update.data = Some(BTreeMap::from([("k".to_string(), "v2".to_string())]));
    let updated = within(cms.replace("c", &PostParams::default(), &update))
        .await
        .unwrap();
    assert_ne!(updated.resource_version(), created.resource_version());
    // the stale resourceVersion now conflicts
    let err = within(cms.replace("c", &PostParams::default(), &update))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), 409);

    // generateName
    let mut generated = ConfigMap::default();
    generated.metadata.generate_name = Some("gen-".into());
    let g = within(cms.create(&PostParams::default(), &generated))
        .await
        .unwrap();
    assert!(g.name_any().starts_with("gen-") && g.name_any().len() == 9);

    // status subresource: the main endpoint ignores status, /status ignores the rest,
    // generation only moves with spec
    let deployments: Api<Deployment> = Api::namespaced(client(&emulator), "default");
    let d = within(deployments.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("s", 0)).unwrap(),
    ))
    .await
    .unwrap();
    let patched = within(deployments.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}, "status": {"replicas": 42}})),
    ))
    .await
    .unwrap();
    assert_ne!(patched.status.as_ref().and_then(|s| s.replicas), Some(42));
    assert_eq!(patched.metadata.generation, d.metadata.generation);
    let status = within(deployments.patch_status(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 7}, "status": {"collisionCount": 5}})),
    ))
    .await
    .unwrap();
    assert_eq!(status.status.unwrap().collision_count, Some(5));
    assert_eq!(status.spec.unwrap().replicas, Some(0));
    let bumped = within(deployments.patch(
        "s",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    ))
    .await
    .unwrap();
    assert_eq!(
        bumped.metadata.generation,
        Some(d.metadata.generation.unwrap() + 1)
    );

    // strategic merge patch merges containers by name
    let smp = within(deployments.patch(
        "s",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "side:1"}]}}}})),
    ))
    .await
    .unwrap();
    let names: Vec<String> = smp
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["app", "side"]);

    // JSON patch (kube's Patch::Json needs a feature we do not enable: send it raw)
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/c")
        .header("content-type", "application/json-patch+json")
        .body(
            serde_json::to_vec(&json!([{"op": "replace", "path": "/data/k", "value": "v3"}]))
                .unwrap(),
        )
        .unwrap();
    within(client(&emulator).request_text(req)).await.unwrap();
    assert_eq!(within(cms.get("c")).await.unwrap().data.unwrap()["k"], "v3");
    emulator.shutdown().await;
}

#[tokio::test]
async fn finalizers_delay_deletion_and_lists_paginate() {
    let emulator = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&emulator), "default");
    for i in 0..5 {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(format!("cm-{i}"));
        within(cms.create(&PostParams::default(), &cm))
            .await
            .unwrap();
    }
    let first = within(cms.list(&ListParams::default().limit(2)))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    let second = within(cms.list(&ListParams::default().limit(2).continue_token(&token)))
        .await
        .unwrap();
    assert_eq!(
        second
            .items
            .iter()
            .map(|c| c.name_any())
            .collect::<Vec<_>>(),
        vec!["cm-2", "cm-3"]
    );
    let by_name = within(cms.list(&ListParams::default().fields("metadata.name=cm-4")))
        .await
        .unwrap();
    assert_eq!(by_name.items.len(), 1);

    within(cms.patch(
        "cm-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
    ))
    .await
    .unwrap();
    within(cms.delete("cm-0", &DeleteParams::default()))
        .await
        .unwrap();
    let held = within(cms.get("cm-0")).await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    within(cms.patch(
        "cm-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    ))
    .await
    .unwrap();
    assert_eq!(api_error(within(cms.get("cm-0")).await.unwrap_err()), 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn watcher_relists_after_410_gone() {
    let emulator = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(client(&emulator), "default");
    let mut stream = watcher(cms.clone(), watcher::Config::default()).boxed();
    let mut next = async || {
        within(stream.try_next())
            .await
            .expect("no watch error")
            .expect("stream open")
    };

    assert!(matches!(next().await, watcher::Event::Init));
    assert!(matches!(next().await, watcher::Event::InitDone));
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("a".into());
    within(cms.create(&PostParams::default(), &cm))
        .await
        .unwrap();
    match next().await {
        watcher::Event::Apply(c) => assert_eq!(c.name_any(), "a"),
        other => panic!("expected the created object, got {other:?}"),
    }

    // expire every resourceVersion: the watcher's re-watch gets 410 and it re-lists
    emulator.faults().expire_watches();
    let mut stream = stream;
    let relisted = within(async {
        loop {
            match stream.next().await.expect("stream open") {
                Ok(watcher::Event::Init) => break true,
                Ok(_) | Err(_) => continue,
            }
        }
    })
    .await;
    assert!(relisted);
    match within(stream.try_next()).await.unwrap().unwrap() {
        watcher::Event::InitApply(c) => assert_eq!(c.name_any(), "a"),
        other => panic!("expected the re-listed object, got {other:?}"),
    }
    assert!(matches!(
        within(stream.try_next()).await.unwrap().unwrap(),
        watcher::Event::InitDone
    ));
    cm.metadata.name = Some("b".into());
    within(cms.create(&PostParams::default(), &cm))
        .await
        .unwrap();
    match within(stream.try_next()).await.unwrap().unwrap() {
        watcher::Event::Apply(c) => assert_eq!(c.name_any(), "b"),
        other => panic!("expected the new object, got {other:?}"),
    }
    emulator.shutdown().await;
}

/// One round of a Lease-based leader elector: acquire when free or expired, renew when held;
/// every write carries the resourceVersion it read (a 409 means someone else won).
async fn try_acquire(
    leases: &Api<Lease>,
    me: &str,
    now: Timestamp,
    duration_s: i32,
) -> Result<bool, kube::Error> {
    let spec = |transitions: i32| {
        json!({"holderIdentity": me, "leaseDurationSeconds": duration_s, "acquireTime": MicroTime(now),
               "renewTime": MicroTime(now), "leaseTransitions": transitions})
    };
    match leases.get_opt("leader").await? {
        None => {
            let lease: Lease =
                serde_json::from_value(json!({"metadata": {"name": "leader"}, "spec": spec(0)}))
                    .unwrap();
            match leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(current) => {
            let s = current.spec.clone().unwrap_or_default();
            let held_by_other = s.holder_identity.as_deref().is_some_and(|h| h != me);
            let expired = s.renew_time.as_ref().is_none_or(|r| {
                r.0 + k8s_openapi::jiff::SignedDuration::from_secs(
                    s.lease_duration_seconds.unwrap_or(0) as i64,
                ) < now
            });
            if held_by_other && !expired {
                return Ok(false);
            }
            let transitions = s.lease_transitions.unwrap_or(0) + i32::from(held_by_other);
            let mut next: Lease = serde_json::from_value(
                json!({"metadata": {"name": "leader"}, "spec": spec(transitions)}),
            )
            .unwrap();
            next.metadata.resource_version = current.metadata.resource_version.clone();
            match leases
                .replace("leader", &PostParams::default(), &next)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

#[tokio::test]
async fn lease_leader_election_has_one_winner_and_fails_over() {
    let emulator = start().await;
    let leases: Api<Lease> = Api::namespaced(client(&emulator), "default");
    let now = Timestamp::now();
    assert!(within(try_acquire(&leases, "a", now, 15)).await.unwrap());
    assert!(!within(try_acquire(&leases, "b", now, 15)).await.unwrap());
    assert!(
        within(try_acquire(&leases, "a", now, 15)).await.unwrap(),
        "the holder renews"
    );

    // two candidates racing on the same read: exactly one replace succeeds
    let read = within(leases.get("leader")).await.unwrap();
    let mut first = read.clone();
    first.spec.as_mut().unwrap().renew_time = Some(MicroTime(
        now + k8s_openapi::jiff::SignedDuration::from_secs(1),
    ));
    let mut second = read.clone();
    second.spec.as_mut().unwrap().holder_identity = Some("b".into());
    within(leases.replace("leader", &PostParams::default(), &first))
        .await
        .unwrap();
    assert_eq!(
        api_error(
            within(leases.replace("leader", &PostParams::default(), &second))
                .await
                .unwrap_err()
        ),
        409
    );

    // once "a" stops renewing, "b" takes over after the lease duration
    let later = now + k8s_openapi::jiff::SignedDuration::from_secs(16);
    assert!(within(try_acquire(&leases, "b", later, 15)).await.unwrap());
    let lease = within(leases.get("leader")).await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("b"));
    assert_eq!(lease.lease_transitions, Some(1));
    emulator.shutdown().await;
}

#[tokio::test]
async fn recorder_events_are_created_then_counted_as_a_series() {
    let emulator = start().await;
    let c = client(&emulator);
    let deployments: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let d = within(deployments.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("ev", 1)).unwrap(),
    ))
    .await
    .unwrap();
    let recorder = Recorder::new(c.clone(), Reporter::from("promscaler-test"));
    let event = Event {
        type_: EventType::Normal,
        reason: "Scaled".into(),
        note: Some("scaled to 1".into()),
        action: "Scale".into(),
        secondary: None,
    };
    within(recorder.publish(&event, &d.object_ref(&())))
        .await
        .unwrap();
    within(recorder.publish(&event, &d.object_ref(&())))
        .await
        .unwrap();
    let events: Api<K8sEvent> = Api::namespaced(c, "default");
    // (the simulated deployment controller records its own scaling events too)
    let list =
        within(events.list(&ListParams::default().fields("reportingController=promscaler-test")))
            .await
            .unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Scaled"));
    assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("ev"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));

    // the same Event through core/v1 (what `kubectl get events` and `describe` read)
    let core: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client(&emulator), "default");
    let list =
        within(core.list(&ListParams::default().fields("involvedObject.name=ev,reason=Scaled")))
            .await
            .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].message.as_deref(), Some("scaled to 1"));
    assert_eq!(
        list.items[0].involved_object.kind.as_deref(),
        Some("Deployment")
    );
    emulator.shutdown().await;
}

#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "example.com",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus",
    shortname = "gd",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas")
)]
struct GadgetSpec {
    replicas: i32,
    color: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema, Default)]
struct GadgetStatus {
    replicas: i32,
    phase: String,
}

#[tokio::test]
async fn custom_resources_with_status_and_scale() {
    let emulator = start().await;
    let c = client(&emulator);
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    let crd = within(crds.create(&PostParams::default(), &Gadget::crd()))
        .await
        .unwrap();
    let established = crd.status.unwrap().conditions.unwrap_or_default();
    assert!(
        established
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let gadgets: Api<Gadget> = Api::namespaced(c.clone(), "default");
    let g = Gadget::new(
        "g1",
        GadgetSpec {
            replicas: 1,
            color: "red".into(),
        },
    );
    let created = within(gadgets.create(&PostParams::default(), &g))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let status = within(gadgets.patch_status(
        "g1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 1, "phase": "Running"}})),
    ))
    .await
    .unwrap();
    assert_eq!(status.status.as_ref().unwrap().phase, "Running");
    assert_eq!(status.metadata.generation, Some(1));

    // SSA of the status subresource
    let applied = within(gadgets.patch_status(
        "g1",
        &PatchParams::apply("status-writer").force(),
        &Patch::Apply(json!({"apiVersion": "example.com/v1", "kind": "Gadget", "status": {"replicas": 1, "phase": "Done"}})),
    ))
    .await
    .unwrap();
    assert_eq!(applied.status.unwrap().phase, "Done");

    // the main endpoint ignores status
    let mut replace = within(gadgets.get("g1")).await.unwrap();
    replace.spec.color = "blue".into();
    replace.status = Some(GadgetStatus {
        replicas: 9,
        phase: "Ignored".into(),
    });
    let replaced = within(gadgets.replace("g1", &PostParams::default(), &replace))
        .await
        .unwrap();
    assert_eq!(replaced.status.unwrap().phase, "Done");
    assert_eq!(replaced.metadata.generation, Some(2));

    let scale = within(gadgets.patch_scale(
        "g1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    ))
    .await
    .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(4));
    assert_eq!(within(gadgets.get("g1")).await.unwrap().spec.replicas, 4);

    // a CRD's deletion takes its resources with it
    within(crds.delete(&crd_name(), &DeleteParams::default()))
        .await
        .unwrap();
    assert_eq!(api_error(within(gadgets.get("g1")).await.unwrap_err()), 404);
    emulator.shutdown().await;
}

fn crd_name() -> String {
    Gadget::crd().metadata.name.unwrap()
}

#[tokio::test]
async fn injected_faults_fail_requests_then_clear() {
    let emulator = start().await;
    let deployments: Api<Deployment> = Api::namespaced(client(&emulator), "default");
    within(deployments.create(
        &PostParams::default(),
        &serde_json::from_value(deployment("f", 1)).unwrap(),
    ))
    .await
    .unwrap();
    let patch = Patch::Merge(json!({"spec": {"replicas": 2}}));
    emulator
        .faults()
        .fail_next(FailRule::new("/scale", 500).verb("patch"));
    let err = within(deployments.patch_scale("f", &PatchParams::default(), &patch))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), 500);
    // kube's default retry policy absorbs 503s
    emulator
        .faults()
        .fail_next(FailRule::new("/scale", 503).verb("patch"));
    within(deployments.patch_scale("f", &PatchParams::default(), &patch))
        .await
        .unwrap();
    assert_eq!(emulator.faults().injected(), 2);
    // Every request counts by verb and resource, the faulted ones too (kube retried the 503).
    let scale_patches = promscaler_kube_emulator::RequestKind {
        verb: "patch".into(),
        resource: "apps/deployments/scale".into(),
    };
    assert_eq!(emulator.requests().get(&scale_patches), Some(&3));
    assert!(scale_patches.is_write());

    // the same over the admin HTTP API
    let http = kube::Client::try_from(kube::Config::new(emulator.url().parse().unwrap())).unwrap();
    let req = http::Request::post("/_emulator/faults/fail")
        .body(
            serde_json::to_vec(&json!({"verb": "get", "path": "/deployments/f", "status": 409}))
                .unwrap(),
        )
        .unwrap();
    within(http.request_text(req)).await.unwrap();
    assert_eq!(
        api_error(within(deployments.get("f")).await.unwrap_err()),
        409
    );
    within(deployments.get("f")).await.unwrap();

    emulator.faults().set_latency(Duration::from_millis(1));
    within(deployments.get("f")).await.unwrap();
    emulator.faults().clear();
    emulator.shutdown().await;
}
