//! SigV4 signing cost per request (docs/BENCHMARKS.md, "SigV4 signing cost per request"): what the fetcher adds to every AMP query
//! once credentials are cached. `cargo bench -p promscaler-metrics-fetcher --bench sigv4`.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::Full;
use promscaler_metrics_fetcher::prometheus::{build_request, format_time};
use promscaler_metrics_fetcher::sigv4::sign;
use promscaler_metrics_fetcher::source::{Auth, Source};

const SEED_QUERY: &str = r#"sum(avg_over_time(websocket_active_connection_count{app_kubernetes_io_name="sample-app"}[1m]))"#;

fn source() -> Source {
    let (base, host) = Source::parse_base(
        "https://aps-workspaces.ap-northeast-2.amazonaws.com/workspaces/ws-12345678-abcd-ef01-2345-6789abcdef01",
    )
    .unwrap();
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

fn request(max_get_url_len: usize) -> Request<Full<Bytes>> {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    build_request(
        &source(),
        "/api/v1/query",
        &[("query", SEED_QUERY.to_owned()), ("time", format_time(t))],
        max_get_url_len,
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let creds = Credentials::new(
        "ASIAEXAMPLEEXAMPLE00",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some("FQoGZXIvYXdzEBYaDEXAMPLESESSIONTOKEN".repeat(8)),
        None,
        "bench",
    );
    let now = SystemTime::now();
    c.bench_function("build_request_get", |b| b.iter(|| black_box(request(2048))));
    c.bench_function("build_and_sign_get_seed_query", |b| {
        b.iter(|| {
            let mut req = request(2048);
            sign(&mut req, &creds, "ap-northeast-2", "aps", now).unwrap();
            black_box(req)
        })
    });
    c.bench_function("build_and_sign_post_seed_query", |b| {
        b.iter(|| {
            let mut req = request(0);
            sign(&mut req, &creds, "ap-northeast-2", "aps", now).unwrap();
            black_box(req)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
