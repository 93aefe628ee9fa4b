//! The HTTP front: routing, verbs, content negotiation (JSON, Table, metadata-only), patches,
//! `/scale` and `/status`; watches live in `watches`, the admin API in `admin`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::discovery;
use crate::error::ApiError;
use crate::faults::Faults;
use crate::jsonpath;
use crate::patch;
use crate::resources::{Builtin, ResourceDef};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Deleted, Preconditions, Store, UpdateMode, meta_str};
use crate::table;
use crate::time;

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// What every request handler shares.
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) faults: Faults,
    pub(crate) requests: crate::requests::Requests,
    pub(crate) tokens: crate::auth::Tokens,
    pub(crate) bookmark_interval: Duration,
    pub(crate) shutdown: watch::Receiver<bool>,
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).boxed())
        .expect("valid response")
}

pub(crate) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    full(status, "application/json", (v).to_string().into_bytes())
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.to_status())
}

/// Query parameters (last value wins).
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    fn parse(q: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }
    pub(crate) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("1" | "true" | "True"))
    }
}

/// How the client wants objects rendered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Render {
    Object,
    Table,
    Metadata,
}

fn render_of(accept: &str) -> Render {
    for part in accept.split(',') {
        if part.contains("as=Table") && part.contains("g=meta.k8s.io") {
            return Render::Table;
        }
        if part.contains("as=PartialObjectMetadata") && part.contains("g=meta.k8s.io") {
            return Render::Metadata;
        }
        if part.trim().starts_with("application/json") || part.trim().starts_with("*/*") {
            return Render::Object;
        }
    }
    Render::Object
}

/// The object as the requested version presents it (versions share storage: no conversion,
/// like a CRD with `conversion: None`).
pub(crate) fn present(def: &ResourceDef, obj: &Arc<Value>) -> Arc<Value> {
    let stored = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if stored == def.api_version() {
        return obj.clone();
    }
    let mut o = (**obj).clone();
    o["apiVersion"] = json!(def.api_version());
    match def.builtin {
        Builtin::Event => convert_event(&mut o, true),
        Builtin::CoreEvent => convert_event(&mut o, false),
        _ => {}
    }
    Arc::new(o)
}

/// core/v1 Event fields and their events.k8s.io/v1 names.
const EVENT_FIELDS: [(&str, &str); 7] = [
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

/// Converts an Event between core/v1 and events.k8s.io/v1 (`to_new`) by renaming fields.
fn convert_event(o: &mut Value, to_new: bool) {
    let Some(m) = o.as_object_mut() else { return };
    for (core, new) in EVENT_FIELDS {
        let (from, to) = if to_new { (core, new) } else { (new, core) };
        if let Some(v) = m.remove(from) {
            m.insert(to.into(), v);
        }
    }
    if !to_new
        && !m.contains_key("source")
        && let Some(c) = m.get("reportingComponent").cloned()
    {
        m.insert("source".into(), json!({"component": c}));
    }
}

pub(crate) fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

pub(crate) struct Target {
    pub(crate) def: Arc<ResourceDef>,
    pub(crate) ns: String,
    pub(crate) name: Option<String>,
    pub(crate) sub: Option<String>,
}

fn parse_target(
    store: &Store,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target, ApiError> {
    let reg = store.registry();
    let namespace_sub =
        group.is_empty() && rest.len() == 3 && matches!(rest[2], "status" | "finalize");
    let (ns, rest) = if rest.len() >= 3 && rest[0] == "namespaces" && !namespace_sub {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.is_empty() || rest.len() > 3 {
        return Err(ApiError::page_not_found());
    }
    let def = reg
        .find(group, version, rest[0])
        .ok_or_else(ApiError::page_not_found)?;
    let name = rest.get(1).map(|s| s.to_string());
    let sub = rest.get(2).map(|s| s.to_string());
    if ns.is_some() && !def.namespaced {
        return Err(ApiError::page_not_found());
    }
    if ns.is_none() && def.namespaced && name.is_some() {
        return Err(ApiError::page_not_found());
    }
    if let Some(s) = &sub {
        let ok = match s.as_str() {
            "status" => def.status,
            "scale" => def.scale.is_some(),
            "finalize" => def.builtin == Builtin::Namespace,
            _ => false,
        };
        if !ok {
            return Err(ApiError::page_not_found());
        }
    }
    Ok(Target {
        def,
        ns: ns.unwrap_or_default(),
        name,
        sub,
    })
}

fn verb_of(method: &Method, t: &Target, q: &Query) -> &'static str {
    match (method.as_str(), &t.name) {
        ("GET", None) if q.flag("watch") => "watch",
        ("GET", None) => "list",
        ("GET", Some(_)) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", None) => "deletecollection",
        ("DELETE", Some(_)) => "delete",
        _ => "unknown",
    }
}

/// Entry point for every request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let trimmed = path.trim_matches('/').to_string();
    let segs: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    if segs.first() == Some(&"_emulator") {
        return Ok(crate::admin::admin(&shared, req, &segs[1..]).await);
    }
    let q = Query::parse(req.uri().query());
    let target = match segs.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => {
            Some(parse_target(&shared.store, "", "v1", rest))
        }
        ["apis", g, v, rest @ ..] if !rest.is_empty() => {
            Some(parse_target(&shared.store, g, v, rest))
        }
        _ => None,
    };
    let verb = match &target {
        Some(Ok(t)) => verb_of(req.method(), t, &q),
        _ => "get",
    };
    if let Some(Ok(t)) = &target {
        let sub = t
            .sub
            .as_deref()
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        let resource = format!("{}/{}{sub}", t.def.group, t.def.plural);
        if matches!(verb, "get" | "list" | "watch") {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|a| a.to_str().ok())
                .unwrap_or_default();
            shared.requests.record_read(crate::requests::Read {
                verb: verb.to_owned(),
                resource: resource.clone(),
                namespace: t.ns.clone(),
                name: t.name.clone().unwrap_or_default(),
                metadata_only: render_of(accept) == Render::Metadata,
            });
        }
        shared.requests.record(verb, resource);
    }
    let (latency, fault) = shared.faults.check(verb, &path);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(e) = fault {
        tracing::debug!(%path, verb, code = e.code.as_u16(), "injected fault");
        return Ok(error_response(&e));
    }
    let method = req.method().clone();
    let result = match target {
        Some(Ok(t)) => resource(&shared, req, t, verb, q).await,
        Some(Err(e)) => Err(e),
        None => non_resource(&shared, &req, &segs),
    };
    let response = result.unwrap_or_else(|e| error_response(&e));
    tracing::debug!(%method, %path, verb, status = response.status().as_u16(), "request");
    Ok(response)
}

fn non_resource(
    shared: &Shared,
    req: &Request<Incoming>,
    segs: &[&str],
) -> Result<Response<Body>, ApiError> {
    if req.method() != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or_default();
    let reg = shared.store.registry();
    let ok = |v: Value| Ok(json_response(StatusCode::OK, &v));
    match segs {
        [] => ok(
            json!({"paths": ["/api", "/api/v1", "/apis", "/openapi/v3", "/version", "/healthz", "/livez", "/readyz"]}),
        ),
        ["version"] => ok(discovery::version()),
        ["healthz" | "livez" | "readyz"] => Ok(full(StatusCode::OK, "text/plain", "ok")),
        ["api"] if discovery::wants_aggregated(accept) => Ok(full(
            StatusCode::OK,
            discovery::AGGREGATED_CONTENT_TYPE,
            discovery::aggregated(&reg, true).to_string().into_bytes(),
        )),
        ["apis"] if discovery::wants_aggregated(accept) => Ok(full(
            StatusCode::OK,
            discovery::AGGREGATED_CONTENT_TYPE,
            discovery::aggregated(&reg, false).to_string().into_bytes(),
        )),
        ["api"] => ok(discovery::api_versions()),
        ["apis"] => ok(discovery::api_group_list(&reg)),
        ["api", "v1"] => discovery::api_resource_list(&reg, "", "v1")
            .map_or_else(|| Err(ApiError::page_not_found()), ok),
        ["apis", g] => {
            discovery::api_group_doc(&reg, g).map_or_else(|| Err(ApiError::page_not_found()), ok)
        }
        ["apis", g, v] => discovery::api_resource_list(&reg, g, v)
            .map_or_else(|| Err(ApiError::page_not_found()), ok),
        ["openapi", "v3"] => ok(discovery::openapi_v3_root(&reg)),
        ["openapi", "v3", "api", v] => discovery::openapi_v3_gv(&reg, "", v)
            .map_or_else(|| Err(ApiError::page_not_found()), ok),
        ["openapi", "v3", "apis", g, v] => {
            discovery::openapi_v3_gv(&reg, g, v).map_or_else(|| Err(ApiError::page_not_found()), ok)
        }
        _ => Err(ApiError::page_not_found()),
    }
}

pub(crate) async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))
}

pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    // `Value: FromStr` is compiled inside serde_json (optimised even in debug builds)
    std::str::from_utf8(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not UTF-8: {e}")))?
        .parse::<Value>()
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
}

/// JSON, or YAML for `application/apply-patch+yaml` and `application/yaml`.
fn parse_json_or_yaml(body: &[u8]) -> Result<Value, ApiError> {
    parse_json(body).or_else(|_| {
        serde_yaml::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid YAML: {e}")))
    })
}

async fn resource(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    t: Target,
    verb: &'static str,
    q: Query,
) -> Result<Response<Body>, ApiError> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let render = render_of(&accept);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|a| a.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let dry_run = q.get("dryRun") == Some("All");
    // JSON only, but for the protobuf that `kubectl create namespace|configmap|secret` sends
    let protobuf = content_type.contains("protobuf");
    if matches!(verb, "update" | "patch") && (protobuf || content_type.contains("cbor"))
        || verb == "create" && content_type.contains("cbor")
    {
        return Err(ApiError::unsupported_media_type(&content_type));
    }
    let store = &shared.store;
    let def = t.def.clone();
    if def.builtin == Builtin::Review {
        if verb != "create" || t.name.is_some() {
            return Err(ApiError::method_not_allowed());
        }
        let review = parse_json_or_yaml(&read_body(req).await?)?;
        check_type(&def, &review)?;
        let answer = if def.kind == "TokenReview" {
            crate::auth::token_review(&shared.tokens, &review)?
        } else {
            crate::auth::subject_access_review(store, &review)?
        };
        return Ok(json_response(StatusCode::CREATED, &answer));
    }
    match verb {
        "list" => list(store, &t, &q, render),
        "watch" => crate::watches::watch_resp(shared, &t, &q, render),
        "get" => {
            let name = t.name.as_deref().expect("get has a name");
            let obj = store.get(&def, &t.ns, name)?;
            if t.sub.as_deref() == Some("scale") {
                return Ok(json_response(StatusCode::OK, &scale_of(&def, &obj)));
            }
            Ok(render_one(
                &def,
                &present(&def, &obj),
                render,
                &q,
                StatusCode::OK,
            ))
        }
        "create" => {
            if t.name.is_some() {
                return Err(ApiError::method_not_allowed());
            }
            let body = read_body(req).await?;
            let obj = if protobuf {
                crate::proto::decode(&body)
                    .ok_or_else(|| ApiError::unsupported_media_type(&content_type))?
            } else {
                parse_json_or_yaml(&body)?
            };
            check_type(&def, &obj)?;
            let created = store.create(&def, &t.ns, obj, false, dry_run)?;
            Ok(render_one(&def, &created, render, &q, StatusCode::CREATED))
        }
        "update" => {
            let name = t.name.clone().expect("update has a name");
            let body = read_body(req).await?;
            let obj = parse_json_or_yaml(&body)?;
            if t.sub.as_deref() == Some("scale") {
                let updated = write_scale(store, &def, &t.ns, &name, obj, dry_run)?;
                return Ok(json_response(StatusCode::OK, &scale_of(&def, &updated)));
            }
            check_type(&def, &obj)?;
            let mode = if t.sub.as_deref() == Some("status") {
                UpdateMode::Status
            } else {
                UpdateMode::Main
            };
            let require_rv = def.builtin == Builtin::Custom;
            let updated =
                store.update(&def, &t.ns, &name, mode, require_rv, dry_run, |_| Ok(obj))?;
            Ok(render_one(&def, &updated, render, &q, StatusCode::OK))
        }
        "patch" => {
            let name = t.name.clone().expect("patch has a name");
            let body = read_body(req).await?;
            patch_resp(store, &t, &name, &content_type, &body, &q, dry_run, render)
        }
        "delete" => {
            let name = t.name.clone().expect("delete has a name");
            let body = read_body(req).await?;
            delete_resp(store, &def, &t.ns, &name, &body, dry_run)
        }
        "deletecollection" => {
            let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())
                .map_err(ApiError::bad_request)?;
            let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())
                .map_err(ApiError::bad_request)?;
            let ns = def
                .namespaced
                .then_some(t.ns.as_str())
                .filter(|n| !n.is_empty());
            let listed = store.list(&def, ns, &labels, &fields, None, None)?;
            let mut deleted = Vec::new();
            for obj in &listed.items {
                let (ns, name) = (meta_str(obj, "namespace"), meta_str(obj, "name"));
                match store.delete(&def, ns, name, &Preconditions::default(), dry_run) {
                    Ok(Deleted::Gone(o) | Deleted::Pending(o)) => deleted.push((*o).clone()),
                    Err(e) if e.code == StatusCode::NOT_FOUND => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": def.list_kind, "apiVersion": def.api_version(), "metadata": {"resourceVersion": store.current_rv().to_string()}, "items": deleted}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// DELETE of one object: the DeleteOptions body's preconditions and dryRun, then the object
/// (still there with finalizers, or as it was for the kinds that return it) or a Status.
fn delete_resp(
    store: &Store,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    body: &[u8],
    dry_run: bool,
) -> Result<Response<Body>, ApiError> {
    let opts = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(body)?
    };
    let pre = Preconditions {
        uid: opts
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        resource_version: opts
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
    };
    let dry_run = dry_run
        || opts
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "All"));
    match store.delete(def, ns, name, &pre, dry_run)? {
        Deleted::Pending(obj) => Ok(json_response(StatusCode::OK, &present(def, &obj))),
        Deleted::Gone(obj)
            if matches!(def.builtin, Builtin::Custom | Builtin::Pod | Builtin::Crd) =>
        {
            Ok(json_response(StatusCode::OK, &present(def, &obj)))
        }
        Deleted::Gone(obj) => Ok(json_response(
            StatusCode::OK,
            &json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": name, "group": def.group, "kind": def.plural, "uid": meta_str(&obj, "uid")},
            }),
        )),
    }
}

/// A body's `apiVersion`/`kind`, when given, must be the endpoint's.
fn check_type(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    let api_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if (!kind.is_empty() && kind != def.kind)
        || (!api_version.is_empty() && api_version != def.api_version())
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            def.api_version()
        )));
    }
    Ok(())
}

fn render_one(
    def: &ResourceDef,
    obj: &Value,
    render: Render,
    q: &Query,
    status: StatusCode,
) -> Response<Body> {
    match render {
        Render::Object => json_response(status, obj),
        Render::Metadata => json_response(status, &partial(obj)),
        Render::Table => json_response(
            status,
            &table::table(
                def,
                [obj],
                obj.pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(String::from),
                None,
                q.get("includeObject").unwrap_or("Metadata"),
            ),
        ),
    }
}

fn list(store: &Store, t: &Target, q: &Query, render: Render) -> Result<Response<Body>, ApiError> {
    let def = &t.def;
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok());
    let ns = def
        .namespaced
        .then_some(t.ns.as_str())
        .filter(|n| !n.is_empty());
    let res = store.list(def, ns, &labels, &fields, limit, q.get("continue"))?;
    if q.get("resourceVersionMatch") == Some("Exact")
        && let Some(rv) = q.get("resourceVersion")
        && rv != res.resource_version.to_string()
    {
        return Err(ApiError::gone(format!(
            "the resourceVersion {rv} is not available: the emulator only serves the latest state"
        )));
    }
    let rv = res.resource_version.to_string();
    let items: Vec<Arc<Value>> = res.items.iter().map(|o| present(def, o)).collect();
    let v = match render {
        Render::Table => table::table(
            def,
            items.iter().map(|o| &**o),
            Some(rv),
            res.continue_token,
            q.get("includeObject").unwrap_or("Metadata"),
        ),
        _ => {
            let mut meta = json!({"resourceVersion": rv});
            if let Some(c) = res.continue_token {
                meta["continue"] = json!(c);
            }
            let (kind, api_version) = if render == Render::Metadata {
                (
                    "PartialObjectMetadataList".to_string(),
                    "meta.k8s.io/v1".to_string(),
                )
            } else {
                (def.list_kind.clone(), def.api_version())
            };
            // items are written one by one: no copy of the objects, and Value's Display is
            // compiled (optimised) inside serde_json
            let mut out = format!(
                "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
                json!(kind),
                json!(api_version),
                meta
            );
            for (i, o) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if render == Render::Metadata {
                    out.push_str(&partial(o).to_string());
                } else {
                    out.push_str(&o.to_string());
                }
            }
            out.push_str("]}");
            return Ok(full(StatusCode::OK, "application/json", out));
        }
    };
    Ok(json_response(StatusCode::OK, &v))
}

#[derive(Clone, Copy, PartialEq)]
enum PatchKind {
    Merge,
    Json,
    Strategic,
    Apply,
}

fn patch_kind(content_type: &str) -> Result<PatchKind, ApiError> {
    let base = content_type.split(';').next().unwrap_or_default().trim();
    Ok(match base {
        "application/merge-patch+json" => PatchKind::Merge,
        "application/json-patch+json" => PatchKind::Json,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/apply-patch+yaml" | "application/apply-patch+json" => PatchKind::Apply,
        other => return Err(ApiError::unsupported_media_type(other)),
    })
}

fn apply_patch(
    def: &ResourceDef,
    cur: &Value,
    kind: PatchKind,
    patch: &Value,
    manager: &str,
    subresource: Option<&str>,
) -> Result<Value, ApiError> {
    let keyed = def.builtin != Builtin::Custom;
    let mut doc = cur.clone();
    match kind {
        PatchKind::Merge => patch::merge_patch(&mut doc, patch),
        PatchKind::Json => patch::json_patch(&mut doc, patch).map_err(|m| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {m}"),
            )
        })?,
        PatchKind::Strategic => {
            if !patch.is_object() {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be an object",
                ));
            }
            patch::strategic_merge(&mut doc, patch, keyed)
        }
        PatchKind::Apply => {
            doc = patch::server_side_apply(
                cur,
                patch,
                manager,
                &def.api_version(),
                subresource,
                keyed,
                &time::now(),
            );
        }
    }
    Ok(doc)
}

#[allow(clippy::too_many_arguments)]
fn patch_resp(
    store: &Store,
    t: &Target,
    name: &str,
    content_type: &str,
    body: &[u8],
    q: &Query,
    dry_run: bool,
    render: Render,
) -> Result<Response<Body>, ApiError> {
    let def = &t.def;
    let kind = patch_kind(content_type)?;
    let patch_doc = if kind == PatchKind::Apply {
        parse_json_or_yaml(body)?
    } else {
        parse_json(body)?
    };
    if kind == PatchKind::Strategic && def.builtin == Builtin::Custom {
        return Err(ApiError::unsupported_media_type(
            "application/strategic-merge-patch+json (strategic merge patch is not supported for custom resources)",
        ));
    }
    let manager = q.get("fieldManager").unwrap_or_default().to_string();
    if kind == PatchKind::Apply {
        if manager.is_empty() {
            return Err(ApiError::bad_request(
                "PATCH requests with apply content type must have fieldManager",
            ));
        }
        if t.sub.as_deref() != Some("scale") {
            check_type(def, &patch_doc)?;
            let applied_name = meta_str(&patch_doc, "name");
            if !applied_name.is_empty() && applied_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({applied_name}) does not match the name on the URL ({name})"
                )));
            }
        }
    }
    if t.sub.as_deref() == Some("scale") {
        let cur = store.get(def, &t.ns, name)?;
        let scale = scale_of(def, &cur);
        let patched = apply_patch(def, &scale, kind, &patch_doc, &manager, Some("scale"))?;
        let updated = write_scale(store, def, &t.ns, name, patched, dry_run)?;
        return Ok(json_response(StatusCode::OK, &scale_of(def, &updated)));
    }
    let mode = if t.sub.as_deref() == Some("status") {
        UpdateMode::Status
    } else {
        UpdateMode::Main
    };
    let sub = t.sub.clone();
    let result = store.update(def, &t.ns, name, mode, false, dry_run, |cur| {
        let cur = present(def, &Arc::new(cur.clone()));
        let mut new = apply_patch(def, &cur, kind, &patch_doc, &manager, sub.as_deref())?;
        // an applied configuration that names a resourceVersion uses it as a precondition
        if kind == PatchKind::Apply
            && let Some(rv) = patch_doc
                .pointer("/metadata/resourceVersion")
                .filter(|v| v.is_string())
            && let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.insert("resourceVersion".into(), rv.clone());
        }
        Ok(new)
    });
    match result {
        Ok(updated) => Ok(render_one(def, &updated, render, q, StatusCode::OK)),
        Err(e)
            if e.code == StatusCode::NOT_FOUND && kind == PatchKind::Apply && t.sub.is_none() =>
        {
            let mut obj = patch::server_side_apply(
                &json!({"metadata": {}}),
                &patch_doc,
                &manager,
                &def.api_version(),
                None,
                def.builtin != Builtin::Custom,
                &time::now(),
            );
            obj["metadata"]["name"] = json!(name);
            let created = store.create(def, &t.ns, obj, false, dry_run)?;
            Ok(render_one(def, &created, render, q, StatusCode::CREATED))
        }
        Err(e) => Err(e),
    }
}

/// The `autoscaling/v1` Scale of an object.
pub(crate) fn scale_of(def: &ResourceDef, obj: &Value) -> Value {
    let sd = def
        .scale
        .as_ref()
        .expect("only called for kinds with a scale subresource");
    let spec = jsonpath::get(obj, &sd.spec_replicas_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status = jsonpath::get(obj, &sd.status_replicas_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = match &sd.label_selector_path {
        Some(p) => jsonpath::get(obj, p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        None => obj
            .pointer("/spec/selector")
            .map(|s| LabelSelector::from_object(s).to_string())
            .unwrap_or_default(),
    };
    let mut meta = json!({"name": meta_str(obj, "name"), "uid": meta_str(obj, "uid"), "resourceVersion": meta_str(obj, "resourceVersion"), "creationTimestamp": meta_str(obj, "creationTimestamp")});
    if def.namespaced {
        meta["namespace"] = json!(meta_str(obj, "namespace"));
    }
    let mut st = json!({"replicas": status});
    if !selector.is_empty() {
        st["selector"] = json!(selector);
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta, "spec": {"replicas": spec}, "status": st})
}

/// Writes a Scale back into its object (the Scale's resourceVersion, when set, is a precondition).
fn write_scale(
    store: &Store,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    scale: Value,
    dry_run: bool,
) -> Result<Arc<Value>, ApiError> {
    let sd = def
        .scale
        .clone()
        .expect("only called for kinds with a scale subresource");
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if replicas < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            name,
            format!("spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let rv = meta_str(&scale, "resourceVersion").to_string();
    store.update(def, ns, name, UpdateMode::Main, false, dry_run, |cur| {
        let mut new = cur.clone();
        jsonpath::set(&mut new, &sd.spec_replicas_path, json!(replicas));
        if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            if rv.is_empty() {
                m.remove("resourceVersion");
            } else {
                m.insert("resourceVersion".into(), json!(rv));
            }
        }
        Ok(new)
    })
}
