//! Hand-written OpenAPI fragments for fields whose Rust type has no `JsonSchema` of its own.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An RFC 3339 timestamp (`metav1.Time`).
pub(crate) fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}

/// A Kubernetes quantity: an integer or a string such as `0.05` or `50m`.
pub(crate) fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-int-or-string": true })
}
