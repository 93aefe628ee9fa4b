//! The core's error type: everything that can be wrong with a request is a client mistake.

use std::borrow::Cow;

/// Why a policy or a decision input cannot be decided on. Every variant names the offending
/// field with its protobuf path (e.g. `policy.triggers[1].target`), so adapters can report it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A field of the policy, inputs or carried state has a value the rules cannot work with.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// Protobuf path of the field, e.g. `policy.max_replicas`.
        field: Cow<'static, str>,
        /// What is wrong and what to do.
        message: String,
    },
    /// The scalingModifiers formula does not parse or names an unknown trigger.
    #[error("invalid {field}: {source}")]
    InvalidFormula {
        /// Protobuf path of the formula field.
        field: Cow<'static, str>,
        /// The parse error, with its position.
        #[source]
        source: crate::formula::FormulaError,
    },
}

impl Error {
    /// An [`Error::InvalidArgument`] for `field`.
    pub fn invalid(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The protobuf path of the offending field.
    pub fn field(&self) -> &str {
        match self {
            Self::InvalidArgument { field, .. } | Self::InvalidFormula { field, .. } => field,
        }
    }
}
