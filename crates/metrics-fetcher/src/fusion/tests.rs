use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use promscaler_proto::v1::QueryErrorKind;

use super::*;
use crate::aws::CredentialStore;
use crate::fetcher::{Config, Fetcher};
use crate::policy::Policy;
use crate::source::{Auth, Caller, HeaderAuth, InstantQuery, Secret};
use crate::testing::{TestServer, serve};

/// A server that records the `query` of every request and answers with `answer(query)`.
struct Recording {
    server: TestServer,
    queries: Arc<Mutex<Vec<String>>>,
}

impl Recording {
    fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

async fn recording(answer: fn(&str) -> (u16, String)) -> Recording {
    let queries = Arc::new(Mutex::new(Vec::new()));
    let seen = queries.clone();
    let server = serve(move |req: http::Request<hyper::body::Incoming>| {
        let seen = seen.clone();
        async move {
            let uri_query = req.uri().query().unwrap_or_default().to_owned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let params = if body.is_empty() {
                uri_query.into_bytes()
            } else {
                body.to_vec()
            };
            let query = url::form_urlencoded::parse(&params)
                .find(|(k, _)| k == "query")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            seen.lock().unwrap().push(query.clone());
            let (status, text) = answer(&query);
            http::Response::builder()
                .status(status)
                .body(Full::new(Bytes::from(text)))
                .unwrap()
        }
    })
    .await;
    Recording { server, queries }
}

/// A vector answer with one series per `(labels, value)`.
fn vector(series: &[(&[(&str, &str)], f64)]) -> String {
    let result: Vec<String> = series
        .iter()
        .map(|(labels, v)| {
            let metric: Vec<String> = labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
            format!(
                r#"{{"metric":{{{}}},"value":[1700000000,"{v}"]}}"#,
                metric.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        result.join(",")
    )
}

fn fetcher(fusion: FusionConfig) -> (Arc<Fetcher>, Metrics) {
    let metrics = Metrics::default();
    let config = Config {
        fusion,
        ..Config::default()
    };
    let f = Arc::new(Fetcher::new(
        config,
        Policy::default(),
        Arc::new(CredentialStore::new(None, metrics.clone())),
        metrics.clone(),
    ));
    (f, metrics)
}

fn on(addr: std::net::SocketAddr, query: &str) -> InstantQuery {
    let (base, host) = Source::parse_base(&format!("http://{addr}")).unwrap();
    InstantQuery {
        source: Arc::new(Source {
            base,
            host,
            custom_headers: vec![],
            query_parameters: vec![],
            namespace: None,
            unsafe_ssl: false,
            timeout: Duration::from_secs(10),
            auth: Auth::None,
        }),
        query: query.into(),
        ignore_null_values: false,
        time: None,
        caller: Caller::default(),
        max_age: Duration::ZERO,
    }
}

fn app(v: &str) -> String {
    format!(r#"sum(rate(http_requests_total{{app="{v}"}}[2m]))"#)
}

/// A long window: a bucket is sent when the batch closes it... never by time in these tests.
fn config(max_members: usize) -> FusionConfig {
    FusionConfig {
        enabled: true,
        window: Duration::ZERO,
        max_members,
    }
}

fn by_app(query: &str) -> (u16, String) {
    if query.starts_with("sum by (app)") {
        (
            200,
            vector(&[(&[("app", "a")], 1.5), (&[("app", "b")], 2.5)]),
        )
    } else {
        (200, vector(&[(&[], 9.0)]))
    }
}

#[tokio::test]
async fn a_batch_of_look_alikes_is_one_upstream_request_and_members_without_data_are_empty() {
    let server = recording(by_app).await;
    let (f, metrics) = fetcher(config(100));
    let addr = server.server.addr;
    let mut batch: Vec<InstantQuery> = ["a", "b", "c"].iter().map(|v| on(addr, &app(v))).collect();
    let mut lenient = on(addr, &app("c"));
    lenient.ignore_null_values = true;
    // Same text as the third: coalesced with it, reduced its own way.
    batch.push(lenient);
    batch.push(on(addr, r#"topk(1, x{app="a"})"#));
    let out = f.query_batch(&batch).await.unwrap();
    assert_eq!(out[0].result.as_ref().unwrap().value, 1.5);
    assert_eq!(out[1].result.as_ref().unwrap().value, 2.5);
    assert_eq!(
        out[2].result.as_ref().unwrap_err().kind(),
        QueryErrorKind::EmptyResult
    );
    assert_eq!(out[3].result.as_ref().unwrap().value, 0.0);
    assert_eq!(out[4].result.as_ref().unwrap().value, 9.0);
    let mut queries = server.queries();
    queries.sort();
    assert_eq!(
        queries,
        [
            r#"sum by (app) (rate(http_requests_total{app=~"^(?:a|b|c)$"}[2m]))"#,
            r#"topk(1, x{app="a"})"#,
        ]
    );
    assert_eq!(metrics.fused_request_count(), 1);
    assert_eq!(metrics.unfusable_count("aggregation"), 1);
    assert_eq!(f.fuser().open_buckets(), 0);
}

#[tokio::test]
async fn members_are_capped_per_fused_query() {
    let server = recording(by_app).await;
    let (f, metrics) = fetcher(config(2));
    let addr = server.server.addr;
    let batch: Vec<InstantQuery> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|v| on(addr, &app(v)))
        .collect();
    let out = f.query_batch(&batch).await.unwrap();
    assert_eq!(out[0].result.as_ref().unwrap().value, 1.5);
    let mut queries = server.queries();
    queries.sort();
    assert_eq!(
        queries,
        [
            r#"sum by (app) (rate(http_requests_total{app=~"^(?:a|b)$"}[2m]))"#.to_owned(),
            r#"sum by (app) (rate(http_requests_total{app=~"^(?:c|d)$"}[2m]))"#.to_owned(),
            app("e"),
        ]
    );
    assert_eq!(metrics.fused_request_count(), 2);
    // The fifth was alone: its own query, answered as such.
    assert_eq!(out[4].result.as_ref().unwrap().value, 9.0);
}

#[tokio::test]
async fn different_identities_and_disabled_fusion_are_never_fused() {
    let server = recording(by_app).await;
    let addr = server.server.addr;
    let (f, _) = fetcher(config(100));
    let a = on(addr, &app("a"));
    let mut b = on(addr, &app("b"));
    Arc::make_mut(&mut b.source).auth = Auth::Header(HeaderAuth {
        name: http::header::AUTHORIZATION,
        value: Secret::new("Bearer other-tenant"),
    });
    let mut c = on(addr, &app("c"));
    Arc::make_mut(&mut c.source).timeout = Duration::from_secs(5);
    f.query_batch(&[a.clone(), b, c]).await.unwrap();
    assert_eq!(server.queries().len(), 3, "{:?}", server.queries());
    assert!(server.queries().iter().all(|q| q.starts_with("sum(")));

    let server = recording(by_app).await;
    let addr = server.server.addr;
    let (f, metrics) = fetcher(FusionConfig {
        enabled: false,
        ..config(100)
    });
    let batch: Vec<InstantQuery> = ["a", "b"].iter().map(|v| on(addr, &app(v))).collect();
    f.query_batch(&batch).await.unwrap();
    assert_eq!(server.queries().len(), 2);
    assert_eq!(metrics.fused_request_count(), 0);
}

#[tokio::test]
async fn look_alikes_from_different_callers_meet_within_the_window() {
    let server = recording(by_app).await;
    // A window that never ends in this test: the bucket goes when it is full (2 values).
    let (f, metrics) = fetcher(FusionConfig {
        enabled: true,
        window: Duration::from_secs(3600),
        max_members: 2,
    });
    let addr = server.server.addr;
    let calls: Vec<_> = ["a", "b"]
        .iter()
        .map(|v| {
            let (f, q) = (f.clone(), on(addr, &app(v)));
            tokio::spawn(async move { f.query(&q).await })
        })
        .collect();
    let mut values = Vec::new();
    for c in calls {
        values.push(c.await.unwrap().result.unwrap().value);
    }
    assert_eq!(values, [1.5, 2.5]);
    assert_eq!(server.queries().len(), 1);
    assert_eq!(metrics.fused_request_count(), 1);
}

#[tokio::test]
async fn a_rejected_fused_query_falls_back_to_each_members_own_query() {
    fn reject_fused(query: &str) -> (u16, String) {
        if query.starts_with("sum by (app)") {
            (
                422,
                r#"{"status":"error","errorType":"execution","error":"found duplicate series"}"#
                    .into(),
            )
        } else if query.contains(r#"app="b""#) {
            (
                422,
                r#"{"status":"error","errorType":"execution","error":"b alone fails too"}"#.into(),
            )
        } else {
            (200, vector(&[(&[], 4.0)]))
        }
    }
    let server = recording(reject_fused).await;
    let (f, metrics) = fetcher(config(100));
    let addr = server.server.addr;
    let batch: Vec<InstantQuery> = ["a", "b"].iter().map(|v| on(addr, &app(v))).collect();
    let out = f.query_batch(&batch).await.unwrap();
    assert_eq!(out[0].result.as_ref().unwrap().value, 4.0);
    let err = out[1].result.as_ref().unwrap_err();
    assert_eq!(err.kind(), QueryErrorKind::BadQuery);
    assert!(err.to_string().contains("b alone fails too"), "{err}");
    assert_eq!(server.queries().len(), 3);
    assert_eq!(metrics.fusion_fallback_count(), 1);
}

#[tokio::test]
async fn transport_errors_are_shared_without_a_retry() {
    fn throttle(_: &str) -> (u16, String) {
        (429, String::new())
    }
    let server = recording(throttle).await;
    let (f, _) = fetcher(config(100));
    let addr = server.server.addr;
    let batch: Vec<InstantQuery> = ["a", "b"].iter().map(|v| on(addr, &app(v))).collect();
    let out = f.query_batch(&batch).await.unwrap();
    for o in &out {
        assert_eq!(
            o.result.as_ref().unwrap_err().kind(),
            QueryErrorKind::Throttled
        );
    }
    assert_eq!(server.queries().len(), 1);
}

#[tokio::test]
async fn cached_members_do_not_go_upstream_again() {
    let server = recording(by_app).await;
    let (f, _) = fetcher(config(100));
    let addr = server.server.addr;
    let batch: Vec<InstantQuery> = ["a", "b"]
        .iter()
        .map(|v| InstantQuery {
            max_age: Duration::from_secs(60),
            ..on(addr, &app(v))
        })
        .collect();
    f.query_batch(&batch).await.unwrap();
    let again = f.query_batch(&batch).await.unwrap();
    assert!(again.iter().all(|o| o.from_cache));
    assert_eq!(again[1].result.as_ref().unwrap().value, 2.5);
    assert_eq!(server.queries().len(), 1);
}

#[tokio::test]
async fn the_label_that_varies_is_the_one_fused() {
    fn any(query: &str) -> (u16, String) {
        let label = if query.starts_with("sum by (job)") {
            "job"
        } else {
            "app"
        };
        (
            200,
            vector(&[(&[(label, "j1")], 1.0), (&[(label, "j2")], 2.0)]),
        )
    }
    let server = recording(any).await;
    let (f, _) = fetcher(config(100));
    let addr = server.server.addr;
    let batch = [
        on(addr, r#"sum(x{job="j1",app="shop"})"#),
        on(addr, r#"sum(x{job="j2",app="shop"})"#),
    ];
    let out = f.query_batch(&batch).await.unwrap();
    assert_eq!(
        out[1].result.as_ref().unwrap().value,
        2.0,
        "{:?}",
        server.queries()
    );
    assert_eq!(
        server.queries(),
        [r#"sum by (job) (x{app="shop",job=~"^(?:j1|j2)$"})"#]
    );
}

#[test]
fn a_fused_requests_samples_are_shared_by_series_and_add_up() {
    assert_eq!(
        shares(Some(100), &[1, 3, 0]),
        vec![Some(25), Some(75), Some(0)]
    );
    // Leftover units go to the largest remainders; the sum is exact.
    let split = shares(Some(10), &[1, 1, 1]);
    assert_eq!(split, vec![Some(4), Some(3), Some(3)]);
    // Nobody has a series: evenly.
    assert_eq!(shares(Some(7), &[0, 0]), vec![Some(4), Some(3)]);
    // Unknown stays unknown.
    assert_eq!(shares(None, &[2, 5]), vec![None, None]);
    let many = shares(Some(u64::MAX), &[usize::MAX, 1, 7]);
    let sum: u128 = many.iter().map(|s| u128::from(s.unwrap())).sum();
    assert_eq!(sum, u128::from(u64::MAX));
}
