//! Shared helpers: start an emulator, a kube client for it, bounded waits.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use promscaler_kube_emulator::{Emulator, EmulatorHandle, SimConfig};

/// Upper bound for any single await in these tests.
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

pub(crate) async fn start() -> EmulatorHandle {
    within(
        Emulator::builder()
            .workload_sim(SimConfig {
                startup_delay: Duration::from_millis(50),
            })
            .bookmark_interval(Duration::from_millis(200))
            .start("127.0.0.1:0"),
    )
    .await
    .expect("the emulator starts")
}

pub(crate) fn client(emulator: &EmulatorHandle) -> kube::Client {
    let config = kube::Config::new(emulator.url().parse().expect("a valid URL"));
    kube::Client::try_from(config).expect("a client")
}

/// Awaits `fut`, failing the test after [`LIMIT`].
pub(crate) async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, fut).await.expect("timed out")
}

/// Polls `check` until it returns `Some`, failing the test after [`LIMIT`].
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        if let Some(v) = tokio::time::timeout(LIMIT, check())
            .await
            .expect("a check timed out")
        {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
