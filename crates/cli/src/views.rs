//! Serializable views of the proto messages several commands print (the generated types do
//! not derive serde). Each conversion lives here once.

use std::time::SystemTime;

use promscaler_api::proto as v1;
use serde::Serialize;

/// `QueryErrorKind` without its prefix, e.g. "MULTIPLE_SERIES".
pub(crate) fn error_kind(kind: i32) -> String {
    v1::QueryErrorKind::try_from(kind)
        .map(|k| {
            k.as_str_name()
                .trim_start_matches("QUERY_ERROR_KIND_")
                .to_owned()
        })
        .unwrap_or_else(|_| format!("KIND_{kind}"))
}

/// A `QueryError`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct QueryErrorView {
    pub(crate) kind: String,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) http_status: Option<u32>,
}

impl From<&v1::QueryError> for QueryErrorView {
    fn from(e: &v1::QueryError) -> Self {
        Self {
            kind: error_kind(e.kind),
            message: e.message.clone(),
            http_status: (e.http_status != 0).then_some(e.http_status),
        }
    }
}

impl QueryErrorView {
    /// "KIND: message", for a table cell.
    pub(crate) fn short(&self) -> String {
        format!("{}: {}", self.kind, self.message)
    }
}

/// A Kubernetes-style `Condition`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConditionView {
    #[serde(rename = "type")]
    pub(crate) type_: String,
    pub(crate) status: String,
    pub(crate) reason: String,
    pub(crate) message: String,
}

impl From<&v1::Condition> for ConditionView {
    fn from(c: &v1::Condition) -> Self {
        Self {
            type_: c.r#type.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        }
    }
}

/// `Replicas`.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ReplicasView {
    pub(crate) spec: i32,
    pub(crate) status: i32,
    pub(crate) ready: i32,
}

impl From<&v1::Replicas> for ReplicasView {
    fn from(r: &v1::Replicas) -> Self {
        Self {
            spec: r.spec,
            status: r.status,
            ready: r.ready,
        }
    }
}

/// One trigger's outcome in a decision.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TriggerOutcomeView {
    pub(crate) name: String,
    pub(crate) value: Option<f64>,
    pub(crate) proposal: Option<i32>,
    pub(crate) active: bool,
    pub(crate) stale: bool,
    pub(crate) fallback: bool,
    pub(crate) consecutive_failures: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<QueryErrorView>,
}

impl From<&v1::TriggerOutcome> for TriggerOutcomeView {
    fn from(t: &v1::TriggerOutcome) -> Self {
        Self {
            name: t.name.clone(),
            value: t.value,
            proposal: t.proposal,
            active: t.active,
            stale: t.stale,
            fallback: t.fallback,
            consecutive_failures: t.consecutive_failures,
            error: t
                .error
                .as_ref()
                .filter(|e| e.kind != 0 || !e.message.is_empty())
                .map(QueryErrorView::from),
        }
    }
}

/// A `DecideResponse` without the opaque state.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DecisionView {
    pub(crate) desired_replicas: i32,
    pub(crate) active: bool,
    pub(crate) fallback_active: bool,
    pub(crate) triggers: Vec<TriggerOutcomeView>,
    pub(crate) conditions: Vec<ConditionView>,
    pub(crate) explanation: Vec<String>,
}

impl From<&v1::DecideResponse> for DecisionView {
    fn from(d: &v1::DecideResponse) -> Self {
        Self {
            desired_replicas: d.desired_replicas,
            active: d.active,
            fallback_active: d.fallback_active,
            triggers: d.triggers.iter().map(TriggerOutcomeView::from).collect(),
            conditions: d.conditions.iter().map(ConditionView::from).collect(),
            explanation: d.explanation.clone(),
        }
    }
}

/// RFC 3339 with seconds, e.g. "2026-11-29T04:30:00Z"; "" when absent or out of range.
pub(crate) fn time(t: Option<&prost_types::Timestamp>) -> String {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_default()
}

/// "True"/"False" for a table cell.
pub(crate) fn yes_no(b: bool) -> String {
    if b { "True" } else { "False" }.to_owned()
}

/// The trigger table shared by `decide`, `status` and `watch`.
pub(crate) fn trigger_table(triggers: &[TriggerOutcomeView]) -> String {
    use crate::output::{Table, number};
    let mut t = Table::new(&[
        "TRIGGER", "VALUE", "PROPOSAL", "ACTIVE", "FALLBACK", "ERROR",
    ]);
    for tr in triggers {
        t.row(vec![
            tr.name.clone(),
            tr.value
                .map(|v| {
                    if tr.stale {
                        format!("{} (last known good)", number(v))
                    } else {
                        number(v)
                    }
                })
                .unwrap_or_else(|| "-".into()),
            tr.proposal
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            yes_no(tr.active),
            yes_no(tr.fallback),
            tr.error
                .as_ref()
                .map(QueryErrorView::short)
                .unwrap_or_default(),
        ]);
    }
    t.render()
}

/// The conditions table.
pub(crate) fn condition_table(conditions: &[ConditionView]) -> String {
    let mut t = crate::output::Table::new(&["CONDITION", "STATUS", "REASON", "MESSAGE"]);
    for c in conditions {
        t.row(vec![
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
        ]);
    }
    t.render()
}

/// Explanation lines, indented under a header.
pub(crate) fn explanation(lines: &[String]) -> String {
    let mut out = String::from("EXPLANATION\n");
    for l in lines {
        out.push_str("  ");
        out.push_str(l);
        out.push('\n');
    }
    out
}
