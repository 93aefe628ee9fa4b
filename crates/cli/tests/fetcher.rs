//! `check` and `simulate` against the real metrics-fetcher binary querying a real Prometheus
//! that scrapes the seed app's pods (and, for `simulate`, the real DecisionService).

mod common;

use std::time::Duration;

use common::{LIMIT, Rig, closed_port_url, ctl_async, serve_decision};
use promscaler_sandbox::prometheus::{SEED_MULTI_SERIES_QUERY, SEED_QUERY, sample_app_metrics};

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_accepts_the_seed_query_and_explains_the_per_pod_pitfall() {
    let rig = Rig::start(&[70.0, 70.0]).await.expect("rig");
    rig.prometheus
        .wait_for_value(SEED_QUERY, 140.0, LIMIT)
        .await
        .expect("Prometheus has scraped the pods");
    let good = rig.promscaler("good.yaml", SEED_QUERY);
    let bad = rig.promscaler("per-pod.yaml", SEED_MULTI_SERIES_QUERY);
    let fetcher = rig.fetcher_url.clone();

    // The seed's query: one value.
    let run = ctl_async(strings(&["--fetcher-addr", &fetcher, "check", &good]))
        .await
        .ok();
    assert_eq!(
        run.stdout,
        "TRIGGER       USABLE   RESULT   SERIES   VALUE   ADVICE\nconnections   True     vector   1        140     usable: returns one value (140)\n"
    );

    // One series per pod: not usable, with the series and the fix.
    let run = ctl_async(strings(&["--fetcher-addr", &fetcher, "check", &bad]))
        .await
        .expect_code(1);
    assert_eq!(
        run.stderr,
        "error: 1 of 1 queries cannot drive scaling; see the advice above\n"
    );
    let out = &run.stdout;
    assert!(
        out.contains(
            "connections   False    vector   2        -       returns 2 series; wrap it in sum(...)"
        ),
        "{out}"
    );
    assert!(out.contains("  returns 2 series:\n"), "{out}");
    assert!(
        out.contains(r#"pod="sample-app-0""#) && out.contains(r#"pod="sample-app-1""#),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "  fix: aggregate to one value, e.g.\n    sum({SEED_MULTI_SERIES_QUERY})\n"
        )),
        "{out}"
    );

    // The same with flags instead of a file, as JSON.
    let run = ctl_async(strings(&[
        "--fetcher-addr",
        &fetcher,
        "-o",
        "json",
        "check",
        "--server",
        &rig.prometheus.url(),
        "--query",
        SEED_MULTI_SERIES_QUERY,
    ]))
    .await
    .expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v[0]["usable"], false);
    assert_eq!(v[0]["series_count"], 2);
    assert_eq!(v[0]["error"]["kind"], "MULTIPLE_SERIES");
    assert_eq!(v[0]["fix"], format!("sum({SEED_MULTI_SERIES_QUERY})"));

    // An empty selector is reported as such.
    let run = ctl_async(strings(&[
        "--fetcher-addr",
        &fetcher,
        "check",
        "--server",
        &rig.prometheus.url(),
        "--query",
        r#"sum(websocket_active_connection_count{app_kubernetes_io_name="nope"})"#,
        "--ignore-null-values",
        "false",
    ]))
    .await
    .expect_code(1);
    assert!(run.stdout.contains("False"), "{}", run.stdout);

    // Bearer auth from a PromScalerAuthentication and its Secret in the same input, as
    // `helm template ... | promscalerctl check -` gives them.
    let with_auth = std::fs::read_to_string(&good).unwrap().replace(
        "        activationThreshold: \"0\"\n",
        "        activationThreshold: \"0\"\n        authModes: bearer\n      authenticationRef:\n        name: prometheus-bearer\n",
    );
    let authentication = "---
apiVersion: promscaler.io/v1alpha1
kind: PromScalerAuthentication
metadata: {name: prometheus-bearer, namespace: default}
spec:
  secretTargetRef:
    - {parameter: bearerToken, name: prometheus-token, key: token}
";
    let secret = "---
apiVersion: v1
kind: Secret
metadata: {name: prometheus-token, namespace: default}
data: {token: czNjcjN0}
";
    let without_secret = rig.write("bearer.yaml", &format!("{with_auth}{authentication}"));
    let run = ctl_async(strings(&[
        "--fetcher-addr",
        &fetcher,
        "check",
        &without_secret,
    ]))
    .await
    .expect_code(1);
    assert_eq!(
        run.stderr,
        format!(
            "warning: trigger connections: Secret prometheus-token (key token) is not in {without_secret}; give the value with --auth-param bearerToken=...\n\
             error: {without_secret}: spec.triggers[0].authenticationRef: authModes bearer needs parameter bearerToken; add it to the PromScalerAuthentication's secretTargetRef\n"
        )
    );
    let run = ctl_async(strings(&[
        "--fetcher-addr",
        &fetcher,
        "check",
        &without_secret,
        "--auth-param",
        "bearerToken=s3cr3t",
    ]))
    .await
    .ok();
    assert!(run.stdout.contains("connections   True "), "{}", run.stdout);
    let complete = rig.write(
        "bearer-and-secret.yaml",
        &format!("{with_auth}{authentication}{secret}"),
    );
    let run = ctl_async(strings(&["--fetcher-addr", &fetcher, "check", &complete]))
        .await
        .ok();
    assert_eq!(run.stderr, "");
    assert!(run.stdout.contains("connections   True "), "{}", run.stdout);

    // No fetcher there.
    let url = closed_port_url();
    let run = ctl_async(strings(&["--fetcher-addr", &url, "check", &good]))
        .await
        .expect_code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: cannot reach the metrics-fetcher at {url}: connection refused; start it or set --fetcher-addr\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_replays_the_range_and_writes_a_chart() {
    // An instant-valued query so the replay follows the load step without the 1m average.
    const QUERY: &str =
        r#"sum(websocket_active_connection_count{app_kubernetes_io_name="sample-app"})"#;
    let rig = Rig::start(&[20.0, 20.0]).await.expect("rig");
    rig.prometheus
        .wait_for_value(QUERY, 40.0, LIMIT)
        .await
        .expect("low load scraped");
    tokio::time::sleep(Duration::from_secs(5)).await; // history at low load
    rig.target.set(sample_app_metrics(&[100.0, 100.0]));
    rig.prometheus
        .wait_for_value(QUERY, 200.0, LIMIT)
        .await
        .expect("high load scraped");
    tokio::time::sleep(Duration::from_secs(5)).await; // history at high load
    let file = rig.promscaler("sample-app.yaml", QUERY);
    let decision = serve_decision().await;
    let chart = rig.dir.path().join("yesterday.svg");
    let chart = chart.to_str().unwrap();
    let args = |output: &str| {
        strings(&[
            "--fetcher-addr",
            &rig.fetcher_url,
            "--decision-addr",
            &decision,
            "-o",
            output,
            "simulate",
            &file,
            "--from",
            "-30s",
            "--to",
            "now",
            "--step",
            "1s",
            "--chart",
            chart,
        ])
    };

    let run = ctl_async(args("json")).await.ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["scaler"], "default/sample-app-prometheus-scaler");
    assert_eq!(v["initial_replicas"], 1);
    assert_eq!(v["lowest_replicas"], 1);
    // 200 connections / 50 = 4 replicas, reached in one step (the default scale-up policy
    // allows +4 pods per 15 s).
    assert_eq!(v["highest_replicas"], 4);
    assert_eq!(v["final_replicas"], 4);
    assert_eq!(v["scale_ups"], 1);
    assert_eq!(v["scale_downs"], 0);
    assert_eq!(v["events"][0]["from"], 1);
    assert_eq!(v["events"][0]["to"], 4);
    assert_eq!(v["seconds_in_fallback"], 0.0);
    assert_eq!(v["seconds_at_max"], 0.0);
    let trajectory = v["trajectory"].as_array().unwrap();
    assert!(trajectory.len() >= 10, "{trajectory:?}");
    assert_eq!(trajectory.last().unwrap()["values"]["connections"], 200.0);

    let svg = std::fs::read_to_string(chart).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains(">connections</text>") && svg.contains(">desired replicas</text>"));

    let run = ctl_async(args("table")).await.ok();
    for line in [
        "SCALER             default/sample-app-prometheus-scaler",
        "SCALE EVENTS       1 (1 up, 0 down)",
        "TIME IN FALLBACK   0s (0%)",
    ] {
        assert!(run.stdout.contains(line), "{line:?} in\n{}", run.stdout);
    }
    assert!(
        run.stdout
            .contains("TIME                   FROM   TO   REASON"),
        "{}",
        run.stdout
    );

    // A per-pod query cannot be replayed; the error points at `check`.
    let per_pod = rig.promscaler(
        "per-pod.yaml",
        r#"websocket_active_connection_count{app_kubernetes_io_name="sample-app"}"#,
    );
    let mut a = args("table");
    let i = a.iter().position(|x| x == &file).unwrap();
    a[i] = per_pod;
    let run = ctl_async(a).await.expect_code(1);
    assert!(
        run.stderr
            .starts_with("error: trigger connections: the range query failed (MULTIPLE_SERIES): "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .ends_with("; `promscalerctl check` explains why\n"),
        "{}",
        run.stderr
    );
}
