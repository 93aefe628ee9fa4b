//! End-to-end tests of promscaler over real processes and sockets, and the helpers they share.
//!
//! The rig's heavier parts (Prometheus, the STS emulator, the SigV4-verifying gateway, the
//! Kubernetes API emulator) live in `promscaler-sandbox`, which the local sandbox also uses;
//! what only tests need lives here: the service binaries as supervised child processes
//! ([`services`]), the emulator with promscaler's CRDs ([`cluster`]), the whole system
//! ([`system`]), the services as IRSA on AMP runs them ([`irsa`]), a tiny OTLP trace receiver
//! ([`otlp`]) and a throwaway PKI for gRPC TLS ([`pki`]).

pub mod cluster;
pub mod irsa;
pub mod otlp;
pub mod pki;
pub mod services;
pub mod system;
