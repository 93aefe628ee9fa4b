//! The four patch flavours: JSON merge patch (RFC 7386), JSON patch (RFC 6902), a simplified
//! strategic merge patch, and server-side apply with simplified managed fields.

use serde_json::{Map, Value, json};

/// RFC 7386: objects merge recursively, `null` deletes, everything else replaces.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        let t = target.as_object_mut().expect("made an object above");
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String), String> {
    if path.is_empty() {
        return Err("the root cannot be the target of this operation".into());
    }
    let idx = path
        .rfind('/')
        .ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok((path[..idx].to_string(), unescape(&path[idx + 1..])))
}

fn add_at(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    let target = doc
        .pointer_mut(&parent)
        .ok_or_else(|| format!("add operation does not apply: doc is missing path: {parent:?}"))?;
    match target {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if i > a.len() {
                return Err(format!(
                    "add operation does not apply: index {i} out of bounds"
                ));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!(
            "add operation does not apply: {parent:?} is not a container"
        )),
    }
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let target = doc
        .pointer_mut(&parent)
        .ok_or_else(|| format!("remove operation does not apply: doc is missing path: {path:?}"))?;
    match target {
        Value::Object(m) => m.remove(&last).ok_or_else(|| {
            format!("remove operation does not apply: doc is missing path: {path:?}")
        }),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?}"))?;
            if i >= a.len() {
                return Err(format!(
                    "remove operation does not apply: index {i} out of bounds"
                ));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!(
            "remove operation does not apply: doc is missing path: {path:?}"
        )),
    }
}

/// RFC 6902 JSON patch.
pub(crate) fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    for op in ops {
        let kind = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("operation has no \"op\"")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("operation has no \"path\"")?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or(format!("{kind} operation has no \"value\""))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or(format!("{kind} operation has no \"from\""))
        };
        match kind {
            "add" => add_at(doc, path, value()?)?,
            "remove" => {
                remove_at(doc, path)?;
            }
            "replace" => {
                let v = value()?;
                let slot = doc.pointer_mut(path).ok_or_else(|| {
                    format!("replace operation does not apply: doc is missing key: {path}")
                })?;
                *slot = v;
            }
            "move" => {
                let v = remove_at(doc, from()?)?;
                add_at(doc, path, v)?;
            }
            "copy" => {
                let v = doc.pointer(from()?).cloned().ok_or_else(|| {
                    format!(
                        "copy operation does not apply: doc is missing from path: {}",
                        from().unwrap_or_default()
                    )
                })?;
                add_at(doc, path, v)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("unexpected kind: {other}")),
        }
    }
    Ok(())
}

/// The strategic-merge key of list fields of the built-in kinds, by field name (the real
/// schema keys them by type; the names below are unambiguous in the kinds we serve).
pub(crate) fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "env"
        | "resourceClaims" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        _ => return None,
    })
}

/// List fields of primitives merged as sets.
fn is_set_list(field: &str) -> bool {
    field == "finalizers"
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// A simplified strategic merge patch: maps merge, `null` deletes, lists with a known merge key
/// merge by key (`$patch: delete|replace` honoured), `finalizers` merge as a set, other lists
/// replace; `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList` are handled
/// approximately (ordering is not enforced). With `keyed_lists` false (custom resources) every
/// list replaces.
pub(crate) fn strategic_merge(target: &mut Value, patch: &Value, keyed_lists: bool) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = strip_directives(patch);
            return;
        }
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) = (t.get_mut(field), v.as_array()) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(o) if o.get("$patch").and_then(Value::as_str) == Some("delete") => {
                t.remove(k);
            }
            Value::Array(items) if keyed_lists && merge_key(k).is_some() => {
                let key = merge_key(k).expect("checked above");
                let cur = t
                    .entry(k.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !cur.is_array() {
                    *cur = Value::Array(Vec::new());
                }
                let list = cur.as_array_mut().expect("made an array above");
                if items
                    .iter()
                    .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
                {
                    *list = items
                        .iter()
                        .filter(|i| i.get("$patch").is_none())
                        .map(strip_directives)
                        .collect();
                    continue;
                }
                for item in items {
                    let id = item.get(key);
                    let pos = id.and_then(|id| list.iter().position(|x| x.get(key) == Some(id)));
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    match (pos, delete) {
                        (Some(i), true) => {
                            list.remove(i);
                        }
                        (None, true) => {}
                        (Some(i), false) => strategic_merge(&mut list[i], item, keyed_lists),
                        (None, false) => list.push(strip_directives(item)),
                    }
                }
            }
            Value::Array(items) if keyed_lists && is_set_list(k) => {
                let cur = t
                    .entry(k.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(list) = cur {
                    for item in items {
                        if !list.contains(item) {
                            list.push(item.clone());
                        }
                    }
                }
            }
            Value::Object(_) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                strategic_merge(slot, v, keyed_lists);
                if let Some(keys) = v.get("$retainKeys").and_then(Value::as_array)
                    && let Value::Object(m) = slot
                {
                    m.retain(|name, _| keys.iter().any(|k| k.as_str() == Some(name)));
                }
            }
            other => {
                t.insert(k.clone(), strip_directives(other));
            }
        }
    }
}

/// The `fieldsV1` set of an applied configuration: `f:` for map keys, `k:{...}` for items of
/// keyed lists; other lists are atomic leaves.
pub(crate) fn fields_v1(v: &Value, keyed_lists: bool) -> Value {
    let mut out = Map::new();
    if let Value::Object(m) = v {
        for (k, child) in m {
            let entry = match child {
                Value::Object(_) => fields_v1(child, keyed_lists),
                Value::Array(items) if keyed_lists && merge_key(k).is_some() => {
                    let key = merge_key(k).expect("checked above");
                    let mut items_out = Map::new();
                    for item in items {
                        if let Some(id) = item.get(key) {
                            let mut inner = fields_v1(item, keyed_lists);
                            if let Value::Object(m) = &mut inner {
                                m.insert(".".into(), json!({}));
                            }
                            items_out.insert(format!("k:{}", json!({ key: id })), inner);
                        }
                    }
                    Value::Object(items_out)
                }
                _ => json!({}),
            };
            out.insert(format!("f:{k}"), entry);
        }
    }
    Value::Object(out)
}

/// Leaf `f:` paths of a `fieldsV1` set (paths under keyed list items are not descended).
fn field_paths(fields: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Value::Object(m) = fields else { return };
    for (k, child) in m {
        if let Some(name) = k.strip_prefix("f:") {
            prefix.push(name.to_string());
            let has_f_children = child
                .as_object()
                .is_some_and(|c| c.keys().any(|k| k.starts_with("f:")));
            if has_f_children {
                field_paths(child, prefix, out);
            } else {
                out.push(prefix.clone());
            }
            prefix.pop();
        }
    }
}

fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for p in parents {
        match cur.get_mut(p.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Value::Object(m) = cur {
        m.remove(last);
    }
}

/// Server-side apply of `applied` onto `current` by `manager`: the applied fields are merged in,
/// fields this manager applied before and no longer applies are removed unless another manager
/// also set them, and the manager's `managedFields` entry is replaced. Conflicts between managers
/// are not detected (every apply behaves as if `force=true`).
pub(crate) fn server_side_apply(
    current: &Value,
    applied: &Value,
    manager: &str,
    api_version: &str,
    subresource: Option<&str>,
    keyed_lists: bool,
    now: &str,
) -> Value {
    let mut applied_clean = applied.clone();
    if let Some(meta) = applied_clean
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        for k in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            meta.remove(k);
        }
    }
    let mut new_fields = fields_v1(&applied_clean, keyed_lists);
    if let Value::Object(m) = &mut new_fields {
        m.remove("f:apiVersion");
        m.remove("f:kind");
        if let Some(Value::Object(meta)) = m.get_mut("f:metadata") {
            meta.remove("f:name");
            meta.remove("f:namespace");
            if meta.is_empty() {
                m.remove("f:metadata");
            }
        }
    }
    let entries: Vec<Value> = current
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let same = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
            && e.get("subresource").and_then(Value::as_str) == subresource
    };
    let mut merged = current.clone();
    if let Some(prev) = entries.iter().find(|e| same(e)) {
        let mut old_paths = Vec::new();
        field_paths(
            prev.get("fieldsV1").unwrap_or(&Value::Null),
            &mut Vec::new(),
            &mut old_paths,
        );
        let mut keep = Vec::new();
        field_paths(&new_fields, &mut Vec::new(), &mut keep);
        for e in entries.iter().filter(|e| !same(e)) {
            field_paths(
                e.get("fieldsV1").unwrap_or(&Value::Null),
                &mut Vec::new(),
                &mut keep,
            );
        }
        for path in old_paths {
            if !keep
                .iter()
                .any(|k| k.starts_with(&path) || path.starts_with(k))
            {
                remove_path(&mut merged, &path);
            }
        }
    }
    strategic_merge(&mut merged, &applied_clean, keyed_lists);
    let mut entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": new_fields,
    });
    if let Some(sub) = subresource {
        entry["subresource"] = json!(sub);
    }
    let prev_time = entries
        .iter()
        .find(|e| same(e))
        .and_then(|e| e.get("time").cloned());
    let mut new_entries = entries;
    let pos = match new_entries.iter().position(same) {
        Some(i) => {
            new_entries[i] = entry;
            i
        }
        None => {
            new_entries.push(entry);
            new_entries.len() - 1
        }
    };
    if let Some(meta) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(new_entries));
    }
    // an apply that changes nothing changes nothing, not even the manager's timestamp (as in the
    // real API: no new resourceVersion, no watch event)
    if let Some(t) = prev_time {
        let mut unchanged = merged.clone();
        if let Some(e) = unchanged.pointer_mut(&format!("/metadata/managedFields/{pos}")) {
            e["time"] = t;
        }
        if unchanged == *current {
            return current.clone();
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_deletes_nulls_and_replaces_lists() {
        let mut doc = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut doc, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(doc, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_applies_all_operations() {
        let mut doc = json!({"spec": {"replicas": 1, "list": [1, 2]}});
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/spec/list/-", "value": 3},
                {"op": "remove", "path": "/spec/list/0"},
                {"op": "copy", "from": "/spec/replicas", "path": "/spec/copy"},
                {"op": "move", "from": "/spec/copy", "path": "/moved"}
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"spec": {"replicas": 3, "list": [2, 3]}, "moved": 3})
        );
        assert!(
            json_patch(
                &mut doc,
                &json!([{"op": "test", "path": "/moved", "value": 4}])
            )
            .is_err()
        );
    }

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let mut doc = json!({"spec": {"containers": [
            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "side:1"}
        ]}});
        strategic_merge(
            &mut doc,
            &json!({"spec": {
                "$setElementOrder/containers": [{"name": "app"}, {"name": "new"}],
                "containers": [
                    {"name": "app", "image": "app:2", "env": [{"name": "B", "value": "2"}]},
                    {"name": "side", "$patch": "delete"},
                    {"name": "new", "image": "new:1"}
                ]
            }}),
            true,
        );
        assert_eq!(
            doc,
            json!({"spec": {"containers": [
                {"name": "app", "image": "app:2", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "new", "image": "new:1"}
            ]}})
        );
    }

    #[test]
    fn apply_removes_fields_the_manager_stopped_applying() {
        let first = server_side_apply(
            &json!({"metadata": {"name": "x"}}),
            &json!({"metadata": {"name": "x", "labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 2}}),
            "mgr",
            "v1",
            None,
            true,
            "t",
        );
        let second = server_side_apply(
            &first,
            &json!({"metadata": {"name": "x", "labels": {"a": "1"}}}),
            "mgr",
            "v1",
            None,
            true,
            "t",
        );
        assert_eq!(second["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(second.get("spec"), Some(&json!({})));
        assert_eq!(
            second["metadata"]["managedFields"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn a_repeated_apply_is_a_no_op() {
        let applied = json!({"metadata": {"name": "x", "labels": {"a": "1"}}});
        let first = server_side_apply(
            &json!({"metadata": {"name": "x"}}),
            &applied,
            "mgr",
            "v1",
            None,
            true,
            "t1",
        );
        let again = server_side_apply(&first, &applied, "mgr", "v1", None, true, "t2");
        assert_eq!(again, first);
    }
}
