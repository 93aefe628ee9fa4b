//! Measuring processes from the outside: CPU time and RSS from /proc, counters from a
//! Prometheus text exposition, the machine's load average.

use std::{net::SocketAddr, sync::OnceLock, time::Instant};

use anyhow::{Context as _, Result, bail};

/// CPU time and memory of a process at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcSample {
    /// utime + stime of every thread, in clock ticks.
    cpu_ticks: u64,
    /// VmRSS in KiB.
    pub(crate) rss_kib: u64,
    at: Instant,
}

impl ProcSample {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    pub(crate) fn read(pid: u32) -> Result<Self> {
        let at = Instant::now();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat (has the process exited?)"))?;
        // The command name may contain spaces and parentheses: fields start after the last ')'.
        let rest = stat.rsplit_once(')').context("malformed stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Field 3 (state) is fields[0]; utime is field 14, stime field 15 (proc(5)).
        let utime: u64 = fields.get(11).context("no utime")?.parse()?;
        let stime: u64 = fields.get(12).context("no stime")?.parse()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS")?;
        Ok(Self {
            cpu_ticks: utime + stime,
            rss_kib,
            at,
        })
    }

    /// Average CPU use between `self` and the later `end`, in millicores.
    pub(crate) fn millicores_until(&self, end: &Self) -> f64 {
        let cpu_seconds = (end.cpu_ticks - self.cpu_ticks) as f64 / clock_ticks_per_second();
        cpu_seconds / (end.at - self.at).as_secs_f64() * 1000.0
    }

    /// CPU seconds between `self` and the later `end`.
    pub(crate) fn cpu_seconds_until(&self, end: &Self) -> f64 {
        (end.cpu_ticks - self.cpu_ticks) as f64 / clock_ticks_per_second()
    }

    /// RSS in MiB.
    pub(crate) fn rss_mib(&self) -> f64 {
        self.rss_kib as f64 / 1024.0
    }
}

/// `getconf CLK_TCK` (100 on Linux unless configured otherwise).
fn clock_ticks_per_second() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The 1, 5 and 15 minute load averages and the number of CPUs, for the record.
pub(crate) fn machine() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpus} CPUs, load average {}", load.join(" "))
}

/// One scrape of a Prometheus text exposition.
#[derive(Debug, Default, Clone)]
pub(crate) struct Metrics {
    samples: Vec<(String, String, f64)>,
}

impl Metrics {
    /// GET `http://<addr>/metrics`.
    pub(crate) async fn scrape(addr: SocketAddr) -> Result<Self> {
        let (status, body) = promscaler_sandbox::process::http(addr, "GET", "/metrics", "").await?;
        if status != 200 {
            bail!("GET http://{addr}/metrics answered {status}");
        }
        Ok(Self::parse(&body))
    }

    /// Parses `name{labels} value` lines; comments and unparsable lines are skipped.
    pub(crate) fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let value: f64 = value.trim().parse().ok()?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                Some((name.to_owned(), labels.to_owned(), value))
            })
            .collect();
        Self { samples }
    }

    /// Sum of the samples of `name` whose label text contains every one of `labels`
    /// (e.g. `kind="status"`).
    pub(crate) fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|want| l.contains(want)))
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Every series of `name` as (labels, value).
    pub(crate) fn series(&self, name: &str) -> Vec<(String, f64)> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, v)| (l.clone(), *v))
            .collect()
    }
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
pub(crate) fn percentile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile::<u64>(&[], 0.5), 0);
    }

    #[test]
    fn sums_series_by_label_substrings() {
        let m = Metrics::parse(
            "# TYPE x counter\nx_total{kind=\"status\",result=\"ok\"} 3\nx_total{kind=\"event\",result=\"ok\"} 2\ny 1.5\n",
        );
        assert_eq!(m.sum("x_total", &[]), 5.0);
        assert_eq!(m.sum("x_total", &["kind=\"status\""]), 3.0);
        assert_eq!(m.sum("y", &[]), 1.5);
    }
}
