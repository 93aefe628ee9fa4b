//! An Amazon Managed Prometheus look-alike: `rig/amp_gateway.py` (botocore SigV4 verification
//! against the credentials moto issued, AMP's 403 messages, forwarding to a real Prometheus,
//! a forwarded-request counter and an injectable delay). See the script's docstring.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::process::{ChildProcess, free_port, http, poll_until};

/// The gateway script, embedded so the rig works from any working directory.
pub const SCRIPT: &str = include_str!("../rig/amp_gateway.py");

/// The workspace id in gateway URLs.
pub const WORKSPACE_ID: &str = "ws-promscaler-test";

/// What the gateway has seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct GatewayStats {
    /// Requests with a valid signature, forwarded to Prometheus.
    pub forwarded: u64,
    /// Requests answered 403.
    pub rejected: u64,
    /// The last 403's message.
    pub last_rejection: String,
    /// Valid requests per role ARN whose credentials (issued by moto's STS) signed them.
    #[serde(default)]
    pub signed_by: std::collections::BTreeMap<String, u64>,
    /// Signed requests answered 429 because they exceeded the rate limit.
    #[serde(default)]
    pub throttled: u64,
}

/// A running gateway, killed on drop.
#[derive(Debug)]
pub struct AmpGateway {
    process: ChildProcess,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl AmpGateway {
    /// Starts the gateway with `python` (which must have botocore), forwarding to `upstream`
    /// (a Prometheus base URL), verifying against moto at `moto`, accepting only `region`.
    pub async fn start(python: &Path, upstream: &str, moto: &str, region: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("promscaler-gw-")
            .tempdir()?;
        let script = dir.path().join("amp_gateway.py");
        std::fs::write(&script, SCRIPT)?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = crate::process::command_without_aws_env(python);
        cmd.arg(&script)
            .args(["--port", &port.to_string()])
            .args(["--upstream", upstream])
            .args(["--moto", moto])
            .args(["--region", region]);
        let mut process = ChildProcess::spawn("amp gateway", cmd, &dir.path().join("gateway.log"))?;
        let ready = poll_until("amp gateway", Duration::from_secs(15), || async move {
            let (status, _) = http(addr, "GET", "/-/gateway/ready", "").await?;
            Ok((status == 200).then_some(()))
        })
        .await;
        if let Err(e) = ready {
            process.check_running()?;
            bail!("{e:#}\ngateway log:\n{}", process.log_tail());
        }
        Ok(Self {
            process,
            addr,
            _dir: dir,
        })
    }

    /// The AMP-style server address: `http://127.0.0.1:PORT/workspaces/<id>`.
    pub fn workspace_url(&self) -> String {
        format!("http://{}/workspaces/{WORKSPACE_ID}", self.addr)
    }

    /// Counters.
    pub async fn stats(&self) -> Result<GatewayStats> {
        let (status, body) = http(self.addr, "GET", "/-/gateway/stats", "").await?;
        if status != 200 {
            bail!("gateway stats answered {status}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("gateway stats: {body}"))
    }

    /// Delays every forwarded request (a slow upstream).
    pub async fn set_delay(&self, delay: Duration) -> Result<()> {
        let path = format!("/-/gateway/delay?seconds={}", delay.as_secs_f64());
        let (status, body) = http(self.addr, "POST", &path, "").await?;
        if status != 200 {
            bail!("gateway delay answered {status}: {body}");
        }
        Ok(())
    }

    /// Answers 429 ThrottlingException, as AMP does, to requests beyond `rps` per second (a
    /// bucket of two seconds' worth, so that a paced stream that reaches the Python process in
    /// bunches on a busy machine is not mistaken for a burst); 0 lifts the limit.
    pub async fn set_rate_limit(&self, rps: f64) -> Result<()> {
        let path = format!("/-/gateway/limit?rps={rps}");
        let (status, body) = http(self.addr, "POST", &path, "").await?;
        if status != 200 {
            bail!("gateway limit answered {status}: {body}");
        }
        Ok(())
    }

    /// The gateway's log (for failure messages).
    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }
}
