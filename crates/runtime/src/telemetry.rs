//! Logging through `tracing-subscriber` and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set,
//! OpenTelemetry traces exported over OTLP/gRPC. Without that variable no exporter is built and
//! spans cost only what `tracing` costs.

use std::io::IsTerminal as _;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tracing_subscriber::{
    EnvFilter, Layer as _, layer::SubscriberExt as _, util::SubscriberInitExt as _,
};

use crate::{Error, LogArgs, LogFormat, Result};

/// Environment variable that turns on OTLP trace export (standard OpenTelemetry name).
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] flushes pending spans.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter (call once, at exit).
    pub fn shutdown(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing OTLP traces at shutdown failed");
        }
    }
}

/// Installs the global subscriber: an EnvFilter from `--log-level`, plain or JSON output on
/// stderr, and the OpenTelemetry layer when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. The W3C trace
/// context propagator is installed in every case so incoming `traceparent`s are honoured.
///
/// Must be called inside a Tokio runtime (the OTLP exporter's channel lives on it).
pub fn init(service_name: &'static str, args: &LogArgs) -> Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

    let filter = EnvFilter::builder()
        .parse(&args.log_level)
        .map_err(|source| Error::LogFilter {
            filter: args.log_level.clone(),
            source,
        })?;

    let fmt = match args.log_format {
        LogFormat::Plain => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .with_target(true)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };

    let provider = match std::env::var(OTLP_ENDPOINT_ENV) {
        Ok(endpoint) if !endpoint.trim().is_empty() => {
            Some(otlp_provider(service_name, &endpoint)?)
        }
        _ => None,
    };
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service_name))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    if let Some(provider) = &provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }

    tracing_subscriber::registry()
        .with(otel)
        .with(fmt.with_filter(filter))
        .try_init()
        .map_err(|e| Error::LoggingInit(e.to_string()))?;

    if provider.is_some() {
        tracing::info!(service = service_name, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
}

fn otlp_provider(service_name: &'static str, endpoint: &str) -> Result<SdkTracerProvider> {
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and _TRACES_ENDPOINT, _HEADERS, _TIMEOUT)
    // itself, as every OpenTelemetry SDK does.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| Error::Otlp {
            endpoint: endpoint.to_owned(),
            message: e.to_string(),
        })?;
    let resource = Resource::builder().with_service_name(service_name).build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
