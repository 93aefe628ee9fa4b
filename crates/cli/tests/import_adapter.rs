//! `import-adapter`: prometheus-adapter rules and the HPAs using them, converted to PromScalers
//! (tests/data/adapter), and the converted queries evaluated by a real Prometheus against the
//! queries prometheus-adapter would have sent.

mod common;

use common::{LIMIT, Rig, ctl, ctl_async, ctl_with_stdin, data};

const SERVER: &str = "http://prometheus.monitoring.svc:9090";

#[test]
fn a_whole_migration_converts_what_it_can_and_says_what_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("promscalers.yaml");
    let out = out.to_str().unwrap();
    let run = ctl(&[
        "import-adapter",
        &data("adapter/adapter-config.yaml"),
        &data("adapter/hpas.yaml"),
        "--server-address",
        SERVER,
    ])
    .ok();
    // tests/data/adapter/promscalers.yaml is this output under a comment line.
    let expected = std::fs::read_to_string(data("adapter/promscalers.yaml")).unwrap();
    assert_eq!(run.stdout, expected.split_once('\n').unwrap().1);
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            "note: HorizontalPodAutoscaler shop/checkout (tests/data/adapter/hpas.yaml#1 items[0]): spec.metrics[0] (checkout_requests_per_second): the adapter matched the pods of Deployment checkout by their names; the query matches the names a Deployment gives its pods (checkout-[bcdfghjklmnpqrstvwxz2456789]{1,10}-[bcdfghjklmnpqrstvwxz2456789]{5})",
            "warning: HorizontalPodAutoscaler shop/search (tests/data/adapter/hpas.yaml#1 items[1]): spec.metrics[0]: not translated: Resource metric cpu comes from the resource metrics API (metrics-server or the adapter's resourceRules), not from these rules; write a Prometheus query for it (e.g. over container_cpu_usage_seconds_total) and add it as a trigger by hand",
            "warning: HorizontalPodAutoscaler shop/search (tests/data/adapter/hpas.yaml#1 items[1]): spec.metrics[1]: not translated: no rule of the config's rules exposes search_queries_per_second",
            "warning: HorizontalPodAutoscaler shop/search (tests/data/adapter/hpas.yaml#1 items[1]): no metric could be translated; not converted",
        ]
    );
    // The same from stdin to a file, and the file passes `validate`.
    let hpas = std::fs::read_to_string(data("adapter/hpas.yaml")).unwrap();
    let run = ctl_with_stdin(
        &[
            "import-adapter",
            &data("adapter/adapter-config.yaml"),
            "--server-address",
            SERVER,
            "--out",
            out,
        ],
        Some(&hpas),
    )
    .ok();
    assert_eq!(run.stdout, "");
    assert_eq!(
        std::fs::read_to_string(out).unwrap(),
        expected.split_once('\n').unwrap().1
    );
    ctl(&["validate", out]).ok();
    // -o json: an array of the same documents.
    let run = ctl(&[
        "-o",
        "json",
        "import-adapter",
        &data("adapter/adapter-config.yaml"),
        &data("adapter/hpas.yaml"),
        "--server-address",
        SERVER,
        "--authentication-ref",
        "amp",
    ])
    .ok();
    let docs: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(docs.as_array().unwrap().len(), 1);
    assert_eq!(
        docs[0]["spec"]["triggers"][2]["authenticationRef"]["name"],
        "amp"
    );
}

#[test]
fn nothing_convertible_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hpa = dir.path().join("hpa.yaml");
    std::fs::write(
        &hpa,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: api, namespace: web}\nspec:\n  scaleTargetRef: {kind: Deployment, name: api}\n  maxReplicas: 4\n  metrics:\n  - type: Resource\n    resource: {name: memory, target: {type: AverageValue, averageValue: 1Gi}}\n",
    )
    .unwrap();
    let out = dir.path().join("out.yaml");
    let run = ctl(&[
        "import-adapter",
        &data("adapter/adapter-config.yaml"),
        hpa.to_str().unwrap(),
        "--server-address",
        SERVER,
        "--out",
        out.to_str().unwrap(),
    ])
    .expect_code(1);
    assert!(!out.exists());
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(
        lines[0].contains("spec.metrics[0]: not translated: Resource metric memory"),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().unwrap(),
        &"error: none of the 1 HorizontalPodAutoscaler(s) could be converted; nothing was written (the reasons are above)"
    );
}

#[test]
fn bad_input_names_the_file_and_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let hpas = data("adapter/hpas.yaml");
    let run_with = |config: &str, hpa: &str| {
        ctl(&["import-adapter", config, hpa, "--server-address", SERVER]).expect_code(1)
    };
    let bad_field = write(
        "field.yaml",
        "rules:\n- seriesQuery: 'x{pod!=\"\"}'\n  metricsQuery: 'sum(<<.Series>>{<<.Labels>>})'\n",
    );
    let run = run_with(&bad_field, &hpas);
    assert_eq!(
        run.stderr,
        format!(
            "error: {bad_field}: rules[0].metricsQuery: <<.Labels>> at byte 16: unknown field .Labels; the fields are .Series, .LabelMatchers, .GroupBy\n"
        )
    );
    let bad_yaml = write(
        "yaml.yaml",
        "rules:\n- seriesQuery: 'x'\n  metricsQuery: [\n",
    );
    let run = run_with(&bad_yaml, &hpas);
    assert!(
        run.stderr
            .starts_with(&format!("error: {bad_yaml}: not YAML: "))
            && run.stderr.contains("line 4"),
        "{}",
        run.stderr
    );
    let bad_hpa = write("hpa.yaml", "kind: List\nitems: [\n");
    let run = run_with(&data("adapter/adapter-config.yaml"), &bad_hpa);
    assert!(
        run.stderr
            .starts_with(&format!("error: {bad_hpa}: document 1 is not YAML")),
        "{}",
        run.stderr
    );
    // Inputs are bounded: a file over 4 MiB is refused before it is parsed.
    let big = write("big.yaml", &format!("# {}\n", "x".repeat(4 << 20)));
    let run = run_with(&big, &hpas);
    assert_eq!(
        run.stderr,
        format!("error: {big}: larger than 4 MiB; split it\n")
    );
}

/// What a gauge per pod and per queue looks like to Prometheus: the target's two pods, a pod of
/// another Deployment whose name starts the same, the same pod name in another namespace, and
/// a queue the HPA does not select.
const SERIES: &str = "\
# TYPE sessions_open gauge
sessions_open{namespace=\"shop\",pod=\"cart-7d9c8b6f5d-x2k4q\"} 30
sessions_open{namespace=\"shop\",pod=\"cart-7d9c8b6f5d-b8n2z\"} 50
sessions_open{namespace=\"shop\",pod=\"cart-admin-6c8d9f7b4c-q7w2p\"} 1000
sessions_open{namespace=\"staging\",pod=\"cart-7d9c8b6f5d-x2k4q\"} 1000
# TYPE jobs_pending gauge
jobs_pending{namespace=\"shop\",queue=\"carts\"} 12
jobs_pending{namespace=\"shop\",queue=\"carts\",shard=\"2\"} 5
jobs_pending{namespace=\"shop\",queue=\"mail\"} 700
jobs_pending{namespace=\"staging\",queue=\"carts\"} 900
";

const CONFIG: &str = r#"
rules:
- seriesQuery: 'sessions_open{namespace!="",pod!=""}'
  resources: {template: "<<.Resource>>"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'jobs_pending{queue!=""}'
  resources: {overrides: {namespace: {resource: namespace}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue, shard)'
"#;

const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: cart, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: cart}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Pods
    pods:
      metric: {name: sessions_open}
      target: {type: AverageValue, averageValue: "25"}
  - type: External
    external:
      metric: {name: jobs_pending, selector: {matchLabels: {queue: carts}}}
      target: {type: AverageValue, averageValue: "4"}
"#;

/// The sum of the values of a Prometheus vector answer.
fn sum_of(json: &str) -> (usize, f64) {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    let result = v["data"]["result"].as_array().unwrap();
    let sum = result
        .iter()
        .map(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        .sum();
    (result.len(), sum)
}

#[tokio::test(flavor = "multi_thread")]
async fn converted_queries_give_what_the_hpa_computed_from_the_adapter() {
    let rig = Rig::start(&[]).await.expect("rig");
    rig.target.set(SERIES.to_owned());
    rig.prometheus
        .wait_for_series("{__name__=~\"sessions_open|jobs_pending\"}", 8, LIMIT)
        .await
        .expect("Prometheus has scraped the series");
    let config = rig.write("adapter.yaml", CONFIG);
    let hpa = rig.write("hpa.yaml", HPA);
    let out = rig.dir.path().join("out.yaml").to_str().unwrap().to_owned();
    let url = rig.prometheus.url();
    let run = ctl_async(
        [
            "import-adapter",
            &config,
            &hpa,
            "--server-address",
            &url,
            "--out",
            &out,
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await
    .ok();
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr); // the pod-name note
    let docs: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let query = |i: usize| {
        docs["spec"]["triggers"][i]["metadata"]["query"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    // What prometheus-adapter sends for the pods the HPA selected (it lists them by name), and
    // what the HPA does with the answer: the average per pod, against the target.
    let adapter = rig
        .prometheus
        .query(r#"sum(sessions_open{namespace="shop",pod=~"cart-7d9c8b6f5d-x2k4q|cart-7d9c8b6f5d-b8n2z"}) by (pod)"#)
        .await
        .unwrap();
    let (pods, total) = sum_of(&adapter);
    assert_eq!((pods, total), (2, 80.0));
    // The converted trigger: AverageValue 25 on the sum, i.e. the HPA's 40 per pod over 2 pods.
    let converted = rig.prometheus.query(&query(0)).await.unwrap();
    assert_eq!(sum_of(&converted), (1, total));
    assert_eq!(docs["spec"]["triggers"][0]["metricType"], "AverageValue");

    // External: the adapter's query returns a series per (queue, shard) and the HPA sums them.
    let adapter = rig
        .prometheus
        .query(r#"sum(jobs_pending{queue="carts",namespace="shop"}) by (queue, shard)"#)
        .await
        .unwrap();
    let (series, total) = sum_of(&adapter);
    assert_eq!((series, total), (2, 17.0));
    let converted = rig.prometheus.query(&query(1)).await.unwrap();
    assert_eq!(sum_of(&converted), (1, total));

    // And the real metrics-fetcher finds both usable: one value each.
    let run = ctl_async(
        ["--fetcher-addr", &rig.fetcher_url, "check", &out]
            .map(str::to_owned)
            .to_vec(),
    )
    .await
    .ok();
    assert!(
        run.stdout
            .contains("sessions_open   True     vector   1        80 "),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("jobs_pending    True     vector   1        17 "),
        "{}",
        run.stdout
    );
}
