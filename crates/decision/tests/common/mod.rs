//! What the decision service's socket tests share: a real tonic server on 127.0.0.1:0 and a
//! bounded client call.

use std::time::Duration;

use promscaler_decision::grpc::DecisionGrpc;
use promscaler_proto::v1::{
    DecideRequest, DecideResponse, decision_service_client::DecisionServiceClient,
    decision_service_server::DecisionServiceServer,
};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};

/// Bound on every call.
pub(crate) const LIMIT: Duration = Duration::from_secs(10);
/// 2026-11-29T00:00:00Z.
pub(crate) const T0: i64 = 1_795_910_400;

/// Serves the decision service on 127.0.0.1:0 and connects a client to it.
pub(crate) async fn serve() -> DecisionServiceClient<Channel> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .add_service(DecisionServiceServer::new(DecisionGrpc::new()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    timeout(
        LIMIT,
        DecisionServiceClient::connect(format!("http://{addr}")),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// `T0 + secs`.
pub(crate) fn at(secs: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: T0 + secs,
        nanos: 0,
    })
}

/// One Decide call, bounded by [`LIMIT`].
pub(crate) async fn decide(
    client: &mut DecisionServiceClient<Channel>,
    req: DecideRequest,
) -> Result<DecideResponse, tonic::Status> {
    timeout(LIMIT, client.decide(req))
        .await
        .expect("answer in time")
        .map(tonic::Response::into_inner)
}
