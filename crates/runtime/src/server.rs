//! The composition every service shares: bind the gRPC and admin listeners, serve the service's
//! routes with `grpc.health.v1`, server reflection and the trace layer, run the service's
//! background tasks, and on SIGTERM/SIGINT report NOT_SERVING, turn `/ready` false and drain
//! in-flight RPCs for up to `--shutdown-grace`.

use std::{future::Future, net::SocketAddr, pin::Pin, sync::Arc};

use futures::FutureExt as _;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

use crate::{
    Error, Readiness, Result, ServerArgs, Shutdown, admin,
    client_identity::ClientIdentityLayer,
    propagation::GrpcTraceLayer,
    telemetry::{self, Telemetry},
};

/// What distinguishes one service binary from another.
#[derive(Debug, Clone, Copy)]
pub struct ServiceInfo {
    /// Binary and OpenTelemetry service name, e.g. "promscaler-decision".
    pub name: &'static str,
    /// Default gRPC port (50051 fetcher, 50052 decision, 50053 actuator).
    pub grpc_port: u16,
    /// Default admin port (9091, 9092, 9093).
    pub admin_port: u16,
    /// Fully-qualified gRPC services this binary serves (reported by grpc.health.v1).
    pub grpc_services: &'static [&'static str],
    /// Whether `/ready` turns true as soon as the listeners are bound (stateless services);
    /// otherwise the service calls [`Readiness::set_ready`] itself.
    pub ready_on_start: bool,
}

/// A background task of a service. If it ends before shutdown, the process ends with its error.
pub type Task = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// A service being assembled: telemetry is up, the registry and readiness are available.
#[derive(Debug)]
pub struct Service {
    info: ServiceInfo,
    args: ServerArgs,
    telemetry: Option<Telemetry>,
    registry: Registry,
    readiness: Readiness,
    shutdown: Shutdown,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    service: String,
    version: String,
}

impl Service {
    /// Initialises logging and tracing from `args` and installs the SIGTERM/SIGINT handler.
    /// Call once per process, inside the Tokio runtime.
    pub fn init(info: ServiceInfo, args: ServerArgs) -> Result<Self> {
        let telemetry = telemetry::init(info.name, &args.log)?;
        let service = Self::without_telemetry(info, args).attach(telemetry);
        service.shutdown.trigger_on_signals();
        Ok(service)
    }

    /// Like [`Service::init`] but leaves logging, tracing and signal handling to the caller
    /// (for embedding a service in a process that already has them, such as a test).
    pub fn without_telemetry(info: ServiceInfo, args: ServerArgs) -> Self {
        let mut registry = Registry::with_prefix("promscaler");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                service: info.name.to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "Build information of this binary", build_info);
        Self {
            info,
            args,
            telemetry: None,
            registry,
            readiness: Readiness::default(),
            shutdown: Shutdown::new(),
        }
    }

    /// The process's metrics registry (prefix `promscaler_`); register metrics before `bind`.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The `/ready` flag.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// The process-wide shutdown signal.
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The parsed server flags.
    pub fn args(&self) -> &ServerArgs {
        &self.args
    }

    /// Binds the gRPC and admin listeners (so tests can use port 0 and read the real ports).
    pub async fn bind(self) -> Result<BoundService> {
        // TLS files are checked before anything listens.
        let tls = self.args.grpc_tls.server_config()?;
        let allowed_clients = self.args.grpc_tls.allowed_clients();
        let grpc_addr = self.args.grpc_addr_or(self.info.grpc_port);
        let admin_addr = self.args.admin_addr_or(self.info.admin_port);
        let grpc = TcpListener::bind(grpc_addr)
            .await
            .map_err(|source| Error::Bind {
                what: "gRPC",
                addr: grpc_addr,
                source,
            })?;
        let admin = TcpListener::bind(admin_addr)
            .await
            .map_err(|source| Error::Bind {
                what: "admin",
                addr: admin_addr,
                source,
            })?;
        let bound = BoundService {
            service: self,
            grpc,
            admin,
            tls,
            allowed_clients,
        };
        if let Some(path) = &bound.service.args.addr_file {
            write_addr_file(path, bound.grpc_addr(), bound.admin_addr()).map_err(|source| {
                Error::AddrFile {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        Ok(bound)
    }
}

/// Writes `grpc=<addr>` and `admin=<addr>` to a temporary file beside `path`, then renames it
/// into place, so a reader never sees half a file.
fn write_addr_file(
    path: &std::path::Path,
    grpc: SocketAddr,
    admin: SocketAddr,
) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("grpc={grpc}\nadmin={admin}\n"))?;
    std::fs::rename(&tmp, path)
}

/// A service whose listeners are bound; [`BoundService::serve`] runs it to the end.
#[derive(Debug)]
pub struct BoundService {
    service: Service,
    grpc: TcpListener,
    admin: TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
    allowed_clients: crate::client_identity::AllowedClients,
}

impl BoundService {
    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .expect("bound listener has an address")
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves `routes` plus health and reflection, runs `tasks`, and returns when shutdown has
    /// completed (`Ok`) or something failed (`Err`: the process should exit non-zero).
    pub async fn serve(
        self,
        routes: tonic::service::Routes,
        tasks: Vec<(&'static str, Task)>,
    ) -> Result<()> {
        let grpc_addr = self.grpc_addr();
        let admin_addr = self.admin_addr();
        let Self {
            service,
            grpc,
            admin,
            tls,
            allowed_clients,
        } = self;
        let Service {
            info,
            args,
            telemetry,
            registry,
            readiness,
            shutdown,
        } = service;

        let (health, health_service) = tonic_health::server::health_reporter();
        for name in info.grpc_services {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        health.set_service_status("", ServingStatus::Serving).await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(promscaler_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(Error::Reflection)?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(promscaler_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(Error::Reflection)?;
        let routes = routes
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let grpc_tls = tls.is_some();
        let pinned_clients = !allowed_clients.is_empty();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).map_err(Error::Grpc)?;
        }
        let grpc_shutdown = shutdown.clone();
        let mut grpc_server = Box::pin(
            builder
                .layer(GrpcTraceLayer)
                .layer(ClientIdentityLayer::new(allowed_clients))
                .add_routes(routes)
                // TCP_NODELAY on accepted sockets: with Nagle on, a small response waits for the
                // client's delayed ACK (~40 ms on Linux) on every call.
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true)),
                    async move {
                        grpc_shutdown.wait().await;
                    },
                ),
        );
        // Fused: after shutdown the admin server is awaited once more, whether or not it ended.
        let mut admin_server = Box::pin(
            admin::serve(
                admin,
                Arc::new(registry),
                readiness.clone(),
                shutdown.clone(),
            )
            .fuse(),
        );
        let mut tasks = Box::pin(run_tasks(tasks));

        tracing::info!(service = info.name, %grpc_addr, grpc_tls, pinned_clients, %admin_addr, "serving");
        if info.ready_on_start {
            readiness.set_ready(true);
        }

        let outcome = tokio::select! {
            // Shutdown first: the admin server and tasks also end on it, and must not win.
            biased;
            () = shutdown.wait() => {
                readiness.set_ready(false);
                for name in info.grpc_services {
                    health.set_service_status(*name, ServingStatus::NotServing).await;
                }
                health.set_service_status("", ServingStatus::NotServing).await;
                match tokio::time::timeout(args.shutdown_grace, &mut grpc_server).await {
                    Ok(result) => result.map_err(Error::Grpc),
                    Err(_) => {
                        tracing::warn!(grace = ?args.shutdown_grace, "in-flight RPCs did not finish within the shutdown grace period; closing them");
                        Ok(())
                    }
                }
            }
            result = &mut grpc_server => result.map_err(Error::Grpc),
            result = &mut admin_server => result,
            result = &mut tasks => result,
        };
        // Anything that ended the select early also ends the process: stop the rest.
        shutdown.trigger();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), &mut admin_server).await;
        match &outcome {
            Ok(()) => tracing::info!(service = info.name, "stopped"),
            Err(error) => tracing::error!(service = info.name, %error, "stopping after a failure"),
        }
        if let Some(telemetry) = telemetry {
            telemetry.shutdown();
        }
        outcome
    }
}

impl Service {
    /// Attaches the telemetry guard created by [`Service::init`].
    fn attach(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = Some(telemetry);
        self
    }
}

/// Runs all tasks; completes with the first one that ends (a task is not supposed to end before
/// shutdown, so ending at all is a failure), or never when there are none.
async fn run_tasks(tasks: Vec<(&'static str, Task)>) -> Result<()> {
    if tasks.is_empty() {
        return std::future::pending().await;
    }
    let futures = tasks.into_iter().map(|(name, task)| {
        Box::pin(async move {
            let result = task.await;
            (name, result)
        })
    });
    let ((name, result), _, _) = futures::future::select_all(futures).await;
    Err(Error::Task {
        task: name.to_owned(),
        message: match result {
            Ok(()) => "ended unexpectedly".to_owned(),
            Err(message) => message,
        },
    })
}
