//! Metric label values from enums, spelled in snake_case (`scale_up`, `invalid_argument`) as
//! Prometheus label values conventionally are; prometheus-client's derive would print the Rust
//! variant names (`ScaleUp`).

/// Declares a `Copy` enum usable as a prometheus-client label value, each variant with its
/// label string:
///
/// ```
/// promscaler_runtime::label_enum! {
///     /// How a write ended.
///     pub enum WriteResult {
///         /// Accepted.
///         Ok => "ok",
///         /// 409 Conflict.
///         Conflict => "conflict",
///     }
/// }
/// assert_eq!(WriteResult::Conflict.as_str(), "conflict");
/// ```
#[macro_export]
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident => $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
        $vis enum $name {
            $( $(#[$variant_meta])* $variant ),+
        }

        impl $name {
            /// The label value.
            $vis fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $value ),+
                }
            }
        }

        impl ::prometheus_client::encoding::EncodeLabelValue for $name {
            fn encode(
                &self,
                encoder: &mut ::prometheus_client::encoding::LabelValueEncoder<'_>,
            ) -> ::std::result::Result<(), ::std::fmt::Error> {
                ::prometheus_client::encoding::EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    };
}
