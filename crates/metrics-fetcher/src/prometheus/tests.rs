use std::sync::atomic::Ordering;

use http::Response;
use hyper::body::Incoming;
use promscaler_proto::v1::QueryErrorKind;
use proptest::prelude::*;

use super::*;
use crate::source::{HeaderAuth, Secret};

fn source(url: &str) -> Source {
    let (base, host) = Source::parse_base(url).unwrap();
    Source {
        base,
        host,
        custom_headers: vec![],
        query_parameters: vec![],
        namespace: None,
        unsafe_ssl: false,
        timeout: Duration::from_secs(3),
        auth: Auth::None,
    }
}

fn answer(status: u16, body: &str) -> Result<Answer, Error> {
    interpret(
        "prom:9090",
        StatusCode::from_u16(status).unwrap(),
        &HeaderMap::new(),
        body.as_bytes(),
    )
}

fn vector(values: &[(&str, &str)]) -> String {
    let series: Vec<String> = values
        .iter()
        .map(|(pod, v)| format!(r#"{{"metric":{{"pod":"{pod}"}},"value":[1700000000.5,"{v}"]}}"#))
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        series.join(",")
    )
}

fn kind(r: Result<Value, Error>) -> QueryErrorKind {
    r.unwrap_err().kind()
}

#[test]
fn one_element_vector_is_the_value() {
    let data = answer(200, &vector(&[("a", "140")])).unwrap();
    let v = reduce_instant(&data, false).unwrap();
    assert_eq!(v.value, 140.0);
    assert_eq!(
        v.at,
        Some(UNIX_EPOCH + Duration::from_secs_f64(1_700_000_000.5))
    );
}

#[test]
fn scalar_is_the_value() {
    let data = answer(
        200,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3.5"]}}"#,
    )
    .unwrap();
    assert_eq!(reduce_instant(&data, false).unwrap().value, 3.5);
}

#[test]
fn empty_result_is_zero_only_with_ignore_null_values() {
    let data = answer(200, &vector(&[])).unwrap();
    assert_eq!(
        kind(reduce_instant(&data, false)),
        QueryErrorKind::EmptyResult
    );
    assert_eq!(reduce_instant(&data, true).unwrap().value, 0.0);
}

#[test]
fn several_series_are_multiple_series_with_labels() {
    let data = answer(200, &vector(&[("a", "1"), ("b", "2")])).unwrap();
    let err = reduce_instant(&data, true).unwrap_err();
    assert_eq!(err.kind(), QueryErrorKind::MultipleSeries);
    assert!(err.to_string().contains(r#"{pod="a"}"#), "{err}");
}

#[test]
fn non_finite_values_are_not_finite_or_zero_with_ignore_null_values() {
    for text in ["NaN", "+Inf", "-Inf"] {
        let data = answer(200, &vector(&[("a", text)])).unwrap();
        assert_eq!(
            kind(reduce_instant(&data, false)),
            QueryErrorKind::NotFinite
        );
        assert_eq!(reduce_instant(&data, true).unwrap().value, 0.0);
    }
}

#[test]
fn matrix_cannot_drive_scaling() {
    let data = answer(
        200,
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"],[2,"2"]]}]}}"#,
    )
    .unwrap();
    assert_eq!(kind(reduce_instant(&data, false)), QueryErrorKind::BadQuery);
    let range = reduce_range(&data).unwrap();
    assert_eq!(range.len(), 2);
    assert_eq!(range[1].value, 2.0);
}

#[test]
fn http_statuses_map_to_error_kinds() {
    let prom_error =
        |t: &str, e: &str| format!(r#"{{"status":"error","errorType":"{t}","error":"{e}"}}"#);
    let table: Vec<(u16, String, QueryErrorKind)> = vec![
        (
            400,
            prom_error("bad_data", "parse error at char 5"),
            QueryErrorKind::BadQuery,
        ),
        (
            401,
            r#"{"message":"Unauthorized"}"#.into(),
            QueryErrorKind::Unauthenticated,
        ),
        (
            403,
            r#"{"message":"Credential should be scoped to a valid region. "}"#.into(),
            QueryErrorKind::Forbidden,
        ),
        (
            422,
            prom_error("execution", "many-to-many matching not allowed"),
            QueryErrorKind::BadQuery,
        ),
        (
            422,
            prom_error("execution", "query timed out in expression evaluation"),
            QueryErrorKind::Timeout,
        ),
        (429, "Too Many Requests".into(), QueryErrorKind::Throttled),
        (503, "Service Unavailable".into(), QueryErrorKind::Throttled),
        (
            503,
            prom_error("timeout", "query timed out"),
            QueryErrorKind::Timeout,
        ),
        (504, "Gateway Timeout".into(), QueryErrorKind::Timeout),
        (
            500,
            prom_error("internal", "boom"),
            QueryErrorKind::Upstream,
        ),
        (404, "404 page not found".into(), QueryErrorKind::Upstream),
        (
            200,
            "<html>not prometheus</html>".into(),
            QueryErrorKind::Upstream,
        ),
        (
            200,
            prom_error("bad_data", "invalid parameter"),
            QueryErrorKind::BadQuery,
        ),
    ];
    for (status, body, want) in table {
        let err = answer(status, &body).unwrap_err();
        assert_eq!(err.kind(), want, "HTTP {status} {body}: {err}");
        if status != 200 {
            assert_eq!(err.http_status(), status, "{err}");
        }
    }
}

#[test]
fn amp_region_message_is_kept_verbatim() {
    let err = answer(
        403,
        r#"{"message":"Credential should be scoped to a valid region. "}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("Credential should be scoped to a valid region."),
        "{err}"
    );
}

#[test]
fn retry_after_seconds_are_read() {
    let mut headers = HeaderMap::new();
    headers.insert(header::RETRY_AFTER, "12".parse().unwrap());
    let err = interpret("h", StatusCode::TOO_MANY_REQUESTS, &headers, b"").unwrap_err();
    assert!(matches!(
        err,
        Error::Throttled {
            retry_after: Some(d),
            ..
        } if d == Duration::from_secs(12)
    ));
}

#[test]
fn get_carries_query_time_namespace_and_parameters() {
    let mut s = source("http://prom:9090/prefix/");
    s.namespace = Some("team-a".into());
    s.query_parameters = vec![("dedup".into(), "true".into())];
    s.custom_headers = vec![(
        "x-scope-orgid".parse().unwrap(),
        "tenant-1".parse().unwrap(),
    )];
    let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
    let req = build_request(
        &s,
        "/api/v1/query",
        &[
            ("query", "sum(up{job=\"a b\"})".into()),
            ("time", format_time(t)),
        ],
        2048,
    )
    .unwrap();
    assert_eq!(req.method(), Method::GET);
    assert_eq!(
        req.uri().to_string(),
        "http://prom:9090/prefix/api/v1/query?query=sum%28up%7Bjob%3D%22a%20b%22%7D%29&time=1700000000.250&namespace=team-a&dedup=true"
    );
    assert_eq!(req.headers()["x-scope-orgid"], "tenant-1");
}

#[test]
fn long_queries_are_sent_as_post_forms() {
    let s = source("http://prom:9090");
    let long = format!("sum({})", "a".repeat(3000));
    let req = build_request(&s, "/api/v1/query", &[("query", long.clone())], 2048).unwrap();
    assert_eq!(req.method(), Method::POST);
    assert_eq!(req.uri().to_string(), "http://prom:9090/api/v1/query");
    assert_eq!(
        req.headers()[header::CONTENT_TYPE],
        "application/x-www-form-urlencoded"
    );
}

#[test]
fn auth_header_is_sensitive() {
    let mut s = source("http://prom:9090");
    s.auth = Auth::Header(HeaderAuth {
        name: header::AUTHORIZATION,
        value: Secret::new("Bearer t0ken"),
    });
    let req = build_request(&s, "/api/v1/query", &[("query", "up".into())], 2048).unwrap();
    assert!(req.headers()[header::AUTHORIZATION].is_sensitive());
    assert!(!format!("{:?}", req.headers()).contains("t0ken"));
}

proptest! {
    #[test]
    fn interpreting_arbitrary_bodies_never_panics(
        status in prop::sample::select(vec![200u16, 400, 401, 403, 422, 429, 500, 503, 504]),
        body in prop::collection::vec(any::<u8>(), 0..512),
        ignore in any::<bool>(),
    ) {
        let status = StatusCode::from_u16(status).unwrap();
        if let Ok(data) = interpret("h", status, &HeaderMap::new(), &body) {
            let _ = reduce_instant(&data, ignore);
            let _ = reduce_range(&data);
            let _ = crate::check::diagnose(Ok(data), ignore);
        }
    }

    #[test]
    fn interpreting_arbitrary_json_shapes_never_panics(
        result_type in prop::sample::select(vec!["vector", "matrix", "scalar", "string", "x"]),
        result in "[\\[\\]{}\",:0-9a-zA-Z.+-]{0,80}",
        value in "[0-9a-zA-Z.+-]{0,12}",
        ignore in any::<bool>(),
    ) {
        let bodies = [
            format!(r#"{{"status":"success","data":{{"resultType":"{result_type}","result":{result}}}}}"#),
            format!(r#"{{"status":"success","data":{{"resultType":"{result_type}","result":[{{"metric":{{}},"value":[1,"{value}"]}}]}}}}"#),
            format!(r#"{{"status":"success","data":{{"resultType":"{result_type}","result":[1e308,"{value}"]}}}}"#),
        ];
        for body in bodies {
            if let Ok(data) = interpret("h", StatusCode::OK, &HeaderMap::new(), body.as_bytes()) {
                let _ = reduce_instant(&data, ignore);
                let _ = reduce_range(&data);
                let _ = crate::check::diagnose(Ok(data), ignore);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Over a real socket.

use crate::testing::serve;

fn ok_body(body: String) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(body)))
}

fn upstream() -> Upstream {
    Upstream::new(
        UpstreamConfig::default(),
        Arc::new(CredentialStore::new(None, Metrics::default())),
        Metrics::default(),
    )
}

#[tokio::test]
async fn connections_are_kept_alive_per_server() {
    let server = serve(|_req| async { ok_body(vector(&[("a", "1")])) }).await;
    let up = upstream();
    let s = source(&format!("http://{}", server.addr));
    for _ in 0..5 {
        let data = up.instant(&s, "up", None).await.unwrap();
        assert_eq!(reduce_instant(&data, false).unwrap().value, 1.0);
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 5);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = upstream()
        .instant(&source(&format!("http://{addr}")), "up", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), QueryErrorKind::Unreachable, "{err}");
}

#[tokio::test]
async fn slow_server_is_a_timeout() {
    let (_hold, gate) = tokio::sync::watch::channel(());
    let server = serve(move |_req| {
        let mut gate = gate.clone();
        async move {
            // Never answers while the test holds the sender.
            let _ = gate.changed().await;
            ok_body(vector(&[]))
        }
    })
    .await;
    let mut s = source(&format!("http://{}", server.addr));
    s.timeout = Duration::from_millis(200);
    let err = upstream().instant(&s, "up", None).await.unwrap_err();
    assert_eq!(err.kind(), QueryErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("200ms"), "{err}");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let server = serve(|_req| async { ok_body("x".repeat(2_000_000)) }).await;
    let up = Upstream::new(
        UpstreamConfig {
            max_body_bytes: 1_000_000,
            ..UpstreamConfig::default()
        },
        Arc::new(CredentialStore::new(None, Metrics::default())),
        Metrics::default(),
    );
    let err = up
        .instant(&source(&format!("http://{}", server.addr)), "up", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), QueryErrorKind::Upstream);
    assert!(
        err.to_string().contains("larger than 1000000 bytes"),
        "{err}"
    );
}

#[tokio::test]
async fn retry_after_is_honoured_without_asking_again() {
    let server = serve(|_req| async {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"slow down")));
        *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        resp.headers_mut()
            .insert(header::RETRY_AFTER, "60".parse().unwrap());
        resp
    })
    .await;
    let up = upstream();
    let s = source(&format!("http://{}", server.addr));
    for _ in 0..3 {
        let err = up.instant(&s, "up", None).await.unwrap_err();
        assert_eq!(err.kind(), QueryErrorKind::Throttled);
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn long_query_is_posted_and_answered() {
    let server = serve(|req: Request<Incoming>| async move {
        let method = req.method().clone();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&body).to_string();
        assert_eq!(method, Method::POST);
        assert!(text.starts_with("query=sum%28"), "{text}");
        ok_body(vector(&[("a", "2")]))
    })
    .await;
    let long = format!("sum(up{{job=~\"{}\"}})", "x|".repeat(2000));
    let data = upstream()
        .instant(&source(&format!("http://{}", server.addr)), &long, None)
        .await
        .unwrap();
    assert_eq!(reduce_instant(&data, false).unwrap().value, 2.0);
}

#[tokio::test]
async fn aws_requests_are_signed_never_sent_unsigned() {
    use aws_credential_types::provider::SharedCredentialsProvider;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let s2 = seen.clone();
    let server = serve(move |req: Request<Incoming>| {
        let seen = s2.clone();
        async move {
            let auth = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            seen.lock().unwrap().push(auth);
            ok_body(vector(&[("a", "1")]))
        }
    })
    .await;
    let creds = aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "t");
    let store = CredentialStore::with_own_provider(
        Some("eu-west-1".into()),
        Metrics::default(),
        SharedCredentialsProvider::new(creds),
    );
    let up = Upstream::new(
        UpstreamConfig::default(),
        Arc::new(store),
        Metrics::default(),
    );
    let mut s = source(&format!("http://{}/workspaces/ws-1", server.addr));
    s.auth = Auth::Aws(crate::source::AwsAuth {
        region: None,
        role_arn: None,
        session_namespace: None,
        static_keys: None,
        service: "aps".into(),
    });
    up.instant(&s, "up", None).await.unwrap();
    let seen = seen.lock().unwrap();
    assert!(
        seen[0].starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && seen[0].contains("/eu-west-1/aps/aws4_request"),
        "{seen:?}"
    );
}

/// Answers 401 quoting the request's Authorization header in a 5 MB JSON message, as a
/// misbehaving upstream might.
async fn echoing_401() -> crate::testing::TestServer {
    serve(|req: Request<Incoming>| async move {
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let message = format!("bad credentials {auth} {}", "x".repeat(5_000_000));
        let body = serde_json::json!({ "message": message }).to_string();
        let mut resp = ok_body(body);
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        resp
    })
    .await
}

#[tokio::test]
async fn upstream_messages_are_bounded_and_never_quote_the_secrets_sent() {
    let server = echoing_401().await;
    let auths = [
        Auth::Header(HeaderAuth {
            name: header::AUTHORIZATION,
            value: Secret::new("Bearer tok-3x4mpl3-s3cr3t"),
        }),
        Auth::Header(HeaderAuth {
            name: header::AUTHORIZATION,
            // user:hunter2-pw
            value: Secret::new("Basic dXNlcjpodW50ZXIyLXB3"),
        }),
    ];
    for auth in auths {
        let mut s = source(&format!("http://{}", server.addr));
        s.auth = auth;
        let err = upstream().instant(&s, "up", None).await.unwrap_err();
        assert_eq!(err.kind(), QueryErrorKind::Unauthenticated, "{err}");
        let text = err.to_string();
        assert!(text.len() < 1024, "{} bytes", text.len());
        for secret in ["tok-3x4mpl3-s3cr3t", "dXNlcjpodW50ZXIyLXB3", "hunter2-pw"] {
            assert!(!text.contains(secret), "{text}");
        }
        assert!(text.contains("bad credentials"), "{text}");
    }
}

#[tokio::test]
async fn non_prometheus_bodies_are_not_quoted() {
    let server = serve(|_req| async {
        ok_body("ami-id\ninstance-id\niam/security-credentials/role".into())
    })
    .await;
    let err = upstream()
        .instant(&source(&format!("http://{}", server.addr)), "up", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), QueryErrorKind::Upstream);
    let text = err.to_string();
    assert!(!text.contains("instance-id"), "{text}");
    assert!(
        text.contains("not a Prometheus answer (HTTP 200, 48 bytes)"),
        "{text}"
    );
}

#[tokio::test]
async fn aws_signature_and_session_token_are_never_quoted() {
    use aws_credential_types::provider::SharedCredentialsProvider;
    let server = serve(|req: Request<Incoming>| async move {
        let echo: Vec<String> = ["authorization", "x-amz-security-token"]
            .iter()
            .filter_map(|h| req.headers().get(*h))
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = serde_json::json!({ "message": format!("denied: {}", echo.join(" | ")) });
        let mut resp = ok_body(body.to_string());
        *resp.status_mut() = StatusCode::FORBIDDEN;
        resp
    })
    .await;
    let creds = aws_credential_types::Credentials::new(
        "AKIDTEST",
        "s3cr3t-k3y",
        Some("s3ss10n-t0k3n".into()),
        None,
        "t",
    );
    let store = CredentialStore::with_own_provider(
        Some("eu-west-1".into()),
        Metrics::default(),
        SharedCredentialsProvider::new(creds),
    );
    let up = Upstream::new(
        UpstreamConfig::default(),
        Arc::new(store),
        Metrics::default(),
    );
    let mut s = source(&format!("http://{}/workspaces/ws-1", server.addr));
    s.auth = Auth::Aws(crate::source::AwsAuth {
        region: None,
        role_arn: None,
        session_namespace: None,
        static_keys: None,
        service: "aps".into(),
    });
    let text = up.instant(&s, "up", None).await.unwrap_err().to_string();
    assert!(text.contains("Credential=AKIDTEST/"), "{text}");
    assert!(!text.contains("s3ss10n-t0k3n"), "{text}");
    let signature = text.split("Signature=").nth(1).unwrap_or_default();
    assert!(signature.starts_with("<redacted>"), "{text}");
}

#[tokio::test]
async fn per_host_state_is_forgotten_when_unused() {
    let server = serve(|_req| async {
        let mut resp = Response::new(Full::new(Bytes::from_static(b"slow down")));
        *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        resp.headers_mut()
            .insert(header::RETRY_AFTER, "1".parse().unwrap());
        resp
    })
    .await;
    let up = upstream();
    up.instant(&source(&format!("http://{}", server.addr)), "up", None)
        .await
        .unwrap_err();
    assert_eq!(up.map_sizes(), (1, 1));
    up.prune_idle(Duration::from_secs(900));
    assert_eq!(up.map_sizes().0, 0, "no request holds the host's slots");
    let deadline = Instant::now() + Duration::from_secs(10);
    while up.map_sizes().1 != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        up.prune_idle(Duration::from_secs(900));
    }
    assert_eq!(up.map_sizes().1, 0, "expired throttling is forgotten");
}

#[tokio::test]
async fn one_tenants_throttling_does_not_silence_another_and_is_capped() {
    // Tenant "a" is throttled for an hour; tenant "b" on the same host is not.
    let server = serve(|req: Request<Incoming>| async move {
        let tenant = req.headers().get("x-scope-orgid").cloned();
        if tenant.as_ref().is_some_and(|t| t == "a") {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"slow down")));
            *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, "3600".parse().unwrap());
            resp
        } else {
            ok_body(vector(&[("a", "1")]))
        }
    })
    .await;
    let up = upstream();
    let tenant = |t: &'static str| {
        let mut s = source(&format!("http://{}", server.addr));
        s.custom_headers = vec![(
            http::HeaderName::from_static("x-scope-orgid"),
            http::HeaderValue::from_static(t),
        )];
        s
    };
    let err = up.instant(&tenant("a"), "up", None).await.unwrap_err();
    match err {
        Error::Throttled { retry_after, .. } => {
            assert_eq!(
                retry_after,
                Some(Duration::from_secs(300)),
                "capped at 5 min"
            );
        }
        other => panic!("expected throttling, got {other}"),
    }
    let data = up.instant(&tenant("b"), "up", None).await.unwrap();
    assert_eq!(reduce_instant(&data, false).unwrap().value, 1.0);
    // "a" is still refused locally, without asking the server.
    let before = server.requests.load(Ordering::SeqCst);
    up.instant(&tenant("a"), "up", None).await.unwrap_err();
    assert_eq!(server.requests.load(Ordering::SeqCst), before);
}

#[test]
fn large_answers_keep_a_bounded_summary_and_their_count() {
    let pods: Vec<(String, &str)> = (0..90_000).map(|i| (format!("pod-{i:06}"), "1")).collect();
    let refs: Vec<(&str, &str)> = pods.iter().map(|(p, v)| (p.as_str(), *v)).collect();
    let body = vector(&refs);
    let parsed = answer(200, &body).unwrap();
    assert_eq!(parsed.series_count, 90_000);
    assert_eq!(parsed.data.series_count(), MAX_KEPT_SERIES);
    let summary = parsed.summary();
    assert!(
        summary.approx_bytes() < 16 * 1024,
        "{}",
        summary.approx_bytes()
    );
    let err = reduce_instant(&summary, true).unwrap_err();
    assert!(err.to_string().contains("90000 series"), "{err}");
    assert!(err.to_string().contains(r#"{pod="pod-000000"}"#), "{err}");
    // One huge label value is cut in the summary.
    let huge = "v".repeat(1_000_000);
    let one = answer(200, &vector(&[(huge.as_str(), "7")]))
        .unwrap()
        .summary();
    assert!(one.approx_bytes() < 1024, "{}", one.approx_bytes());
    assert_eq!(reduce_instant(&one, false).unwrap().value, 7.0);
}

/// A budget of 20 requests/s with a burst of 2 and a timeout of 200 ms: 10 requests at once
/// all succeed, because the ~400 ms some of them queue is the fetcher's wait and not the
/// server's, and the server never sees more than the budget allows.
#[tokio::test]
async fn a_budget_queues_a_herd_outside_the_timeout_and_paces_the_server() {
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = arrivals.clone();
    let server = serve(move |_req| {
        let seen = seen.clone();
        async move {
            seen.lock().unwrap().push(Instant::now());
            ok_body(vector(&[("a", "7")]))
        }
    })
    .await;
    let budget = Budget::new(20.0, 2, Duration::from_secs(30)).unwrap();
    let up = Arc::new(Upstream::new(
        UpstreamConfig {
            budget: Some(budget),
            ..UpstreamConfig::default()
        },
        Arc::new(CredentialStore::new(None, Metrics::default())),
        Metrics::default(),
    ));
    let mut s = source(&format!("http://{}", server.addr));
    s.timeout = Duration::from_millis(200);
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let (up, s) = (up.clone(), s.clone());
            tokio::spawn(async move { up.instant(&s, &format!("up + {i}"), None).await })
        })
        .collect();
    for call in calls {
        let data = call.await.unwrap().expect("queued, not timed out");
        assert_eq!(reduce_instant(&data, false).unwrap().value, 7.0);
    }
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 10);
    // Token bucket: any window of length w holds at most burst + w·qps arrivals. Checked on the
    // span from the first to the last arrival (a lower bound, whatever the machine's speed).
    let span = *arrivals.iter().max().unwrap() - *arrivals.iter().min().unwrap();
    let allowed = 2.0 + span.as_secs_f64() * 20.0;
    assert!(
        10.0 <= allowed + 1e-9,
        "10 requests arrived within {span:?}: more than the budget allows"
    );
}

#[tokio::test]
async fn a_queue_over_the_longest_wait_is_refused_at_once_and_says_why() {
    let server = serve(|_req| async { ok_body(vector(&[("a", "7")])) }).await;
    let budget = Budget::new(1.0, 1, Duration::from_secs(2)).unwrap();
    let up = Arc::new(Upstream::new(
        UpstreamConfig {
            budget: Some(budget),
            ..UpstreamConfig::default()
        },
        Arc::new(CredentialStore::new(None, Metrics::default())),
        Metrics::default(),
    ));
    let s = source(&format!("http://{}", server.addr));
    // One takes the token, then three queue (1 s, 2 s, 3 s away): a fourth would wait 3 s > 2 s.
    up.instant(&s, "up", None).await.unwrap();
    let queued: Vec<_> = (0..3)
        .map(|i| {
            let (up, s) = (up.clone(), s.clone());
            tokio::spawn(async move { up.instant(&s, &format!("up + {i}"), None).await })
        })
        .collect();
    while up.queued(&s) < 3 {
        tokio::task::yield_now().await;
    }
    let err = up.instant(&s, "up + 9", None).await.unwrap_err();
    assert_eq!(err.kind(), QueryErrorKind::Throttled);
    let text = err.to_string();
    assert!(text.contains("--upstream-qps 1"), "{text}");
    assert!(text.contains("--upstream-max-queue-wait 2s"), "{text}");
    for q in queued {
        q.abort();
    }
}
