//! Reading PromScaler manifests from files (multi-document YAML), for `promscalerctl validate`,
//! `check`, `decide` and `simulate`.

use serde_yaml::Value;

use crate::{
    API_VERSION, AUTHENTICATION_KIND, Error, FieldError, PromScaler, PromScalerAuthentication,
    ValidatedScaler, crd,
};

/// One document of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    /// A `promscaler.io/v1alpha1` `PromScaler`.
    PromScaler(Box<PromScaler>),
    /// A `promscaler.io/v1alpha1` `PromScalerAuthentication`.
    Authentication(Box<PromScalerAuthentication>),
    /// Anything else (kept for the caller to ignore or report).
    Other(Value),
}

/// Parses multi-document YAML into [`Document`]s (empty documents are skipped). A document
/// that says it is a PromScaler but does not fit the type is an [`Error::Invalid`] naming the
/// document; unparseable YAML is an [`Error::Yaml`].
pub fn parse_documents(input: &str) -> Result<Vec<Document>, Error> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let n = i + 1;
        let v: Value = serde::Deserialize::deserialize(de).map_err(|source| Error::Yaml {
            document: n,
            source,
        })?;
        if v.is_null() {
            continue;
        }
        let ours = v.get("apiVersion").and_then(Value::as_str) == Some(API_VERSION);
        let invalid = |e: serde_yaml::Error| Error::Invalid {
            errors: vec![FieldError::new(
                format!("document {n}"),
                format!("does not fit the schema: {e}"),
            )],
        };
        out.push(match v.get("kind").and_then(Value::as_str) {
            Some("PromScaler") if ours => {
                Document::PromScaler(Box::new(serde_yaml::from_value(v).map_err(invalid)?))
            }
            Some(AUTHENTICATION_KIND) if ours => {
                Document::Authentication(Box::new(serde_yaml::from_value(v).map_err(invalid)?))
            }
            _ => Document::Other(v),
        });
    }
    Ok(out)
}

/// The PromScalers of a multi-document YAML input, ignoring other documents.
pub fn parse_promscalers(input: &str) -> Result<Vec<PromScaler>, Error> {
    Ok(parse_documents(input)?
        .into_iter()
        .filter_map(|d| match d {
            Document::PromScaler(p) => Some(*p),
            _ => None,
        })
        .collect())
}

/// The offline verdict on one promscaler document (what `promscalerctl validate` prints).
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// 1-based document index in the input.
    pub document: usize,
    /// `PromScaler` or `PromScalerAuthentication`.
    pub kind: String,
    /// `metadata.namespace`, if any.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// Everything that makes the API server or the actuator reject it (empty = valid).
    pub errors: Vec<FieldError>,
    /// Things that are accepted but ignored.
    pub warnings: Vec<FieldError>,
    /// The validated PromScaler, when it is one and it is valid.
    pub scaler: Option<Box<ValidatedScaler>>,
}

/// Checks every promscaler document of a multi-document input the way the cluster would:
/// strict schema validation against the generated CRDs, then the actuator's validation.
/// Documents of other kinds are skipped.
pub fn check(input: &str) -> Result<Vec<Checked>, Error> {
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let n = i + 1;
        let v: Value = serde::Deserialize::deserialize(de).map_err(|source| Error::Yaml {
            document: n,
            source,
        })?;
        if v.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
            continue;
        }
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let json = serde_json::to_value(&v).map_err(|e| Error::Invalid {
            errors: vec![FieldError::new(format!("document {n}"), e.to_string())],
        })?;
        let Some(mut errors) = crd::schema_errors(&kind, &json) else {
            continue;
        };
        let meta = |k: &str| {
            v.get("metadata")
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
        };
        let mut checked = Checked {
            document: n,
            kind: kind.clone(),
            namespace: meta("namespace").map(str::to_owned),
            name: meta("name").unwrap_or_default().to_owned(),
            errors: Vec::new(),
            warnings: Vec::new(),
            scaler: None,
        };
        if kind == "PromScaler" && errors.is_empty() {
            match serde_yaml::from_value::<PromScaler>(v).map(|p| p.validate()) {
                Ok(Ok(s)) => {
                    checked.warnings = s.warnings.clone();
                    checked.scaler = Some(Box::new(s));
                }
                Ok(Err(e)) => errors.extend(e),
                Err(e) => errors.push(FieldError::new("spec", e.to_string())),
            }
        }
        checked.errors = errors;
        out.push(checked);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_sorted_into_scalers_authentications_and_others() {
        let input = "
apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata: {name: a}
spec:
  scaleTargetRef: {name: a}
  triggers: [{type: prometheus, metadata: {serverAddress: 'http://p:9090', query: up, threshold: '1'}}]
---
---
apiVersion: promscaler.io/v1alpha1
kind: PromScalerAuthentication
metadata: {name: b}
spec: {podIdentity: {provider: aws}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
";
        let docs = parse_documents(input).unwrap();
        assert!(matches!(
            &docs[..],
            [
                Document::PromScaler(_),
                Document::Authentication(_),
                Document::Other(_)
            ]
        ));
        assert_eq!(parse_promscalers(input).unwrap().len(), 1);
    }

    #[test]
    fn a_promscaler_that_does_not_fit_the_schema_names_its_document() {
        let input = "
apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata: {name: a}
spec:
  scaleTargetRef: {name: a}
  minReplicaCount: one
  triggers: []
";
        let err = parse_documents(input).unwrap_err().to_string();
        assert!(
            err.starts_with("document 1: does not fit the schema"),
            "{err}"
        );
    }

    #[test]
    fn check_reports_schema_and_validation_errors_per_document() {
        let input = "
apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata: {name: typo, namespace: a}
spec:
  scaleTargetRef: {name: a}
  pollingInteval: 30
  triggers: [{type: prometheus, metadata: {serverAddress: 'http://p:9090', query: up, threshold: '1'}}]
---
apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata: {name: bad-threshold, namespace: a}
spec:
  scaleTargetRef: {name: a}
  triggers: [{type: prometheus, metadata: {serverAddress: 'http://p:9090', query: up, threshold: x}}]
---
apiVersion: promscaler.io/v1alpha1
kind: PromScaler
metadata: {name: good, namespace: a}
spec:
  scaleTargetRef: {name: a}
  triggers: [{type: prometheus, metadata: {serverAddress: 'http://p:9090', query: up, threshold: '1'}}]
";
        let checked = check(input).unwrap();
        let summary: Vec<(&str, Vec<&str>, bool)> = checked
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.errors.iter().map(|e| e.field.as_str()).collect(),
                    c.scaler.is_some(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("typo", vec!["spec.pollingInteval"], false),
                (
                    "bad-threshold",
                    vec!["spec.triggers[0].metadata.threshold"],
                    false
                ),
                ("good", vec![], true),
            ]
        );
    }
}
