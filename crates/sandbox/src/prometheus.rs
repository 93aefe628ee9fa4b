//! A real Prometheus (the `prometheus` binary of Debian's package, on the PATH) on 127.0.0.1
//! with tempdir storage, scraping targets every second; and [`ScrapeTarget`], a tiny HTTP
//! server whose `/metrics` text the test sets — the emulated app's pods.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::process::{ChildProcess, free_port, http, poll_until};

/// The seed's metric.
pub const SAMPLE_METRIC: &str = "websocket_active_connection_count";

/// The seed's query: one value for the whole app.
pub const SEED_QUERY: &str = r#"sum(avg_over_time(websocket_active_connection_count{app_kubernetes_io_name="sample-app"}[1m]))"#;

/// The seed's counter-example: one series per pod, which cannot drive scaling.
pub const SEED_MULTI_SERIES_QUERY: &str =
    r#"avg_over_time(websocket_active_connection_count{app_kubernetes_io_name="sample-app"}[1m])"#;

/// A running Prometheus scraping every second, killed on drop.
#[derive(Debug)]
pub struct Prometheus {
    binary: PathBuf,
    process: Option<ChildProcess>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` and waits until it is ready (15 s).
    pub async fn start(targets: &[SocketAddr]) -> Result<Self> {
        let target_list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        Self::with_scrape_config(&format!(
            "    static_configs:\n      - targets: [{}]\n",
            target_list.join(", ")
        ))
        .await
    }

    /// Starts Prometheus following the targets of the file-SD JSON file `sd_file` (re-read
    /// every second, as a Kubernetes SD follows pods) and waits until it is ready (15 s).
    pub async fn following(sd_file: &Path) -> Result<Self> {
        Self::following_all(&[sd_file]).await
    }

    /// [`Prometheus::following`] over several file-SD files (e.g. the app's pods and the
    /// services' admin ports), each target labelled by its file.
    pub async fn following_all(sd_files: &[&Path]) -> Result<Self> {
        let files: Vec<String> = sd_files
            .iter()
            .map(|f| format!("'{}'", f.display()))
            .collect();
        Self::with_scrape_config(&format!(
            "    file_sd_configs:\n      - files: [{}]\n        refresh_interval: 1s\n",
            files.join(", ")
        ))
        .await
    }

    /// Starts Prometheus scraping `targets` and evaluating `rules` (a Prometheus rules file's
    /// YAML) every second; alerts are on [`Prometheus::firing_alerts`].
    pub async fn with_rules(targets: &[SocketAddr], rules: &str) -> Result<Self> {
        let target_list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        Self::in_dir(
            Self::tempdir()?,
            &format!(
                "    static_configs:\n      - targets: [{}]\n",
                target_list.join(", ")
            ),
            Some(rules),
        )
        .await
    }

    /// The names of the alerts firing now.
    pub async fn firing_alerts(&self) -> Result<Vec<String>> {
        let (status, text) = http(self.addr, "GET", "/api/v1/alerts", "").await?;
        if status != 200 {
            bail!("prometheus answered {status}: {text}");
        }
        let json: serde_json::Value = serde_json::from_str(&text)?;
        let alerts = json
            .pointer("/data/alerts")
            .and_then(serde_json::Value::as_array)
            .with_context(|| format!("no alerts in {text}"))?;
        let mut firing: Vec<String> = alerts
            .iter()
            .filter(|a| a["state"] == "firing")
            .filter_map(|a| Some(a.pointer("/labels/alertname")?.as_str()?.to_owned()))
            .collect();
        firing.sort();
        firing.dedup();
        Ok(firing)
    }

    /// Starts Prometheus over the history in `openmetrics` (OpenMetrics text, timestamps in
    /// seconds, ending with `# EOF`), loaded with `promtool tsdb create-blocks-from openmetrics`
    /// before the start; it scrapes nothing, so its answers for times within that history never
    /// change.
    pub async fn with_history(openmetrics: &str) -> Result<Self> {
        let dir = Self::tempdir()?;
        let promtool = which("promtool").context(
            "promtool is not on the PATH (it comes with Debian's prometheus package, which \
             cargo xtask test installs)",
        )?;
        let input = dir.path().join("history.om");
        std::fs::write(&input, openmetrics)?;
        let output = Command::new(promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(dir.path().join("data"))
            .output()
            .context("running promtool")?;
        if !output.status.success() {
            bail!(
                "promtool tsdb create-blocks-from openmetrics failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Self::in_dir(dir, "", None).await
    }

    fn tempdir() -> Result<tempfile::TempDir> {
        Ok(tempfile::Builder::new()
            .prefix("promscaler-prom-")
            .tempdir()?)
    }

    /// `discovery` is the YAML of one scrape job's target discovery.
    async fn with_scrape_config(discovery: &str) -> Result<Self> {
        Self::in_dir(Self::tempdir()?, discovery, None).await
    }

    async fn in_dir(dir: tempfile::TempDir, discovery: &str, rules: Option<&str>) -> Result<Self> {
        let binary = which("prometheus").context(
            "the prometheus binary is not on the PATH: `apt-get update && apt-get install -y \
             --no-install-recommends prometheus` (cargo xtask test installs it)",
        )?;
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - \
             job_name: sample-app\n    honor_labels: true\n{discovery}"
        );
        if let Some(rules) = rules {
            let path = dir.path().join("rules.yml");
            std::fs::write(&path, rules)?;
            config.push_str(&format!("rule_files: ['{}']\n", path.display()));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config)?;
        let mut prometheus = Self {
            binary,
            process: None,
            addr,
            dir,
        };
        prometheus.spawn().await?;
        Ok(prometheus)
    }

    async fn spawn(&mut self) -> Result<()> {
        let dir = self.dir.path();
        let mut cmd = Command::new(&self.binary);
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={}", self.addr))
        .arg("--web.enable-lifecycle")
        .arg("--log.level=warn");
        let process = ChildProcess::spawn("prometheus", cmd, &dir.join("prometheus.log"))?;
        let addr = self.addr;
        let ready = poll_until(
            "prometheus /-/ready",
            Duration::from_secs(15),
            || async move {
                let (status, _) = http(addr, "GET", "/-/ready", "").await?;
                Ok((status == 200).then_some(()))
            },
        )
        .await;
        if let Err(e) = ready {
            bail!("{e:#}\nprometheus log:\n{}", process.log_tail());
        }
        self.process = Some(process);
        Ok(())
    }

    /// Starts Prometheus again after [`stop`] (or a crash) on the same address with the same
    /// data directory, as a restarted Prometheus pod with a persistent volume would.
    ///
    /// [`stop`]: Prometheus::stop
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn().await
    }

    /// The single value `query` returns now (`None` when empty or several series).
    pub async fn value(&self, query: &str) -> Result<Option<f64>> {
        Ok(single_value(&self.query(query).await?))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops Prometheus (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
        }
    }

    /// Runs an instant query directly and returns the JSON body.
    pub async fn query(&self, query: &str) -> Result<String> {
        self.query_form(&format!("query={}", form_encode(query)))
            .await
    }

    /// Runs an instant query directly at `time` (Unix seconds) and returns the JSON body.
    pub async fn query_at(&self, query: &str, time: f64) -> Result<String> {
        self.query_form(&format!("query={}&time={time}", form_encode(query)))
            .await
    }

    async fn query_form(&self, body: &str) -> Result<String> {
        let body = body.to_owned();
        let (status, text) = http(self.addr, "POST", "/api/v1/query", &body).await?;
        if status != 200 {
            bail!("prometheus answered {status}: {text}");
        }
        Ok(text)
    }

    /// The samples Prometheus itself reports processing for `query` evaluated at `at` (Unix
    /// seconds): its `stats=all` answer's `totalQueryableSamples`.
    pub async fn samples_processed(&self, query: &str, at: f64) -> Result<u64> {
        let body = format!("query={}&time={at}&stats=all", form_encode(query));
        let (status, text) = http(self.addr, "POST", "/api/v1/query", &body).await?;
        if status != 200 {
            bail!("prometheus answered {status}: {text}");
        }
        let json: serde_json::Value = serde_json::from_str(&text)?;
        json.pointer("/data/stats/samples/totalQueryableSamples")
            .and_then(serde_json::Value::as_u64)
            .with_context(|| format!("no samples statistics in {text}"))
    }

    /// Waits until `query` directly returns a one-element result equal to `expected`.
    pub async fn wait_for_value(
        &self,
        query: &str,
        expected: f64,
        timeout: Duration,
    ) -> Result<()> {
        poll_until(&format!("{query} == {expected}"), timeout, || async move {
            let text = self.query(query).await?;
            Ok((single_value(&text) == Some(expected)).then_some(()))
        })
        .await
    }

    /// Waits until `query` directly returns exactly `n` series.
    pub async fn wait_for_series(&self, query: &str, n: usize, timeout: Duration) -> Result<()> {
        poll_until(
            &format!("{query} returns {n} series"),
            timeout,
            || async move {
                let text = self.query(query).await?;
                Ok((text.matches("\"metric\"").count() == n).then_some(()))
            },
        )
        .await
    }
}

/// The value of a one-element vector or scalar in a Prometheus JSON answer (rig use only).
pub fn single_value(json: &str) -> Option<f64> {
    if json.matches("\"value\"").count() > 1 {
        return None;
    }
    let start = json.find("\"value\":[")? + "\"value\":[".len();
    let rest = &json[start..];
    let quote = rest.find('"')? + 1;
    let end = rest[quote..].find('"')? + quote;
    rest[quote..end].parse().ok()
}

fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A program on the PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// An HTTP server answering every request with the current `/metrics` text; stops on drop.
#[derive(Debug)]
pub struct ScrapeTarget {
    addr: SocketAddr,
    text: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScrapeTarget {
    /// Serves `text` on 127.0.0.1:0.
    pub async fn start(text: String) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let text = Arc::new(Mutex::new(text));
        let shared = text.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    let mut read = 0;
                    // Read the request head; the body (none for GET) is ignored.
                    while read < buf.len() {
                        match stream.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    let body = shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Ok(Self { addr, text, task })
    }

    /// Serves the seed app's gauge, one series per pod with the given connection counts.
    pub async fn sample_app(connections_per_pod: &[f64]) -> Result<Self> {
        Self::start(sample_app_metrics(connections_per_pod)).await
    }

    /// Replaces the served text.
    pub fn set(&self, text: String) {
        *self.text.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    /// The listen address (a Prometheus target).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The text served now.
    pub fn text(&self) -> String {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The exposition text of the seed app: `websocket_active_connection_count` per pod.
pub fn sample_app_metrics(connections_per_pod: &[f64]) -> String {
    let mut text = format!(
        "# HELP {SAMPLE_METRIC} Open websocket connections.\n# TYPE {SAMPLE_METRIC} gauge\n"
    );
    for (i, c) in connections_per_pod.iter().enumerate() {
        text.push_str(&format!(
            "{SAMPLE_METRIC}{{app_kubernetes_io_name=\"sample-app\",pod=\"sample-app-{i}\"}} {c}\n"
        ));
    }
    text
}

/// Installs Debian's `prometheus` when it is missing and we are root; otherwise says how.
pub fn ensure_prometheus() -> Result<()> {
    if which("prometheus").is_some() {
        return Ok(());
    }
    let install = "apt-get update && apt-get install -y --no-install-recommends prometheus";
    let uid = std::process::Command::new("id").arg("-u").output()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!(
            "Prometheus is not installed; install Debian's package as root: `sudo sh -c '{install}'`"
        );
    }
    eprintln!("sandbox: installing Debian's prometheus package");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(install)
        .status()?;
    if !status.success() || which("prometheus").is_none() {
        bail!("`{install}` failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_single_value() {
        let json = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"140"]}]}}"#;
        assert_eq!(single_value(json), Some(140.0));
        assert_eq!(single_value(r#"{"data":{"result":[]}}"#), None);
    }

    #[test]
    fn sample_app_has_one_series_per_pod() {
        let text = sample_app_metrics(&[70.0, 70.0]);
        assert_eq!(
            text.matches("app_kubernetes_io_name=\"sample-app\"")
                .count(),
            2
        );
    }
}
