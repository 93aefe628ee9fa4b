//! Channels to the three services and the one place RPC failures become actionable errors.

use std::future::Future;
use std::time::Duration;

use promscaler_proto::v1::{
    actuator_service_client::ActuatorServiceClient, decision_service_client::DecisionServiceClient,
    metrics_fetcher_service_client::MetricsFetcherServiceClient,
};
use promscaler_runtime::Shutdown;
use promscaler_runtime::grpc_client::channel;
use promscaler_runtime::tls::PeerTlsArgs;
use tonic::transport::Channel;

use crate::Error;

/// One service's address and how to name it in messages.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// e.g. "decision service".
    pub(crate) service: &'static str,
    /// e.g. "--decision-addr".
    pub(crate) flag: &'static str,
    /// The address from the flag or environment.
    pub(crate) addr: String,
}

/// The three services' addresses and the per-call deadline.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    pub(crate) fetcher: Endpoint,
    pub(crate) decision: Endpoint,
    pub(crate) actuator: Endpoint,
    pub(crate) timeout: Duration,
    /// Read when a command first connects, so commands that call no service never need them.
    tls: PeerTlsArgs,
    shutdown: Shutdown,
}

impl Clients {
    pub(crate) fn new(
        fetcher: &str,
        decision: &str,
        actuator: &str,
        timeout: Duration,
        tls: PeerTlsArgs,
    ) -> Self {
        let endpoint = |service, flag, addr: &str| Endpoint {
            service,
            flag,
            addr: addr.to_owned(),
        };
        Self {
            fetcher: endpoint("metrics-fetcher", "--fetcher-addr", fetcher),
            decision: endpoint("decision service", "--decision-addr", decision),
            actuator: endpoint("actuator", "--actuator-addr", actuator),
            timeout,
            tls,
            shutdown: Shutdown::new(),
        }
    }

    fn channel(&self, e: &Endpoint) -> Result<Channel, Error> {
        let tls = self.tls.load()?;
        Ok(channel(e.flag, &e.addr, tls.as_ref(), &self.shutdown)?)
    }

    pub(crate) fn fetcher(&self) -> Result<MetricsFetcherServiceClient<Channel>, Error> {
        Ok(MetricsFetcherServiceClient::new(
            self.channel(&self.fetcher)?,
        ))
    }

    pub(crate) fn decision(&self) -> Result<DecisionServiceClient<Channel>, Error> {
        Ok(DecisionServiceClient::new(self.channel(&self.decision)?))
    }

    pub(crate) fn actuator(&self) -> Result<ActuatorServiceClient<Channel>, Error> {
        Ok(ActuatorServiceClient::new(self.channel(&self.actuator)?))
    }

    /// Awaits one RPC to `e` within `--timeout`, turning failures into [`Error`]s that say what
    /// to do.
    pub(crate) async fn call<T>(
        &self,
        e: &Endpoint,
        rpc: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status_error(e, rpc, &status)),
            Err(_) => Err(Error::Timeout {
                service: e.service,
                addr: e.addr.clone(),
                rpc,
                timeout: humantime::format_duration(self.timeout).to_string(),
            }),
        }
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        // Stops the resolver tasks of dns:/// addresses.
        self.shutdown.trigger();
    }
}

/// A status from the wire: transport failures (nothing answered) become [`Error::Unreachable`],
/// everything the service itself said becomes [`Error::Rpc`].
pub(crate) fn status_error(e: &Endpoint, rpc: &'static str, status: &tonic::Status) -> Error {
    if status.code() == tonic::Code::Unavailable
        && let Some(reason) = transport_reason(status)
    {
        return Error::Unreachable {
            service: e.service,
            addr: e.addr.clone(),
            flag: e.flag,
            reason,
        };
    }
    Error::Rpc {
        service: e.service,
        addr: e.addr.clone(),
        rpc,
        code: status.code(),
        message: status.message().to_owned(),
    }
}

/// Why the transport failed, when the status comes from the client's transport rather than
/// from the server: the innermost I/O error ("connection refused"), else the transport's text.
fn transport_reason(status: &tonic::Status) -> Option<String> {
    let mut source = std::error::Error::source(status);
    let mut transport = None;
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(if io.raw_os_error().is_some() {
                io.kind().to_string()
            } else {
                io.to_string()
            });
        }
        if err.downcast_ref::<tonic::transport::Error>().is_some() {
            transport = Some(err.to_string());
        }
        source = err.source();
    }
    transport.or_else(|| {
        let m = status.message();
        (m.contains("tcp connect error") || m.contains("transport error")).then(|| m.to_owned())
    })
}
