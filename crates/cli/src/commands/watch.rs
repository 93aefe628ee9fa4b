//! `watch`: `ActuatorService.WatchDecisions` as a live stream, one line per decision (one JSON
//! object per line with `-o json`, one YAML document per decision with `-o yaml`).

use std::collections::BTreeMap;

use promscaler_api::proto::{DecisionEvent, WatchDecisionsRequest};
use serde::Serialize;

use crate::Error;
use crate::args::Context;
use crate::clients::status_error;
use crate::output::{Format, number, write_stdout};
use crate::views::{DecisionView, ReplicasView, time};

/// `promscalerctl watch [-n NAMESPACE] [--count N]`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only PromScalers in this namespace (default: all).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,

    /// Stop after this many decisions (default: until interrupted or the stream ends).
    #[arg(long)]
    pub count: Option<u64>,
}

/// One decision the actuator made (or could not make).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct EventView {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) at: String,
    pub(crate) replicas: Option<ReplicasView>,
    pub(crate) scaled: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) decision: Option<DecisionView>,
}

impl From<&DecisionEvent> for EventView {
    fn from(e: &DecisionEvent) -> Self {
        let r = e.r#ref.clone().unwrap_or_default();
        Self {
            namespace: r.namespace,
            name: r.name,
            at: time(e.at.as_ref()),
            replicas: e.replicas.as_ref().map(ReplicasView::from),
            scaled: e.scaled,
            error: e.error.clone(),
            decision: e.decision.as_ref().map(DecisionView::from),
        }
    }
}

impl EventView {
    /// The one-line form: time, scaler, replicas → desired, values, what drove it.
    pub(crate) fn line(&self) -> String {
        let mut l = format!("{}  {}/{}", self.at, self.namespace, self.name);
        let current = self
            .replicas
            .map_or_else(|| "?".to_owned(), |r| r.spec.to_string());
        if !self.error.is_empty() {
            l.push_str(&format!("  replicas {current}  error: {}", self.error));
            return l;
        }
        if let Some(d) = &self.decision {
            l.push_str(&format!("  replicas {current} -> {}", d.desired_replicas));
            if self.scaled {
                l.push_str(" (scaled)");
            }
            let values: BTreeMap<&str, String> = d
                .triggers
                .iter()
                .map(|t| {
                    let v = match (&t.value, &t.error) {
                        (Some(v), _) => number(*v),
                        (None, Some(e)) => e.kind.clone(),
                        (None, None) => "-".into(),
                    };
                    (t.name.as_str(), v)
                })
                .collect();
            let values: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !values.is_empty() {
                l.push_str(&format!("  {}", values.join(" ")));
            }
            if d.fallback_active {
                l.push_str("  FALLBACK");
            }
            if let Some(last) = d.explanation.last() {
                l.push_str(&format!("  | {last}"));
            }
        }
        l
    }
}

fn render(format: Format, e: &EventView) -> Result<String, Error> {
    Ok(match format {
        Format::Table => format!("{}\n", e.line()),
        Format::Json => {
            let mut s = serde_json::to_string(e).map_err(|e| Error::Render {
                format: "json",
                message: e.to_string(),
            })?;
            s.push('\n');
            s
        }
        Format::Yaml => format!(
            "---\n{}",
            serde_yaml::to_string(e).map_err(|e| Error::Render {
                format: "yaml",
                message: e.to_string(),
            })?
        ),
    })
}

/// Streams decisions until `--count`, the end of the stream, or an interrupt.
pub(crate) async fn run(args: Args, cx: &Context) -> Result<(), Error> {
    if args.count == Some(0) {
        return Ok(());
    }
    let mut client = cx.clients.actuator()?;
    let request = WatchDecisionsRequest {
        namespace: args.namespace.clone(),
    };
    let mut stream = cx
        .clients
        .call(
            &cx.clients.actuator,
            "WatchDecisions",
            client.watch_decisions(request),
        )
        .await?;
    let mut seen = 0u64;
    loop {
        match stream.message().await {
            Ok(Some(event)) => {
                write_stdout(&render(cx.output, &EventView::from(&event))?)?;
                seen += 1;
                if args.count.is_some_and(|n| seen >= n) {
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(status) => {
                return Err(status_error(
                    &cx.clients.actuator,
                    "WatchDecisions",
                    &status,
                ));
            }
        }
    }
}
