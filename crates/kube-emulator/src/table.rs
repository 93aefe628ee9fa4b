//! `as=Table` output (`meta.k8s.io/v1` Table) so `kubectl get` prints the same columns as
//! against a real cluster: the built-in kinds' columns and CRDs' `additionalPrinterColumns`.

use serde_json::{Value, json};

use crate::jsonpath;
use crate::resources::{Builtin, ResourceDef};
use crate::selectors::LabelSelector;
use crate::time;

struct Col {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i64,
}

fn col(name: &str, type_: &str, format: &str, priority: i64) -> Col {
    Col {
        name: name.into(),
        type_: type_.into(),
        format: format.into(),
        description: String::new(),
        priority,
    }
}

fn columns(def: &ResourceDef) -> Vec<Col> {
    let name = || col("Name", "string", "name", 0);
    let age = || col("Age", "string", "", 0);
    match def.builtin {
        Builtin::Namespace => vec![name(), col("Status", "string", "", 0), age()],
        Builtin::Pod => vec![
            name(),
            col("Ready", "string", "", 0),
            col("Status", "string", "", 0),
            col("Restarts", "string", "", 0),
            age(),
            col("IP", "string", "", 1),
            col("Node", "string", "", 1),
        ],
        Builtin::Secret => vec![
            name(),
            col("Type", "string", "", 0),
            col("Data", "string", "", 0),
            age(),
        ],
        Builtin::ConfigMap => vec![name(), col("Data", "string", "", 0), age()],
        Builtin::CoreEvent | Builtin::Event => vec![
            col("Last Seen", "string", "", 0),
            col("Type", "string", "", 0),
            col("Reason", "string", "", 0),
            col("Object", "string", "", 0),
            col("Message", "string", "", 0),
        ],
        Builtin::Deployment => vec![
            name(),
            col("Ready", "string", "", 0),
            col("Up-to-date", "string", "", 0),
            col("Available", "string", "", 0),
            age(),
            col("Containers", "string", "", 1),
            col("Images", "string", "", 1),
            col("Selector", "string", "", 1),
        ],
        Builtin::StatefulSet => vec![
            name(),
            col("Ready", "string", "", 0),
            age(),
            col("Containers", "string", "", 1),
            col("Images", "string", "", 1),
        ],
        Builtin::Lease => vec![name(), col("Holder", "string", "", 0), age()],
        Builtin::ServiceAccount => vec![name(), col("Secrets", "string", "", 0), age()],
        Builtin::Crd => vec![name(), col("Created At", "date", "", 0)],
        Builtin::Rbac | Builtin::Review => vec![name(), age()],
        Builtin::Custom if def.columns.is_empty() => vec![name(), age()],
        Builtin::Custom => std::iter::once(name())
            .chain(def.columns.iter().map(|c| Col {
                name: c.name.clone(),
                type_: c.type_.clone(),
                format: c.format.clone(),
                description: c.description.clone(),
                priority: c.priority,
            }))
            .collect(),
    }
}

fn s<'a>(obj: &'a Value, path: &str) -> &'a str {
    obj.pointer(path)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn n(obj: &Value, path: &str) -> i64 {
    obj.pointer(path).and_then(Value::as_i64).unwrap_or(0)
}

fn containers(obj: &Value, field: &str) -> String {
    obj.pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| c[field].as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// A Pod's row as kubectl prints it: ready containers, phase (Terminating while deleted),
/// restarts, age, IP and node.
fn pod_cells(obj: &Value, name: Value, age: Value) -> Vec<Value> {
    let statuses = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    let total = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let ready = statuses.map_or(0, |s| {
        s.iter().filter(|c| c["ready"] == json!(true)).count()
    });
    let restarts: i64 = statuses.map_or(0, |s| {
        s.iter()
            .map(|c| c["restartCount"].as_i64().unwrap_or(0))
            .sum()
    });
    let phase = if obj.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else {
        s(obj, "/status/phase")
    };
    let node = match s(obj, "/spec/nodeName") {
        "" => "<none>",
        n => n,
    };
    let ip = match s(obj, "/status/podIP") {
        "" => "<none>",
        ip => ip,
    };
    vec![
        name,
        json!(format!("{ready}/{total}")),
        json!(phase),
        json!(restarts.to_string()),
        age,
        json!(ip),
        json!(node),
    ]
}

fn cells(def: &ResourceDef, obj: &Value) -> Vec<Value> {
    let name = json!(s(obj, "/metadata/name"));
    let age = || {
        json!(time::age(
            obj.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
        ))
    };
    match def.builtin {
        Builtin::Namespace => vec![name, json!(s(obj, "/status/phase")), age()],
        Builtin::Pod => pod_cells(obj, name, age()),
        Builtin::Secret => {
            let data = obj
                .get("data")
                .and_then(Value::as_object)
                .map_or(0, |d| d.len());
            vec![name, json!(s(obj, "/type")), json!(data), age()]
        }
        Builtin::ConfigMap => {
            let count = ["data", "binaryData"]
                .iter()
                .map(|k| {
                    obj.get(*k)
                        .and_then(Value::as_object)
                        .map_or(0, |d| d.len())
                })
                .sum::<usize>();
            vec![name, json!(count), age()]
        }
        Builtin::CoreEvent | Builtin::Event => {
            let core = def.builtin == Builtin::CoreEvent;
            let last = [
                if core {
                    "/lastTimestamp"
                } else {
                    "/deprecatedLastTimestamp"
                },
                "/series/lastObservedTime",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .map(|p| s(obj, p))
            .find(|v| !v.is_empty())
            .map(|t| time::age(Some(t)))
            .unwrap_or_else(|| "<unknown>".into());
            let r = if core {
                "/involvedObject"
            } else {
                "/regarding"
            };
            let object = format!(
                "{}/{}",
                s(obj, &format!("{r}/kind")).to_lowercase(),
                s(obj, &format!("{r}/name"))
            );
            let message = if core {
                s(obj, "/message")
            } else {
                s(obj, "/note")
            };
            vec![
                json!(last),
                json!(s(obj, "/type")),
                json!(s(obj, "/reason")),
                json!(object),
                json!(message),
            ]
        }
        Builtin::Deployment => vec![
            name,
            json!(format!(
                "{}/{}",
                n(obj, "/status/readyReplicas"),
                n(obj, "/spec/replicas")
            )),
            json!(n(obj, "/status/updatedReplicas")),
            json!(n(obj, "/status/availableReplicas")),
            age(),
            json!(containers(obj, "name")),
            json!(containers(obj, "image")),
            json!(
                obj.pointer("/spec/selector")
                    .map(|s| LabelSelector::from_object(s).to_string())
                    .unwrap_or_default()
            ),
        ],
        Builtin::StatefulSet => vec![
            name,
            json!(format!(
                "{}/{}",
                n(obj, "/status/readyReplicas"),
                n(obj, "/spec/replicas")
            )),
            age(),
            json!(containers(obj, "name")),
            json!(containers(obj, "image")),
        ],
        Builtin::Lease => vec![name, json!(s(obj, "/spec/holderIdentity")), age()],
        Builtin::ServiceAccount => {
            let secrets = obj
                .get("secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            vec![name, json!(secrets), age()]
        }
        Builtin::Crd => vec![name, json!(s(obj, "/metadata/creationTimestamp"))],
        Builtin::Rbac | Builtin::Review => vec![name, age()],
        Builtin::Custom if def.columns.is_empty() => vec![name, age()],
        Builtin::Custom => std::iter::once(name)
            .chain(def.columns.iter().map(|c| {
                let found = jsonpath::select(obj, &c.json_path);
                match (c.type_.as_str(), found.as_slice()) {
                    (_, []) => Value::Null,
                    ("date", [v, ..]) => json!(time::age(v.as_str())),
                    ("integer" | "number" | "boolean", [v]) => (*v).clone(),
                    (_, many) => json!(
                        many.iter()
                            .map(|v| match v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                }
            }))
            .collect(),
    }
}

/// One row, with the object's metadata as `PartialObjectMetadata` (kubectl's default
/// `includeObject=Metadata`), or the whole object with `includeObject=Object`.
fn row(def: &ResourceDef, obj: &Value, include_object: &str) -> Value {
    let object = match include_object {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    };
    json!({"cells": cells(def, obj), "object": object})
}

/// A `Table` of the given objects.
pub(crate) fn table<'a>(
    def: &ResourceDef,
    objs: impl IntoIterator<Item = &'a Value>,
    resource_version: Option<String>,
    continue_token: Option<String>,
    include_object: &str,
) -> Value {
    let defs: Vec<Value> = columns(def)
        .into_iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.type_,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    let mut meta = serde_json::Map::new();
    if let Some(rv) = resource_version {
        meta.insert("resourceVersion".into(), json!(rv));
    }
    if let Some(c) = continue_token {
        meta.insert("continue".into(), json!(c));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": objs.into_iter().map(|o| row(def, o, include_object)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::defs_from_crd;

    #[test]
    fn deployment_rows_show_ready_over_desired() {
        let def = crate::resources::builtins()
            .into_iter()
            .find(|d| d.kind == "Deployment")
            .unwrap();
        let obj = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let t = table(&def, [&obj], None, None, "Metadata");
        assert_eq!(
            &t["rows"][0]["cells"].as_array().unwrap()[..4],
            &[json!("web"), json!("2/3"), json!(3), json!(2)]
        );
    }

    #[test]
    fn crd_columns_follow_json_paths() {
        let crd = json!({
            "metadata": {"name": "foos.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "foos", "kind": "Foo"},
                "versions": [{"name": "v1", "served": true, "storage": true, "additionalPrinterColumns": [
                    {"name": "Min", "type": "integer", "jsonPath": ".spec.min"},
                    {"name": "Triggers", "type": "string", "jsonPath": ".spec.triggers[*].type"},
                    {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}
                ]}]}
        });
        let def = defs_from_crd(&crd).unwrap().remove(0);
        let obj = json!({"metadata": {"name": "a"}, "spec": {"min": 1, "triggers": [{"type": "prometheus"}, {"type": "cpu"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let t = table(&def, [&obj], None, None, "Metadata");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["a", 1, "prometheus,cpu", "True"])
        );
        assert_eq!(t["columnDefinitions"][1]["name"], json!("Min"));
    }
}
