use super::*;

/// The walkthrough's per-pod request rate, a service-level rule by template, and an external
/// queue rule (written for these tests from prometheus-adapter's documented examples).
const CONFIG: &str = r#"
rules:
- seriesQuery: '{__name__=~"^web_requests_total$",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "^(.*)_total$"
    as: "${1}_per_second"
  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[3m])) by (<<.GroupBy>>)'
- seriesQuery: 'ingress_hits{namespace!="",ingress!=""}'
  resources:
    template: "<<.Resource>>"
  metricsQuery: 'sum(<< .Series >>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: '{__name__="jobs_waiting",queue!=""}'
  resources:
    overrides: {namespace: {resource: "namespace"}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)'
"#;

fn config() -> Config {
    Config::parse(CONFIG).unwrap()
}

fn options() -> Options {
    Options {
        server_address: "http://prometheus:9090".into(),
        authentication_ref: None,
        series: BTreeMap::new(),
        allow_partial: false,
        query_budget: std::cell::Cell::new(MAX_TOTAL_QUERY_BYTES),
    }
}

#[test]
fn templates_expand_fields_and_reject_everything_else() {
    let t = Template::parse(
        "a<<.Series>>{<< .LabelMatchers >>} by (<<.GroupBy>>)",
        QUERY_FIELDS,
    )
    .unwrap();
    let out = t.expand(&|f| Some(format!("[{f}]"))).unwrap();
    assert_eq!(out, "a[Series]{[LabelMatchers]} by ([GroupBy])");
    let err = Template::parse("x <<.Seris>>", QUERY_FIELDS).unwrap_err();
    assert!(
        err.contains("unknown field .Seris") && err.contains("byte 2"),
        "{err}"
    );
    let err = Template::parse("<<range .GroupBySlice>>", QUERY_FIELDS).unwrap_err();
    assert!(err.contains("only field references"), "{err}");
    let err = Template::parse("<<.LabelValuesByName>>", QUERY_FIELDS).unwrap_err();
    assert!(err.contains("not supported by import-adapter"), "{err}");
    let err = Template::parse("sum(<<.Series)", QUERY_FIELDS).unwrap_err();
    assert!(err.contains("byte 4 is not closed"), "{err}");
    // Text outside the delimiters, including PromQL's own braces, is kept verbatim.
    let t = Template::parse("up{a=\"}}\"} >> 1", QUERY_FIELDS).unwrap();
    assert_eq!(t.expand(&|_| None).unwrap(), "up{a=\"}}\"} >> 1");
}

#[test]
fn go_trim_markers_drop_the_whitespace_around_actions() {
    let t = Template::parse(
        "sum( <<- .Series ->> {x} ) by (<<.GroupBy ->>\n )",
        QUERY_FIELDS,
    )
    .unwrap();
    assert_eq!(
        t.expand(&|f| Some(f.to_owned())).unwrap(),
        "sum(Series{x} ) by (GroupBy)"
    );
}

#[test]
fn template_expansion_is_bounded() {
    let big = "<<.Series>>".repeat(1000);
    let t = Template::parse(&big, QUERY_FIELDS).unwrap();
    let err = t.expand(&|_| Some("x".repeat(100))).unwrap_err();
    assert!(err.contains("more than"), "{err}");
    let err = Template::parse(&"x".repeat(MAX_TEMPLATE_BYTES + 1), QUERY_FIELDS).unwrap_err();
    assert!(err.contains("bytes"), "{err}");
}

#[test]
fn rules_name_series_as_the_adapter_does_and_invert_it() {
    let c = config();
    let rate = &c.rules[0];
    assert_eq!(
        rate.api_name("web_requests_total").as_deref(),
        Some("web_requests_per_second")
    );
    // seriesQuery's __name__ regex is anchored, as Prometheus anchors it.
    assert_eq!(rate.api_name("old_web_requests_total"), None);
    assert_eq!(
        rate.series_for("web_requests_per_second", None).unwrap(),
        "web_requests_total"
    );
    let err = rate
        .series_for("web_requests_per_minute", None)
        .unwrap_err();
    assert!(err.contains("…_per_second"), "{err}");
    // The literal series name of a rule without `name`.
    assert_eq!(
        c.rules[1].series_for("ingress_hits", None).unwrap(),
        "ingress_hits"
    );
    assert!(c.rules[1].series_for("ingress_misses", None).is_err());
}

#[test]
fn name_rules_it_cannot_invert_say_to_use_series() {
    let c = Config::parse(
        r#"
rules:
- seriesQuery: '{__name__=~"^app_.*",pod!=""}'
  seriesFilters: [{isNot: "_bucket$"}]
  resources: {overrides: {pod: {resource: pods}, namespace: {resource: namespaces}}}
  name: {matches: "^app_(.*)_(count|sum)$", as: "${2}_of_${1}"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#,
    )
    .unwrap();
    let r = &c.rules[0];
    let err = r.series_for("count_of_jobs", None).unwrap_err();
    assert!(err.contains("--series count_of_jobs=SERIES"), "{err}");
    // --series is checked against the rule (the filters and name.matches).
    assert_eq!(
        r.series_for("count_of_jobs", Some("app_jobs_count"))
            .unwrap(),
        "app_jobs_count"
    );
    assert!(r.series_for("count_of_jobs", Some("app_jobs_sum")).is_err());
    assert!(r.series_for("count_of_jobs", Some("app_x_bucket")).is_err());
}

#[test]
fn bad_configs_say_where_and_what() {
    let err = Config::parse("rules:\n- seriesQuery: x\n  metricQuery: y\n").unwrap_err();
    assert!(
        err.contains("unknown field `metricQuery`") && err.contains("line 3"),
        "{err}"
    );
    let err = Config::parse("rules: [\n").unwrap_err();
    assert!(err.contains("not YAML") && err.contains("line"), "{err}");
    let err =
        Config::parse("rules:\n- seriesQuery: x\n  metricsQuery: '<<.Bogus>>'\n").unwrap_err();
    assert!(
        err.contains("rules[0].metricsQuery") && err.contains(".Bogus"),
        "{err}"
    );
    let err =
        Config::parse("rules:\n- seriesQuery: x\n  name: {matches: '(a'}\n  metricsQuery: x\n")
            .unwrap_err();
    assert!(err.contains("rules[0].name.matches"), "{err}");
    let many = format!(
        "rules:\n{}",
        "- {seriesQuery: x, metricsQuery: x}\n".repeat(MAX_RULES + 1)
    );
    assert!(Config::parse(&many).unwrap_err().contains("more than"));
}

#[test]
fn selectors_become_sorted_matchers() {
    let sel: Value = serde_yaml::from_str(
        r#"
matchLabels: {queue: orders}
matchExpressions:
- {key: tier, operator: In, values: [gold, bronze]}
- {key: env, operator: NotIn, values: [dev]}
- {key: zone, operator: Exists}
"#,
    )
    .unwrap();
    assert_eq!(
        selector_matchers(Some(&sel)).unwrap(),
        [
            "env!=\"dev\"",
            "queue=\"orders\"",
            "tier=~\"bronze|gold\"",
            "zone!=\"\""
        ]
    );
    let bad: Value = serde_yaml::from_str("matchExpressions: [{key: a, operator: In}]").unwrap();
    assert!(selector_matchers(Some(&bad)).is_err());
}

#[test]
fn quantities_are_decimal() {
    assert_eq!(parse_quantity("100").unwrap(), "100");
    assert_eq!(parse_quantity("300m").unwrap(), "0.3");
    assert_eq!(parse_quantity("2k").unwrap(), "2000");
    assert_eq!(parse_quantity("1Ki").unwrap(), "1024");
    assert_eq!(parse_quantity("15e-1").unwrap(), "1.5");
    assert!(parse_quantity("ten").is_err());
    assert!(parse_quantity("0").is_err());
}

fn hpa(yaml: &str) -> Hpa {
    Hpa {
        id: "test".into(),
        value: serde_yaml::from_str(yaml).unwrap(),
    }
}

fn trigger(doc: &Value, i: usize) -> (&str, &str, &str) {
    let t = &doc["spec"]["triggers"][i];
    (
        t["metricType"].as_str().unwrap(),
        t["metadata"]["query"].as_str().unwrap(),
        t["metadata"]["threshold"].as_str().unwrap(),
    )
}

const HPA_HEAD: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 12
  metrics:
"#;

#[test]
fn pods_external_and_object_metrics_become_equivalent_triggers() {
    let h = hpa(&format!(
        "{HPA_HEAD}{}",
        r#"
  - type: Pods
    pods:
      metric: {name: web_requests_per_second}
      target: {type: AverageValue, averageValue: 500m}
  - type: External
    external:
      metric: {name: jobs_waiting, selector: {matchLabels: {queue: orders}}}
      target: {type: AverageValue, averageValue: "30"}
  - type: Object
    object:
      metric: {name: ingress_hits}
      describedObject: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: shop}
      target: {type: Value, value: 2k}
"#
    ));
    let out = convert_hpa(&config(), &h, &options());
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let doc = out.document.unwrap();
    assert_eq!(
        trigger(&doc, 0),
        (
            "AverageValue",
            r#"sum(sum(rate(web_requests_total{namespace="shop",pod=~"web-[bcdfghjklmnpqrstvwxz2456789]{1,10}-[bcdfghjklmnpqrstvwxz2456789]{5}"}[3m])) by (pod))"#,
            "0.5"
        )
    );
    assert_eq!(
        trigger(&doc, 1),
        (
            "AverageValue",
            r#"sum(sum(jobs_waiting{queue="orders",namespace="shop"}) by (queue))"#,
            "30"
        )
    );
    assert_eq!(
        trigger(&doc, 2),
        (
            "Value",
            r#"sum(ingress_hits{namespace="shop",ingress="shop"}) by (ingress)"#,
            "2000"
        )
    );
    assert_eq!(doc["spec"]["minReplicaCount"], 2);
    assert_eq!(doc["spec"]["maxReplicaCount"], 12);
    assert_eq!(out.notes.len(), 1, "{:?}", out.notes);
}

#[test]
fn an_hpa_with_an_untranslatable_metric_is_not_converted_unless_partial_is_allowed() {
    let h = hpa(&format!(
        "{HPA_HEAD}{}",
        r#"
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
  - type: External
    external:
      metric: {name: jobs_done}
      target: {type: Value, value: "1"}
  - type: External
    external:
      metric: {name: jobs_waiting}
      target: {type: Value, value: "10"}
"#
    ));
    let out = convert_hpa(&config(), &h, &options());
    assert!(out.document.is_none());
    assert_eq!(out.warnings.len(), 3, "{:?}", out.warnings);
    assert!(out.warnings[0].starts_with("spec.metrics[0]: not translated: Resource metric cpu"));
    assert!(
        out.warnings[1].contains("no rule of the config's externalRules exposes jobs_done"),
        "{:?}",
        out.warnings
    );
    assert!(out.warnings[2].contains("--allow-partial"));
    let partial = Options {
        allow_partial: true,
        ..options()
    };
    let out = convert_hpa(&config(), &h, &partial);
    let doc = out.document.unwrap();
    assert_eq!(
        trigger(&doc, 0),
        (
            "Value",
            r#"sum(sum(jobs_waiting{namespace="shop"}) by (queue))"#,
            "10"
        )
    );
    assert!(
        out.warnings[2].contains("scales on 1 of 3 metrics"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn overlapping_rules_and_unmapped_resources_are_reported() {
    let c = Config::parse(
        r#"
rules:
- seriesQuery: 'a_total{pod!=""}'
  name: {matches: "^(.*)_total$"}
  metricsQuery: 'x'
- seriesQuery: '{__name__=~"a_.*"}'
  name: {matches: "^(.*)_total$"}
  metricsQuery: 'y'
- seriesQuery: 'b{pod!=""}'
  resources: {overrides: {pod: {resource: pod}}}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>})'
"#,
    )
    .unwrap();
    let metric = |name: &str| {
        hpa(&format!(
            "{HPA_HEAD}  - type: Pods\n    pods:\n      metric: {{name: {name}}}\n      target: {{type: AverageValue, averageValue: '1'}}\n"
        ))
    };
    let out = convert_hpa(&c, &metric("a"), &options());
    assert!(
        out.warnings[0].contains("rules[0], rules[1] all expose a"),
        "{:?}",
        out.warnings
    );
    let out = convert_hpa(&c, &metric("b"), &options());
    assert!(
        out.warnings[0].contains("rules[2].resources maps no label to namespaces"),
        "{:?}",
        out.warnings
    );
}

#[test]
fn unnamespaced_external_rules_and_the_default_min_replicas() {
    let c = Config::parse(
        r#"
externalRules:
- seriesQuery: '{__name__="depth",queue!=""}'
  resources: {namespaced: false}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>})'
"#,
    )
    .unwrap();
    let h = hpa(r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: worker, namespace: jobs}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: StatefulSet, name: worker}
  maxReplicas: 3
  metrics:
  - type: External
    external:
      metric: {name: depth, selector: {matchLabels: {namespace: queues, queue: q1}}}
      target: {type: Value, value: "7"}
"#);
    let out = convert_hpa(&c, &h, &options());
    let doc = out.document.unwrap();
    // The HPA's namespace is not added: the selector chooses the queue's namespace.
    assert_eq!(
        trigger(&doc, 0),
        (
            "Value",
            r#"sum(max(depth{namespace="queues",queue="q1"}))"#,
            "7"
        )
    );
    assert_eq!(doc["spec"]["minReplicaCount"], 1);
    assert_eq!(doc["spec"]["scaleTargetRef"]["kind"], "StatefulSet");
    assert!(doc["spec"].get("advanced").is_none());
}

#[test]
fn hpa_lists_and_other_documents() {
    let (hpas, notes) = read_hpas(
        "f.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: autoscaling/v2\n  kind: HorizontalPodAutoscaler\n  metadata: {name: a}\n- apiVersion: autoscaling/v1\n  kind: HorizontalPodAutoscaler\n  metadata: {name: b}\n---\nkind: Service\n",
    )
    .unwrap();
    assert_eq!(hpas.len(), 1);
    assert_eq!(
        hpas[0].id,
        "HorizontalPodAutoscaler default/a (f.yaml#1 items[0])"
    );
    assert!(notes[0].contains("autoscaling/v1 is not read"), "{notes:?}");
    assert!(notes[1].contains("Service"), "{notes:?}");
    let err = read_hpas("f.yaml", "a: [").unwrap_err();
    assert!(err.contains("document 1") && err.contains("line"), "{err}");
}

#[test]
fn the_queries_of_a_run_are_bounded_in_all() {
    // Each query expands to ~56 KiB (under the per-query bound); 400 of them exceed the total.
    let refs = "<<.LabelMatchers>>,".repeat(700);
    let c = Config::parse(&format!(
        "externalRules:\n- seriesQuery: 'q{{a!=\"\"}}'\n  resources: {{namespaced: false}}\n  metricsQuery: 'x{{{refs}}}'\n"
    ))
    .unwrap();
    let value = "v".repeat(70);
    let mut yaml = HPA_HEAD.to_owned();
    for _ in 0..400 {
        yaml.push_str(&format!(
            "  - {{type: External, external: {{metric: {{name: q, selector: {{matchLabels: {{a: {value}}}}}}}, target: {{type: Value, value: '1'}}}}}}\n"
        ));
    }
    let out = convert_hpa(&c, &hpa(&yaml), &options());
    assert!(out.document.is_none());
    let over: Vec<&String> = out
        .warnings
        .iter()
        .filter(|w| w.contains("exceed 16 MiB in all"))
        .collect();
    // The budget ran out part-way, and everything after it was refused.
    assert!(!over.is_empty() && over.len() < 400, "{}", over.len());
    // Only the metrics after it: 400 metrics, the failed ones, and the "not converted" line.
    assert_eq!(out.warnings.len(), over.len() + 1);
    let last = &out.warnings[out.warnings.len() - 2];
    assert!(
        last.starts_with("spec.metrics[399]: not translated: the converted queries exceed"),
        "{last}"
    );
}
