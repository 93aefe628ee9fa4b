//! `validate`: PromScaler and PromScalerAuthentication manifests checked offline, exactly as
//! the cluster would (strict CRD schema, then the actuator's validation), with one line per bad
//! field.

use promscaler_api::files;
use serde::Serialize;

use crate::Error;
use crate::args::Context;
use crate::input::read_input;
use crate::output::{Render, Table, emit};

/// `promscalerctl validate FILE...`
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files (multi-document YAML); "-" reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
}

#[derive(Debug, Serialize)]
struct FieldView {
    field: String,
    message: String,
}

#[derive(Debug, Serialize)]
struct DocumentView {
    file: String,
    document: usize,
    kind: String,
    namespace: Option<String>,
    name: String,
    valid: bool,
    errors: Vec<FieldView>,
    warnings: Vec<FieldView>,
}

impl DocumentView {
    fn id(&self) -> String {
        let name = match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        };
        format!("{}#{} {} {name}", self.file, self.document, self.kind)
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct ValidateView(Vec<DocumentView>);

impl Render for ValidateView {
    fn table(&self) -> String {
        let mut t = Table::new(&["FILE", "DOC", "KIND", "NAMESPACE", "NAME", "RESULT"]);
        for d in &self.0 {
            let result = match (d.errors.len(), d.warnings.len()) {
                (0, 0) => "valid".to_owned(),
                (0, w) => format!("valid, {w} warning(s)"),
                (e, _) => format!("invalid: {e} error(s)"),
            };
            t.row(vec![
                d.file.clone(),
                d.document.to_string(),
                d.kind.clone(),
                d.namespace.clone().unwrap_or_default(),
                d.name.clone(),
                result,
            ]);
        }
        t.render()
    }
}

/// Validates every file; prints one row per document on stdout and one line per bad field
/// (and per warning) on stderr; fails when any document is invalid.
pub(crate) fn run(args: Args, cx: &Context) -> Result<(), Error> {
    let mut docs = Vec::new();
    for path in &args.files {
        let text = read_input(path)?;
        let checked = files::check(&text).map_err(|source| Error::Manifest {
            path: path.clone(),
            source,
        })?;
        if checked.is_empty() {
            return Err(Error::Usage(format!(
                "{path}: no promscaler.io/v1alpha1 PromScaler or PromScalerAuthentication in the input; convert KEDA manifests with `promscalerctl import-keda`"
            )));
        }
        let view = |e: &promscaler_api::FieldError| FieldView {
            field: e.field.clone(),
            message: e.message.clone(),
        };
        docs.extend(checked.into_iter().map(|c| DocumentView {
            file: path.clone(),
            document: c.document,
            kind: c.kind,
            namespace: c.namespace,
            name: c.name,
            valid: c.errors.is_empty(),
            errors: c.errors.iter().map(view).collect(),
            warnings: c.warnings.iter().map(view).collect(),
        }));
    }
    let view = ValidateView(docs);
    emit(cx.output, &view)?;
    for d in &view.0 {
        for e in &d.errors {
            eprintln!("{}: {}: {}", d.id(), e.field, e.message);
        }
        for w in &d.warnings {
            eprintln!("warning: {}: {}: {}", d.id(), w.field, w.message);
        }
    }
    let invalid = view.0.iter().filter(|d| !d.valid).count();
    if invalid > 0 {
        return Err(Error::Invalid {
            invalid,
            total: view.0.len(),
        });
    }
    Ok(())
}
