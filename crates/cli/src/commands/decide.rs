//! `decide`: one `DecisionService.Decide` for a PromScaler file and trigger values given on the
//! command line — the actuator's tick with the query results replaced by `--value`.

use promscaler_api::proto::{DecideRequest, Observation, Replicas, observation};
use serde::Serialize;

use crate::Error;
use crate::args::Context;
use crate::input::{key_value, load_scaler};
use crate::output::{Render, emit, fields};
use crate::views::{
    DecisionView, ReplicasView, condition_table, explanation, trigger_table, yes_no,
};

/// `promscalerctl decide FILE --value TRIGGER=VALUE... --replicas N`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The PromScaler manifest ("-" reads stdin).
    #[arg(value_name = "FILE")]
    pub file: String,

    /// The PromScaler to use when the file has several.
    #[arg(long)]
    pub name: Option<String>,

    /// A trigger's value: TRIGGER=VALUE (unnamed triggers are trigger-0, trigger-1, ...), or
    /// just VALUE when the PromScaler has one trigger. Repeat for each trigger.
    #[arg(long = "value", value_name = "TRIGGER=VALUE", required = true)]
    pub values: Vec<String>,

    /// Current replicas (the target's /scale spec.replicas).
    #[arg(long)]
    pub replicas: i32,

    /// Ready pods (used by Value metric types); default: --replicas.
    #[arg(long)]
    pub ready: Option<i32>,

    /// The target's /scale status.replicas; default: --replicas.
    #[arg(long)]
    pub status_replicas: Option<i32>,
}

#[derive(Debug, Serialize)]
struct DecideView {
    scaler: String,
    replicas: ReplicasView,
    #[serde(flatten)]
    decision: DecisionView,
}

impl Render for DecideView {
    fn table(&self) -> String {
        let d = &self.decision;
        let mut out = fields(&[
            ("SCALER", self.scaler.clone()),
            (
                "REPLICAS",
                format!(
                    "{} (status {}, ready {})",
                    self.replicas.spec, self.replicas.status, self.replicas.ready
                ),
            ),
            ("DESIRED", d.desired_replicas.to_string()),
            ("ACTIVE", yes_no(d.active)),
            ("FALLBACK", yes_no(d.fallback_active)),
        ]);
        out.push('\n');
        out.push_str(&trigger_table(&d.triggers));
        out.push('\n');
        out.push_str(&condition_table(&d.conditions));
        out.push('\n');
        out.push_str(&explanation(&d.explanation));
        out
    }
}

/// Pairs each `--value` with a trigger of the policy; every trigger needs one.
fn observations(values: &[String], triggers: &[String]) -> Result<Vec<Observation>, Error> {
    let mut by_trigger = std::collections::BTreeMap::new();
    for raw in values {
        let (name, value) = match key_value(raw) {
            Ok(kv) => kv,
            Err(_) if triggers.len() == 1 => (triggers[0].clone(), raw.clone()),
            Err(e) => {
                return Err(Error::Usage(format!(
                    "--value {raw:?}: {e}; this PromScaler has triggers {}",
                    triggers.join(", ")
                )));
            }
        };
        if !triggers.contains(&name) {
            return Err(Error::Usage(format!(
                "--value {raw:?}: no trigger named {name:?}; this PromScaler has triggers {} (unnamed triggers are trigger-<index>)",
                triggers.join(", ")
            )));
        }
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| Error::Usage(format!("--value {raw:?}: {value:?} is not a number")))?;
        by_trigger.insert(name, v);
    }
    triggers
        .iter()
        .map(|t| {
            by_trigger
                .get(t)
                .map(|v| Observation {
                    trigger: t.clone(),
                    result: Some(observation::Result::Value(*v)),
                })
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "no --value for trigger {t}; add --value {t}=<number>"
                    ))
                })
        })
        .collect()
}

/// Sends one Decide and prints the decision.
pub(crate) async fn run(args: Args, cx: &Context) -> Result<(), Error> {
    let loaded = load_scaler(&args.file, args.name.as_deref())?;
    let s = &loaded.scaler;
    let names: Vec<String> = s.triggers.iter().map(|t| t.name.clone()).collect();
    let replicas = Replicas {
        spec: args.replicas,
        status: args.status_replicas.unwrap_or(args.replicas),
        ready: args.ready.unwrap_or(args.replicas),
    };
    let request = DecideRequest {
        policy: Some(s.policy.clone()),
        replicas: Some(replicas),
        observations: observations(&args.values, &names)?,
        state: None,
        now: None,
        pause: Some(s.pause),
    };
    let mut client = cx.clients.decision()?;
    let response = cx
        .clients
        .call(&cx.clients.decision, "Decide", client.decide(request))
        .await?;
    let view = DecideView {
        scaler: if s.namespace.is_empty() {
            s.name.clone()
        } else {
            format!("{}/{}", s.namespace, s.name)
        },
        replicas: ReplicasView::from(&replicas),
        decision: DecisionView::from(&response),
    };
    emit(cx.output, &view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_bare_value_goes_to_the_only_trigger() {
        let obs = observations(&names(&["140"]), &names(&["trigger-0"])).unwrap();
        assert_eq!(obs[0].trigger, "trigger-0");
        assert_eq!(obs[0].result, Some(observation::Result::Value(140.0)));
    }

    #[test]
    fn every_trigger_needs_a_known_value() {
        let triggers = names(&["rps", "queue"]);
        let err = observations(&names(&["rps=1"]), &triggers).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no --value for trigger queue; add --value queue=<number>"
        );
        let err = observations(&names(&["lag=1"]), &triggers).unwrap_err();
        assert!(
            err.to_string().contains("no trigger named \"lag\""),
            "{err}"
        );
        let err = observations(&names(&["rps=x"]), &triggers).unwrap_err();
        assert!(err.to_string().contains("is not a number"), "{err}");
    }
}
