//! One tick against in-memory peers (tonic over a duplex pipe) and an in-memory Kubernetes API,
//! under paused time with the injected clock.

use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::SystemTime,
};

use hyper_util::rt::TokioIo;
use kube::{
    client::Body,
    runtime::{reflector, watcher},
};
use promscaler_proto::v1::{
    CheckResponse, QueryBatchResponse, QueryRangeRequest, QueryRangeResponse, QueryRequest,
    QueryResponse, Sample, SimulateRequest, SimulateResponse,
    decision_service_client::DecisionServiceClient,
    decision_service_server::{DecisionService, DecisionServiceServer},
    metrics_fetcher_service_client::MetricsFetcherServiceClient,
    metrics_fetcher_service_server::{MetricsFetcherService, MetricsFetcherServiceServer},
};
use tokio::sync::broadcast;
use tonic::{Request, Response, Status, transport::Endpoint};

use super::*;
use crate::{
    clock::Clock,
    controller::{Settings, context},
    metrics::Metrics,
    types::{Shard, Workload},
    views::Views,
};

/// 2023-11-14T22:13:20Z, where the injected clock starts.
const START: Duration = Duration::from_secs(1_700_000_000);

/// Every trigger's query returns 140.
struct Fetcher;

#[tonic::async_trait]
impl MetricsFetcherService for Fetcher {
    async fn query(&self, _: Request<QueryRequest>) -> Result<Response<QueryResponse>, Status> {
        Err(Status::unimplemented("query"))
    }

    async fn query_batch(
        &self,
        request: Request<QueryBatchRequest>,
    ) -> Result<Response<QueryBatchResponse>, Status> {
        let results = request
            .into_inner()
            .queries
            .iter()
            .map(|_| QueryResponse {
                result: Some(query_response::Result::Sample(Sample {
                    value: 140.0,
                    timestamp: None,
                })),
                from_cache: false,
                samples_processed: Some(60),
            })
            .collect();
        Ok(Response::new(QueryBatchResponse { results }))
    }

    async fn query_range(
        &self,
        _: Request<QueryRangeRequest>,
    ) -> Result<Response<QueryRangeResponse>, Status> {
        Err(Status::unimplemented("query_range"))
    }

    async fn check(&self, _: Request<QueryRequest>) -> Result<Response<CheckResponse>, Status> {
        Err(Status::unimplemented("check"))
    }
}

/// Decides `desired` replicas, or never answers (`None`).
struct Decision {
    desired: Option<i32>,
    requests: Arc<Mutex<Vec<DecideRequest>>>,
}

#[tonic::async_trait]
impl DecisionService for Decision {
    async fn decide(
        &self,
        request: Request<DecideRequest>,
    ) -> Result<Response<DecideResponse>, Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        let Some(desired) = self.desired else {
            return std::future::pending().await;
        };
        Ok(Response::new(DecideResponse {
            desired_replicas: desired,
            explanation: vec![format!("ceil(140 / 50) = {desired}")],
            ..DecideResponse::default()
        }))
    }

    async fn simulate(
        &self,
        _: Request<SimulateRequest>,
    ) -> Result<Response<SimulateResponse>, Status> {
        Err(Status::unimplemented("simulate"))
    }
}

/// A channel to `routes` over an in-memory pipe: no sockets, so paused time only moves when
/// every task waits on a timer.
async fn channel(routes: tonic::service::Routes) -> tonic::transport::Channel {
    let (client, server) = tokio::io::duplex(1 << 20);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(server))),
    );
    let mut client = Some(client);
    Endpoint::from_static("http://peer.test")
        .connect_with_connector(tower::service_fn(move |_| {
            let io = client.take();
            async move {
                io.map(TokioIo::new)
                    .ok_or(std::io::Error::other("one connection"))
            }
        }))
        .await
        .unwrap()
}

/// A write the tick sent to the Kubernetes API.
#[derive(Debug, Clone)]
struct Write {
    method: String,
    path: String,
    body: serde_json::Value,
}

/// Accepts every write and answers with a body the client can read; GETs are not expected
/// (a tick reads from the watch caches).
fn kube_client(writes: &Arc<Mutex<Vec<Write>>>) -> kube::Client {
    let writes = writes.clone();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let writes = writes.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body: serde_json::Value =
                serde_json::from_slice(&body.collect_bytes().await.unwrap()).unwrap_or_default();
            let path = parts.uri.path().to_owned();
            writes.lock().unwrap().push(Write {
                method: parts.method.to_string(),
                path: path.clone(),
                body: body.clone(),
            });
            let answer = if path.ends_with("/scale") {
                serde_json::json!({
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": { "name": "app", "namespace": "ns" },
                    "spec": body["spec"].clone(),
                })
            } else if path.ends_with("/status") {
                let mut scaler = scaler_json();
                scaler["metadata"]["resourceVersion"] = "2".into();
                scaler["status"] = body["status"].clone();
                scaler
            } else {
                body
            };
            Ok::<_, Infallible>(http::Response::new(Body::from(
                serde_json::to_vec(&answer).unwrap(),
            )))
        }
    });
    kube::Client::new(service, "ns")
}

fn scaler_json() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "promscaler.io/v1alpha1",
        "kind": "PromScaler",
        "metadata": {
            "name": "s", "namespace": "ns", "uid": "u-1", "generation": 1,
            "resourceVersion": "1", "finalizers": [FINALIZER],
        },
        "spec": {
            "scaleTargetRef": { "name": "app" },
            "minReplicaCount": 1,
            "maxReplicaCount": 5,
            "triggers": [{
                "type": "prometheus",
                "name": "connections",
                "metadata": {
                    "serverAddress": "http://prometheus.test:9090",
                    "query": "sum(up)",
                    "threshold": "50",
                },
            }],
        },
    })
}

/// What a test changes of the world: the scaler, and how the decision service behaves.
struct World {
    scaler: serde_json::Value,
    desired: Option<i32>,
}

impl World {
    fn new() -> Self {
        Self {
            scaler: scaler_json(),
            desired: Some(3),
        }
    }
}

/// The tick's context over `world`, with the writes it makes and the Decide requests it sent.
struct Rig {
    ctx: Arc<Context>,
    writes: Arc<Mutex<Vec<Write>>>,
    decided: Arc<Mutex<Vec<DecideRequest>>>,
    clock: Clock,
}

async fn rig(world: World) -> Rig {
    let writes = Arc::new(Mutex::new(Vec::new()));
    let decided = Arc::new(Mutex::new(Vec::new()));
    let client = kube_client(&writes);
    let watches = crate::controller::Watches::new(&client, Some("ns"));
    // Fill the caches by hand: the watch streams are never polled here.
    let mut scalers = reflector::store::Writer::<PromScaler>::default();
    scalers.apply_watcher_event(&watcher::Event::Apply(
        serde_json::from_value(world.scaler).unwrap(),
    ));
    let mut deployments =
        reflector::store::Writer::<Workload<k8s_openapi::api::apps::v1::Deployment>>::default();
    deployments.apply_watcher_event(&watcher::Event::Apply(
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": "app", "namespace": "ns" },
            "spec": { "replicas": 2 },
            "status": { "replicas": 2, "readyReplicas": 2 },
        }))
        .unwrap(),
    ));
    let fetcher = channel(tonic::service::Routes::new(
        MetricsFetcherServiceServer::new(Fetcher),
    ))
    .await;
    let decision = channel(tonic::service::Routes::new(DecisionServiceServer::new(
        Decision {
            desired: world.desired,
            requests: decided.clone(),
        },
    )))
    .await;
    let inject: promscaler_runtime::propagation::InjectFn = promscaler_runtime::propagation::inject;
    let clock = Clock::tokio_from(SystemTime::UNIX_EPOCH + START);
    let mut ctx = context(
        client,
        &watches,
        MetricsFetcherServiceClient::with_interceptor(fetcher, inject),
        DecisionServiceClient::with_interceptor(decision, inject),
        Arc::new(Views::default()),
        broadcast::channel(16).0,
        Metrics::register(&mut prometheus_client::registry::Registry::default()),
        Settings {
            rpc_timeout: Duration::from_secs(10),
            kube_timeout: Duration::from_secs(10),
            max_concurrent_ticks: 1,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            shard: Shard { index: 0, count: 1 },
            controller_name: "promscaler-actuator".into(),
            instance: "test".into(),
            secret_cache_size: 16,
        },
        clock,
    );
    let inner = Arc::get_mut(&mut ctx).unwrap();
    inner.scalers = scalers.as_reader();
    inner.deployments = deployments.as_reader();
    Rig {
        ctx,
        writes,
        decided,
        clock,
    }
}

fn key() -> ScalerKey {
    ScalerKey {
        namespace: "ns".into(),
        name: "s".into(),
    }
}

impl Rig {
    fn writes_to(&self, suffix: &str) -> Vec<Write> {
        self.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.path.ends_with(suffix))
            .cloned()
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_decision_to_scale_patches_scale_and_writes_status_at_the_clocks_time() {
    let rig = rig(World::new()).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    let outcome = tick(&rig.ctx, &key()).await;
    let TickOutcome::Done { next, event } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(next, Duration::from_secs(30), "the default pollingInterval");
    let now = prost_types::Timestamp {
        seconds: 1_700_000_005,
        nanos: 0,
    };
    assert_eq!(event.at, Some(now));
    assert_eq!(rig.clock.timestamp(), now);
    assert!(event.scaled);
    assert_eq!(event.error, "");
    assert_eq!(rig.decided.lock().unwrap()[0].now, Some(now));

    let scale = rig.writes_to("/deployments/app/scale");
    assert_eq!(scale.len(), 1);
    assert_eq!(scale[0].method, "PATCH");
    assert_eq!(scale[0].body["spec"]["replicas"], 3);
    let status = rig.writes_to("/promscalers/s/status");
    assert_eq!(status.len(), 1);
    let status = &status[0].body["status"];
    assert_eq!(status["lastScaleTime"], "2023-11-14T22:13:25Z");
    assert_eq!(status["desiredReplicas"], 3);
    assert_eq!(status["originalReplicaCount"], 2);
    assert_eq!(status["scaleTargetKind"], "apps/v1.Deployment");
    let events = rig.writes_to("/events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].body["reason"], reason::SUCCESSFUL_RESCALE);
}

#[tokio::test(start_paused = true)]
async fn a_decision_service_that_never_answers_holds_replicas_after_the_rpc_timeout() {
    let rig = rig(World {
        desired: None,
        ..World::new()
    })
    .await;
    let started = tokio::time::Instant::now();
    let outcome = tick(&rig.ctx, &key()).await;
    assert_eq!(started.elapsed(), Duration::from_secs(10), "--rpc-timeout");
    let TickOutcome::Failed { event } = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        event.error,
        "decision service did not answer within 10s; holding 2 replicas"
    );
    assert!(rig.writes_to("/scale").is_empty(), "replicas are held");
    let status = rig.writes_to("/promscalers/s/status");
    let ready = &status[0].body["status"]["conditions"][0];
    assert_eq!(ready["type"], "Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], reason::DECISION_SERVICE_UNAVAILABLE);
    // The failure's time is the clock's, 10 s after the start.
    assert_eq!(ready["lastTransitionTime"], "2023-11-14T22:13:30Z");
}

#[tokio::test(start_paused = true)]
async fn an_invalid_spec_is_reported_and_never_acted_on() {
    let mut world = World::new();
    world.scaler["spec"]["maxReplicaCount"] = 0.into();
    let rig = rig(world).await;
    let TickOutcome::Failed { event } = tick(&rig.ctx, &key()).await else {
        panic!("not a failure");
    };
    assert!(
        event.error.contains("spec.maxReplicaCount"),
        "{}",
        event.error
    );
    assert!(rig.decided.lock().unwrap().is_empty(), "no Decide");
    assert!(rig.writes_to("/scale").is_empty());
    let status = rig.writes_to("/promscalers/s/status");
    let status = &status[0].body["status"];
    assert_eq!(
        status["conditions"][0]["reason"],
        reason::SCALED_OBJECT_CHECK_FAILED
    );
    assert_eq!(status["scaleTargetKind"], serde_json::Value::Null);
}

#[tokio::test(start_paused = true)]
async fn a_workload_identity_without_its_service_account_holds_and_says_what_to_create() {
    let mut world = World::new();
    world.scaler["spec"]["triggers"][0]["metadata"]["identityOwner"] = "workload".into();
    world.scaler["spec"]["triggers"][0]["metadata"]["awsRegion"] = "us-east-1".into();
    let rig = rig(world).await;
    let TickOutcome::Failed { event } = tick(&rig.ctx, &key()).await else {
        panic!("not a failure");
    };
    // The Deployment's template names no ServiceAccount: its pods run as `default`.
    assert!(
        event.error.contains(
            "spec.triggers[0]: identityOwner: workload: ServiceAccount ns/default (the ServiceAccount of Deployment ns/app) not found"
        ),
        "{}",
        event.error
    );
    assert!(rig.decided.lock().unwrap().is_empty(), "no Decide");
    assert!(rig.writes_to("/scale").is_empty(), "replicas are held");
    let status = rig.writes_to("/promscalers/s/status");
    let ready = &status[0].body["status"]["conditions"][0];
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], reason::SERVICE_ACCOUNT_NOT_FOUND);
}

#[test]
fn each_tick_error_knows_its_condition_and_how_it_is_counted() {
    let invalid = || spec::Invalid {
        reason: reason::SECRET_NOT_FOUND,
        message: "Secret ns/creds not found".into(),
    };
    let not_found = || TargetError::NotFound {
        kind: "Deployment".into(),
        namespace: "ns".into(),
        name: "app".into(),
    };
    let peer = |peer| TickError::Peer {
        peer,
        message: "down; holding 2 replicas".into(),
    };
    let api = || TargetError::Api(kube::Error::Service("boom".into()));
    let table: Vec<(TickError, Option<&str>, Outcome)> = vec![
        (
            TickError::Finalize("cannot remove the finalizer".into()),
            None,
            Outcome::Error,
        ),
        (
            TickError::AddFinalizer(kube::Error::Service("boom".into())),
            None,
            Outcome::Error,
        ),
        (
            TickError::Invalid(invalid()),
            Some(reason::SECRET_NOT_FOUND),
            Outcome::Invalid,
        ),
        (
            TickError::Target(not_found()),
            Some(reason::SCALE_TARGET_NOT_FOUND),
            Outcome::Error,
        ),
        (
            TickError::Target(TargetError::NotScalable {
                api_version: "x/v1".into(),
                kind: "Thing".into(),
                reason: "it has no scale subresource".into(),
            }),
            Some(reason::SCALE_TARGET_NOT_SCALABLE),
            Outcome::Error,
        ),
        (
            TickError::Target(api()),
            Some(reason::KUBERNETES_API_ERROR),
            Outcome::Error,
        ),
        (
            TickError::Secret(kube::Error::Service("boom".into())),
            Some(reason::KUBERNETES_API_ERROR),
            Outcome::Error,
        ),
        (
            peer(Peer::Fetcher),
            Some(reason::METRICS_FETCHER_UNAVAILABLE),
            Outcome::Error,
        ),
        (
            peer(Peer::Decision),
            Some(reason::DECISION_SERVICE_UNAVAILABLE),
            Outcome::Error,
        ),
        (
            TickError::Scale {
                target: "app".into(),
                from: 2,
                to: 3,
                source: api(),
                decision: Box::default(),
            },
            None,
            Outcome::Error,
        ),
    ];
    for (error, reason, outcome) in table {
        assert_eq!(error.reason(), reason, "{error:?}");
        assert_eq!(error.outcome(), outcome, "{error:?}");
    }
    assert_eq!(
        TickError::Invalid(invalid()).to_string(),
        "Secret ns/creds not found"
    );
    assert_eq!(
        TickError::Scale {
            target: "app".into(),
            from: 2,
            to: 3,
            source: not_found(),
            decision: Box::default(),
        }
        .to_string(),
        "cannot scale app from 2 to 3: Deployment ns/app not found"
    );
}
