//! The service over a real tonic server on 127.0.0.1:0, against a fake Prometheus.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use pb::metrics_fetcher_service_client::MetricsFetcherServiceClient;
use pb::query_response::Result as R;
use promscaler_proto::v1::QueryErrorKind;
use tonic::transport::Channel;

use super::*;
use crate::aws::CredentialStore;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::testing::{TestServer, serve};

async fn fake_prometheus(body: &'static str) -> TestServer {
    serve(move |_req| async move { http::Response::new(Full::new(Bytes::from_static(body.as_bytes()))) }).await
}

const ONE: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"140"]}]}}"#;
const TWO: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1,"70"]},{"metric":{"pod":"b"},"value":[1,"70"]}]}}"#;

async fn client(policy: Policy) -> MetricsFetcherServiceClient<Channel> {
    let fetcher = Arc::new(Fetcher::new(
        crate::Config::default(),
        policy,
        Arc::new(CredentialStore::new(None, Metrics::default())),
        Metrics::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(FetcherService::new(fetcher).into_server())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    MetricsFetcherServiceClient::new(channel)
}

fn request(server: &TestServer, query: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        source: Some(pb::PrometheusSource {
            server_address: format!("http://{}", server.addr),
            ..Default::default()
        }),
        query: query.into(),
        caller: Some(pb::ScalerRef {
            namespace: "team-a".into(),
            name: "web".into(),
        }),
        ..Default::default()
    }
}

fn error_kind(r: &pb::QueryResponse) -> QueryErrorKind {
    match &r.result {
        Some(R::Error(e)) => QueryErrorKind::try_from(e.kind).unwrap(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn query_returns_the_single_value() {
    let prom = fake_prometheus(ONE).await;
    let mut c = client(Policy::default()).await;
    let r = c
        .query(request(&prom, "sum(x)"))
        .await
        .unwrap()
        .into_inner();
    match r.result {
        Some(R::Sample(s)) => assert_eq!(s.value, 140.0),
        other => panic!("{other:?}"),
    }
    assert!(!r.from_cache);
}

#[tokio::test]
async fn max_age_serves_from_cache() {
    let prom = fake_prometheus(ONE).await;
    let mut c = client(Policy::default()).await;
    let mut req = request(&prom, "sum(x)");
    req.max_age = Some(prost_types::Duration {
        seconds: 60,
        nanos: 0,
    });
    c.query(req.clone()).await.unwrap();
    let second = c.query(req).await.unwrap().into_inner();
    assert!(second.from_cache);
    assert_eq!(prom.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn batch_keeps_order_and_answers_invalid_entries_in_band() {
    let one = fake_prometheus(ONE).await;
    let two = fake_prometheus(TWO).await;
    let mut c = client(Policy::default()).await;
    let mut invalid = request(&one, "x");
    invalid.source = None;
    let r = c
        .query_batch(pb::QueryBatchRequest {
            queries: vec![request(&two, "x"), invalid, request(&one, "x")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.results.len(), 3);
    assert_eq!(error_kind(&r.results[0]), QueryErrorKind::MultipleSeries);
    assert_eq!(error_kind(&r.results[1]), QueryErrorKind::InvalidArgument);
    assert!(matches!(r.results[2].result, Some(R::Sample(_))));
}

#[tokio::test]
async fn oversized_batch_is_invalid_argument() {
    let prom = fake_prometheus(ONE).await;
    let mut c = client(Policy::default()).await;
    let queries = (0..1001).map(|_| request(&prom, "x")).collect();
    let status = c
        .query_batch(pb::QueryBatchRequest { queries })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn check_explains_multiple_series() {
    let prom = fake_prometheus(TWO).await;
    let mut c = client(Policy::default()).await;
    let r = c.check(request(&prom, "x")).await.unwrap().into_inner();
    assert_eq!(r.result_type, "vector");
    assert_eq!(r.series_count, 2);
    assert_eq!(r.series, vec![r#"{pod="a"}"#, r#"{pod="b"}"#]);
    assert!(!r.usable);
    assert!(
        r.advice
            .starts_with("returns 2 series; wrap it in sum(...)"),
        "{}",
        r.advice
    );
}

#[tokio::test]
async fn policy_denials_are_in_band() {
    let prom = fake_prometheus(ONE).await;
    let mut c = client(Policy {
        allowed_servers: vec!["*.amazonaws.com".parse().unwrap()],
        operator_identity_namespaces: None,
        allow_link_local: false,
        namespaces: None,
    })
    .await;
    let r = c.query(request(&prom, "x")).await.unwrap().into_inner();
    assert_eq!(error_kind(&r), QueryErrorKind::DeniedByPolicy);
    assert_eq!(prom.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn query_range_needs_a_step() {
    let prom = fake_prometheus(ONE).await;
    let mut c = client(Policy::default()).await;
    let now = prost_types::Timestamp::from(SystemTime::now());
    let status = c
        .query_range(pb::QueryRangeRequest {
            source: request(&prom, "x").source,
            query: "x".into(),
            start: Some(now),
            end: Some(now),
            step: None,
            caller: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("step"), "{}", status.message());
}

#[test]
fn basic_auth_becomes_an_authorization_header() {
    let auth = Auth::try_from(pb::upstream_auth::Method::Basic(pb::BasicAuth {
        username: "user".into(),
        password: "pass".into(),
    }))
    .unwrap();
    match auth {
        Auth::Header(h) => {
            assert_eq!(h.name, http::header::AUTHORIZATION);
            assert_eq!(h.value.expose(), "Basic dXNlcjpwYXNz");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn custom_auth_header_carries_the_token_as_is() {
    let auth = Auth::try_from(pb::upstream_auth::Method::Bearer(pb::BearerAuth {
        token: "abc".into(),
        header_name: "X-Api-Key".into(),
    }))
    .unwrap();
    match auth {
        Auth::Header(h) => {
            assert_eq!(h.name.as_str(), "x-api-key");
            assert_eq!(h.value.expose(), "abc");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn half_given_static_keys_are_invalid() {
    let err = AwsAuth::try_from(pb::AwsAuth {
        access_key_id: "AKID".into(),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.kind(), QueryErrorKind::InvalidArgument);
}

#[test]
fn reserved_custom_headers_are_invalid_arguments() {
    for name in [
        "Host",
        "connection",
        "Keep-Alive",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "X-Amz-Date",
        "x-amz-security-token",
        "Authorization",
    ] {
        let src = pb::PrometheusSource {
            server_address: "http://prom:9090".into(),
            custom_headers: [(name.to_owned(), "v".to_owned())].into(),
            ..Default::default()
        };
        let err = Source::try_from(src).unwrap_err();
        assert_eq!(err.kind(), QueryErrorKind::InvalidArgument, "{name}");
        assert!(err.to_string().contains("may not be set"), "{name}: {err}");
    }
    let tenant = pb::PrometheusSource {
        server_address: "http://prom:9090".into(),
        custom_headers: [("X-Scope-OrgID".to_owned(), "team-a".to_owned())].into(),
        ..Default::default()
    };
    assert!(Source::try_from(tenant).is_ok());
    let bearer_as_host = pb::upstream_auth::Method::Bearer(pb::BearerAuth {
        token: "t".into(),
        header_name: "Host".into(),
    });
    assert!(Auth::try_from(bearer_as_host).is_err());
}
