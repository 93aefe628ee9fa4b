//! The crate's error type and the per-field validation error.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with one field: the field's path in the resource (e.g.
/// `spec.triggers[0].metadata.threshold`) and what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field, e.g. `spec.triggers[0].metadata.threshold`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl FieldError {
    /// A [`FieldError`] for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Formats a list of errors one per line.
struct Lines<'a, T>(&'a [T]);

impl<T: fmt::Display> fmt::Display for Lines<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PromScaler or PromScalerAuthentication is invalid; one entry per bad field.
    #[error("{}", Lines(.errors))]
    Invalid {
        /// Every problem found (validation does not stop at the first).
        errors: Vec<FieldError>,
    },
    /// A YAML document could not be parsed.
    #[error("YAML document {document}: {source}")]
    Yaml {
        /// 1-based index of the document in the input.
        document: usize,
        /// The parser's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// A KEDA manifest cannot be imported without changing behaviour; one line per problem.
    #[error("{}", Lines(.problems))]
    Import {
        /// Every problem found, each saying what to do.
        problems: Vec<String>,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl From<Vec<FieldError>> for Error {
    fn from(errors: Vec<FieldError>) -> Self {
        Self::Invalid { errors }
    }
}
