//! `status`: the PromScalers the actuator knows (`ListScalers`) as a table like `kubectl get
//! so`, or one PromScaler (`GetScaler`) with its conditions, last values and the last
//! decision's explanation.

use std::collections::BTreeMap;

use promscaler_api::proto::{ListScalersRequest, ScalerRef, ScalerStatus};
use serde::Serialize;

use crate::Error;
use crate::args::Context;
use crate::commands::watch::EventView;
use crate::output::{Render, Table, emit, fields, number};
use crate::views::{ConditionView, ReplicasView, condition_table, explanation, time, yes_no};

/// `promscalerctl status [NAME] [-n NAMESPACE]`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One PromScaler, with its conditions and last decision; default: all of them.
    pub name: Option<String>,

    /// Namespace (default: all namespaces for the list, "default" for one PromScaler).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

#[derive(Debug, Serialize)]
struct ScalerView {
    namespace: String,
    name: String,
    scale_target_kind: String,
    scale_target_name: String,
    min_replicas: i32,
    max_replicas: i32,
    ready: String,
    active: String,
    fallback: String,
    paused: bool,
    triggers: String,
    authentications: String,
    desired_replicas: i32,
    replicas: Option<ReplicasView>,
    last_values: BTreeMap<String, f64>,
    last_scale_time: String,
    conditions: Vec<ConditionView>,
    /// Upstream samples the last evaluation's queries processed.
    samples_last_interval: Option<u64>,
    /// That, per hour at the polling interval.
    samples_per_hour: Option<f64>,
    /// Upstream samples processed since the actuator started leading.
    samples_total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_decision: Option<EventView>,
}

impl From<&ScalerStatus> for ScalerView {
    fn from(s: &ScalerStatus) -> Self {
        let r = s.r#ref.clone().unwrap_or_default();
        let t = s.target.clone().unwrap_or_default();
        // KEDA's printer columns show the condition's status; "Unknown" until it is reported.
        let condition = |ty: &str| {
            s.conditions
                .iter()
                .find(|c| c.r#type == ty)
                .map_or_else(|| "Unknown".to_owned(), |c| c.status.clone())
        };
        Self {
            namespace: r.namespace,
            name: r.name,
            scale_target_kind: promscaler_api::scale_target_kind(&t),
            scale_target_name: t.name,
            min_replicas: s.min_replicas,
            max_replicas: s.max_replicas,
            ready: condition("Ready"),
            active: condition("Active"),
            fallback: condition("Fallback"),
            paused: s.paused,
            triggers: s.trigger_types.join(","),
            authentications: s.authentications.join(","),
            desired_replicas: s.desired_replicas,
            replicas: s.replicas.as_ref().map(ReplicasView::from),
            last_values: s.last_values.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            last_scale_time: time(s.last_scale_time.as_ref()),
            conditions: s.conditions.iter().map(ConditionView::from).collect(),
            samples_last_interval: s.samples_last_interval,
            samples_per_hour: s.samples_per_hour,
            samples_total: s.samples_total,
            last_decision: s.last_decision.as_ref().map(EventView::from),
        }
    }
}

fn table(scalers: &[ScalerView], with_namespace: bool) -> String {
    let mut headers = vec![
        "NAME",
        "SCALETARGETKIND",
        "SCALETARGETNAME",
        "MIN",
        "MAX",
        "READY",
        "ACTIVE",
        "FALLBACK",
        "PAUSED",
        "TRIGGERS",
        "DESIRED",
    ];
    if with_namespace {
        headers.insert(0, "NAMESPACE");
    }
    let mut t = Table::new(&headers);
    for s in scalers {
        let mut row = vec![
            s.name.clone(),
            s.scale_target_kind.clone(),
            s.scale_target_name.clone(),
            s.min_replicas.to_string(),
            s.max_replicas.to_string(),
            s.ready.clone(),
            s.active.clone(),
            s.fallback.clone(),
            yes_no(s.paused),
            s.triggers.clone(),
            s.desired_replicas.to_string(),
        ];
        if with_namespace {
            row.insert(0, s.namespace.clone());
        }
        t.row(row);
    }
    t.render()
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct ListView {
    scalers: Vec<ScalerView>,
    #[serde(skip)]
    all_namespaces: bool,
}

impl Render for ListView {
    fn table(&self) -> String {
        if self.scalers.is_empty() {
            return "No PromScalers found.\n".into();
        }
        table(&self.scalers, self.all_namespaces)
    }
}

impl Render for ScalerView {
    fn table(&self) -> String {
        let mut out = table(std::slice::from_ref(self), false);
        out.push('\n');
        let values: Vec<String> = self
            .last_values
            .iter()
            .map(|(k, v)| format!("{k}={}", number(*v)))
            .collect();
        out.push_str(&fields(&[
            ("NAMESPACE", self.namespace.clone()),
            (
                "REPLICAS",
                self.replicas.map_or_else(
                    || "unknown".into(),
                    |r| format!("{} (status {}, ready {})", r.spec, r.status, r.ready),
                ),
            ),
            ("LAST VALUES", values.join(" ")),
            (
                "LAST SCALE",
                if self.last_scale_time.is_empty() {
                    "never".into()
                } else {
                    self.last_scale_time.clone()
                },
            ),
            (
                "QUERY SAMPLES",
                match (self.samples_last_interval, self.samples_per_hour) {
                    (Some(n), Some(h)) => format!(
                        "{n} last interval, {} per hour, {} in all (`promscalerctl cost` prices them)",
                        number(h.round()),
                        self.samples_total
                    ),
                    _ => "unknown (not evaluated yet, or the upstream does not report them)".into(),
                },
            ),
            (
                "AUTHENTICATIONS",
                if self.authentications.is_empty() {
                    "<none>".into()
                } else {
                    self.authentications.clone()
                },
            ),
        ]));
        if !self.conditions.is_empty() {
            out.push('\n');
            out.push_str(&condition_table(&self.conditions));
        }
        if let Some(d) = &self.last_decision {
            out.push('\n');
            out.push_str(&format!("LAST DECISION   {}\n", d.line()));
            if let Some(decision) = &d.decision {
                out.push_str(&explanation(&decision.explanation));
            }
        }
        out
    }
}

/// Lists the PromScalers, or shows one.
pub(crate) async fn run(args: Args, cx: &Context) -> Result<(), Error> {
    let mut client = cx.clients.actuator()?;
    let e = &cx.clients.actuator;
    match &args.name {
        None => {
            let request = ListScalersRequest {
                namespace: args.namespace.clone().unwrap_or_default(),
            };
            let response = cx
                .clients
                .call(e, "ListScalers", client.list_scalers(request))
                .await?;
            warn_standby(&response.leader);
            emit(
                cx.output,
                &ListView {
                    scalers: response.scalers.iter().map(ScalerView::from).collect(),
                    all_namespaces: args.namespace.is_none(),
                },
            )
        }
        Some(name) => {
            let namespace = args.namespace.clone().unwrap_or_else(|| "default".into());
            let request = ScalerRef {
                namespace: namespace.clone(),
                name: name.clone(),
            };
            let status = cx
                .clients
                .call(e, "GetScaler", client.get_scaler(request))
                .await
                .map_err(|err| match err {
                    Error::Rpc {
                        code: tonic::Code::NotFound,
                        ..
                    } => Error::Usage(format!(
                        "the actuator at {} does not know PromScaler {namespace}/{name}; list them with `promscalerctl status`, or pass -n NAMESPACE",
                        e.addr
                    )),
                    other => other,
                })?;
            warn_standby(&status.leader);
            emit(cx.output, &ScalerView::from(&status))
        }
    }
}

/// A standby answered: its conditions come from status, but the last values and decisions are
/// only on the leader. Said on stderr, so `-o json` stays parseable.
fn warn_standby(leader: &str) {
    if leader.is_empty() {
        return;
    }
    eprintln!(
        "note: this actuator replica is a standby; last values and decisions are on the leader, pod {leader}: kubectl port-forward pod/{leader} 50053"
    );
}
