//! Just enough of Kubernetes' protobuf encoding to accept what `kubectl create namespace`,
//! `kubectl create configmap`, `kubectl create secret generic` and `kubectl create
//! role|clusterrole|rolebinding|clusterrolebinding` send (kubectl's typed clients write
//! protobuf): the `k8s\0` + `runtime.Unknown` envelope, `ObjectMeta`'s common fields, and those
//! kinds' own fields. Everything else in protobuf is refused with 415.

use base64::Engine as _;
use serde_json::{Map, Value, json};

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

/// The fields of one message, in order.
fn fields(buf: &[u8]) -> Option<Vec<(u64, Wire<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let wire = match key & 7 {
            0 => Wire::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let b = buf.get(pos..pos.checked_add(len)?)?;
                pos += len;
                Wire::Bytes(b)
            }
            5 => {
                pos += 4;
                Wire::Fixed
            }
            _ => return None,
        };
        out.push((key >> 3, wire));
    }
    (pos == buf.len()).then_some(out)
}

fn string(b: &[u8]) -> Option<Value> {
    std::str::from_utf8(b).ok().map(|s| json!(s))
}

/// A `map<string, string>` (or `map<string, bytes>` as base64) entry.
fn map_entry(b: &[u8], bytes_values: bool) -> Option<(String, Value)> {
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => k = std::str::from_utf8(x).ok()?.to_string(),
            (2, Wire::Bytes(x)) if bytes_values => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x));
            }
            (2, Wire::Bytes(x)) => v = string(x)?,
            _ => {}
        }
    }
    Some((k, v))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let (mut labels, mut annotations, mut finalizers) = (Map::new(), Map::new(), Vec::new());
    for (n, w) in fields(b)? {
        match (n, w) {
            (1, Wire::Bytes(x)) => _ = m.insert("name".into(), string(x)?),
            (2, Wire::Bytes(x)) => _ = m.insert("generateName".into(), string(x)?),
            (3, Wire::Bytes(x)) => _ = m.insert("namespace".into(), string(x)?),
            (11, Wire::Bytes(x)) => labels.extend(map_entry(x, false)),
            (12, Wire::Bytes(x)) => annotations.extend(map_entry(x, false)),
            (14, Wire::Bytes(x)) => finalizers.push(string(x)?),
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), Value::Array(finalizers));
    }
    Some(Value::Object(m))
}

/// The fields of `b` that are strings, by field number, as JSON arrays (repeated strings) or
/// strings (`single` fields).
fn strings_of(b: &[u8], names: &[(u64, &str)], single: bool) -> Option<Value> {
    let mut m = Map::new();
    for (n, w) in fields(b)? {
        let (Some((_, name)), Wire::Bytes(x)) = (names.iter().find(|(k, _)| *k == n), w) else {
            continue;
        };
        let value = string(x)?;
        if single {
            m.insert((*name).into(), value);
        } else if let Value::Array(items) = m.entry(*name).or_insert_with(|| json!([])) {
            items.push(value);
        }
    }
    Some(Value::Object(m))
}

/// rbac.authorization.k8s.io/v1 `PolicyRule`.
fn policy_rule(b: &[u8]) -> Option<Value> {
    strings_of(
        b,
        &[
            (1, "verbs"),
            (2, "apiGroups"),
            (3, "resources"),
            (4, "resourceNames"),
            (5, "nonResourceURLs"),
        ],
        false,
    )
}

/// rbac.authorization.k8s.io/v1 `Subject`.
fn subject(b: &[u8]) -> Option<Value> {
    strings_of(
        b,
        &[(1, "kind"), (2, "apiGroup"), (3, "name"), (4, "namespace")],
        true,
    )
}

/// rbac.authorization.k8s.io/v1 `RoleRef`.
fn role_ref(b: &[u8]) -> Option<Value> {
    strings_of(b, &[(1, "apiGroup"), (2, "kind"), (3, "name")], true)
}

/// Decodes a protobuf-encoded Namespace, ConfigMap, Secret, Role, ClusterRole, RoleBinding or
/// ClusterRoleBinding into its JSON form.
pub(crate) fn decode(body: &[u8]) -> Option<Value> {
    let envelope = body.strip_prefix(b"k8s\0")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for (n, w) in fields(envelope)? {
        match (n, w) {
            (1, Wire::Bytes(type_meta)) => {
                for (n, w) in fields(type_meta)? {
                    match (n, w) {
                        (1, Wire::Bytes(x)) => {
                            api_version = std::str::from_utf8(x).ok()?.to_string()
                        }
                        (2, Wire::Bytes(x)) => kind = std::str::from_utf8(x).ok()?.to_string(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(x)) => raw = Some(x),
            _ => {}
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    let (mut data, mut binary, mut string_data) = (Map::new(), Map::new(), Map::new());
    let (mut rules, mut subjects) = (Vec::new(), Vec::new());
    for (n, w) in fields(raw?)? {
        match (kind.as_str(), n, w) {
            (_, 1, Wire::Bytes(x)) => _ = obj.insert("metadata".into(), object_meta(x)?),
            ("Namespace", _, _) => {}
            ("ConfigMap", 2, Wire::Bytes(x)) => data.extend(map_entry(x, false)),
            ("ConfigMap", 3, Wire::Bytes(x)) => binary.extend(map_entry(x, true)),
            ("ConfigMap", 4, Wire::Varint(v)) | ("Secret", 5, Wire::Varint(v)) => {
                _ = obj.insert("immutable".into(), json!(v != 0))
            }
            ("Secret", 2, Wire::Bytes(x)) => data.extend(map_entry(x, true)),
            ("Secret", 3, Wire::Bytes(x)) => _ = obj.insert("type".into(), string(x)?),
            ("Secret", 4, Wire::Bytes(x)) => string_data.extend(map_entry(x, false)),
            ("ConfigMap" | "Secret", _, _) => {}
            ("Role" | "ClusterRole", 2, Wire::Bytes(x)) => rules.push(policy_rule(x)?),
            ("RoleBinding" | "ClusterRoleBinding", 2, Wire::Bytes(x)) => subjects.push(subject(x)?),
            ("RoleBinding" | "ClusterRoleBinding", 3, Wire::Bytes(x)) => {
                _ = obj.insert("roleRef".into(), role_ref(x)?)
            }
            ("Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding", _, _) => {}
            _ => return None,
        }
    }
    if matches!(kind.as_str(), "Role" | "ClusterRole") {
        obj.insert("rules".into(), Value::Array(rules));
    }
    if !subjects.is_empty() {
        obj.insert("subjects".into(), Value::Array(subjects));
    }
    for (key, map) in [
        ("data", data),
        ("binaryData", binary),
        ("stringData", string_data),
    ] {
        if !map.is_empty() {
            obj.insert(key.into(), Value::Object(map));
        }
    }
    Some(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_secret() {
        let entry = [field(1, b"user"), field(2, b"admin")].concat();
        let meta = [
            field(1, b"creds"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let secret = [field(1, &meta), field(2, &entry), field(3, b"Opaque")].concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let body = [b"k8s\0".to_vec(), field(1, &type_meta), field(2, &secret)].concat();
        assert_eq!(
            decode(&body).unwrap(),
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "creds", "labels": {"app": "web"}},
                   "data": {"user": "YWRtaW4="}})
        );
        assert!(decode(b"not protobuf").is_none());
    }
}
