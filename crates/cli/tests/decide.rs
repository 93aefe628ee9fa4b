//! `decide` against the real DecisionService served in-process on 127.0.0.1:0.

mod common;

use common::{closed_port_url, ctl_async, data, serve_decision};

fn args(decision: &str, extra: &[&str]) -> Vec<String> {
    [
        "--decision-addr",
        decision,
        "decide",
        &data("sample-app.yaml"),
    ]
    .iter()
    .chain(extra)
    .map(|s| (*s).to_owned())
    .collect()
}

#[tokio::test]
async fn the_seeds_arithmetic_140_over_50_is_3_replicas() {
    let url = serve_decision().await;
    let run = ctl_async(args(&url, &["--value", "trigger-0=140", "--replicas", "2"]))
        .await
        .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "SCALER     default/sample-app-prometheus-scaler",
            "REPLICAS   2 (status 2, ready 2)",
            "DESIRED    3",
            "ACTIVE     True",
            "FALLBACK   False",
        ]
    );
    assert!(
        run.stdout.contains("\nTRIGGER     VALUE   PROPOSAL   ACTIVE   FALLBACK   ERROR\ntrigger-0   140     3          True     False\n"),
        "{}",
        run.stdout
    );
    let explanation = run.stdout.split_once("EXPLANATION\n").unwrap().1;
    assert!(explanation.contains("140"), "{explanation}");
    assert!(!explanation.trim().is_empty());
}

#[tokio::test]
async fn json_output_has_the_decision_and_a_bare_value_fits_one_trigger() {
    let url = serve_decision().await;
    let run = ctl_async(args(
        &url,
        &["--value", "140", "--replicas", "2", "-o", "json"],
    ))
    .await
    .ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["scaler"], "default/sample-app-prometheus-scaler");
    assert_eq!(v["desired_replicas"], 3);
    assert_eq!(v["active"], true);
    assert_eq!(v["triggers"][0]["name"], "trigger-0");
    assert_eq!(v["triggers"][0]["proposal"], 3);
    assert!(!v["explanation"].as_array().unwrap().is_empty());
    let ready = v["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("a Ready condition");
    assert_eq!(ready["status"], "True");
}

#[tokio::test]
async fn the_maximum_caps_the_decision() {
    let url = serve_decision().await;
    let run = ctl_async(args(
        &url,
        &["--value", "trigger-0=1000", "--replicas", "5", "-o", "yaml"],
    ))
    .await
    .ok();
    let v: serde_yaml::Value = serde_yaml::from_str(&run.stdout).unwrap();
    assert_eq!(v["desired_replicas"], 5);
    assert_eq!(v["triggers"][0]["proposal"], 20);
}

#[tokio::test]
async fn an_unknown_trigger_is_refused_before_any_call() {
    let run = ctl_async(args(
        &closed_port_url(),
        &["--value", "rps=1", "--replicas", "1"],
    ))
    .await
    .expect_code(1);
    assert_eq!(
        run.stderr,
        "error: --value \"rps=1\": no trigger named \"rps\"; this PromScaler has triggers trigger-0 (unnamed triggers are trigger-<index>)\n"
    );
}

#[tokio::test]
async fn an_unreachable_decision_service_says_what_to_do() {
    let url = closed_port_url();
    let run = ctl_async(args(&url, &["--value", "140", "--replicas", "2"]))
        .await
        .expect_code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: cannot reach the decision service at {url}: connection refused; start it or set --decision-addr\n"
        )
    );
}

#[tokio::test]
async fn a_service_that_never_answers_is_bounded_by_timeout() {
    // Accepts connections and never speaks HTTP/2.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut a = args(&url, &["--value", "140", "--replicas", "2"]);
    a.extend(["--timeout".to_owned(), "500ms".to_owned()]);
    let run = ctl_async(a).await.expect_code(1);
    assert_eq!(
        run.stderr,
        format!(
            "error: the decision service at {url} did not answer Decide within 500ms; check that it is healthy, or raise --timeout\n"
        )
    );
}
