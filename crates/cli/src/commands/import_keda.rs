//! `import-keda`: KEDA ScaledObject/TriggerAuthentication YAML to PromScaler/
//! PromScalerAuthentication YAML. The conversion is `promscaler_api::keda::import_keda`; this
//! module reads the inputs, writes the result and reports notes and refusals.

use std::path::PathBuf;

use promscaler_api::keda::import_keda;
use serde::Serialize;

use crate::Error;
use crate::args::Context;
use crate::input::read_input;
use crate::output::{Format, Render, render, write_stdout};

/// `promscalerctl import-keda FILE... [--out FILE]`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// KEDA manifests (multi-document YAML); "-" reads stdin. All inputs are converted together,
    /// so a ScaledObject and the TriggerAuthentication it references may be in different files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,

    /// Write the result to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The converted documents: multi-document YAML (table and yaml output) or a JSON array.
#[derive(Debug, Serialize)]
#[serde(transparent)]
struct Documents(Vec<serde_yaml::Value>);

impl Render for Documents {
    fn table(&self) -> String {
        // Manifests have no table form: the table output is the YAML a user applies.
        promscaler_api::keda::Imported {
            documents: self.0.clone(),
            notes: Vec::new(),
        }
        .to_yaml()
    }
}

/// Converts the inputs; notes go to stderr one per line; any behaviour-changing problem
/// refuses the whole import and nothing is written.
pub(crate) fn run(args: Args, cx: &Context) -> Result<(), Error> {
    let mut input = String::new();
    for path in &args.files {
        if !input.is_empty() {
            input.push_str("\n---\n");
        }
        input.push_str(&read_input(path)?);
    }
    let label = args.files.join(", ");
    let imported = import_keda(&input).map_err(|e| match e {
        promscaler_api::Error::Import { problems } => Error::ImportRefused { problems },
        source => Error::Manifest {
            path: label.clone(),
            source,
        },
    })?;
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    // Multi-document YAML for table and yaml output (what kubectl apply takes), else JSON.
    let docs = Documents(imported.documents);
    let text = match cx.output {
        Format::Json => render(Format::Json, &docs)?,
        Format::Table | Format::Yaml => docs.table(),
    };
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        }),
        None => write_stdout(&text),
    }
}
