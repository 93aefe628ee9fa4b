//! `cargo xtask soak --minutes N [--seed S] [--no-aws]`: the sandbox under a load curve while
//! a random schedule kills and restarts the fetcher, the decision service, Prometheus, STS and
//! the leading actuator, and makes the API emulator answer 409/500/504 or slowly; the
//! invariants of [`checks`] are checked all along (docs/operations.md, "The fault soak").
//!
//! Everything random comes from one seed, printed first: `--seed` replays the same load curve
//! and fault schedule (the processes' own timing still varies).

mod checks;
mod schedule;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use promscaler_kube_emulator::FailRule;
use promscaler_proto::v1::{WatchDecisionsRequest, actuator_service_client::ActuatorServiceClient};
use promscaler_sandbox::harness::{Sandbox, SandboxConfig};
use promscaler_sandbox::prometheus::{SEED_QUERY, ensure_prometheus};
use promscaler_sandbox::seed::{MAX_REPLICAS, MIN_REPLICAS, THRESHOLD};
use tokio::time::Instant;

use checks::{Checker, Limits, unix_of};
use schedule::{Fault, Planned};

/// The actuators' Lease duration: failover within 5 s, renewals every second.
const LEASE_DURATION_SECS: u64 = 5;
const LEASE_NAME: &str = "promscaler-actuator";
const ACTUATORS: [&str; 2] = ["soak-actuator-a", "soak-actuator-b"];

/// Options of `cargo xtask soak`.
#[derive(Debug, Clone)]
pub(crate) struct SoakOptions {
    pub(crate) root: PathBuf,
    pub(crate) minutes: f64,
    pub(crate) seed: Option<u64>,
    /// The test venv's Python for the `--aws` mode; `None` runs without STS and the gateway.
    pub(crate) aws_python: Option<PathBuf>,
}

/// A component the soak took down, to restore at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Down {
    Fetcher,
    Decision,
    Prometheus,
    Sts,
    Actuator(String),
    SlowApi,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Runs the soak; fails when an invariant broke, a process died by itself, or the system did
/// not recover once the faults stopped.
pub(crate) async fn run(options: SoakOptions) -> Result<()> {
    if !(options.minutes > 0.0 && options.minutes.is_finite()) {
        bail!("--minutes must be > 0");
    }
    let seed = options.seed.unwrap_or_else(rand::random);
    let seconds = options.minutes * 60.0;
    let aws = options.aws_python.is_some();
    let plan = schedule::plan(seed, seconds, aws);
    println!(
        "soak: seed {seed} (replay the same plan with `cargo xtask soak --minutes {} --seed \
         {seed}{}`): {} faults in {seconds:.0}s",
        options.minutes,
        if aws { "" } else { " --no-aws" },
        plan.faults.len()
    );
    ensure_prometheus()?;
    let mut config = SandboxConfig::demo(options.root.join("charts/promscaler/crds"));
    config.initial_connections = plan.load.at(0.0);
    config.actuators = ACTUATORS.iter().map(|s| (*s).to_owned()).collect();
    config.actuator_args = vec![format!("--lease-duration={LEASE_DURATION_SECS}s")];
    config.aws_python = options.aws_python.clone();
    let limits = Limits {
        min: MIN_REPLICAS,
        max: MAX_REPLICAS,
        threshold: THRESHOLD,
        // The query's one-minute average, plus scrape (1 s), file-SD refresh (1 s), polling
        // (1 s), a pod's start (1 s) and slack for a slow API.
        lag: 90.0,
        stabilization: f64::from(config.scale_down_stabilization),
        // At most one write a polling tick on average (pollingInterval 1 s): in steady state
        // the actuator writes nothing, and each change (a scale, a condition flipping) is a
        // handful of writes. A controller writing status every tick would break it.
        writes_per_minute: 60,
        // Renewals every lease-duration/5 by the leader and as many attempts by the standby.
        lease_writes_per_minute: 2 * 60 * 5 / LEASE_DURATION_SECS,
    };
    println!(
        "soak: starting the sandbox{} with actuators {} and {} (Lease {LEASE_DURATION_SECS}s)",
        if aws {
            " in --aws mode (STS + SigV4 gateway)"
        } else {
            ""
        },
        ACTUATORS[0],
        ACTUATORS[1]
    );
    let mut sandbox = Sandbox::start(&config).await?;
    let checker = Arc::new(Mutex::new(Checker::new(limits)));
    let start = Instant::now();
    let start_unix = unix_now();
    let stop = Arc::new(AtomicBool::new(false));

    let changes = tokio::spawn(follow_changes(
        sandbox.emulator().changes(),
        checker.clone(),
        start.into_std(),
        start_unix,
    ));
    let targets: Vec<(String, String)> = ACTUATORS
        .iter()
        .map(|id| {
            let url = sandbox
                .actuator_mut(id)
                .map(|a| a.grpc_url())
                .unwrap_or_default();
            ((*id).to_owned(), url)
        })
        .collect();
    let decisions = tokio::spawn(follow_decisions(targets, checker.clone(), stop.clone()));

    let result = drive(
        &mut sandbox,
        &plan.load,
        &plan.faults,
        seconds,
        &checker,
        start,
    )
    .await;
    let recovery = match &result {
        Ok(()) => recover(&mut sandbox).await,
        Err(_) => Ok(()),
    };
    stop.store(true, Ordering::SeqCst);
    decisions.abort();
    changes.abort();
    let mut checker = checker.lock().unwrap_or_else(|e| e.into_inner());
    checker.finish(unix_now());
    let counts = checker.counts.clone();
    println!("\nsoak: summary (seed {seed}, {seconds:.0}s)");
    let mut applied: BTreeMap<&str, u32> = BTreeMap::new();
    for f in &plan.faults {
        *applied.entry(f.fault.name()).or_default() += 1;
    }
    println!("soak: faults planned: {applied:?}");
    println!(
        "soak: decisions streamed {} ({} with a failed or stale trigger); scale-ups {}, \
         scale-downs {} ({} without a streamed decision); leader changes {}",
        counts.decisions,
        counts.decisions_with_errors,
        counts.scale_ups,
        counts.scale_downs,
        counts.scale_downs_unmatched,
        counts.leader_changes
    );
    println!(
        "soak: replicas seen within [{}, {}]; PromScaler changes {}; most writes in a minute: {} \
         (Leases aside), {} Lease writes",
        counts
            .min_replicas_seen
            .map_or("-".into(), |r| r.to_string()),
        counts
            .max_replicas_seen
            .map_or("-".into(), |r| r.to_string()),
        counts.status_writes_seen,
        counts.max_writes_per_minute,
        counts.max_lease_writes_per_minute
    );
    result?;
    recovery?;
    if !checker.violations.is_empty() {
        bail!(
            "{} invariant violation(s) (replay with --seed {seed}):\n{}\n{}",
            checker.violations.len(),
            checker.violations.join("\n"),
            sandbox.logs()
        );
    }
    println!("soak: every invariant held");
    Ok(())
}

/// The main loop: the load each second, the faults when due, the processes' health, the writes
/// of each minute.
async fn drive(
    sandbox: &mut Sandbox,
    load: &promscaler_sandbox::scenario::Scenario,
    plan: &[Planned],
    seconds: f64,
    checker: &Arc<Mutex<Checker>>,
    start: Instant,
) -> Result<()> {
    let lock = || checker.lock().unwrap_or_else(|e| e.into_inner());
    let mut next = 0;
    let mut down: BTreeMap<Down, f64> = BTreeMap::new();
    let mut minute = 0;
    let mut writes_before = write_counts(sandbox);
    let mut injected_before = sandbox.emulator().faults().injected();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticker.tick().await;
        let t = start.elapsed().as_secs_f64();
        if t > seconds {
            break;
        }
        let connections = load.at(t).round();
        sandbox.set_connections(connections);
        lock().load(t, connections);

        // Restores first, so a component is up before it can be taken down again.
        let due: Vec<Down> = down
            .iter()
            .filter(|(_, at)| **at <= t)
            .map(|(d, _)| d.clone())
            .collect();
        for component in due {
            down.remove(&component);
            restore(sandbox, &component).await?;
            println!("soak: {t:6.1}s  restored {component:?}");
        }
        while next < plan.len() && plan[next].at <= t {
            let planned = &plan[next];
            next += 1;
            let holder = lock().holder().map(str::to_owned);
            match apply(sandbox, planned, &down, holder).await? {
                Some(component) => {
                    println!(
                        "soak: {t:6.1}s  {} ({component:?} for {:.1}s)",
                        planned.fault.name(),
                        planned.duration
                    );
                    down.insert(component, t + planned.duration);
                }
                None => println!("soak: {t:6.1}s  {}", describe(planned)),
            }
        }
        // A process that died by itself is a failure (the soak's kills do not count).
        for (name, process) in [
            ("fetcher", &mut sandbox.fetcher),
            ("decision", &mut sandbox.decision),
            ("actuator", &mut sandbox.actuator),
        ] {
            process
                .check_running()
                .with_context(|| format!("the {name} died by itself at {t:.0}s"))?;
        }
        for standby in &mut sandbox.standbys {
            standby
                .check_running()
                .with_context(|| format!("a standby actuator died by itself at {t:.0}s"))?;
        }

        if t >= f64::from(minute + 1) * 60.0 {
            minute += 1;
            let writes = write_counts(sandbox);
            let injected = sandbox.emulator().faults().injected();
            let (w, l) = (writes.0 - writes_before.0, writes.1 - writes_before.1);
            lock().minute(minute, w, l, injected - injected_before);
            println!(
                "soak: {t:6.1}s  minute {minute}: {w} Kubernetes writes, {l} Lease writes, {} \
                 injected failures",
                injected - injected_before
            );
            writes_before = writes;
            injected_before = injected;
        }
        if (t as u64).is_multiple_of(10) {
            // From the commit log and Prometheus: a GET of ours would use up injected faults.
            let query = sandbox.prometheus.value(SEED_QUERY).await.ok().flatten();
            let checker = lock();
            println!(
                "soak: {t:6.1}s  load {connections:.0}, query {}, replicas {}, Ready {}, leader \
                 {}, down {:?}",
                query.map_or("-".into(), |v| format!("{v:.1}")),
                checker
                    .current_replicas()
                    .map_or("-".into(), |r| r.to_string()),
                checker.ready(),
                checker.holder().unwrap_or("-"),
                down.keys().collect::<Vec<_>>()
            );
        }
    }
    for component in std::mem::take(&mut down).into_keys() {
        restore(sandbox, &component).await?;
    }
    // The last, partial minute.
    let writes = write_counts(sandbox);
    let injected = sandbox.emulator().faults().injected();
    lock().minute(
        minute + 1,
        writes.0 - writes_before.0,
        writes.1 - writes_before.1,
        injected - injected_before,
    );
    Ok(())
}

fn describe(p: &Planned) -> String {
    match p.fault {
        Fault::DropWatches if p.expire => "api-expire-watches (410 on re-watch)".into(),
        Fault::DropWatches => p.fault.name().into(),
        Fault::Conflict | Fault::ServerError | Fault::Timeout => format!(
            "{}: the next {} {} requests on {} fail",
            p.fault.name(),
            p.count,
            p.verb.unwrap_or("any"),
            p.path
        ),
        _ => format!("{} (skipped: already down)", p.fault.name()),
    }
}

/// Applies a planned fault; returns the component it took down, if any.
async fn apply(
    sandbox: &mut Sandbox,
    p: &Planned,
    down: &BTreeMap<Down, f64>,
    holder: Option<String>,
) -> Result<Option<Down>> {
    let faults = sandbox.emulator().faults().clone();
    let component = match p.fault {
        Fault::KillFetcher => Down::Fetcher,
        Fault::KillDecision => Down::Decision,
        Fault::KillPrometheus => Down::Prometheus,
        Fault::KillSts => Down::Sts,
        Fault::SlowApi => Down::SlowApi,
        Fault::KillLeader => {
            // Only with a standby up: killing both is an outage, not a failover.
            let any_down = down.keys().any(|d| matches!(d, Down::Actuator(_)));
            match holder {
                Some(holder) if !any_down => Down::Actuator(holder),
                _ => return Ok(None),
            }
        }
        Fault::Conflict | Fault::ServerError | Fault::Timeout => {
            let status = match p.fault {
                Fault::Conflict => 409,
                Fault::ServerError => 500,
                _ => 504,
            };
            let mut rule = FailRule::new(p.path, status).times(p.count);
            if let Some(verb) = p.verb {
                rule = rule.verb(verb);
            }
            faults.fail_next(rule);
            return Ok(None);
        }
        Fault::DropWatches => {
            if p.expire {
                faults.expire_watches();
            } else {
                faults.drop_watches();
            }
            return Ok(None);
        }
    };
    if down.contains_key(&component) {
        return Ok(None);
    }
    match &component {
        Down::Fetcher => sandbox.fetcher.kill(),
        Down::Decision => sandbox.decision.kill(),
        Down::Prometheus => sandbox.prometheus.stop(),
        Down::Sts => match sandbox.sts_mut() {
            Some(sts) => sts.stop(),
            None => return Ok(None),
        },
        Down::Actuator(id) => match sandbox.actuator_mut(id) {
            Some(actuator) => actuator.kill(),
            None => return Ok(None),
        },
        Down::SlowApi => faults.set_latency(Duration::from_millis(p.latency_ms)),
    }
    Ok(Some(component))
}

async fn restore(sandbox: &mut Sandbox, component: &Down) -> Result<()> {
    match component {
        Down::Fetcher => sandbox.fetcher.respawn(),
        Down::Decision => sandbox.decision.respawn(),
        Down::Prometheus => sandbox.prometheus.restart().await,
        Down::Sts => match sandbox.sts_mut() {
            Some(sts) => sts.restart().await,
            None => Ok(()),
        },
        Down::Actuator(id) => match sandbox.actuator_mut(id) {
            Some(actuator) => actuator.respawn(),
            None => Ok(()),
        },
        Down::SlowApi => {
            sandbox.emulator().faults().set_latency(Duration::ZERO);
            Ok(())
        }
    }
}

/// Once the faults stop: every process ready again and the PromScaler Ready=True.
async fn recover(sandbox: &mut Sandbox) -> Result<()> {
    sandbox.emulator().faults().clear();
    const RECOVERY: Duration = Duration::from_secs(90);
    sandbox.fetcher.wait_ready().await?;
    sandbox.decision.wait_ready().await?;
    sandbox.actuator.wait_ready().await?;
    for standby in &mut sandbox.standbys {
        standby.wait_ready().await?;
    }
    sandbox
        .wait_condition("Ready", "True", RECOVERY)
        .await
        .context("the PromScaler did not become Ready once the faults stopped")?;
    println!("soak: recovered: every process ready, the PromScaler Ready=True");
    Ok(())
}

/// (writes other than Leases, Lease writes) the API served so far.
fn write_counts(sandbox: &Sandbox) -> (u64, u64) {
    let mut counts = (0, 0);
    for (kind, n) in sandbox.emulator().requests() {
        if !kind.is_write() {
            continue;
        }
        if kind.resource.starts_with("coordination.k8s.io/leases") {
            counts.1 += n;
        } else {
            counts.0 += n;
        }
    }
    counts
}

/// Feeds the checker every committed change of the Deployment, the PromScaler and the Lease.
async fn follow_changes(
    mut changes: promscaler_kube_emulator::Changes,
    checker: Arc<Mutex<Checker>>,
    start: std::time::Instant,
    start_unix: f64,
) {
    while let Some(change) = changes.next().await {
        let since = change.at.saturating_duration_since(start).as_secs_f64();
        let unix = start_unix + since;
        let object = &change.object;
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let mut checker = checker.lock().unwrap_or_else(|e| e.into_inner());
        match (change.resource.as_str(), name) {
            ("apps/deployments", "sample-app") => {
                if let Some(r) = object["spec"]["replicas"].as_i64() {
                    checker.replicas(since, unix, r as i32);
                }
            }
            ("promscaler.io/promscalers", _) => checker.status(unix, &object["status"]),
            ("coordination.k8s.io/leases", LEASE_NAME) => {
                let spec = &object["spec"];
                if let Some(holder) = spec["holderIdentity"].as_str() {
                    let acquired = spec["acquireTime"].as_str().and_then(unix_of);
                    checker.lease(holder, acquired);
                }
            }
            _ => {}
        }
    }
}

/// Streams the leader's decisions into the checker, moving to whichever actuator leads.
async fn follow_decisions(
    targets: Vec<(String, String)>,
    checker: Arc<Mutex<Checker>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        for (id, url) in &targets {
            let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.clone()) else {
                continue;
            };
            let Ok(channel) = endpoint
                .connect_timeout(Duration::from_secs(1))
                .connect()
                .await
            else {
                continue;
            };
            let mut client = ActuatorServiceClient::new(channel);
            // A standby refuses (FailedPrecondition, naming the leader): try the next one.
            let Ok(response) = client
                .watch_decisions(WatchDecisionsRequest { namespace: None })
                .await
            else {
                continue;
            };
            let mut stream = response.into_inner();
            // pollingInterval is 1 s: a stream silent for 5 s belongs to a deposed leader.
            while let Ok(Ok(Some(event))) =
                tokio::time::timeout(Duration::from_secs(5), stream.message()).await
            {
                checker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .decision(id, &event);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
