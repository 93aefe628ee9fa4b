//! moto's server as an AWS STS emulator on 127.0.0.1 (`moto_server -H 127.0.0.1 -p PORT`, from
//! the test venv). AssumeRoleWithWebIdentity works without validating the token; every
//! credential it issues is listed by `GET /moto-api/data.json`, which is how tests count STS
//! calls and how the AMP gateway learns the secret keys to verify signatures with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::process::{ChildProcess, free_port, http, poll_until, venv_script};

/// A running moto server, killed on drop.
#[derive(Debug)]
pub struct Sts {
    process: ChildProcess,
    moto: PathBuf,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Sts {
    /// Starts `moto_server` from the venv of `python` and waits until it answers (15 s).
    pub async fn start(python: &Path) -> Result<Self> {
        let moto = venv_script(python, "moto_server")?;
        let dir = tempfile::Builder::new()
            .prefix("promscaler-sts-")
            .tempdir()?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let process = Self::spawn(&moto, addr, dir.path()).await?;
        Ok(Self {
            process,
            moto,
            addr,
            dir,
        })
    }

    async fn spawn(moto: &Path, addr: SocketAddr, dir: &Path) -> Result<ChildProcess> {
        let mut cmd = crate::process::command_without_aws_env(moto);
        cmd.args(["-H", "127.0.0.1", "-p", &addr.port().to_string()]);
        let mut process = ChildProcess::spawn("moto_server", cmd, &dir.join("moto.log"))?;
        let ready = poll_until("moto_server", Duration::from_secs(20), || async move {
            let (status, _) = http(addr, "GET", "/moto-api/data.json", "").await?;
            Ok((status == 200).then_some(()))
        })
        .await;
        if let Err(e) = ready {
            process.check_running()?;
            bail!("{e:#}\nmoto log:\n{}", process.log_tail());
        }
        Ok(process)
    }

    /// Starts the emulator again on the same port after [`stop`] (or a crash). Like a fresh
    /// STS it remembers no credentials issued before; the AMP gateway keeps verifying the ones
    /// it already learned, as AWS keeps honouring unexpired session credentials.
    ///
    /// [`stop`]: Sts::stop
    pub async fn restart(&mut self) -> Result<()> {
        self.process.kill();
        self.process = Self::spawn(&self.moto, self.addr, self.dir.path()).await?;
        Ok(())
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_STS`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Credentials issued so far by AssumeRole/AssumeRoleWithWebIdentity: one per STS call.
    pub async fn issued_credentials(&self) -> Result<usize> {
        let (status, body) = http(self.addr, "GET", "/moto-api/data.json", "").await?;
        if status != 200 {
            bail!("moto data.json answered {status}");
        }
        let data: serde_json::Value =
            serde_json::from_str(&body).context("moto data.json is not JSON")?;
        Ok(data["sts"]["AssumedRole"].as_array().map_or(0, Vec::len))
    }

    /// Stops the emulator.
    pub fn stop(&mut self) {
        self.process.kill();
    }
}
