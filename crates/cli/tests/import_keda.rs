//! `import-keda` against the KEDA corpus of promscaler-api (crates/api/tests/data).

mod common;

use common::{corpus, ctl, ctl_with_stdin, data};

#[test]
fn the_seed_converts_exactly() {
    let run = ctl(&[
        "import-keda",
        &corpus("seed_scaledobject.yaml"),
        &corpus("seed_triggerauthentication.yaml"),
    ])
    .ok();
    // tests/data/sample-app.yaml is this output under a comment line; it is also what the api
    // crate's import test derives from the seed by changing only apiVersion and kind.
    let expected = std::fs::read_to_string(data("sample-app.yaml")).unwrap();
    let expected = expected.split_once('\n').unwrap().1;
    assert_eq!(run.stdout, expected);
    let mut docs = serde_yaml::Deserializer::from_str(&run.stdout)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect::<Vec<serde_yaml::Value>>();
    let seed: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(corpus("seed_scaledobject.yaml")).unwrap())
            .unwrap();
    assert_eq!(docs[0]["spec"], seed["spec"]);
    assert_eq!(docs[0]["kind"], "PromScaler");
    assert_eq!(docs.remove(1)["kind"], "PromScalerAuthentication");
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [
            "note: ScaledObject default/sample-app-prometheus-scaler (document 1): metadata.generation: dropped (set by the API server)",
            "note: ScaledObject default/sample-app-prometheus-scaler (document 1): metadata.finalizers: KEDA's finalizer dropped (promscaler adds its own)",
        ]
    );
}

#[test]
fn stdin_to_out_file_and_the_result_validates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("promscaler.yaml");
    let out = out.to_str().unwrap();
    let input = std::fs::read_to_string(corpus("every_supported_field.yaml")).unwrap();
    let run = ctl_with_stdin(&["import-keda", "-", "--out", out], Some(&input)).ok();
    assert_eq!(run.stdout, "");
    ctl(&["validate", out]).ok();
}

#[test]
fn every_importable_corpus_file_imports_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "bearer_token_prometheus.yaml",
        "cluster_trigger_authentication.yaml",
        "scaling_modifiers.yaml",
        "every_supported_field.yaml",
    ] {
        let out = dir.path().join(name);
        let out = out.to_str().unwrap();
        ctl(&["import-keda", &corpus(name), "--out", out]).ok();
        let run = ctl(&["validate", out]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
    }
}

#[test]
fn behaviour_changes_are_refused_one_per_line_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.yaml");
    let run = ctl(&[
        "import-keda",
        &corpus("refused_non_prometheus_and_unsupported.yaml"),
        "--out",
        out.to_str().unwrap(),
    ])
    .expect_code(1);
    assert!(!out.exists());
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines[0],
        "error: cannot import without changing behaviour; nothing was written:"
    );
    assert!(lines.len() > 2, "{}", run.stderr);
    // Every problem names its document and says what to do.
    for l in &lines[1..] {
        assert!(l.contains("(document "), "{l}");
    }
}

#[test]
fn json_output_is_an_array_of_documents() {
    let run = ctl(&[
        "import-keda",
        "-o",
        "json",
        &corpus("seed_triggerauthentication.yaml"),
    ])
    .ok();
    let docs: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(docs[0]["kind"], "PromScalerAuthentication");
    assert_eq!(docs[0]["spec"]["podIdentity"]["provider"], "aws");
}
