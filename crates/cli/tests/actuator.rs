//! `status` and `watch` against a real tonic server on 127.0.0.1:0 implementing
//! ActuatorService with canned PromScalers and decisions (the decisions are made by the real
//! decision code). This tests the CLI's side of the contract: requests, rendering, errors.

mod common;

use std::pin::Pin;
use std::time::SystemTime;

use common::{closed_port_url, ctl_async, data};
use promscaler_api::files::parse_promscalers;
use promscaler_proto::v1::{
    DecideRequest, DecisionEvent, ListScalersRequest, ListScalersResponse, Observation, Replicas,
    ScaleTargetRef, ScalerRef, ScalerStatus, WatchDecisionsRequest,
    actuator_service_server::{ActuatorService, ActuatorServiceServer},
    observation,
};
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// 2026-11-29T00:00:00Z.
const T0: i64 = 1_795_910_400;

fn at(secs: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: T0 + secs,
        nanos: 0,
    })
}

fn scaler_ref(namespace: &str, name: &str) -> Option<ScalerRef> {
    Some(ScalerRef {
        namespace: namespace.into(),
        name: name.into(),
    })
}

/// A decision of the seed's PromScaler by the real decision code.
fn seed_event(secs: i64, value: f64, replicas: i32) -> DecisionEvent {
    let yaml = std::fs::read_to_string(data("sample-app.yaml")).unwrap();
    let v = parse_promscalers(&yaml)
        .unwrap()
        .remove(0)
        .validate()
        .unwrap();
    let replicas = Replicas {
        spec: replicas,
        status: replicas,
        ready: replicas,
    };
    let decision = promscaler_decision::grpc::decide(
        &DecideRequest {
            policy: Some(v.policy.clone()),
            replicas: Some(replicas),
            observations: vec![Observation {
                trigger: "trigger-0".into(),
                result: Some(observation::Result::Value(value)),
            }],
            state: None,
            now: at(secs),
            pause: Some(v.pause),
        },
        SystemTime::now(),
    )
    .unwrap();
    DecisionEvent {
        r#ref: scaler_ref("default", "sample-app-prometheus-scaler"),
        at: at(secs),
        replicas: Some(replicas),
        scaled: decision.desired_replicas != replicas.spec,
        decision: Some(decision),
        error: String::new(),
        samples_processed: Some(1200),
        error_reason: String::new(),
    }
}

fn events() -> Vec<DecisionEvent> {
    vec![
        seed_event(0, 140.0, 2),
        DecisionEvent {
            r#ref: scaler_ref("shop", "checkout"),
            at: at(5),
            replicas: Some(Replicas {
                spec: 4,
                status: 4,
                ready: 4,
            }),
            decision: None,
            scaled: false,
            error: "cannot reach the metrics-fetcher: connection refused; keeping 4 replicas"
                .into(),
            samples_processed: None,
            error_reason: "MetricsFetcherUnavailable".into(),
        },
        seed_event(60, 140.0, 3),
    ]
}

fn scalers() -> Vec<ScalerStatus> {
    let last = seed_event(0, 140.0, 2);
    let decision = last.decision.clone().unwrap();
    vec![
        ScalerStatus {
            r#ref: scaler_ref("default", "sample-app-prometheus-scaler"),
            target: Some(ScaleTargetRef {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "sample-app".into(),
            }),
            min_replicas: 1,
            max_replicas: 5,
            trigger_types: vec!["prometheus".into()],
            authentications: vec!["sample-app-ta".into()],
            conditions: decision.conditions.clone(),
            last_values: [("trigger-0".to_owned(), 140.0)].into_iter().collect(),
            replicas: Some(Replicas {
                spec: 3,
                status: 3,
                ready: 2,
            }),
            desired_replicas: 3,
            last_decision: Some(last),
            last_scale_time: at(0),
            paused: false,
            leader: String::new(),
            samples_last_interval: Some(1200),
            samples_per_hour: Some(144_000.0),
            samples_total: 50_000,
        },
        ScalerStatus {
            r#ref: scaler_ref("shop", "checkout"),
            target: Some(ScaleTargetRef {
                api_version: "argoproj.io/v1alpha1".into(),
                kind: "Rollout".into(),
                name: "checkout".into(),
            }),
            min_replicas: 2,
            max_replicas: 10,
            trigger_types: vec!["prometheus".into()],
            authentications: vec![],
            conditions: vec![],
            last_values: Default::default(),
            replicas: Some(Replicas {
                spec: 4,
                status: 4,
                ready: 4,
            }),
            desired_replicas: 4,
            last_decision: None,
            last_scale_time: None,
            paused: true,
            leader: String::new(),
            samples_last_interval: None,
            samples_per_hour: None,
            samples_total: 0,
        },
    ]
}

struct FakeActuator;

type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<DecisionEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ActuatorService for FakeActuator {
    async fn list_scalers(
        &self,
        request: Request<ListScalersRequest>,
    ) -> Result<Response<ListScalersResponse>, Status> {
        let ns = request.into_inner().namespace;
        let scalers = scalers()
            .into_iter()
            .filter(|s| ns.is_empty() || s.r#ref.as_ref().unwrap().namespace == ns)
            .collect();
        Ok(Response::new(ListScalersResponse {
            scalers,
            leader: String::new(),
        }))
    }

    async fn get_scaler(
        &self,
        request: Request<ScalerRef>,
    ) -> Result<Response<ScalerStatus>, Status> {
        let r = request.into_inner();
        scalers()
            .into_iter()
            .find(|s| s.r#ref.as_ref() == Some(&r))
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("PromScaler {}/{}", r.namespace, r.name)))
    }

    type WatchDecisionsStream = EventStream;

    async fn watch_decisions(
        &self,
        request: Request<WatchDecisionsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let ns = request.into_inner().namespace;
        let events: Vec<Result<DecisionEvent, Status>> = events()
            .into_iter()
            .filter(|e| {
                ns.as_ref()
                    .is_none_or(|n| &e.r#ref.as_ref().unwrap().namespace == n)
            })
            .map(Ok)
            .collect();
        // Like the real stream, it stays open after the decisions made so far.
        let stream = tokio_stream::iter(events).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn pause(&self, _: Request<ScalerRef>) -> Result<Response<ScalerStatus>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn resume(&self, _: Request<ScalerRef>) -> Result<Response<ScalerStatus>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn reconcile(&self, _: Request<ScalerRef>) -> Result<Response<DecisionEvent>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }
}

async fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ActuatorServiceServer::new(FakeActuator))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

fn args(actuator: &str, rest: &[&str]) -> Vec<String> {
    ["--actuator-addr", actuator]
        .iter()
        .chain(rest)
        .map(|s| (*s).to_owned())
        .collect()
}

#[tokio::test]
async fn status_lists_scalers_like_kubectl_get_so() {
    let url = serve().await;
    let run = ctl_async(args(&url, &["status"])).await.ok();
    assert_eq!(
        run.stdout,
        "\
NAMESPACE   NAME                           SCALETARGETKIND                SCALETARGETNAME   MIN   MAX   READY     ACTIVE    FALLBACK   PAUSED   TRIGGERS     DESIRED
default     sample-app-prometheus-scaler   apps/v1.Deployment             sample-app        1     5     True      True      False      False    prometheus   3
shop        checkout                       argoproj.io/v1alpha1.Rollout   checkout          2     10    Unknown   Unknown   Unknown    True     prometheus   4
"
    );
    let run = ctl_async(args(&url, &["status", "-n", "shop"])).await.ok();
    assert!(
        run.stdout.starts_with("NAME       SCALETARGETKIND"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), 2);
    let run = ctl_async(args(&url, &["status", "-n", "empty"])).await.ok();
    assert_eq!(run.stdout, "No PromScalers found.\n");
}

#[tokio::test]
async fn status_of_one_scaler_shows_conditions_values_and_the_last_explanation() {
    let url = serve().await;
    let run = ctl_async(args(&url, &["status", "sample-app-prometheus-scaler"]))
        .await
        .ok();
    let out = &run.stdout;
    for line in [
        "NAMESPACE         default",
        "REPLICAS          3 (status 3, ready 2)",
        "LAST VALUES       trigger-0=140",
        "LAST SCALE        2026-11-29T00:00:00Z",
        "AUTHENTICATIONS   sample-app-ta",
        "QUERY SAMPLES     1200 last interval, 144000 per hour, 50000 in all",
        "LAST DECISION   2026-11-29T00:00:00Z  default/sample-app-prometheus-scaler  replicas 2 -> 3 (scaled)  trigger-0=140",
        "EXPLANATION",
    ] {
        assert!(out.contains(line), "{line:?} in\n{out}");
    }
    assert!(out.contains("\nCONDITION "), "{out}");
    let decision = seed_event(0, 140.0, 2).decision.unwrap();
    for l in &decision.explanation {
        assert!(out.contains(&format!("  {l}\n")), "{l:?} in\n{out}");
    }

    let run = ctl_async(args(
        &url,
        &["-o", "yaml", "status", "-n", "shop", "checkout"],
    ))
    .await
    .ok();
    let v: serde_yaml::Value = serde_yaml::from_str(&run.stdout).unwrap();
    assert_eq!(v["paused"], true);
    assert_eq!(v["scale_target_kind"], "argoproj.io/v1alpha1.Rollout");
    assert_eq!(v["ready"], "Unknown");

    let run = ctl_async(args(&url, &["status", "nope"]))
        .await
        .expect_code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: the actuator at {url} does not know PromScaler default/nope; list them with `promscalerctl status`, or pass -n NAMESPACE\n"
        )
    );
}

#[tokio::test]
async fn cost_sorts_the_fleet_by_samples_per_hour_and_prices_them() {
    let url = serve().await;
    let run = ctl_async(args(&url, &["cost"])).await.ok();
    // 144,000 samples/hour × 730 hours / 1e9 × $0.10 = $0.010512 per month.
    assert_eq!(
        run.stdout,
        "\
NAMESPACE   NAME                           SAMPLES/INTERVAL   SAMPLES/HOUR   COST/MONTH
default     sample-app-prometheus-scaler   1,200              144,000        0.01
shop        checkout                       -                  -              -

Total: 144,000 samples/hour, 0.01 per month at 0.1 per billion samples (1 PromScaler(s) without a figure yet: not evaluated, or the upstream does not report samples)
"
    );
    let run = ctl_async(args(
        &url,
        &["-o", "json", "cost", "--price-per-billion-samples", "2"],
    ))
    .await
    .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["scalers"][0]["name"], "sample-app-prometheus-scaler");
    let monthly = v["total_cost_per_month"].as_f64().unwrap();
    assert!(
        (monthly - 144_000.0 / 1e9 * 2.0 * 730.0).abs() < 1e-12,
        "{monthly}"
    );
    assert_eq!(v["unknown"], 1);
    let run = ctl_async(args(&url, &["cost", "--price-per-billion-samples=-3"]))
        .await
        .expect_code(2);
    assert!(run.stderr.contains("non-negative"), "{}", run.stderr);
}

#[tokio::test]
async fn watch_prints_one_line_per_decision() {
    let url = serve().await;
    let last = |e: DecisionEvent| e.decision.unwrap().explanation.last().unwrap().clone();
    let run = ctl_async(args(&url, &["watch", "--count", "3"])).await.ok();
    assert_eq!(
        run.stdout,
        format!(
            "\
2026-11-29T00:00:00Z  default/sample-app-prometheus-scaler  replicas 2 -> 3 (scaled)  trigger-0=140  | {}
2026-11-29T00:00:05Z  shop/checkout  replicas 4  error: cannot reach the metrics-fetcher: connection refused; keeping 4 replicas
2026-11-29T00:01:00Z  default/sample-app-prometheus-scaler  replicas 3 -> 3  trigger-0=140  | {}
",
            last(seed_event(0, 140.0, 2)),
            last(seed_event(60, 140.0, 3)),
        )
    );

    let run = ctl_async(args(
        &url,
        &["-o", "json", "watch", "-n", "default", "--count", "2"],
    ))
    .await
    .ok();
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["namespace"] == "default"));
    assert_eq!(lines[0]["decision"]["desired_replicas"], 3);
    assert_eq!(lines[0]["scaled"], true);
}

#[tokio::test]
async fn an_unreachable_actuator_says_what_to_do() {
    let url = closed_port_url();
    for cmd in [&["status"][..], &["watch"][..]] {
        let run = ctl_async(args(&url, cmd)).await.expect_code(1);
        assert_eq!(
            run.stderr,
            format!(
                "error: cannot reach the actuator at {url}: connection refused; start it or set --actuator-addr\n"
            )
        );
    }
}
