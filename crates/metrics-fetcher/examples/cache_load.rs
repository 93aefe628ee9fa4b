//! Load harness for the fetcher's cache (docs/BENCHMARKS.md, "metrics-fetcher cache memory").
//!
//! Serves a fake Prometheus on 127.0.0.1:0 whose every answer is a vector of SERIES series
//! (90,000 by default: about 7 MB, under the default 8 MiB body cap), then sends QUERIES
//! distinct instant queries (8 by default) with `max_age` 60 s to a running fetcher at ADDR, so
//! each answer is cached. Measure the fetcher's RSS (`ps -o rss= -p PID`) before and after.
//!
//! ```sh
//! cargo run -p promscaler-metrics-fetcher --example cache_load -- http://127.0.0.1:50051 8 90000
//! ```

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use promscaler_proto::v1 as pb;
use promscaler_proto::v1::metrics_fetcher_service_client::MetricsFetcherServiceClient;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let queries: usize = args.next().map_or(Ok(8), |a| a.parse())?;
    let series: usize = args.next().map_or(Ok(90_000), |a| a.parse())?;

    let mut body = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for i in 0..series {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"metric":{{"__name__":"up","pod":"pod-{i:06}"}},"value":[1700000000,"1"]}}"#
        ));
    }
    body.push_str("]}}");
    let body = Bytes::from(body);
    println!("upstream answer: {} series, {} bytes", series, body.len());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let upstream = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(http::Response::new(Full::new(body))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    let mut client = MetricsFetcherServiceClient::connect(addr).await?;
    for q in 0..queries {
        let response = client
            .query(pb::QueryRequest {
                source: Some(pb::PrometheusSource {
                    server_address: format!("http://{upstream}"),
                    timeout: Some(prost_types::Duration {
                        seconds: 30,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                query: format!("up + {q}"),
                max_age: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 0,
                }),
                ..Default::default()
            })
            .await?
            .into_inner();
        let outcome = match response.result {
            Some(pb::query_response::Result::Error(e)) => {
                format!("error ({} bytes): {:.80}", e.message.len(), e.message)
            }
            other => format!("{other:?}"),
        };
        println!("query {q}: {outcome}");
    }
    Ok(())
}
