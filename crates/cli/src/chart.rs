//! A small, dependency-free SVG chart for `simulate --chart`: each trigger's value over time
//! (left axis), the desired replicas as a step line (right axis, 0..max), the max as a dashed
//! line, and fallback periods shaded.

use std::fmt::Write as _;

/// One trigger's values: (unix milliseconds, value).
#[derive(Debug, Clone)]
pub struct Series {
    /// The trigger name (legend).
    pub name: String,
    /// Points in time order.
    pub points: Vec<(i64, f64)>,
}

/// What the chart shows.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title line.
    pub title: String,
    /// Left edge, unix milliseconds.
    pub start_ms: i64,
    /// Right edge, unix milliseconds.
    pub end_ms: i64,
    /// Trigger values.
    pub values: Vec<Series>,
    /// Desired replicas from each instant until the next.
    pub replicas: Vec<(i64, i32)>,
    /// Whether the fallback applied from each instant until the next.
    pub fallback: Vec<(i64, bool)>,
    /// maxReplicaCount (top of the right axis).
    pub max_replicas: i32,
}

const W: f64 = 900.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 830.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 300.0;
const COLORS: &[&str] = &["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "HH:MM" (UTC) of unix milliseconds, with the date when the range spans days.
fn clock(ms: i64, with_date: bool) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    if with_date {
        format!("{} {}", &s[5..10], &s[11..16])
    } else {
        s[11..16].to_owned()
    }
}

/// A round upper bound for the value axis (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^n), so the
/// curve fills most of the height.
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

impl Chart {
    fn x(&self, ms: i64) -> f64 {
        let span = (self.end_ms - self.start_ms).max(1) as f64;
        LEFT + (RIGHT - LEFT) * ((ms - self.start_ms) as f64 / span)
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let mut s = String::new();
        let vmax = nice_ceiling(
            self.values
                .iter()
                .flat_map(|v| v.points.iter().map(|p| p.1))
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max),
        );
        let rmax = f64::from(self.max_replicas.max(1));
        let yv = |v: f64| BOTTOM - (BOTTOM - TOP) * (v / vmax);
        let yr = |r: f64| BOTTOM - (BOTTOM - TOP) * (r / rmax);
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">"#
        );
        let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="20" font-size="13">{}</text>"#,
            escape(&self.title)
        );
        // Fallback periods.
        for (i, (at, on)) in self.fallback.iter().enumerate() {
            if *on {
                let end = self.fallback.get(i + 1).map_or(self.end_ms, |n| n.0);
                let (x0, x1) = (self.x(*at), self.x(end));
                let _ = writeln!(
                    s,
                    r##"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{}" fill="#d62728" fill-opacity="0.12"/>"##,
                    (x1 - x0).max(0.5),
                    BOTTOM - TOP
                );
            }
        }
        // Axes and grid.
        let _ = writeln!(
            s,
            r##"<path d="M{LEFT} {TOP}V{BOTTOM}H{RIGHT}V{TOP}" fill="none" stroke="#444"/>"##
        );
        for k in 0..=4 {
            let v = vmax * f64::from(k) / 4.0;
            let y = yv(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT - 6.0,
                y + 4.0,
                crate::output::number(v)
            );
        }
        let rstep = (self.max_replicas / 10).max(1);
        let mut r = 0;
        while r <= self.max_replicas {
            let y = yr(f64::from(r));
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}">{r}</text>"#,
                RIGHT + 6.0,
                y + 4.0
            );
            r += rstep;
        }
        let days = self.end_ms - self.start_ms > 86_400_000;
        for k in 0..=5 {
            let ms = self.start_ms + (self.end_ms - self.start_ms) * k / 5;
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                self.x(ms),
                BOTTOM + 16.0,
                clock(ms, days)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}">value</text><text x="{RIGHT}" y="{}" text-anchor="end">replicas</text><text x="{RIGHT}" y="{}" text-anchor="end">UTC</text>"#,
            TOP - 6.0,
            TOP - 6.0,
            BOTTOM + 30.0
        );
        // Max replicas.
        let y = yr(rmax);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#000" stroke-dasharray="4 4"/>"##
        );
        // Values: a polyline per run of finite points.
        for (i, series) in self.values.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut d = String::new();
            let mut pen_down = false;
            for (ms, v) in &series.points {
                if v.is_finite() {
                    let _ = write!(
                        d,
                        "{}{:.1} {:.1}",
                        if pen_down { "L" } else { "M" },
                        self.x(*ms),
                        yv(*v)
                    );
                    pen_down = true;
                } else {
                    pen_down = false;
                }
            }
            let _ = writeln!(
                s,
                r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"/>"#
            );
        }
        // Replicas: a step line.
        let mut d = String::new();
        for (i, (ms, r)) in self.replicas.iter().enumerate() {
            let end = self.replicas.get(i + 1).map_or(self.end_ms, |n| n.0);
            let y = yr(f64::from(*r));
            let (x0, x1) = (self.x(*ms), self.x(end));
            let _ = write!(
                d,
                "{}{x0:.1} {y:.1}L{x1:.1} {y:.1}",
                if i == 0 { "M" } else { "L" }
            );
        }
        let _ = writeln!(
            s,
            r##"<path d="{d}" fill="none" stroke="#111" stroke-width="2"/>"##
        );
        // Legend.
        let mut x = LEFT;
        let ly = H - 20.0;
        let mut legend = |s: &mut String, color: &str, label: &str, dash: bool| {
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"{}/><text x="{}" y="{}">{}</text>"#,
                x + 18.0,
                if dash {
                    r#" stroke-dasharray="4 4""#
                } else {
                    ""
                },
                x + 22.0,
                ly + 4.0,
                escape(label)
            );
            x += 30.0 + 7.0 * label.chars().count() as f64;
        };
        for (i, series) in self.values.iter().enumerate() {
            legend(&mut s, COLORS[i % COLORS.len()], &series.name, false);
        }
        legend(&mut s, "#111", "desired replicas", false);
        legend(&mut s, "#000", "max replicas", true);
        if self.fallback.iter().any(|f| f.1) {
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{}" width="18" height="10" fill="#d62728" fill-opacity="0.25"/><text x="{}" y="{}">fallback</text>"##,
                ly - 5.0,
                x + 22.0,
                ly + 4.0
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_ceilings_are_round() {
        assert_eq!(nice_ceiling(140.0), 150.0);
        assert_eq!(nice_ceiling(260.0), 300.0);
        assert_eq!(nice_ceiling(50.0), 50.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }

    #[test]
    fn draws_values_replicas_and_fallback() {
        let chart = Chart {
            title: "a <b>".into(),
            start_ms: 0,
            end_ms: 3_000,
            values: vec![Series {
                name: "rps".into(),
                points: vec![(0, 10.0), (1_000, f64::NAN), (2_000, 100.0)],
            }],
            replicas: vec![(0, 1), (1_000, 2), (2_000, 2)],
            fallback: vec![(0, false), (1_000, true), (2_000, false)],
            max_replicas: 4,
        };
        let svg = chart.svg();
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt;b&gt;"));
        // The NaN breaks the value line into two runs.
        assert!(svg.contains(r#"<path d="M70.0 274.0M576.7 40.0""#), "{svg}");
        assert!(svg.contains("fallback</text>"));
        assert!(svg.contains(">desired replicas</text>"));
    }
}
