//! The decision service's request path without the network: decode a `DecideRequest` from
//! protobuf bytes, convert, decide, convert back and encode the `DecideResponse`. Same scenario
//! as `promscaler-core`'s `decide` bench (2 triggers, default behavior, 5-minute history), so the
//! difference is the adapter's cost. The loopback RPC benchmark lives in `xtask bench`.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use promscaler_decision::grpc::decide;
use promscaler_proto::v1::DecideRequest;
use prost::Message as _;

fn request() -> DecideRequest {
    promscaler_proto::examples::decide_request()
}

fn bench(c: &mut Criterion) {
    let bytes = request().encode_to_vec();
    let mut group = c.benchmark_group("decide_wire");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_decide_encode", |b| {
        b.iter(|| {
            let req = DecideRequest::decode(black_box(bytes.as_slice())).expect("decode");
            let resp = decide(&req, SystemTime::UNIX_EPOCH).expect("decide");
            black_box(resp.encode_to_vec())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
