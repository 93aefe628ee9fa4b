//! `simulate`: "what would this PromScaler have done yesterday?" Each trigger's query is run
//! over a range through `MetricsFetcherService.QueryRange`; the samples are replayed through
//! the policy with `DecisionService.Simulate`; the trajectory is summarised (scale events, time
//! at max, time in fallback) and optionally drawn as an SVG chart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use promscaler_api::ValidatedScaler;
use promscaler_api::proto::{
    Observation, QueryError, QueryErrorKind, QueryRangeRequest, Replicas, SimulateRequest,
    SimulatedStep, SimulationStep, observation,
};
use promscaler_core::chart::{Chart, Series};
use serde::Serialize;

use crate::Error;
use crate::args::Context;
use crate::input::{Loaded, duration, key_value, load_scaler, parse_time, timestamp};
use crate::output::{Render, Table, emit, fields};
use crate::views::{error_kind, time};

/// Prometheus refuses range queries of more than 11,000 points.
const MAX_POINTS: u128 = 11_000;

/// `promscalerctl simulate FILE --from -24h --to now --step 30s [--chart FILE.svg]`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The PromScaler manifest ("-" reads stdin).
    #[arg(value_name = "FILE")]
    pub file: String,

    /// The PromScaler to use when the file has several.
    #[arg(long)]
    pub name: Option<String>,

    /// A value of the referenced PromScalerAuthentication's Secrets, PARAMETER=VALUE, for
    /// Secrets that are not in the file.
    #[arg(long = "auth-param", value_name = "PARAMETER=VALUE", value_parser = key_value)]
    pub auth_params: Vec<(String, String)>,

    /// Start: a duration before now ("-24h"), "now", or RFC 3339.
    #[arg(long, default_value = "-24h", allow_hyphen_values = true)]
    pub from: String,

    /// End: "now", a duration before now, or RFC 3339.
    #[arg(long, default_value = "now", allow_hyphen_values = true)]
    pub to: String,

    /// Resolution, e.g. "30s" (the PromScaler's pollingInterval is what the actuator uses).
    #[arg(long, default_value = "30s", value_parser = promscaler_runtime::args::parse_duration)]
    pub step: Duration,

    /// Replicas at the start; default: minReplicaCount (at least 1).
    #[arg(long)]
    pub replicas: Option<i32>,

    /// Time between a scale write and the new pods being ready, e.g. "30s".
    #[arg(long, default_value = "0s", value_parser = promscaler_runtime::args::parse_duration)]
    pub ready_delay: Duration,

    /// Write an SVG chart of the values and replicas over time to this file.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct ScaleEvent {
    at: String,
    from: i32,
    to: i32,
    reason: String,
}

#[derive(Debug, Serialize)]
struct StepView {
    at: String,
    values: BTreeMap<String, Option<f64>>,
    desired_replicas: i32,
    active: bool,
    fallback_active: bool,
    reason: String,
}

#[derive(Debug, Serialize)]
struct SimulateView {
    scaler: String,
    from: String,
    to: String,
    step_seconds: f64,
    steps: usize,
    min_replicas: i32,
    max_replicas: i32,
    initial_replicas: i32,
    final_replicas: i32,
    lowest_replicas: i32,
    highest_replicas: i32,
    scale_ups: usize,
    scale_downs: usize,
    seconds_at_max: f64,
    seconds_in_fallback: f64,
    seconds_active: f64,
    events: Vec<ScaleEvent>,
    trajectory: Vec<StepView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chart: Option<PathBuf>,
}

/// At most this many scale events are listed in the table (all are in JSON/YAML).
const TABLE_EVENTS: usize = 20;

fn span(seconds: f64, total: f64) -> String {
    let d = humantime::format_duration(Duration::from_secs(seconds.max(0.0).round() as u64));
    if total > 0.0 {
        format!("{d} ({:.0}%)", 100.0 * seconds / total)
    } else {
        d.to_string()
    }
}

impl Render for SimulateView {
    fn table(&self) -> String {
        let total = self.step_seconds * self.steps as f64;
        let mut rows = vec![
            ("SCALER", self.scaler.clone()),
            ("RANGE", format!("{} .. {}", self.from, self.to)),
            (
                "STEPS",
                format!(
                    "{} x {}",
                    self.steps,
                    humantime::format_duration(Duration::from_secs_f64(self.step_seconds))
                ),
            ),
            (
                "REPLICAS",
                format!(
                    "{} -> {} (lowest {}, highest {}; min {}, max {})",
                    self.initial_replicas,
                    self.final_replicas,
                    self.lowest_replicas,
                    self.highest_replicas,
                    self.min_replicas,
                    self.max_replicas
                ),
            ),
            (
                "SCALE EVENTS",
                format!(
                    "{} ({} up, {} down)",
                    self.scale_ups + self.scale_downs,
                    self.scale_ups,
                    self.scale_downs
                ),
            ),
            ("TIME AT MAX", span(self.seconds_at_max, total)),
            ("TIME IN FALLBACK", span(self.seconds_in_fallback, total)),
            ("TIME ACTIVE", span(self.seconds_active, total)),
        ];
        if let Some(chart) = &self.chart {
            rows.push(("CHART", chart.display().to_string()));
        }
        let mut out = fields(&rows);
        if !self.events.is_empty() {
            out.push('\n');
            let mut t = Table::new(&["TIME", "FROM", "TO", "REASON"]);
            for e in self.events.iter().take(TABLE_EVENTS) {
                t.row(vec![
                    e.at.clone(),
                    e.from.to_string(),
                    e.to.to_string(),
                    e.reason.clone(),
                ]);
            }
            out.push_str(&t.render());
            if self.events.len() > TABLE_EVENTS {
                out.push_str(&format!(
                    "... {} more scale events (-o json lists them all)\n",
                    self.events.len() - TABLE_EVENTS
                ));
            }
        }
        out
    }
}

fn millis(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

fn from_millis(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// "HH:MM" (UTC) of unix milliseconds, with the date when the range spans days.
fn clock(ms: i64, with_date: bool) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    if with_date {
        format!("{} {}", &s[5..10], &s[11..16])
    } else {
        s[11..16].to_owned()
    }
}

/// The chart of a replay over `[start_ms, end_ms)`: the triggers' values, the desired replicas
/// and the fallback of each step, six clock times along the x axis.
fn chart(
    title: String,
    (start_ms, end_ms): (i64, i64),
    values: Vec<Series>,
    steps: Vec<(i64, &SimulatedStep)>,
    max_replicas: i32,
) -> Chart {
    let days = end_ms - start_ms > 86_400_000;
    Chart {
        title,
        start: start_ms as f64,
        end: end_ms as f64,
        x_ticks: (0..=5)
            .map(|k| {
                let ms = start_ms + (end_ms - start_ms) * k / 5;
                (ms as f64, clock(ms, days))
            })
            .collect(),
        x_unit: "UTC".to_owned(),
        value_axis: "value".to_owned(),
        values,
        replicas_name: "desired replicas".to_owned(),
        replicas: steps
            .iter()
            .map(|(at, x)| (*at as f64, x.desired_replicas))
            .collect(),
        fallback: steps
            .iter()
            .map(|(at, x)| (*at as f64, x.fallback_active))
            .collect(),
        max_replicas,
    }
}

/// One range query per trigger through the fetcher: each trigger's samples by unix millisecond.
async fn pull_ranges(
    args: &Args,
    cx: &Context,
    loaded: &Loaded,
    from: SystemTime,
    to: SystemTime,
) -> Result<Vec<BTreeMap<i64, f64>>, Error> {
    let params: BTreeMap<String, String> = args.auth_params.iter().cloned().collect();
    let mut fetcher = cx.clients.fetcher()?;
    let mut samples: Vec<BTreeMap<i64, f64>> = Vec::new();
    for (i, t) in loaded.scaler.triggers.iter().enumerate() {
        let auth = loaded.auth(i, &params)?;
        let q = loaded.scaler.query_request(i, auth);
        let request = QueryRangeRequest {
            source: q.source,
            query: q.query,
            start: Some(timestamp(from)),
            end: Some(timestamp(to)),
            step: Some(duration(args.step)),
            caller: q.caller,
        };
        let response = cx
            .clients
            .call(
                &cx.clients.fetcher,
                "QueryRange",
                fetcher.query_range(request),
            )
            .await?;
        if let Some(e) = response.error {
            return Err(Error::Range {
                trigger: t.name.clone(),
                kind: error_kind(e.kind),
                message: e.message,
            });
        }
        samples.push(
            response
                .samples
                .iter()
                .filter_map(|x| x.timestamp.as_ref().map(|ts| (millis(ts), x.value)))
                .collect(),
        );
    }
    Ok(samples)
}

/// The steps to replay: every instant any trigger has a sample at, with each trigger's value.
fn replay_steps(
    s: &ValidatedScaler,
    samples: &[BTreeMap<i64, f64>],
    instants: &BTreeSet<i64>,
) -> Vec<SimulationStep> {
    // A missing sample is what an instant query at that time would have returned: an empty
    // result, which ignoreNullValues turns into 0.
    instants
        .iter()
        .map(|at| SimulationStep {
            at: Some(from_millis(*at)),
            observations: s
                .triggers
                .iter()
                .zip(samples)
                .map(|(t, m)| Observation {
                    trigger: t.name.clone(),
                    result: Some(match m.get(at) {
                        Some(v) => observation::Result::Value(*v),
                        None if t.prometheus.ignore_null_values => observation::Result::Value(0.0),
                        None => observation::Result::Error(QueryError {
                            kind: QueryErrorKind::EmptyResult as i32,
                            message: "no sample at this time".into(),
                            http_status: 0,
                        }),
                    }),
                })
                .collect(),
        })
        .collect()
}

/// Writes the chart of the replay to `path`.
fn write_chart(
    path: &Path,
    summary: &SimulateView,
    s: &ValidatedScaler,
    samples: &[BTreeMap<i64, f64>],
    at: &[i64],
    out: &[SimulatedStep],
    step_ms: i64,
) -> Result<(), Error> {
    let chart = chart(
        format!("{} — {} .. {}", summary.scaler, summary.from, summary.to),
        (
            at.first().copied().unwrap_or_default(),
            at.last().copied().unwrap_or_default() + step_ms,
        ),
        s.triggers
            .iter()
            .zip(samples)
            .map(|(t, m)| Series {
                name: t.name.clone(),
                points: m.iter().map(|(k, v)| (*k as f64, *v)).collect(),
            })
            .collect(),
        at.iter().zip(out).map(|(a, x)| (*a, x)).collect(),
        s.policy.max_replicas,
    );
    std::fs::write(path, chart.svg()).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Pulls the range, replays it and prints the summary.
pub(crate) async fn run(args: Args, cx: &Context) -> Result<(), Error> {
    let loaded = load_scaler(&args.file, args.name.as_deref())?;
    let s = &loaded.scaler;
    let now = SystemTime::now();
    let (from, to) = (parse_time(&args.from, now)?, parse_time(&args.to, now)?);
    let length = to.duration_since(from).map_err(|_| {
        Error::Usage(format!(
            "--from {} is not before --to {}",
            args.from, args.to
        ))
    })?;
    if args.step.is_zero() {
        return Err(Error::Usage("--step must be > 0".into()));
    }
    let points = length.as_millis() / args.step.as_millis().max(1) + 1;
    if points > MAX_POINTS {
        return Err(Error::Usage(format!(
            "{points} steps of {} between --from and --to; Prometheus allows {MAX_POINTS}: raise --step or shorten the range",
            humantime::format_duration(args.step)
        )));
    }

    let samples = pull_ranges(&args, cx, &loaded, from, to).await?;
    let instants: BTreeSet<i64> = samples.iter().flat_map(|m| m.keys().copied()).collect();
    if instants.is_empty() {
        return Err(Error::Usage(format!(
            "no samples between {} and {}; check the range and that the metric was scraped then (`promscalerctl check` runs the query now)",
            humantime::format_rfc3339_seconds(from),
            humantime::format_rfc3339_seconds(to)
        )));
    }

    let steps = replay_steps(s, &samples, &instants);
    let initial = args
        .replicas
        .unwrap_or_else(|| s.policy.min_replicas.max(1));
    let request = SimulateRequest {
        policy: Some(s.policy.clone()),
        initial: Some(Replicas {
            spec: initial,
            status: initial,
            ready: initial,
        }),
        steps,
        pause: Some(s.pause),
        ready_delay_seconds: i32::try_from(args.ready_delay.as_secs()).unwrap_or(i32::MAX),
    };
    let mut decision = cx.clients.decision()?;
    let response = cx
        .clients
        .call(&cx.clients.decision, "Simulate", decision.simulate(request))
        .await?;

    // Summary. Each step lasts until the next one; the last lasts one --step.
    let step_ms = i64::try_from(args.step.as_millis()).unwrap_or(i64::MAX);
    let out = &response.steps;
    let at: Vec<i64> = out
        .iter()
        .map(|x| x.at.as_ref().map(millis).unwrap_or_default())
        .collect();
    let lasts = |i: usize| -> f64 {
        let end = at.get(i + 1).copied().unwrap_or(at[i] + step_ms);
        (end - at[i]) as f64 / 1000.0
    };
    let max = s.policy.max_replicas;
    let mut summary = SimulateView {
        scaler: if s.namespace.is_empty() {
            s.name.clone()
        } else {
            format!("{}/{}", s.namespace, s.name)
        },
        from: humantime::format_rfc3339_seconds(from).to_string(),
        to: humantime::format_rfc3339_seconds(to).to_string(),
        step_seconds: args.step.as_secs_f64(),
        steps: out.len(),
        min_replicas: s.policy.min_replicas,
        max_replicas: max,
        initial_replicas: initial,
        final_replicas: out.last().map_or(initial, |x| x.desired_replicas),
        lowest_replicas: out
            .iter()
            .map(|x| x.desired_replicas)
            .min()
            .unwrap_or(initial),
        highest_replicas: out
            .iter()
            .map(|x| x.desired_replicas)
            .max()
            .unwrap_or(initial),
        scale_ups: 0,
        scale_downs: 0,
        seconds_at_max: 0.0,
        seconds_in_fallback: 0.0,
        seconds_active: 0.0,
        events: Vec::new(),
        trajectory: Vec::new(),
        chart: args.chart.clone(),
    };
    let mut current = initial;
    for (i, x) in out.iter().enumerate() {
        let d = lasts(i);
        if x.desired_replicas == max {
            summary.seconds_at_max += d;
        }
        if x.fallback_active {
            summary.seconds_in_fallback += d;
        }
        if x.active {
            summary.seconds_active += d;
        }
        if x.desired_replicas != current {
            if x.desired_replicas > current {
                summary.scale_ups += 1;
            } else {
                summary.scale_downs += 1;
            }
            summary.events.push(ScaleEvent {
                at: time(x.at.as_ref()),
                from: current,
                to: x.desired_replicas,
                reason: x.reason.clone(),
            });
            current = x.desired_replicas;
        }
        summary.trajectory.push(StepView {
            at: time(x.at.as_ref()),
            values: s
                .triggers
                .iter()
                .zip(&samples)
                .map(|(t, m)| (t.name.clone(), m.get(&at[i]).copied()))
                .collect(),
            desired_replicas: x.desired_replicas,
            active: x.active,
            fallback_active: x.fallback_active,
            reason: x.reason.clone(),
        });
    }

    if let Some(path) = &args.chart {
        write_chart(path, &summary, s, &samples, &at, out, step_ms)?;
    }
    emit(cx.output, &summary)
}
