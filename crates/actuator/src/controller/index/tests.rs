use std::collections::HashMap;

use super::*;

/// The due time each key was last given, as the [`Scheduler`] would keep it.
#[derive(Debug, Default)]
struct Recorded(HashMap<ScalerKey, Duration>);

impl Timer for Recorded {
    fn schedule(&mut self, key: ScalerKey, delay: Duration) {
        self.0.insert(key, delay);
    }

    fn schedule_no_later_than(&mut self, key: ScalerKey, delay: Duration) {
        let due = self.0.entry(key).or_insert(delay);
        *due = (*due).min(delay);
    }

    fn remove(&mut self, key: &ScalerKey) {
        self.0.remove(key);
    }
}

fn key(name: &str) -> ScalerKey {
    ScalerKey {
        namespace: "ns".into(),
        name: name.into(),
    }
}

fn index(max_running: usize) -> Index<Recorded> {
    let limits = Limits {
        max_running,
        min_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(4),
    };
    Index::new(limits, Recorded::default(), true)
}

impl Index<Recorded> {
    /// The due time of `name`, consumed (as the timer fires it).
    fn take_due(&mut self, name: &str) -> Option<Duration> {
        self.timer.0.remove(&key(name))
    }
}

fn done(seconds: u64) -> TickOutcome {
    TickOutcome::Done {
        next: Duration::from_secs(seconds),
        event: DecisionEvent::default(),
    }
}

fn failed() -> TickOutcome {
    TickOutcome::Failed {
        event: DecisionEvent {
            error: "decision service failed".into(),
            ..DecisionEvent::default()
        },
    }
}

#[test]
fn a_new_or_changed_scaler_is_due_now_and_a_status_write_changes_nothing() {
    let mut index = index(8);
    index.applied(key("a"), Some(1), false);
    assert_eq!(index.take_due("a"), Some(Duration::ZERO));
    assert_eq!(index.len(), 1);
    // Our own status write coming back: same generation.
    index.applied(key("a"), Some(1), false);
    assert_eq!(index.take_due("a"), None);
    index.applied(key("a"), Some(2), false);
    assert_eq!(index.take_due("a"), Some(Duration::ZERO));
    index.applied(key("a"), Some(2), true);
    assert_eq!(index.take_due("a"), Some(Duration::ZERO), "deleting");
}

#[test]
fn a_done_tick_is_due_again_after_its_polling_interval() {
    let mut index = index(8);
    index.applied(key("a"), Some(1), false);
    index.take_due("a");
    assert_eq!(index.due(key("a")), Some(key("a")));
    assert_eq!(
        index.due(key("a")),
        None,
        "never two ticks of one PromScaler"
    );
    assert!(index.finished(&key("a"), done(30)).is_empty());
    assert_eq!(index.take_due("a"), Some(Duration::from_secs(30)));
}

#[test]
fn failed_ticks_back_off_doubling_up_to_the_limit_and_success_resets_it() {
    let mut index = index(8);
    index.applied(key("a"), Some(1), false);
    let mut delays = Vec::new();
    for _ in 0..4 {
        index.take_due("a");
        index.due(key("a"));
        index.finished(&key("a"), failed());
        delays.push(index.take_due("a").unwrap().as_secs());
    }
    assert_eq!(delays, [1, 2, 4, 4]);
    index.due(key("a"));
    index.finished(&key("a"), done(30));
    index.take_due("a");
    index.due(key("a"));
    index.finished(&key("a"), failed());
    assert_eq!(index.take_due("a"), Some(Duration::from_secs(1)));
}

#[test]
fn changed_credentials_end_a_backoff_unless_a_tick_runs() {
    let mut index = index(8);
    index.applied(key("a"), Some(1), false);
    index.applied(key("b"), Some(1), false);
    index.due(key("a"));
    index.finished(&key("a"), failed());
    index.finished(&key("a"), failed());
    index.due(key("b"));
    index.timer.0.clear();
    index.credentials_changed([key("a"), key("b"), key("unknown")]);
    assert_eq!(index.take_due("a"), Some(Duration::ZERO));
    assert_eq!(index.take_due("b"), None, "b is ticking");
    assert_eq!(index.take_due("unknown"), None);
    index.due(key("a"));
    index.finished(&key("a"), failed());
    assert_eq!(
        index.take_due("a"),
        Some(Duration::from_secs(1)),
        "backoff reset"
    );
}

#[test]
fn ticks_beyond_the_limit_wait_in_a_queue_and_start_as_others_end() {
    let mut index = index(2);
    for name in ["a", "b", "c"] {
        index.applied(key(name), Some(1), false);
    }
    assert_eq!(index.due(key("a")), Some(key("a")));
    assert_eq!(index.due(key("b")), Some(key("b")));
    assert_eq!(index.due(key("c")), None);
    assert_eq!(index.finished(&key("a"), done(30)), [key("c")]);
    assert_eq!(index.finished(&key("b"), done(30)), []);
}

#[test]
fn a_standby_looks_again_later_and_a_new_leader_evaluates_everything() {
    let mut index = index(8);
    assert!(index.set_leading(false));
    assert!(!index.set_leading(false));
    index.applied(key("a"), Some(1), false);
    index.applied(key("b"), Some(1), false);
    index.timer.0.clear();
    assert_eq!(index.due(key("a")), None);
    assert_eq!(index.take_due("a"), Some(Duration::from_secs(30)));
    assert!(index.set_leading(true));
    assert!(index.is_leading());
    assert_eq!(index.take_due("a"), Some(Duration::ZERO));
    assert_eq!(index.take_due("b"), Some(Duration::ZERO));
}

#[test]
fn reconcile_answers_with_the_next_tick_and_unknown_scalers_at_once() {
    let mut index = index(8);
    let (reply, mut unknown) = oneshot::channel();
    index.reconcile(key("nope"), reply);
    assert!(matches!(unknown.try_recv(), Ok(Err(Error::NotFound(k))) if k == key("nope")));

    index.applied(key("a"), Some(1), false);
    index.take_due("a");
    let (reply, mut answer) = oneshot::channel();
    index.reconcile(key("a"), reply);
    assert_eq!(index.take_due("a"), Some(Duration::ZERO));
    index.due(key("a"));
    assert!(answer.try_recv().is_err(), "not before the tick ends");
    // A Reconcile while the tick runs is answered by that tick, without another.
    let (reply, mut second) = oneshot::channel();
    index.reconcile(key("a"), reply);
    assert_eq!(index.take_due("a"), None);
    index.finished(&key("a"), failed());
    for answer in [&mut answer, &mut second] {
        let event = answer.try_recv().unwrap().unwrap();
        assert_eq!(event.error, "decision service failed");
    }
}

#[test]
fn a_deleted_scaler_is_never_started_again_and_its_running_tick_still_answers() {
    let mut index = index(1);
    index.applied(key("a"), Some(1), false);
    index.applied(key("b"), Some(1), false);
    index.due(key("a"));
    index.due(key("b"));
    let (reply, mut answer) = oneshot::channel();
    index.reconcile(key("a"), reply);
    index.deleted(&key("a"));
    index.deleted(&key("b"));
    assert_eq!(index.len(), 0);
    assert_eq!(index.take_due("b"), None);
    assert_eq!(
        index.finished(&key("a"), TickOutcome::Gone),
        [],
        "b is not started"
    );
    assert!(matches!(answer.try_recv(), Ok(Err(Error::NotFound(_)))));
    assert_eq!(index.take_due("a"), None);
    assert_eq!(index.due(key("a")), None);
}
