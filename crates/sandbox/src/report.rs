//! The report of a run: the samples it recorded and what they show against the seed's
//! arithmetic (where the replicas settled on each plateau of the load).

use crate::harness::Snapshot;
use crate::seed::{MAX_REPLICAS, MIN_REPLICAS, THRESHOLD, expected_replicas};

/// One recorded second.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the start (wall clock).
    pub t: f64,
    /// What was seen.
    pub snap: Snapshot,
}

/// For each plateau of the load (the same connections for at least `min_len` samples), the
/// connections and the replicas at its end.
pub fn plateaus(samples: &[Sample], min_len: usize) -> Vec<(f64, Option<i32>)> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=samples.len() {
        let same = i < samples.len()
            && (samples[i].snap.connections - samples[start].snap.connections).abs() < 0.5;
        if !same {
            if i - start >= min_len {
                out.push((
                    samples[start].snap.connections,
                    samples[i - 1].snap.replicas,
                ));
            }
            start = i;
        }
    }
    out
}

/// The summary lines: where replicas settled on each plateau, against the seed's arithmetic.
pub fn summary(samples: &[Sample]) -> Vec<String> {
    plateaus(samples, 5)
        .into_iter()
        .map(|(c, r)| {
            let expected = expected_replicas(c);
            let got = r.map_or("-".to_owned(), |r| r.to_string());
            let verdict = if r == Some(expected) { "as" } else { "NOT as" };
            format!(
                "with {c:.0} connections replicas settled at {got}, {verdict} the seed computes \
                 (ceil({c:.0}/{THRESHOLD:.0}) = {} within [{MIN_REPLICAS}, {MAX_REPLICAS}] = \
                 {expected})",
                (c / THRESHOLD).ceil()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, c: f64, r: i32) -> Sample {
        Sample {
            t,
            snap: Snapshot {
                connections: c,
                replicas: Some(r),
                ..Snapshot::default()
            },
        }
    }

    #[test]
    fn summary_reports_plateaus() {
        let mut samples: Vec<Sample> = (0..6).map(|i| sample(f64::from(i), 140.0, 2)).collect();
        samples.push(sample(6.0, 140.0, 3));
        samples.push(sample(7.0, 200.0, 3));
        let lines = summary(&samples);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].contains("with 140 connections replicas settled at 3, as"),
            "{lines:?}"
        );
    }
}
