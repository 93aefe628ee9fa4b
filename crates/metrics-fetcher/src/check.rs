//! `Check`: runs a query and explains whether and why it is (not) usable for scaling.

use crate::Error;
use crate::prometheus::{Answer, QueryData, Series, Value, reduce_instant};

/// At most this many series' labels are reported.
pub const MAX_SERIES_REPORTED: usize = 20;

/// The diagnosis of one query.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// Prometheus result type, or "" when the query failed.
    pub result_type: String,
    /// How many series.
    pub series_count: u32,
    /// The series' labels (first [`MAX_SERIES_REPORTED`]).
    pub series: Vec<String>,
    /// True when the query yields exactly one finite value.
    pub usable: bool,
    /// What to do.
    pub advice: String,
    /// The value when usable.
    pub sample: Option<Value>,
    /// The error when the query failed or is unusable.
    pub error: Option<Error>,
}

/// Diagnoses `result` (the query's upstream outcome) under `ignore_null_values`.
pub fn diagnose(result: Result<Answer, Error>, ignore_null_values: bool) -> CheckReport {
    let answer = match result {
        Ok(answer) => answer,
        Err(err) => {
            return CheckReport {
                result_type: String::new(),
                series_count: 0,
                series: Vec::new(),
                usable: false,
                advice: advice_for_failure(&err),
                sample: None,
                error: Some(err),
            };
        }
    };
    let data = &answer.data;
    let series: Vec<String> = match data {
        QueryData::Vector(s) | QueryData::Matrix(s) => s
            .iter()
            .take(MAX_SERIES_REPORTED)
            .map(Series::label_text)
            .collect(),
        QueryData::Scalar(_) | QueryData::String(_) => Vec::new(),
    };
    let series_count = u32::try_from(answer.series_count).unwrap_or(u32::MAX);
    let reduced = reduce_instant(&answer, ignore_null_values);
    let (usable, advice, sample, error) = match reduced {
        Ok(v) => {
            let advice = match data {
                QueryData::Vector(s) if s.is_empty() => {
                    "usable only because ignoreNullValues is set: the query returns no series, \
                     so the value is 0; check the label selector if that is not expected"
                        .to_owned()
                }
                _ if v.at.is_some() && v.value == 0.0 && !is_plain_zero(data) => {
                    "usable only because ignoreNullValues is set: the value is NaN or ±Inf and \
                     counts as 0"
                        .to_owned()
                }
                _ => format!("usable: returns one value ({})", v.value),
            };
            (true, advice, Some(v), None)
        }
        Err(err) => {
            let advice = match (&err, data) {
                (Error::MultipleSeries { count, .. }, _) => format!(
                    "returns {count} series; wrap it in sum(...) (or max/avg) so it returns one \
                     value"
                ),
                (Error::EmptyResult, _) => "empty: check the label selector and that the metric \
                                            is scraped, or set ignoreNullValues"
                    .to_owned(),
                (Error::NotFinite { value }, _) => format!(
                    "the value is {value}: guard divisions (e.g. `x / (y > 0)`) or set \
                     ignoreNullValues to treat it as 0"
                ),
                (Error::UnusableResult { advice, .. }, _) => advice.clone(),
                (other, _) => other.to_string(),
            };
            (false, advice, None, Some(err))
        }
    };
    CheckReport {
        result_type: data.result_type().to_owned(),
        series_count,
        series,
        usable,
        advice,
        sample,
        error,
    }
}

fn is_plain_zero(data: &QueryData) -> bool {
    let text = match data {
        QueryData::Scalar(s) => Some(&s.value),
        QueryData::Vector(v) => v.first().and_then(|s| s.samples.first()).map(|s| &s.value),
        QueryData::Matrix(_) | QueryData::String(_) => None,
    };
    text.is_some_and(|t| t.parse::<f64>().is_ok_and(f64::is_finite))
}

fn advice_for_failure(err: &Error) -> String {
    match err {
        Error::BadQuery { message, .. } => format!("fix the PromQL: {message}"),
        Error::Forbidden { message, .. } => format!(
            "the server refused the request ({message}); for AMP check that the role allows \
             aps:QueryMetrics on the workspace and that the signing region matches the \
             workspace's"
        ),
        Error::Unauthorized { .. } | Error::Credentials { .. } | Error::Signing { .. } => {
            format!("authentication failed: {err}")
        }
        Error::Unreachable { .. } => {
            format!("{err}; check serverAddress and network policies")
        }
        Error::Timeout { .. } | Error::UpstreamTimeout { .. } => {
            format!("{err}; simplify the query or raise the trigger's timeout")
        }
        Error::DeniedByPolicy { .. } => format!("{err}"),
        Error::InvalidArgument { .. }
        | Error::BatchTooLarge { .. }
        | Error::Throttled { .. }
        | Error::QueueFull { .. }
        | Error::UnusableResult { .. }
        | Error::EmptyResult
        | Error::MultipleSeries { .. }
        | Error::NotFinite { .. }
        | Error::Upstream { .. }
        | Error::Internal(_) => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::prometheus::RawSample;

    fn series(pod: &str, v: &str) -> Series {
        Series {
            labels: BTreeMap::from([("pod".to_owned(), pod.to_owned())]),
            samples: vec![RawSample {
                at: 1.0,
                value: v.into(),
            }],
        }
    }

    #[test]
    fn several_series_advise_sum() {
        let data = QueryData::Vector(vec![series("a", "1"), series("b", "2"), series("c", "3")]);
        let report = diagnose(Ok(data.into()), false);
        assert!(!report.usable);
        assert_eq!(report.series_count, 3);
        assert_eq!(report.series[0], r#"{pod="a"}"#);
        assert!(
            report
                .advice
                .starts_with("returns 3 series; wrap it in sum(...)"),
            "{}",
            report.advice
        );
    }

    #[test]
    fn empty_vector_advises_selector_or_ignore_null_values() {
        let report = diagnose(Ok(QueryData::Vector(vec![]).into()), false);
        assert!(!report.usable);
        assert!(
            report.advice.contains("check the label selector"),
            "{}",
            report.advice
        );
        assert!(
            report.advice.contains("ignoreNullValues"),
            "{}",
            report.advice
        );
        let report = diagnose(Ok(QueryData::Vector(vec![]).into()), true);
        assert!(report.usable);
        assert_eq!(report.sample.unwrap().value, 0.0);
    }

    #[test]
    fn one_value_is_usable() {
        let report = diagnose(
            Ok(QueryData::Vector(vec![series("a", "140")]).into()),
            false,
        );
        assert!(report.usable);
        assert_eq!(report.result_type, "vector");
        assert_eq!(report.sample.unwrap().value, 140.0);
        assert_eq!(report.advice, "usable: returns one value (140)");
    }

    #[test]
    fn nan_is_explained() {
        let report = diagnose(
            Ok(QueryData::Vector(vec![series("a", "NaN")]).into()),
            false,
        );
        assert!(!report.usable);
        assert!(report.advice.contains("NaN"), "{}", report.advice);
        let report = diagnose(Ok(QueryData::Vector(vec![series("a", "NaN")]).into()), true);
        assert!(report.usable);
        assert!(report.advice.contains("NaN or ±Inf"), "{}", report.advice);
    }

    #[test]
    fn failures_carry_the_error() {
        let report = diagnose(
            Err(Error::BadQuery {
                status: 400,
                error_type: "bad_data".into(),
                message: "parse error".into(),
            }),
            false,
        );
        assert_eq!(report.result_type, "");
        assert!(report.advice.contains("fix the PromQL"));
        assert!(report.error.is_some());
    }
}
