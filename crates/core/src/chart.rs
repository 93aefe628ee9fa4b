//! A small, dependency-free SVG chart of a scaler over time, drawn the same way by
//! `promscalerctl simulate --chart` and the sandbox (`cargo xtask sandbox`): each series of
//! values on the left axis, the replicas as a step line on the right axis (0..max), the max as
//! a dashed line, and fallback periods shaded. Like the rest of the crate it only computes: the
//! caller writes the string where it wants and names the x axis (clock times, seconds).

use std::fmt::Write as _;

/// One series of values on the left axis: (x, value); a non-finite value breaks the line.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, f64)>,
}

/// What the chart shows. x is in the caller's unit (unix milliseconds, seconds, ...).
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title line.
    pub title: String,
    /// Left edge.
    pub start: f64,
    /// Right edge.
    pub end: f64,
    /// The labelled ticks of the x axis: (x, label).
    pub x_ticks: Vec<(f64, String)>,
    /// The x axis' unit, under its right end ("UTC", "seconds").
    pub x_unit: String,
    /// The left axis' name ("value", "connections").
    pub value_axis: String,
    /// The values.
    pub values: Vec<Series>,
    /// The legend entry of the replicas' step line ("desired replicas").
    pub replicas_name: String,
    /// Replicas from each x until the next (until [`Chart::end`] for the last).
    pub replicas: Vec<(f64, i32)>,
    /// Whether the fallback applied from each x until the next.
    pub fallback: Vec<(f64, bool)>,
    /// maxReplicaCount (top of the right axis, drawn dashed).
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

/// A number without a trailing ".0" when it is whole (140, not 140.0), at most six decimals.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{}", (v * 1e6).round() / 1e6)
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

/// The y coordinates of the two axes.
struct Scales {
    /// Top of the value axis.
    vmax: f64,
    /// Top of the replicas axis.
    rmax: f64,
}

impl Scales {
    fn value(&self, v: f64) -> f64 {
        BOTTOM - (BOTTOM - TOP) * (v / self.vmax)
    }

    fn replicas(&self, r: f64) -> f64 {
        BOTTOM - (BOTTOM - TOP) * (r / self.rmax)
    }
}

impl Chart {
    fn x(&self, at: f64) -> f64 {
        let span = (self.end - self.start).max(1.0);
        LEFT + (RIGHT - LEFT) * ((at - self.start) / span)
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> String {
        let scales = Scales {
            vmax: nice_ceiling(
                self.values
                    .iter()
                    .flat_map(|v| v.points.iter().map(|p| p.1))
                    .filter(|v| v.is_finite())
                    .fold(0.0, f64::max),
            ),
            rmax: f64::from(self.max_replicas.max(1)),
        };
        let mut s = String::new();
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
        self.fallback_bands(&mut s);
        self.axes(&mut s, &scales);
        self.lines(&mut s, &scales);
        self.legend(&mut s);
        s.push_str("</svg>\n");
        s
    }

    /// Shades the periods in which the fallback applied.
    fn fallback_bands(&self, s: &mut String) {
        for (i, (at, on)) in self.fallback.iter().enumerate() {
            if *on {
                let end = self.fallback.get(i + 1).map_or(self.end, |n| n.0);
                let (x0, x1) = (self.x(*at), self.x(end));
                let _ = writeln!(
                    s,
                    r##"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{}" fill="#d62728" fill-opacity="0.12"/>"##,
                    (x1 - x0).max(0.5),
                    BOTTOM - TOP
                );
            }
        }
    }

    /// The frame, the value grid, the ticks of both axes and the axis names.
    fn axes(&self, s: &mut String, scales: &Scales) {
        let _ = writeln!(
            s,
            r##"<path d="M{LEFT} {TOP}V{BOTTOM}H{RIGHT}V{TOP}" fill="none" stroke="#444"/>"##
        );
        for k in 0..=4 {
            let v = scales.vmax * f64::from(k) / 4.0;
            let y = scales.value(v);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT - 6.0,
                y + 4.0,
                number(v)
            );
        }
        let rstep = (self.max_replicas / 10).max(1);
        let mut r = 0;
        while r <= self.max_replicas {
            let y = scales.replicas(f64::from(r));
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{:.1}">{r}</text>"#,
                RIGHT + 6.0,
                y + 4.0
            );
            r += rstep;
        }
        for (at, label) in &self.x_ticks {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                self.x(*at),
                BOTTOM + 16.0,
                escape(label)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}">{}</text><text x="{RIGHT}" y="{}" text-anchor="end">replicas</text><text x="{RIGHT}" y="{}" text-anchor="end">{}</text>"#,
            TOP - 6.0,
            escape(&self.value_axis),
            TOP - 6.0,
            BOTTOM + 30.0,
            escape(&self.x_unit)
        );
    }

    /// The max replicas (dashed), a polyline per run of finite values, the replicas' steps.
    fn lines(&self, s: &mut String, scales: &Scales) {
        let y = scales.replicas(scales.rmax);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#000" stroke-dasharray="4 4"/>"##
        );
        for (i, series) in self.values.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut d = String::new();
            let mut pen_down = false;
            for (at, v) in &series.points {
                if v.is_finite() {
                    let _ = write!(
                        d,
                        "{}{:.1} {:.1}",
                        if pen_down { "L" } else { "M" },
                        self.x(*at),
                        scales.value(*v)
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
        let mut d = String::new();
        for (i, (at, r)) in self.replicas.iter().enumerate() {
            let end = self.replicas.get(i + 1).map_or(self.end, |n| n.0);
            let y = scales.replicas(f64::from(*r));
            let (x0, x1) = (self.x(*at), self.x(end));
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
    }

    /// One entry a series, the replicas, the max and (when shaded) the fallback.
    fn legend(&self, s: &mut String) {
        let mut x = LEFT;
        let ly = H - 20.0;
        let mut entry = |s: &mut String, color: &str, label: &str, dash: bool| {
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
            entry(s, COLORS[i % COLORS.len()], &series.name, false);
        }
        entry(s, "#111", &self.replicas_name, false);
        entry(s, "#000", "max replicas", true);
        if self.fallback.iter().any(|f| f.1) {
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{}" width="18" height="10" fill="#d62728" fill-opacity="0.25"/><text x="{}" y="{}">fallback</text>"##,
                ly - 5.0,
                x + 22.0,
                ly + 4.0
            );
        }
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
    fn numbers_drop_a_whole_fraction() {
        assert_eq!(number(140.0), "140");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(1.0 / 3.0), "0.333333");
    }

    fn chart() -> Chart {
        Chart {
            title: "a <b>".into(),
            start: 0.0,
            end: 3_000.0,
            x_ticks: vec![(0.0, "00:00".into()), (3_000.0, "00:03".into())],
            x_unit: "UTC".into(),
            value_axis: "value".into(),
            values: vec![Series {
                name: "rps".into(),
                points: vec![(0.0, 10.0), (1_000.0, f64::NAN), (2_000.0, 100.0)],
            }],
            replicas_name: "desired replicas".into(),
            replicas: vec![(0.0, 1), (1_000.0, 2), (2_000.0, 2)],
            fallback: vec![(0.0, false), (1_000.0, true), (2_000.0, false)],
            max_replicas: 4,
        }
    }

    #[test]
    fn draws_values_replicas_and_fallback() {
        let svg = chart().svg();
        assert!(
            svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" "#),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt;b&gt;"));
        // The NaN breaks the value line into two runs (the value axis tops at 100).
        assert!(svg.contains(r#"<path d="M70.0 274.0M576.7 40.0""#), "{svg}");
        // Replicas 1, 2, 2 as steps to the right edge, on an axis topped by max 4.
        assert!(
            svg.contains(r##"<path d="M70.0 235.0L323.3 235.0L323.3 170.0L576.7 170.0L576.7 170.0L830.0 170.0" fill="none" stroke="#111""##),
            "{svg}"
        );
        // The max, dashed, at the top; the fallback second shaded.
        assert!(svg.contains(r##"<line x1="70" y1="40.0" x2="830" y2="40.0" stroke="#000" stroke-dasharray="4 4"/>"##), "{svg}");
        assert!(
            svg.contains(r##"<rect x="323.3" y="40" width="253.3" height="260" fill="#d62728""##),
            "{svg}"
        );
        assert!(svg.contains(">fallback</text>"));
        // The caller's names: legend, axis, x ticks and unit.
        assert!(svg.contains(">rps</text>"));
        assert!(svg.contains(">desired replicas</text>"));
        assert!(svg.contains(r#"<text x="70" y="34">value</text>"#), "{svg}");
        assert!(
            svg.contains(r#"text-anchor="middle">00:03</text>"#),
            "{svg}"
        );
        assert!(svg.contains(r#"text-anchor="end">UTC</text>"#), "{svg}");
    }

    #[test]
    fn no_fallback_no_shading_or_legend_entry() {
        let mut chart = chart();
        chart.fallback.clear();
        let svg = chart.svg();
        assert!(!svg.contains("fallback"), "{svg}");
        assert!(!svg.contains("fill-opacity"), "{svg}");
    }
}
