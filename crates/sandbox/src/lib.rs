//! The local, self-contained promscaler environment and the rig the end-to-end tests share.
//!
//! Everything here runs real parts on loopback: the three service binaries as child processes
//! ([`process`]), a real [`prometheus`], an STS emulator ([`sts`]), a SigV4-verifying AMP-like
//! [`gateway`], the emulated [`app`] and the Kubernetes API emulator. `cargo xtask sandbox` and
//! `integration-tests` both build on these pieces.
//!
//! The sandbox itself is four parts with a one-way dependency: the [`seed`] manifests ← the
//! [`harness`] that starts everything and reads it back ← the [`report`] of a run; the
//! [`scenario`] (the load curve) stands alone; the [`view`] (`cargo xtask sandbox`: live table,
//! summary, chart) uses them all.

pub mod app;
pub mod gateway;
pub mod harness;
pub mod process;
pub mod prometheus;
pub mod report;
pub mod scenario;
pub mod seed;
pub mod sts;
pub mod view;
