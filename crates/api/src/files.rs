//! Reading PromScaler manifests from files (multi-document YAML), for `promscalerctl validate`,
//! `check`, `decide` and `simulate`.

use serde_yaml::Value;

use crate::{
    API_VERSION, AUTHENTICATION_KIND, Error, FieldError, PromScaler, PromScalerAuthentication,
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
}
