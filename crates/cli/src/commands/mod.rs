//! One module per subcommand: its flags (`Args`), its view and `run`.

pub mod check;
pub mod cost;
pub mod decide;
pub mod import_adapter;
pub mod import_keda;
pub mod simulate;
pub mod status;
pub mod validate;
pub mod watch;
