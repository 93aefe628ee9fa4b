//! What the actuator reads of Secrets, over the real processes: it watches Secrets as metadata
//! only, GETs a Secret only when a PromScalerAuthentication in use refers to it (and again only
//! when it changed), and a rotated credential reaches the server.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context as _, Result};
use promscaler_integration_tests::{
    cluster::{Cluster, sample_app_deployment},
    system::{System, seed_promscaler},
};
use promscaler_proto::v1::WatchDecisionsRequest;
use promscaler_sandbox::{process::poll_until, prometheus::SEED_QUERY};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_stream::StreamExt as _;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(60);

/// A gate in front of Prometheus that admits requests bearing the token it currently accepts,
/// and counts, per token, the requests it admitted.
#[derive(Clone, Default)]
struct Gate {
    accepted: Arc<Mutex<String>>,
    admitted: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Gate {
    fn accept(&self, token: &str) {
        *self.accepted.lock().unwrap() = token.to_owned();
    }

    fn admitted(&self, token: &str) -> usize {
        self.admitted
            .lock()
            .unwrap()
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    async fn start(&self, upstream: SocketAddr) -> Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let gate = self.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let gate = gate.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match client.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let accepted = gate.accepted.lock().unwrap().clone();
                    if !text.contains(&format!("authorization: bearer {accepted}")) {
                        let body = r#"{"status":"error","errorType":"unauthorized","error":"bearer token required"}"#;
                        let reply = format!(
                            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = client.write_all(reply.as_bytes()).await;
                        return;
                    }
                    *gate.admitted.lock().unwrap().entry(accepted).or_default() += 1;
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    // One request per connection: the gate checks each one.
                    let mut head = String::from_utf8_lossy(&head).into_owned();
                    head = head.replacen("\r\n", "\r\nconnection: close\r\n", 1);
                    if server.write_all(head.as_bytes()).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Ok(addr)
    }
}

/// The reads of Secrets the emulator served: (verb, name, metadata only) → count.
fn secret_reads(cluster: &Cluster) -> BTreeMap<(String, String, bool), u64> {
    let mut reads = BTreeMap::new();
    for (read, count) in cluster.emulator().reads() {
        if read.resource == "/secrets" {
            *reads
                .entry((read.verb, read.name, read.metadata_only))
                .or_default() += count;
        }
    }
    reads
}

fn gets_of(cluster: &Cluster, name: &str) -> u64 {
    secret_reads(cluster)
        .into_iter()
        .filter(|((verb, n, _), _)| verb == "get" && n == name)
        .map(|(_, count)| count)
        .sum()
}

/// The actuator lists and watches Secrets as metadata only, never GETs an unrelated Secret,
/// GETs the referenced one once while it does not change (however many ticks), and again after
/// a rotation, whose new token then reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_watched_as_metadata_and_a_rotated_token_is_read_again() -> Result<()> {
    let mut system = System::start(&[70.0, 70.0]).await?;
    system
        .prometheus
        .wait_for_value(SEED_QUERY, 140.0, WAIT)
        .await?;
    let gate = Gate::default();
    gate.accept("first-token");
    let gate_addr = gate.start(system.prometheus.addr()).await?;
    let token_secret = |token: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: prom-token\n  namespace: {NS}\ntype: Opaque\nstringData:\n  token: {token}\n"
        )
    };
    system.cluster.apply(&sample_app_deployment(NS, 2))?;
    system.cluster.apply(&token_secret("first-token"))?;
    system.cluster.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: unrelated\n  namespace: {NS}\ntype: Opaque\nstringData:\n  password: hunter2\n"
    ))?;
    system.cluster.apply(&format!(
        "apiVersion: promscaler.io/v1alpha1\nkind: PromScalerAuthentication\nmetadata:\n  name: prom-auth\n  namespace: {NS}\nspec:\n  secretTargetRef:\n    - parameter: bearerToken\n      name: prom-token\n      key: token\n"
    ))?;
    system.start_actuator("actuator-a").await?;
    let yaml = seed_promscaler(NS, &format!("http://{gate_addr}"), SEED_QUERY, 1).replace(
        "        activationThreshold: \"0\"\n",
        "        activationThreshold: \"0\"\n        authModes: bearer\n      authenticationRef:\n        name: prom-auth\n",
    );
    system.cluster.apply(&yaml)?;
    system
        .cluster
        .wait_replicas(NS, "sample-app", 3, WAIT)
        .await
        .with_context(|| system.logs())?;
    assert!(gate.admitted("first-token") >= 1);

    // Three more ticks: the Secret did not change, so it is not read again.
    let gets_before = gets_of(&system.cluster, "prom-token");
    assert!(gets_before >= 1, "{:?}", secret_reads(&system.cluster));
    let mut client = system.actuator_client(0)?;
    let mut stream = client
        .watch_decisions(WatchDecisionsRequest {
            namespace: Some(NS.into()),
        })
        .await?
        .into_inner();
    for _ in 0..3 {
        tokio::time::timeout(WAIT, stream.next())
            .await
            .context("a decision")?
            .context("the stream ended")??;
    }
    assert_eq!(gets_of(&system.cluster, "prom-token"), gets_before);

    // Rotation: the server now wants the new token, and the Secret holds it.
    gate.accept("second-token");
    system.cluster.apply(&token_secret("second-token"))?;
    poll_until("the rotated token to reach the server", WAIT, || async {
        Ok((gate.admitted("second-token") >= 1).then_some(()))
    })
    .await
    .with_context(|| system.logs())?;
    assert!(gets_of(&system.cluster, "prom-token") > gets_before);

    let reads = secret_reads(&system.cluster);
    assert_eq!(gets_of(&system.cluster, "unrelated"), 0, "{reads:?}");
    let full_lists_or_watches: Vec<_> = reads
        .iter()
        .filter(|((verb, _, metadata_only), _)| verb != "get" && !metadata_only)
        .collect();
    assert!(
        full_lists_or_watches.is_empty(),
        "Secrets listed or watched with their data: {full_lists_or_watches:?}"
    );
    assert!(
        reads
            .iter()
            .any(|((verb, _, metadata_only), _)| verb == "watch" && *metadata_only),
        "{reads:?}"
    );
    assert!(!system.logs().contains("second-token"), "{}", system.logs());
    Ok(())
}
