//! The local, self-contained promscaler environment and the rig the end-to-end tests share.
//!
//! Everything here runs real parts on loopback: the three service binaries as child processes
//! ([`process`]), and (as later issues add them) a real Prometheus, an STS emulator, a
//! SigV4-verifying AMP-like gateway and the Kubernetes API emulator. `cargo xtask sandbox` and
//! `integration-tests` both build on these pieces.

pub mod app;
pub mod demo;
pub mod gateway;
pub mod process;
pub mod prometheus;
pub mod sts;
