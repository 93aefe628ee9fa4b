//! Replays a policy over a series of observations through the same code path as [`decide`].

use crate::decision::Decision;
use crate::engine::{decide, decide_validated};
use crate::error::Error;
use crate::input::{Observation, Pause, Replicas, Tick};
use crate::policy::ScalingPolicy;
use crate::state::DecisionState;
use crate::time::Timestamp;

/// Most steps one simulation may replay (bounds the work per request).
pub const MAX_SIMULATION_STEPS: usize = 100_000;

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

/// One simulated tick.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedStep {
    /// Time.
    pub at: Timestamp,
    /// The full decision at that time.
    pub decision: Decision,
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
        state = decision.state.clone();
        let desired = decision.desired_replicas;
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
            decision,
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
