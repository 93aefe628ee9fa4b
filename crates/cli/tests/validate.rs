//! `validate`: offline, with the actuator's parser; exit 1 and one line per bad field.

mod common;

use common::{ctl, ctl_with_stdin, data};

#[test]
fn valid_files_pass_with_a_row_per_document() {
    let run = ctl(&["validate", &data("sample-app.yaml")]).ok();
    let rows: Vec<Vec<&str>> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["FILE", "DOC", "KIND", "NAMESPACE", "NAME", "RESULT"]
    );
    assert_eq!(
        rows[1][1..],
        [
            "1",
            "PromScaler",
            "default",
            "sample-app-prometheus-scaler",
            "valid"
        ]
    );
    assert_eq!(
        rows[2][1..],
        [
            "2",
            "PromScalerAuthentication",
            "default",
            "sample-app-ta",
            "valid"
        ]
    );
    assert_eq!(run.stderr, "");
}

#[test]
fn invalid_documents_exit_1_with_one_line_per_bad_field() {
    let file = data("bad.yaml");
    let run = ctl(&["validate", &file]).expect_code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{file}#1 PromScaler shop/typo: spec.pollingInteval: is not a known field (strict field validation rejects it; the API server would otherwise drop it); check the spelling"
            ),
            format!(
                "{file}#2 PromScaler shop/bad-values: spec.minReplicaCount: 6 is above maxReplicaCount 3; minReplicaCount must be <= maxReplicaCount"
            ),
            format!(
                "{file}#2 PromScaler shop/bad-values: spec.triggers[0].metadata.threshold: \"many\" is not a number; write a plain decimal such as 50, 0.5 or 1e3 (no quotes, units or leading '+')"
            ),
            "error: 2 of 3 documents are invalid".to_owned(),
        ]
    );
    assert!(run.stdout.contains("invalid: 2 error(s)"), "{}", run.stdout);
}

#[test]
fn json_output_lists_every_field_error() {
    let run = ctl(&["validate", "-o", "json", &data("bad.yaml")]).expect_code(1);
    let docs: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let summary: Vec<(String, bool, Vec<String>)> = docs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["valid"].as_bool().unwrap(),
                d["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["field"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "typo".to_owned(),
                false,
                vec!["spec.pollingInteval".to_owned()]
            ),
            (
                "bad-values".to_owned(),
                false,
                vec![
                    "spec.minReplicaCount".to_owned(),
                    "spec.triggers[0].metadata.threshold".to_owned()
                ]
            ),
            ("fine".to_owned(), true, vec![]),
        ]
    );
}

#[test]
fn stdin_and_yaml_output() {
    let input = std::fs::read_to_string(data("sample-app.yaml")).unwrap();
    let run = ctl_with_stdin(&["validate", "-o", "yaml", "-"], Some(&input)).ok();
    let docs: serde_yaml::Value = serde_yaml::from_str(&run.stdout).unwrap();
    assert_eq!(docs[0]["file"], "-");
    assert_eq!(docs[0]["valid"], true);
}

#[test]
fn a_file_without_promscalers_or_unreadable_is_an_actionable_error() {
    let run = ctl(&["validate", &common::corpus("seed_scaledobject.yaml")]).expect_code(1);
    assert!(
        run.stderr.contains("no promscaler.io/v1alpha1 PromScaler or PromScalerAuthentication in the input; convert KEDA manifests with `promscalerctl import-keda`"),
        "{}",
        run.stderr
    );
    let run = ctl(&["validate", "/nonexistent.yaml"]).expect_code(1);
    assert_eq!(
        run.stderr,
        "error: cannot read /nonexistent.yaml: No such file or directory (os error 2)\n"
    );
}
