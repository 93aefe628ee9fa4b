//! The load curve a sandbox run plays: (seconds, connections) points, from a file or the
//! seed's story.

use anyhow::{Context as _, Result, bail};

/// A load curve: (seconds, connections) points, linear in between, flat after the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The points, by time.
    pub points: Vec<(f64, f64)>,
}

impl Scenario {
    /// The seed's story: ramp to 140, hold, peak at 300, drop to 20, silence.
    pub fn seed() -> Self {
        Self {
            points: vec![
                (0.0, 20.0),
                (30.0, 140.0),
                (150.0, 140.0),
                (165.0, 300.0),
                (225.0, 300.0),
                (230.0, 20.0),
                (320.0, 20.0),
                (325.0, 0.0),
                (380.0, 0.0),
            ],
        }
    }

    /// Parses lines of `SECONDS CONNECTIONS` (also `- [SECONDS, CONNECTIONS]` YAML lists and
    /// `SECONDS,CONNECTIONS`); `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self> {
        let mut points = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let cleaned: String = line
                .chars()
                .map(|c| if "-[],:".contains(c) { ' ' } else { c })
                .collect();
            let fields: Vec<&str> = cleaned.split_whitespace().collect();
            if fields.is_empty() {
                continue;
            }
            let [t, c] = fields[..] else {
                bail!(
                    "line {}: expected `SECONDS CONNECTIONS`, got {line:?}",
                    i + 1
                );
            };
            let t: f64 = t
                .parse()
                .with_context(|| format!("line {}: {t:?}", i + 1))?;
            let c: f64 = c
                .parse()
                .with_context(|| format!("line {}: {c:?}", i + 1))?;
            if points.last().is_some_and(|&(last, _)| t < last) || c < 0.0 {
                bail!(
                    "line {}: times must not decrease and connections be >= 0",
                    i + 1
                );
            }
            points.push((t, c));
        }
        if points.is_empty() {
            bail!("the scenario has no points");
        }
        Ok(Self { points })
    }

    /// The connections at `t` seconds.
    pub fn at(&self, t: f64) -> f64 {
        let mut prev = self.points[0];
        if t <= prev.0 {
            return prev.1;
        }
        for &(pt, pc) in &self.points[1..] {
            if t <= pt {
                let span = pt - prev.0;
                return if span <= 0.0 {
                    pc
                } else {
                    prev.1 + (pc - prev.1) * (t - prev.0) / span
                };
            }
            prev = (pt, pc);
        }
        prev.1
    }

    /// The last point's time.
    pub fn duration(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_interpolates() {
        let s = Scenario::parse("# t c\n0 0\n10 100\n- [20, 100]\n30,0\n").unwrap();
        assert_eq!(s.at(5.0), 50.0);
        assert_eq!(s.at(15.0), 100.0);
        assert_eq!(s.at(25.0), 50.0);
        assert_eq!(s.at(99.0), 0.0);
        assert_eq!(s.duration(), 30.0);
        assert!(Scenario::parse("").is_err());
        assert!(Scenario::parse("10 1\n5 2").is_err());
    }
}
