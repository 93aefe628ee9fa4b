//! `scaleTargetRef` with KEDA's defaults: the one place they are filled in, for validation, the
//! actuator (status, `/scale`, ActuatorService) and promscalerctl alike.

use promscaler_proto::v1;

use crate::ScaleTargetRef;

/// `scaleTargetRef.apiVersion` when absent or blank (KEDA: `apps/v1`).
pub const DEFAULT_TARGET_API_VERSION: &str = "apps/v1";
/// `scaleTargetRef.kind` when absent or blank (KEDA: `Deployment`).
pub const DEFAULT_TARGET_KIND: &str = "Deployment";

/// `target` with KEDA's defaults: a blank `api_version` is `apps/v1`, a blank `kind` is
/// `Deployment`; both are trimmed. The name is kept as written (validation requires one).
pub fn with_target_defaults(mut target: v1::ScaleTargetRef) -> v1::ScaleTargetRef {
    let fill = |value: &mut String, default: &str| {
        let trimmed = value.trim();
        *value = if trimmed.is_empty() { default } else { trimmed }.to_owned();
    };
    fill(&mut target.api_version, DEFAULT_TARGET_API_VERSION);
    fill(&mut target.kind, DEFAULT_TARGET_KIND);
    target
}

/// KEDA's `<apiVersion>.<kind>` of a target, as in `status.scaleTargetKind` and the
/// SCALETARGETKIND column, e.g. `apps/v1.Deployment` (defaults filled in).
pub fn scale_target_kind(target: &v1::ScaleTargetRef) -> String {
    let target = with_target_defaults(target.clone());
    format!("{}.{}", target.api_version, target.kind)
}

impl ScaleTargetRef {
    /// This reference as sent on the wire, with KEDA's defaults ([`with_target_defaults`]).
    pub fn with_defaults(&self) -> v1::ScaleTargetRef {
        with_target_defaults(v1::ScaleTargetRef {
            api_version: self.api_version.clone().unwrap_or_default(),
            kind: self.kind.clone().unwrap_or_default(),
            name: self.name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(api_version: Option<&str>, kind: Option<&str>) -> ScaleTargetRef {
        ScaleTargetRef {
            name: "app".into(),
            api_version: api_version.map(Into::into),
            kind: kind.map(Into::into),
            env_source_container_name: None,
        }
    }

    fn wire(api_version: &str, kind: &str) -> v1::ScaleTargetRef {
        v1::ScaleTargetRef {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "app".into(),
        }
    }

    #[test]
    fn absent_or_blank_api_version_and_kind_are_a_deployment() {
        let table = [
            (target(None, None), wire("apps/v1", "Deployment")),
            (target(Some(""), Some(" ")), wire("apps/v1", "Deployment")),
            (
                target(Some(" apps/v1 "), Some("StatefulSet")),
                wire("apps/v1", "StatefulSet"),
            ),
            (
                target(Some("argoproj.io/v1alpha1"), Some("Rollout")),
                wire("argoproj.io/v1alpha1", "Rollout"),
            ),
        ];
        for (input, want) in table {
            assert_eq!(input.with_defaults(), want, "{input:?}");
        }
    }

    #[test]
    fn the_target_kind_column_fills_the_defaults_of_a_wire_reference() {
        assert_eq!(scale_target_kind(&wire("", "")), "apps/v1.Deployment");
        assert_eq!(
            scale_target_kind(&wire("argoproj.io/v1alpha1", "Rollout")),
            "argoproj.io/v1alpha1.Rollout"
        );
    }
}
