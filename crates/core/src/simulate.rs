//! Replays a policy over a series of observations through the same code path as [`decide`].

use crate::decision::Decision;
use crate::engine::{decide, decide_validated, history_horizons};
use crate::error::Error;
use crate::formula::Formula;
use crate::input::{Observation, Pause, Replicas, Tick};
use crate::policy::ScalingPolicy;
use crate::state::{DecisionState, MAX_HISTORY};
use crate::time::Timestamp;

/// Most steps one simulation may replay.
pub const MAX_SIMULATION_STEPS: usize = 100_000;

/// Most work one simulation may do, in [`simulation_work`] units: each step costs its policy's
/// trigger count, plus the history entries it may scan, plus the formula's evaluation steps.
/// 20 million units is a week of 30 s steps with a 1 h window and a few triggers
/// (20 160 × ~130), or 100 000 steps with up to ~200 each; a formula with ranges or predicates
/// may cost [`crate::formula::MAX_STEPS`] per step, so it gets 200 steps. More is rejected
/// before any step runs, with `InvalidArgument` on `steps`.
pub const MAX_SIMULATION_WORK: u64 = 20_000_000;

/// One tick of a simulation.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulationStep {
    /// Decision time; steps must not go back in time.
    pub at: Timestamp,
    /// Observations at that time.
    pub observations: Vec<Observation>,
}

/// What a simulation replays.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// Replicas before the first step.
    pub initial: Replicas,
    /// The steps, in time order.
    pub steps: Vec<SimulationStep>,
    /// Pause annotations, for every step.
    pub pause: Pause,
    /// Seconds between a scale write and the new replicas being ready; 0 = immediately.
    pub ready_delay_seconds: i32,
}

/// One simulated tick: what the response carries of the decision at that time. Only this is
/// kept per step; the rest of each [`Decision`] (conditions, explanation, per-trigger outcome,
/// and above all the state with its histories) is dropped once the next step has its state, so
/// a simulation's memory is its steps plus one state, not steps × state.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedStep {
    /// Time.
    pub at: Timestamp,
    /// Replicas the target should have ([`Decision::desired_replicas`]).
    pub desired_replicas: i32,
    /// At least one trigger (or the formula) is active ([`Decision::active`]).
    pub active: bool,
    /// At least one proposal comes from the fallback ([`Decision::fallback_active`]).
    pub fallback_active: bool,
    /// The last explanation line ([`Decision::reason`]).
    pub reason: String,
}

/// The work `sim` costs under `policy` (whose scalingModifiers formula, if any, is `formula`),
/// in units of "one trigger, history entry or formula step handled in one step": the sum over
/// steps of the policy's trigger count, the longest history the step may scan, and
/// [`Formula::max_eval_steps`]. Each step adds at most one entry to each history (recommendations, scale-up
/// and scale-down events), and the engine prunes them to the longest stabilization window or
/// policy period (the horizons `prune_state` keeps) and to [`MAX_HISTORY`], so a step's history is bounded
/// by the number of steps within that horizon before it. Steps must be in time order.
pub fn simulation_work(
    policy: &ScalingPolicy,
    formula: Option<&Formula>,
    steps: &[SimulationStep],
) -> u64 {
    let (window, period) = history_horizons(policy);
    // One second of slack: the engine keeps entries exactly at the cutoff.
    let horizon_ms = i64::from(window.max(period))
        .saturating_add(1)
        .saturating_mul(1000);
    let per_step =
        policy.triggers.len() as u64 + formula.map_or(0, |f| u64::from(f.max_eval_steps()));
    let mut oldest = 0;
    let mut work: u64 = 0;
    for (i, step) in steps.iter().enumerate() {
        while step.at.millis_since(steps[oldest].at) > horizon_ms {
            oldest += 1;
        }
        let history = (i + 1 - oldest).min(MAX_HISTORY) as u64;
        work = work.saturating_add(per_step + history);
    }
    work
}

/// Replays `sim` under `policy`: each step is a [`decide`] call whose replicas are the previous
/// decision's (status/ready follow after `ready_delay_seconds`), with the state carried over.
pub fn simulate(policy: &ScalingPolicy, sim: &Simulation) -> Result<Vec<SimulatedStep>, Error> {
    if sim.steps.len() > MAX_SIMULATION_STEPS {
        return Err(Error::invalid(
            "steps",
            format!("at most {MAX_SIMULATION_STEPS} steps"),
        ));
    }
    if sim.ready_delay_seconds < 0 {
        return Err(Error::invalid("ready_delay_seconds", "must be >= 0"));
    }
    for (i, w) in sim.steps.windows(2).enumerate() {
        if w[1].at < w[0].at {
            return Err(Error::invalid(
                format!("steps[{}].at", i + 1),
                "steps must be in time order",
            ));
        }
    }
    let formula = policy.validate()?;
    let work = simulation_work(policy, formula.as_ref(), &sim.steps);
    if work > MAX_SIMULATION_WORK {
        return Err(Error::invalid(
            "steps",
            format!(
                "this simulation needs {work} units of work (per step: the policy's triggers, the \
                 history entries within its longest stabilization window or policy period, and \
                 the formula's evaluation steps); \
                 the limit is {MAX_SIMULATION_WORK}: use fewer steps, a coarser step, or \
                 shorter windows"
            ),
        ));
    }
    let mut replicas = sim.initial;
    let mut state = DecisionState::default();
    // (replicas, ready at) of the last scale write not yet ready.
    let mut pending: Option<(i32, Timestamp)> = None;
    let mut out = Vec::with_capacity(sim.steps.len());
    for (i, step) in sim.steps.iter().enumerate() {
        if let Some((n, ready_at)) = pending
            && step.at >= ready_at
        {
            replicas.status = n;
            replicas.ready = n;
            pending = None;
        }
        let tick = Tick {
            replicas,
            observations: step.observations.clone(),
            pause: sim.pause,
        };
        let decision = if i == 0 {
            // Full validation once (observations name known triggers, replicas >= 0).
            decide(policy, &tick, state, step.at).map_err(|e| prefix(e, i))?
        } else {
            check_observations(policy, &tick).map_err(|e| prefix(e, i))?;
            decide_validated(policy, formula.as_ref(), &tick, state, step.at)
        };
        // Keep only what the response carries; the state moves on to the next step.
        let Decision {
            desired_replicas: desired,
            active,
            fallback_active,
            state: next,
            explanation,
            ..
        } = decision;
        state = next;
        if desired != replicas.spec {
            replicas.spec = desired;
            if sim.ready_delay_seconds == 0 {
                replicas.status = desired;
                replicas.ready = desired;
            } else {
                pending = Some((
                    desired,
                    step.at.add_secs(i64::from(sim.ready_delay_seconds)),
                ));
            }
        }
        out.push(SimulatedStep {
            at: step.at,
            desired_replicas: desired,
            active,
            fallback_active,
            reason: explanation
                .last()
                .map(ToString::to_string)
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

fn check_observations(policy: &ScalingPolicy, tick: &Tick) -> Result<(), Error> {
    for (i, o) in tick.observations.iter().enumerate() {
        if policy.trigger_index(&o.trigger).is_none()
            || tick.observations[..i]
                .iter()
                .any(|p| p.trigger == o.trigger)
        {
            return Err(Error::invalid(
                format!("observations[{i}].trigger"),
                format!("unknown or repeated trigger {:?}", o.trigger),
            ));
        }
    }
    Ok(())
}

fn prefix(e: Error, step: usize) -> Error {
    match e {
        Error::InvalidArgument { field, message } if field.starts_with("observations") => {
            Error::InvalidArgument {
                field: format!("steps[{step}].{field}").into(),
                message,
            }
        }
        other => other,
    }
}
