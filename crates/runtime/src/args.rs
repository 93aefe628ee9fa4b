//! Flag groups shared by every service. Each flag also reads a `PROMSCALER_*` variable.

use std::net::{Ipv4Addr, SocketAddr};

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line (for log pipelines).
    Json,
}

/// Logging flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log filter in tracing's EnvFilter syntax, e.g. "info" or "info,promscaler_actuator=debug".
    #[arg(long, env = "PROMSCALER_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long, env = "PROMSCALER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,
}

/// Listen addresses and logging of a service. The defaults differ per service (fetcher
/// 50051/9091, decision 50052/9092, actuator 50053/9093), so the addresses are optional here and
/// resolved against the service's [`crate::ServiceInfo`].
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// gRPC listen address [default: 0.0.0.0:<the service's gRPC port>].
    #[arg(long, env = "PROMSCALER_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,

    /// Admin HTTP listen address for /live, /ready and /metrics
    /// [default: 0.0.0.0:<the service's admin port>].
    #[arg(long, env = "PROMSCALER_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// After binding, write the bound addresses to this file as `grpc=<addr>` and `admin=<addr>`
    /// lines (written whole, then renamed into place), so a caller that passed port 0 learns the
    /// ports without racing for free ones.
    #[arg(long, env = "PROMSCALER_ADDR_FILE")]
    pub addr_file: Option<std::path::PathBuf>,

    /// How long in-flight RPCs may take to finish after SIGTERM, e.g. "5s".
    #[arg(long, env = "PROMSCALER_SHUTDOWN_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_grace: std::time::Duration,

    #[command(flatten)]
    pub log: LogArgs,

    #[command(flatten)]
    pub grpc_tls: crate::tls::GrpcTlsArgs,
}

impl ServerArgs {
    /// The gRPC address, or `0.0.0.0:default_port`.
    pub fn grpc_addr_or(&self, default_port: u16) -> SocketAddr {
        self.grpc_addr
            .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, default_port)))
    }

    /// The admin address, or `0.0.0.0:default_port`.
    pub fn admin_addr_or(&self, default_port: u16) -> SocketAddr {
        self.admin_addr
            .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, default_port)))
    }
}

/// Parses "30s", "5m", "1h30m", "250ms" (humantime syntax) for duration flags.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as \"30s\", \"5m\" or \"250ms\")"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        server: ServerArgs,
    }

    #[test]
    fn addresses_default_to_the_service_ports_on_all_interfaces() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.server.grpc_addr_or(50052).to_string(), "0.0.0.0:50052");
        assert_eq!(cli.server.admin_addr_or(9092).to_string(), "0.0.0.0:9092");
        assert_eq!(cli.server.log.log_format, LogFormat::Plain);
        assert_eq!(cli.server.shutdown_grace, std::time::Duration::from_secs(5));
    }

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::try_parse_from([
            "x",
            "--grpc-addr",
            "127.0.0.1:1234",
            "--log-format",
            "json",
            "--shutdown-grace",
            "250ms",
        ])
        .unwrap();
        assert_eq!(cli.server.grpc_addr_or(1).to_string(), "127.0.0.1:1234");
        assert_eq!(cli.server.log.log_format, LogFormat::Json);
        assert_eq!(
            cli.server.shutdown_grace,
            std::time::Duration::from_millis(250)
        );
    }

    #[test]
    fn bad_duration_says_what_is_expected() {
        let err = Cli::try_parse_from(["x", "--shutdown-grace", "soon"]).unwrap_err();
        assert!(err.to_string().contains("expected a duration"), "{err}");
    }
}
