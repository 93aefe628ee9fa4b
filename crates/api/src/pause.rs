//! KEDA's pause annotations, under `autoscaling.keda.sh/` and `promscaler.io/`.

use std::collections::BTreeMap;

use promscaler_proto::v1::Pause;

use crate::FieldError;
use crate::go;

/// Annotation prefixes read for pause settings; both are honoured.
pub const PAUSE_PREFIXES: [&str; 2] = ["autoscaling.keda.sh/", "promscaler.io/"];

/// `paused`: `"true"` stops all scaling.
pub const PAUSED: &str = "paused";
/// `paused-replicas`: scale to this count and hold it.
pub const PAUSED_REPLICAS: &str = "paused-replicas";
/// `paused-scale-in` (alias `paused-scale-down`, KEDA's name): never scale down.
pub const PAUSED_SCALE_IN: &str = "paused-scale-in";
/// `paused-scale-out` (alias `paused-scale-up`): never scale up.
pub const PAUSED_SCALE_OUT: &str = "paused-scale-out";

/// Reads one setting under both prefixes (and its aliases); two different values are an error.
fn lookup<'a>(
    annotations: &'a BTreeMap<String, String>,
    names: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<(String, &'a str)> {
    let mut found: Option<(String, &'a str)> = None;
    for prefix in PAUSE_PREFIXES {
        for name in names {
            let key = format!("{prefix}{name}");
            if let Some(v) = annotations.get(&key) {
                match &found {
                    Some((first, fv)) if fv.trim() != v.trim() => errors.push(FieldError::new(
                        format!("metadata.annotations[{key}]"),
                        format!("{v:?} conflicts with {first}={fv:?}; keep one of them"),
                    )),
                    Some(_) => {}
                    None => found = Some((key, v.as_str())),
                }
            }
        }
    }
    found
}

fn flag(
    annotations: &BTreeMap<String, String>,
    names: &[&str],
    errors: &mut Vec<FieldError>,
) -> bool {
    match lookup(annotations, names, errors) {
        None => false,
        Some((key, v)) => go::parse_bool(v.trim()).unwrap_or_else(|e| {
            errors.push(FieldError::new(format!("metadata.annotations[{key}]"), e));
            false
        }),
    }
}

/// Parses the pause annotations into `promscaler.v1.Pause`; a bad value is a [`FieldError`]
/// naming the annotation.
pub fn parse_pause(annotations: &BTreeMap<String, String>) -> Result<Pause, Vec<FieldError>> {
    let mut errors = Vec::new();
    let paused = flag(annotations, &[PAUSED], &mut errors);
    let scale_in_paused = flag(
        annotations,
        &[PAUSED_SCALE_IN, "paused-scale-down"],
        &mut errors,
    );
    let scale_out_paused = flag(
        annotations,
        &[PAUSED_SCALE_OUT, "paused-scale-up"],
        &mut errors,
    );
    let paused_replicas = match lookup(annotations, &[PAUSED_REPLICAS], &mut errors) {
        None => None,
        Some((key, v)) => match v.trim().parse::<i32>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                errors.push(FieldError::new(
                    format!("metadata.annotations[{key}]"),
                    format!(
                        "{v:?} is not a replica count; write a whole number >= 0 such as \"2\""
                    ),
                ));
                None
            }
        },
    };
    if errors.is_empty() {
        Ok(Pause {
            paused,
            paused_replicas,
            scale_in_paused,
            scale_out_paused,
        })
    } else {
        Err(errors)
    }
}

/// Whether `pause` stops scaling: `paused` (the replicas are held) or `paused-replicas` (they
/// are set and held). `paused-scale-in`/`-out` only hold one direction and do not count. The
/// decision service applies the same rule to the `Pause` it receives.
pub fn stops_scaling(pause: &Pause) -> bool {
    pause.paused || pause.paused_replicas.is_some()
}

/// Whether the annotations stop scaling, read with the parser the decision's input is built
/// with ([`parse_pause`], Go `strconv.ParseBool`: `"1"`, `"t"`, `"TRUE"` pause too). Annotations
/// that do not parse pause nothing: such a PromScaler is invalid, is never acted on, and its
/// `Ready=False` condition names the annotation.
pub fn is_paused(annotations: &BTreeMap<String, String>) -> bool {
    parse_pause(annotations).is_ok_and(|pause| stops_scaling(&pause))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn pause_annotations_map_to_the_pause_message() {
        let none = Pause::default();
        let table: &[(&[(&str, &str)], Pause)] = &[
            (&[], none),
            (
                &[("autoscaling.keda.sh/paused", "true")],
                Pause {
                    paused: true,
                    ..none
                },
            ),
            (
                &[("promscaler.io/paused", "True")],
                Pause {
                    paused: true,
                    ..none
                },
            ),
            (&[("autoscaling.keda.sh/paused", "false")], none),
            (
                &[("autoscaling.keda.sh/paused-replicas", "2")],
                Pause {
                    paused_replicas: Some(2),
                    ..none
                },
            ),
            (
                &[("promscaler.io/paused-scale-in", "1")],
                Pause {
                    scale_in_paused: true,
                    ..none
                },
            ),
            (
                &[("autoscaling.keda.sh/paused-scale-down", "true")],
                Pause {
                    scale_in_paused: true,
                    ..none
                },
            ),
            (
                &[("autoscaling.keda.sh/paused-scale-out", "t")],
                Pause {
                    scale_out_paused: true,
                    ..none
                },
            ),
            (
                &[
                    ("autoscaling.keda.sh/paused", "true"),
                    ("promscaler.io/paused", "true"),
                ],
                Pause {
                    paused: true,
                    ..none
                },
            ),
            (&[("example.com/paused", "true")], none),
        ];
        for (input, want) in table {
            assert_eq!(parse_pause(&annotations(input)), Ok(*want), "{input:?}");
        }
    }

    #[test]
    fn bad_pause_values_are_field_errors_naming_the_annotation() {
        let errors = parse_pause(&annotations(&[
            ("autoscaling.keda.sh/paused", "yes"),
            ("promscaler.io/paused-replicas", "-1"),
            ("autoscaling.keda.sh/paused-scale-out", "true"),
            ("promscaler.io/paused-scale-out", "false"),
        ]))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.annotations[autoscaling.keda.sh/paused]",
                "metadata.annotations[promscaler.io/paused-scale-out]",
                "metadata.annotations[promscaler.io/paused-replicas]",
            ]
        );
    }

    #[test]
    fn paused_means_what_the_decision_parses() {
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[], false),
            (&[("autoscaling.keda.sh/paused", "1")], true),
            (&[("autoscaling.keda.sh/paused", "true")], true),
            (&[("promscaler.io/paused", "T")], true),
            (&[("autoscaling.keda.sh/paused", "0")], false),
            (&[("autoscaling.keda.sh/paused", "false")], false),
            (&[("autoscaling.keda.sh/paused-replicas", "0")], true),
            (&[("autoscaling.keda.sh/paused-scale-in", "true")], false),
            // Not a boolean: the PromScaler is invalid (Ready=False), not paused.
            (&[("autoscaling.keda.sh/paused", "yes")], false),
        ];
        for (input, want) in table {
            assert_eq!(is_paused(&annotations(input)), *want, "{input:?}");
        }
    }
}
