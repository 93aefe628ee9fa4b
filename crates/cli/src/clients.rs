//! Channels to the three services and the one place RPC failures become actionable errors.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use promscaler_proto::v1::{
    actuator_service_client::ActuatorServiceClient, decision_service_client::DecisionServiceClient,
    metrics_fetcher_service_client::MetricsFetcherServiceClient,
};
use promscaler_runtime::Shutdown;
use promscaler_runtime::grpc_client::channel;
use promscaler_runtime::tls::PeerTlsArgs;
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

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
    /// Read when a command first connects to the actuator.
    token: TokenSource,
    shutdown: Shutdown,
}

/// Where the actuator's bearer token comes from: --token, else --token-file, else the pod's
/// ServiceAccount token when it exists, else none (the actuator then answers UNAUTHENTICATED,
/// saying how to pass one).
#[derive(Debug, Clone)]
pub(crate) struct TokenSource {
    token: Option<String>,
    file: Option<PathBuf>,
    /// The in-pod default; a field so tests can point it elsewhere.
    service_account: PathBuf,
}

/// Where Kubernetes mounts a pod's ServiceAccount token.
pub(crate) const SERVICE_ACCOUNT_TOKEN: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/token";

impl TokenSource {
    pub(crate) fn new(token: Option<String>, file: Option<PathBuf>) -> Self {
        Self {
            token,
            file,
            service_account: PathBuf::from(SERVICE_ACCOUNT_TOKEN),
        }
    }

    /// The `authorization` metadata value, if any token is configured or mounted.
    fn load(&self) -> Result<Option<MetadataValue<Ascii>>, Error> {
        let (token, origin) = if let Some(token) = &self.token {
            (token.clone(), "--token".to_owned())
        } else {
            let path = match &self.file {
                Some(path) => path.clone(),
                None if self.service_account.exists() => self.service_account.clone(),
                None => return Ok(None),
            };
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                path: path.display().to_string(),
                source,
            })?;
            (text, path.display().to_string())
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(Error::Usage(format!(
                "the bearer token from {origin} is empty"
            )));
        }
        let printable = token.bytes().all(|b| b.is_ascii_graphic());
        let value = printable
            .then(|| format!("Bearer {token}").parse().ok())
            .flatten();
        value.map(Some).ok_or_else(|| {
            Error::Usage(format!(
                "the bearer token from {origin} has characters a gRPC header cannot carry (only printable ASCII)"
            ))
        })
    }
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub(crate) struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The actuator's client, sending the bearer token.
pub(crate) type ActuatorClient = ActuatorServiceClient<InterceptedService<Channel, Bearer>>;

impl Clients {
    pub(crate) fn new(
        fetcher: &str,
        decision: &str,
        actuator: &str,
        timeout: Duration,
        tls: PeerTlsArgs,
        token: TokenSource,
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
            token,
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

    pub(crate) fn actuator(&self) -> Result<ActuatorClient, Error> {
        let bearer = Bearer(self.token.load()?);
        Ok(ActuatorServiceClient::with_interceptor(
            self.channel(&self.actuator)?,
            bearer,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn source(token: Option<&str>, file: Option<PathBuf>, service_account: PathBuf) -> TokenSource {
        TokenSource {
            token: token.map(String::from),
            file,
            service_account,
        }
    }

    fn header(source: &TokenSource) -> Option<String> {
        source
            .load()
            .expect("a usable token source")
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn the_token_comes_from_the_flag_then_the_file_then_the_pods_service_account() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        let service_account = dir.path().join("sa-token");
        std::fs::write(&service_account, "from-pod").unwrap();
        assert_eq!(
            header(&source(
                Some("flag"),
                Some(file.clone()),
                service_account.clone()
            )),
            Some("Bearer flag".into())
        );
        assert_eq!(
            header(&source(None, Some(file), service_account.clone())),
            Some("Bearer from-file".into())
        );
        assert_eq!(
            header(&source(None, None, service_account)),
            Some("Bearer from-pod".into())
        );
        assert_eq!(header(&source(None, None, dir.path().join("absent"))), None);
    }

    #[test]
    fn an_unusable_token_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent");
        let errors = [
            source(Some("  "), None, absent.clone()),
            source(Some("caf\u{e9}"), None, absent.clone()),
            source(None, Some(absent.clone()), absent),
        ]
        .map(|s| s.load().unwrap_err().to_string());
        assert_eq!(errors[0], "the bearer token from --token is empty");
        assert!(errors[1].contains("only printable ASCII"), "{}", errors[1]);
        assert!(errors[2].starts_with("cannot read "), "{}", errors[2]);
    }
}
