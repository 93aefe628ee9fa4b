use super::*;

fn fused(queries: &[&str]) -> String {
    let members: Vec<Fusable> = queries.iter().map(|q| analyse(q).unwrap()).collect();
    let first = &members[0].candidates[0];
    for m in &members {
        let c = m
            .candidates
            .iter()
            .find(|c| c.label == first.label)
            .unwrap();
        assert_eq!(c.template, first.template, "{queries:?}");
    }
    let values: Vec<&str> = members
        .iter()
        .map(|m| {
            m.candidates
                .iter()
                .find(|c| c.label == first.label)
                .unwrap()
                .value
                .as_str()
        })
        .collect();
    fused_query(&members[0].expr, &first.label, &values).unwrap()
}

#[test]
fn aggregations_of_per_series_expressions_fuse_grouped_by_the_label() {
    assert_eq!(
        fused(&[
            r#"sum(rate(http_requests_total{app="checkout"}[2m]))"#,
            r#"sum( rate(http_requests_total{app="cart"}[120s]) )"#,
        ]),
        r#"sum by (app) (rate(http_requests_total{app=~"^(?:checkout|cart)$"}[2m]))"#
    );
    for agg in ["sum", "avg", "min", "max", "count"] {
        let q = format!(r#"{agg}(avg_over_time(g{{app="a",job="x"}}[1m]) * 100)"#);
        let f = analyse(&q).unwrap();
        let labels: Vec<&str> = f.candidates.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels, ["app", "job"], "{q}");
    }
}

#[test]
fn histogram_quantile_groups_by_le_and_the_label() {
    assert_eq!(
        fused(&[
            r#"histogram_quantile(0.9, sum by (le) (rate(h_bucket{app="a"}[5m])))"#,
            r#"histogram_quantile(0.9, sum(rate(h_bucket{app="b"}[5m])) by (le))"#,
        ]),
        r#"histogram_quantile(0.9, sum by (le, app) (rate(h_bucket{app=~"^(?:a|b)$"}[5m])))"#
    );
}

#[test]
fn binary_operations_between_roots_match_on_the_label() {
    assert_eq!(
        fused(&[
            r#"sum(rate(errors{app="a"}[1m])) / sum(rate(requests{app="a"}[1m])) > bool 0.1"#,
            r#"sum(rate(errors{app="b"}[1m])) / sum(rate(requests{app="b"}[1m])) > bool 0.1"#,
        ]),
        r#"sum by (app) (rate(errors{app=~"^(?:a|b)$"}[1m])) / on (app) sum by (app) (rate(requests{app=~"^(?:a|b)$"}[1m])) > bool 0.1"#
    );
    // A scalar side needs no matching; a vector/vector comparison keeps `bool`.
    assert_eq!(
        fused(&[
            r#"2 * max(g{app="a"}) >= bool min(g{app="a"})"#,
            r#"2 * max(g{app="b"}) >= bool min(g{app="b"})"#,
        ]),
        r#"2 * max by (app) (g{app=~"^(?:a|b)$"}) >= bool on (app) min by (app) (g{app=~"^(?:a|b)$"})"#
    );
}

#[test]
fn shapes_that_are_not_exact_stay_unfused_with_their_reason() {
    let cases = [
        (r#"topk(1, x{app="a"})"#, Reason::Aggregation),
        (r#"quantile(0.5, x{app="a"})"#, Reason::Aggregation),
        (r#"sum by (pod) (x{app="a"})"#, Reason::Grouped),
        (r#"sum without (pod) (x{app="a"})"#, Reason::Grouped),
        (
            r#"histogram_quantile(0.9, sum by (le, pod) (rate(h_bucket{app="a"}[5m])))"#,
            Reason::Grouped,
        ),
        (r#"sum(x{app="a"}) or vector(0)"#, Reason::SetOperator),
        (
            r#"sum(x{app="a"}) and sum(y{app="a"})"#,
            Reason::SetOperator,
        ),
        (r#"sum(vector(1))"#, Reason::Function),
        (
            r#"sum(label_replace(x{app="a"}, "app", "b", "", ""))"#,
            Reason::Function,
        ),
        (r#"rate(x{app="a"}[1m])"#, Reason::NoAggregation),
        (r#"x{app="a"}"#, Reason::NoAggregation),
        (r#"abs(rate(x{app="a"}[1m]))"#, Reason::NoAggregation),
        (
            r#"sum(max_over_time(rate(x{app="a"}[1m])[5m:1m]))"#,
            Reason::Subquery,
        ),
        (
            r#"sum(x{app="a"}) / on (pod) sum(y{app="a"})"#,
            Reason::VectorMatching,
        ),
        (
            r#"sum(x{app="a"} * on (pod) y{app="a"})"#,
            Reason::VectorMatching,
        ),
        (
            r#"sum(x{app="a"} * ignoring (pod) group_left y{app="a"})"#,
            Reason::VectorMatching,
        ),
        (
            r#"sum(max by (pod) (x{app="a"}))"#,
            Reason::NestedAggregation,
        ),
        (
            r#"sum(x{app="a"}) / sum(y{app="b"})"#,
            Reason::NoCommonLabel,
        ),
        (r#"sum(x{app=~"a"})"#, Reason::NoCommonLabel),
        (r#"sum(x{app="a",app!="b"})"#, Reason::NoCommonLabel),
        (r#"sum(x)"#, Reason::NoCommonLabel),
        (r#"sum(x{le="1"})"#, Reason::NoCommonLabel),
        (r#"sum(x{app="a"}"#, Reason::Parse),
    ];
    for (query, reason) in cases {
        assert_eq!(analyse(query).map(|_| ()), Err(reason), "{query}");
    }
}

#[test]
fn offsets_and_other_differences_make_different_families() {
    let template = |q: &str| analyse(q).unwrap().candidates[0].template.clone();
    assert_ne!(
        template(r#"sum(rate(x{app="a"}[1m] offset 5m))"#),
        template(r#"sum(rate(x{app="a"}[1m]))"#)
    );
    assert_ne!(
        template(r#"sum(rate(x{app="a"}[1m]))"#),
        template(r#"sum(rate(x{app="a"}[2m]))"#)
    );
    assert_ne!(
        template(r#"sum(x{app="a"}) + 1"#),
        template(r#"sum(x{app="a"}) + 2"#)
    );
    assert_eq!(
        template(r#"sum(rate(x{app="a"}[1m] offset 5m))"#),
        template(r#"sum(rate(x{app="zzz"}[1m] offset 5m))"#)
    );
}

#[test]
fn hostile_label_values_are_escaped_and_match_only_themselves() {
    let values = [
        r#"a"b\c"#,
        ".*",
        "x|y",
        "(?i)A",
        "^$[]{}+?",
        "new\nline\ttab",
        "ünï©ødé",
        "",
        "'",
        "`",
    ];
    let queries: Vec<String> = values
        .iter()
        .map(|v| {
            let lit = promql_parser::parser::StringLiteral { val: (*v).into() }.to_string();
            format!("sum(x{{app={lit}}})")
        })
        .collect();
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let text = fused(&refs);
    // The fused query parses, and its matcher matches each value and nothing else.
    let expr = parser::parse(&text).unwrap();
    let mut selectors = Vec::new();
    collect_selectors(&expr, &mut selectors);
    let m = &selectors[0].matchers.matchers[0];
    for v in values {
        assert!(m.is_match(v), "{v:?} in {text}");
    }
    for other in ["ab", "a", "xy", "x", "A", "a\"b\\cd", "zz", "new"] {
        assert!(!m.is_match(other), "{other:?} in {text}");
    }
}

#[test]
fn quote_meta_escapes_as_go_does() {
    assert_eq!(quote_meta(r"a.b*c"), r"a\.b\*c");
    assert_eq!(
        quote_meta(r"\.+*?()|[]{}^$"),
        r"\\\.\+\*\?\(\)\|\[\]\{\}\^\$"
    );
    assert_eq!(quote_meta("plain-text_1 ~#&"), "plain-text_1 ~#&");
}

#[test]
fn long_and_deep_queries_are_not_parsed() {
    let long = format!(r#"sum(x{{app="{}"}})"#, "a".repeat(MAX_QUERY_BYTES));
    assert_eq!(analyse(&long).map(|_| ()), Err(Reason::TooLong));
    let deep = format!(
        r#"sum({}x{{app="a"}}{})"#,
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    );
    assert_eq!(analyse(&deep).map(|_| ()), Err(Reason::TooDeep));
    let negations = format!(r#"sum({}x{{app="a"}})"#, "-".repeat(MAX_OPERATORS + 1));
    assert_eq!(analyse(&negations).map(|_| ()), Err(Reason::TooDeep));
    let chain = format!(
        r#"sum(x{{app="a"}}{})"#,
        r#" * x{app="a"}"#.repeat(MAX_OPERATORS / 2)
    );
    assert_eq!(analyse(&chain).map(|_| ()), Err(Reason::TooDeep));
    // Operators inside strings do not count.
    let quoted = format!(r#"sum(x{{app="{}"}})"#, "-".repeat(MAX_OPERATORS + 1));
    assert!(analyse(&quoted).is_ok());
}

#[test]
fn the_worst_accepted_query_is_analysed_on_a_small_stack() {
    // Within the limits: as deep as allowed, as long as allowed. Tokio's worker threads have
    // 2 MiB stacks; this runs on 512 KiB.
    let deep = format!(
        r#"sum({}x{{app="a"}}{})"#,
        "(".repeat(MAX_NESTING - 2),
        ")".repeat(MAX_NESTING - 2)
    );
    let mut negated = String::from(r#"x{app="a"}"#);
    for _ in 0..(MAX_OPERATORS - 2) {
        negated = format!("-{negated}");
    }
    let negated = format!("sum({negated})");
    let name = "m".repeat(50);
    let mut long = format!(r#"sum({name}{{app="a"}}"#);
    while long.len() < MAX_QUERY_BYTES - 80 && complexity(&long).1 < MAX_OPERATORS - 2 {
        long.push_str(&format!(r#" * {name}{{app="a"}}"#));
    }
    long.push(')');
    assert!(complexity(&long).1 >= MAX_OPERATORS - 2, "{long}");
    let handle = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            for q in [deep, negated, long] {
                let f = analyse(&q).unwrap_or_else(|r| panic!("{r:?}: {q}"));
                let values = ["a", "b"];
                fused_query(&f.expr, "app", &values).unwrap();
            }
        })
        .unwrap();
    handle.join().unwrap();
}
