//! `TokenReview` (authentication.k8s.io/v1) and `SubjectAccessReview` (authorization.k8s.io/v1)
//! as the real API server answers them, for clients that delegate authentication and
//! authorization to Kubernetes (as the actuator's gRPC API does).
//!
//! Tokens are static, like kube-apiserver's `--token-auth-file`: each maps to a user name, a uid
//! and groups. Access reviews evaluate the RBAC objects stored in the emulator (Roles,
//! ClusterRoles, RoleBindings, ClusterRoleBindings), as the RBAC authorizer does, plus the
//! `system:masters` group, which may do everything. The emulator does not authenticate or
//! authorize its own clients: it only answers reviews.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use crate::error::{ApiError, Error};
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Store, meta_str};

/// Who a token authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// `username`.
    pub username: String,
    /// `uid`.
    pub uid: String,
    /// `groups` (without `system:authenticated`, which every authenticated user gets).
    pub groups: Vec<String>,
}

/// The static bearer tokens the emulator's TokenReview accepts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tokens(Arc<RwLock<HashMap<String, UserInfo>>>);

impl Tokens {
    pub(crate) fn insert(&self, token: String, user: UserInfo) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, user);
    }

    fn get(&self, token: &str) -> Option<UserInfo> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    /// Reads a kube-apiserver token file: one `token,user,uid[,"group1,group2"]` a line (blank
    /// lines and `#` comments skipped).
    pub(crate) fn load_file(&self, path: &Path) -> Result<(), Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (token, user) = parse_token_line(line).ok_or_else(|| Error::Manifest {
                path: format!("{}:{}", path.display(), i + 1),
                message: "expected token,user,uid[,\"group1,group2\"] (token and user not empty)"
                    .into(),
            })?;
            self.insert(token, user);
        }
        Ok(())
    }
}

fn parse_token_line(line: &str) -> Option<(String, UserInfo)> {
    let mut parts = line.splitn(4, ',');
    let token = parts.next()?.trim();
    let username = parts.next()?.trim();
    let uid = parts.next().unwrap_or_default().trim();
    let groups = parts
        .next()
        .unwrap_or_default()
        .trim()
        .trim_matches('"')
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(String::from)
        .collect();
    if token.is_empty() || username.is_empty() {
        return None;
    }
    Some((
        token.to_owned(),
        UserInfo {
            username: username.to_owned(),
            uid: uid.to_owned(),
            groups,
        },
    ))
}

/// The answer to a `TokenReview` create: the review with its `status`.
pub(crate) fn token_review(tokens: &Tokens, review: &Value) -> Result<Value, ApiError> {
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if token.is_empty() {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenReview",
            "",
            "spec.token: Required value",
        ));
    }
    let status = match tokens.get(token) {
        Some(user) => {
            let mut groups = user.groups.clone();
            groups.push("system:authenticated".into());
            json!({
                "authenticated": true,
                "user": {"username": user.username, "uid": user.uid, "groups": groups},
                "audiences": review.pointer("/spec/audiences").cloned().unwrap_or(json!([])),
            })
        }
        None => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    let mut out = review.clone();
    out["status"] = status;
    Ok(out)
}

/// The request a `SubjectAccessReview` asks about.
#[derive(Debug, Default)]
struct Attributes<'a> {
    user: &'a str,
    groups: Vec<&'a str>,
    namespace: &'a str,
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    subresource: &'a str,
    name: &'a str,
    /// Set for a non-resource request (`nonResourceAttributes.path`).
    path: Option<&'a str>,
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The answer to a `SubjectAccessReview` create, decided by the stored RBAC objects.
pub(crate) fn subject_access_review(store: &Store, review: &Value) -> Result<Value, ApiError> {
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let invalid = |message: &str| {
        ApiError::invalid("authorization.k8s.io", "SubjectAccessReview", "", message)
    };
    let has_resource = spec.get("resourceAttributes").is_some();
    let non_resource = spec.get("nonResourceAttributes");
    if has_resource == non_resource.is_some() {
        return Err(invalid(
            "spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    }
    let attributes = Attributes {
        user: s(&spec, "/user"),
        groups: spec
            .get("groups")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
        namespace: s(&spec, "/resourceAttributes/namespace"),
        verb: if has_resource {
            s(&spec, "/resourceAttributes/verb")
        } else {
            s(&spec, "/nonResourceAttributes/verb")
        },
        group: s(&spec, "/resourceAttributes/group"),
        resource: s(&spec, "/resourceAttributes/resource"),
        subresource: s(&spec, "/resourceAttributes/subresource"),
        name: s(&spec, "/resourceAttributes/name"),
        path: non_resource.map(|n| n.get("path").and_then(Value::as_str).unwrap_or_default()),
    };
    if attributes.user.is_empty() && attributes.groups.is_empty() {
        return Err(invalid(
            "spec.user: Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    let status = match allowed_by(store, &attributes) {
        Some(by) => json!({"allowed": true, "reason": by}),
        None => json!({"allowed": false, "reason": "no RBAC policy matched"}),
    };
    let mut out = review.clone();
    out["status"] = status;
    Ok(out)
}

const RBAC: &str = "rbac.authorization.k8s.io";

fn rbac_objects(store: &Store, plural: &str, ns: Option<&str>) -> Vec<Arc<Value>> {
    let Some(def): Option<Arc<ResourceDef>> = store.registry().find(RBAC, "v1", plural) else {
        return Vec::new();
    };
    store
        .list(
            &def,
            ns,
            &LabelSelector::default(),
            &FieldSelector::default(),
            None,
            None,
        )
        .map(|l| l.items)
        .unwrap_or_default()
}

/// What allows the request (for `status.reason`), or `None` when nothing does.
fn allowed_by(store: &Store, a: &Attributes<'_>) -> Option<String> {
    if a.groups.contains(&"system:masters") {
        return Some("member of system:masters".into());
    }
    let cluster_roles = rbac_objects(store, "clusterroles", None);
    let cluster_role = |name: &str| {
        cluster_roles
            .iter()
            .find(|r| meta_str(r, "name") == name)
            .cloned()
    };
    for binding in rbac_objects(store, "clusterrolebindings", None) {
        if binds(&binding, a, "")
            && s(&binding, "/roleRef/kind") == "ClusterRole"
            && let Some(role) = cluster_role(s(&binding, "/roleRef/name"))
            && role_allows(&role, a)
        {
            return Some(format!(
                "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {:?}",
                meta_str(&binding, "name"),
                meta_str(&role, "name")
            ));
        }
    }
    if a.namespace.is_empty() {
        return None;
    }
    let roles = rbac_objects(store, "roles", Some(a.namespace));
    for binding in rbac_objects(store, "rolebindings", Some(a.namespace)) {
        if !binds(&binding, a, a.namespace) {
            continue;
        }
        let role_name = s(&binding, "/roleRef/name");
        let role = match s(&binding, "/roleRef/kind") {
            "ClusterRole" => cluster_role(role_name),
            "Role" => roles
                .iter()
                .find(|r| meta_str(r, "name") == role_name)
                .cloned(),
            _ => None,
        };
        if let Some(role) = role
            && role_allows(&role, a)
        {
            return Some(format!(
                "RBAC: allowed by RoleBinding {:?} of {} {:?} in namespace {:?}",
                meta_str(&binding, "name"),
                s(&binding, "/roleRef/kind"),
                role_name,
                a.namespace
            ));
        }
    }
    None
}

/// Whether one of the binding's subjects is the reviewed user or one of its groups.
/// `binding_ns` is the namespace of a RoleBinding (the default for ServiceAccount subjects).
fn binds(binding: &Value, a: &Attributes<'_>, binding_ns: &str) -> bool {
    let Some(subjects) = binding.get("subjects").and_then(Value::as_array) else {
        return false;
    };
    subjects.iter().any(|subject| {
        let name = s(subject, "/name");
        match s(subject, "/kind") {
            "User" => name == a.user,
            "Group" => a.groups.contains(&name),
            "ServiceAccount" => {
                let ns = match s(subject, "/namespace") {
                    "" => binding_ns,
                    ns => ns,
                };
                a.user == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

fn contains(list: Option<&Value>, want: &str) -> bool {
    list.and_then(Value::as_array).is_some_and(|items| {
        items
            .iter()
            .filter_map(Value::as_str)
            .any(|item| item == "*" || item == want)
    })
}

/// Whether one of the role's rules covers the request, as RBAC's rule matching does.
fn role_allows(role: &Value, a: &Attributes<'_>) -> bool {
    let Some(rules) = role.get("rules").and_then(Value::as_array) else {
        return false;
    };
    rules.iter().any(|rule| {
        if !contains(rule.get("verbs"), a.verb) {
            return false;
        }
        if let Some(path) = a.path {
            return rule
                .get("nonResourceURLs")
                .and_then(Value::as_array)
                .is_some_and(|urls| {
                    urls.iter().filter_map(Value::as_str).any(|url| {
                        url == "*"
                            || url == path
                            || url
                                .strip_suffix('*')
                                .is_some_and(|prefix| path.starts_with(prefix))
                    })
                });
        }
        let resource = if a.subresource.is_empty() {
            a.resource.to_owned()
        } else {
            format!("{}/{}", a.resource, a.subresource)
        };
        let names = rule.get("resourceNames").and_then(Value::as_array);
        contains(rule.get("apiGroups"), a.group)
            && (contains(rule.get("resources"), &resource)
                || (!a.subresource.is_empty()
                    && contains(rule.get("resources"), &format!("*/{}", a.subresource))))
            && names.is_none_or(|n| n.is_empty() || contains(Some(&json!(n)), a.name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(yaml: &str) -> Store {
        let store = Store::new(100, true);
        crate::apply_manifest(&store, "test", yaml, false).expect("manifest applies");
        store
    }

    fn review(user: &str, groups: &[&str], verb: &str, namespace: &str) -> Value {
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": groups,
                "resourceAttributes": {
                    "namespace": namespace, "verb": verb,
                    "group": "promscaler.io", "resource": "promscalers",
                },
            },
        })
    }

    fn allowed(store: &Store, user: &str, groups: &[&str], verb: &str, ns: &str) -> bool {
        subject_access_review(store, &review(user, groups, verb, ns)).expect("valid review")["status"]
            ["allowed"]
            == json!(true)
    }

    const RBAC_YAML: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-b}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: promscaler-editor}
rules:
  - apiGroups: [promscaler.io]
    resources: [promscalers]
    verbs: [get, list, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: viewer, namespace: team-b}
rules:
  - apiGroups: [promscaler.io]
    resources: [promscalers]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-edits, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promscaler-editor}
subjects:
  - {kind: User, name: alice}
  - {kind: ServiceAccount, name: deployer}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewers, namespace: team-b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: viewer}
subjects:
  - {kind: Group, name: auditors}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ops}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: promscaler-editor}
subjects:
  - {kind: ServiceAccount, name: actuator, namespace: promscaler}
"#;

    #[test]
    fn role_bindings_grant_only_in_their_namespace() {
        let store = store_with(RBAC_YAML);
        assert!(allowed(&store, "alice", &[], "patch", "team-a"));
        assert!(!allowed(&store, "alice", &[], "patch", "team-b"));
        assert!(!allowed(&store, "alice", &[], "delete", "team-a"));
        assert!(!allowed(&store, "alice", &[], "list", ""));
        assert!(!allowed(&store, "bob", &[], "get", "team-a"));
    }

    #[test]
    fn groups_service_accounts_and_cluster_role_bindings_match_as_rbac_does() {
        let store = store_with(RBAC_YAML);
        assert!(allowed(&store, "carol", &["auditors"], "get", "team-b"));
        assert!(!allowed(&store, "carol", &["auditors"], "patch", "team-b"));
        // A ServiceAccount subject of a RoleBinding defaults to the binding's namespace.
        assert!(allowed(
            &store,
            "system:serviceaccount:team-a:deployer",
            &[],
            "patch",
            "team-a"
        ));
        assert!(!allowed(
            &store,
            "system:serviceaccount:team-b:deployer",
            &[],
            "patch",
            "team-a"
        ));
        let actuator = "system:serviceaccount:promscaler:actuator";
        assert!(allowed(&store, actuator, &[], "patch", "team-b"));
        assert!(allowed(&store, actuator, &[], "list", ""));
        assert!(allowed(&store, "root", &["system:masters"], "delete", "x"));
    }

    #[test]
    fn resource_names_and_subresources_narrow_a_rule() {
        let store = store_with(
            r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: one}
rules:
  - apiGroups: [promscaler.io]
    resources: [promscalers/status]
    resourceNames: [web]
    verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: one}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: one}
subjects: [{kind: User, name: dave}]
"#,
        );
        let mut r = review("dave", &[], "patch", "ns");
        assert_eq!(
            subject_access_review(&store, &r).unwrap()["status"]["allowed"],
            json!(false)
        );
        r["spec"]["resourceAttributes"]["subresource"] = json!("status");
        assert_eq!(
            subject_access_review(&store, &r).unwrap()["status"]["allowed"],
            json!(false),
            "no name given: a rule with resourceNames does not cover it"
        );
        r["spec"]["resourceAttributes"]["name"] = json!("web");
        assert_eq!(
            subject_access_review(&store, &r).unwrap()["status"]["allowed"],
            json!(true)
        );
    }

    #[test]
    fn token_reviews_answer_with_the_token_file_users() {
        let tokens = Tokens::default();
        let (token, user) = parse_token_line(r#"t0k3n,alice,u-1,"team-a,devs""#).unwrap();
        tokens.insert(token, user);
        assert_eq!(parse_token_line(",alice,u"), None);
        let answer = token_review(&tokens, &json!({"spec": {"token": "t0k3n"}})).unwrap();
        assert_eq!(
            answer["status"]["user"],
            json!({"username": "alice", "uid": "u-1", "groups": ["team-a", "devs", "system:authenticated"]})
        );
        let answer = token_review(&tokens, &json!({"spec": {"token": "other"}})).unwrap();
        assert_eq!(answer["status"]["authenticated"], json!(false));
        assert!(token_review(&tokens, &json!({"spec": {}})).is_err());
    }
}
