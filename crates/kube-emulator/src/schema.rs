//! What the API server does with a CRD's structural schema on every write of a custom
//! resource: unknown fields are pruned (unless `x-kubernetes-preserve-unknown-fields`), `null`s
//! of non-nullable fields are dropped, and `default`s are filled in. Values are not validated.

use serde_json::{Map, Value};

/// The `properties` of a schema, including those of its `allOf`/`anyOf`/`oneOf` branches.
fn properties(schema: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(p) = schema.get("properties").and_then(Value::as_object) {
        out.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for branch in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for (k, v) in properties(branch) {
                out.entry(k).or_insert(v);
            }
        }
    }
    out
}

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

/// Prunes and defaults `obj` (a whole custom resource) against its version's
/// `openAPIV3Schema`.
pub(crate) fn prune_and_default(obj: &mut Value, schema: &Value) {
    apply(obj, schema, true);
}

fn apply(v: &mut Value, schema: &Value, resource_root: bool) {
    match v {
        Value::Object(m) => {
            let props = properties(schema);
            let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = resource_root || is_true(schema, "x-kubernetes-embedded-resource");
            let additional = schema.get("additionalProperties");
            let additional_schema = additional.filter(|a| a.is_object());
            // apiVersion, kind and metadata of a resource are the API server's, not the schema's
            let reserved = |k: &str| embedded && matches!(k, "apiVersion" | "kind" | "metadata");
            m.retain(|k, val| {
                if reserved(k) {
                    return true;
                }
                if val.is_null() {
                    let nullable = props
                        .get(k)
                        .or(additional_schema)
                        .is_some_and(|s| is_true(s, "nullable"));
                    if !nullable {
                        return false;
                    }
                }
                preserve
                    || props.contains_key(k)
                    || additional_schema.is_some()
                    || additional.and_then(Value::as_bool) == Some(true)
            });
            for (k, s) in &props {
                if reserved(k) {
                    continue;
                }
                if !m.contains_key(k)
                    && let Some(d) = s.get("default")
                {
                    m.insert(k.clone(), d.clone());
                }
            }
            for (k, val) in m.iter_mut() {
                if reserved(k) {
                    continue;
                }
                if let Some(s) = props.get(k) {
                    apply(val, s, false);
                } else if let Some(s) = additional_schema {
                    apply(val, s, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for item in items {
                    apply(item, s, false);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "replicas": {"type": "integer", "default": 1},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                        "opt": {"type": "string", "nullable": true},
                        "either": {"oneOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "string"}}}]}
                    }
                },
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
            }
        })
    }

    #[test]
    fn prunes_unknown_fields_and_fills_defaults() {
        let mut obj = json!({
            "apiVersion": "example.com/v1", "kind": "Foo",
            "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {
                "typo": 1,
                "labels": {"k": "v"},
                "free": {"anything": {"goes": true}},
                "items": [{"name": "a", "extra": 1}],
                "opt": null,
                "either": {"a": "1", "b": "2", "c": "3"}
            },
            "status": {"phase": "Ready", "decisionStat": {}},
            "junk": true
        });
        prune_and_default(&mut obj, &schema());
        assert_eq!(
            obj,
            json!({
                "apiVersion": "example.com/v1", "kind": "Foo",
                "metadata": {"name": "x", "labels": {"a": "b"}},
                "spec": {
                    "replicas": 1,
                    "labels": {"k": "v"},
                    "free": {"anything": {"goes": true}},
                    "items": [{"name": "a"}],
                    "opt": null,
                    "either": {"a": "1", "b": "2"}
                },
                "status": {"phase": "Ready"}
            })
        );
    }

    #[test]
    fn drops_nulls_of_non_nullable_fields_before_defaulting() {
        let mut obj = json!({"spec": {"replicas": null}});
        prune_and_default(&mut obj, &schema());
        assert_eq!(obj["spec"]["replicas"], json!(1));
    }
}
