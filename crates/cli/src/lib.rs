//! `promscalerctl`: the command-line client of the three promscaler services, and the example
//! other tooling follows when it talks to them.
//!
//! Every command that needs a service calls it over gRPC with the generated clients
//! (`MetricsFetcherService`, `DecisionService`, `ActuatorService`); nothing of the services'
//! logic is copied here. Offline commands (`validate`, `import-keda`, `import-adapter`) and the
//! reading of PromScaler files reuse `promscaler-api`, the same parser and validation the
//! actuator uses.
//! Commands build small serde view structs from the proto messages and print them as a table
//! (the default), JSON or YAML ([`output`]).

pub mod args;
mod clients;
pub mod commands;
mod error;
mod input;
pub mod output;
mod views;

pub use args::Cli;
pub use error::Error;
