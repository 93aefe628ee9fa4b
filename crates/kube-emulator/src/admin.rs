//! The `/_emulator` admin API: fault injection over HTTP, bearer tokens for `TokenReview`, and a
//! few statistics.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::faults::FailRule;
use crate::server::{Body, Shared, error_response, json_response, parse_json, read_body};

pub(crate) async fn admin(
    shared: &Shared,
    req: Request<Incoming>,
    segs: &[&str],
) -> Response<Body> {
    let faults = &shared.faults;
    let method = req.method().clone();
    let ok = || json_response(StatusCode::OK, &faults.snapshot());
    match (method.as_str(), segs) {
        ("GET", ["faults"]) => ok(),
        ("DELETE", ["faults"]) => {
            faults.clear();
            ok()
        }
        ("POST", ["faults", "fail"]) => match read_body(req).await.and_then(|b| {
            serde_json::from_slice::<FailRule>(&b)
                .map_err(|e| ApiError::bad_request(format!("expected a FailRule: {e}")))
        }) {
            Ok(rule) => {
                faults.fail_next(rule);
                ok()
            }
            Err(e) => error_response(&e),
        },
        ("POST" | "PUT", ["faults", "latency"]) => {
            match read_body(req).await.and_then(|b| parse_json(&b)) {
                Ok(v) => {
                    faults.set_latency(Duration::from_millis(
                        v.get("millis").and_then(Value::as_u64).unwrap_or(0),
                    ));
                    ok()
                }
                Err(e) => error_response(&e),
            }
        }
        ("POST", ["faults", "drop-watches"]) => {
            faults.drop_watches();
            ok()
        }
        ("POST", ["faults", "expire-watches"]) => {
            faults.expire_watches();
            ok()
        }
        ("POST", ["tokens"]) => match read_body(req).await.and_then(|b| parse_json(&b)) {
            Ok(v) => {
                let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default();
                let (token, username) = (text("token"), text("username"));
                if token.is_empty() || username.is_empty() {
                    return error_response(&ApiError::bad_request(
                        "expected {\"token\": ..., \"username\": ..., \"uid\": ..., \"groups\": [...]} with token and username set",
                    ));
                }
                shared.tokens.insert(
                    token.to_owned(),
                    crate::auth::UserInfo {
                        username: username.to_owned(),
                        uid: text("uid").to_owned(),
                        groups: v
                            .get("groups")
                            .and_then(Value::as_array)
                            .map(|g| {
                                g.iter()
                                    .filter_map(|g| g.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    },
                );
                json_response(StatusCode::OK, &json!({"username": username}))
            }
            Err(e) => error_response(&e),
        },
        ("GET", ["stats"]) => json_response(
            StatusCode::OK,
            &json!({
                "resourceVersion": shared.store.current_rv().to_string(),
                "objects": shared.store.count(),
                "requests": shared.requests.snapshot().into_iter()
                    .map(|(k, n)| json!({"verb": k.verb, "resource": k.resource, "count": n}))
                    .collect::<Vec<_>>(),
            }),
        ),
        _ => error_response(&ApiError::page_not_found()),
    }
}
