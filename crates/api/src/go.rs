//! Go-compatible parsing of KEDA's string-typed trigger metadata, as KEDA's typed config
//! (`pkg/scalers/scalersconfig/typed_config.go`) does it: values are trimmed and an empty value
//! is absent; booleans follow `strconv.ParseBool`; numbers are JSON numbers
//! (`json.Unmarshal` into `float64`); durations are a Go duration (`time.ParseDuration`) or an
//! integer number of milliseconds; maps are `k=v,k=v`.

use std::collections::BTreeMap;
use std::time::Duration;

/// Go `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "{s:?} is not a boolean; use true or false (also accepted: 1, t, T, TRUE, True, 0, f, F, FALSE, False)"
        )),
    }
}

/// A JSON number (what Go's `json.Unmarshal` accepts into a `float64`), finite.
pub(crate) fn parse_json_number(s: &str) -> Result<f64, String> {
    let bad = || {
        format!(
            "{s:?} is not a number; write a plain decimal such as 50, 0.5 or 1e3 (no quotes, units or leading '+')"
        )
    };
    if !is_json_number(s) {
        return Err(bad());
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is out of range for a 64-bit float")),
    }
}

/// JSON number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(c) if c.is_ascii_digit() => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return false,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// Go `strconv.ParseFloat(s, 64)` for finite values (used by `scalingModifiers.target`).
pub(crate) fn parse_float(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("{s:?} is not a finite number")),
        Err(_) => Err(format!("{s:?} is not a number; write e.g. 50 or 0.5")),
    }
}

/// KEDA's duration: a Go duration (`30s`, `1m30s`, `500ms`) or else an integer number of
/// milliseconds (`1000`); negative values are rejected.
pub(crate) fn parse_duration_or_millis(s: &str) -> Result<Duration, String> {
    match parse_go_duration(s) {
        Some(Ok((false, d))) => return Ok(d),
        Some(Ok((true, d))) if d.is_zero() => return Ok(d),
        Some(Ok((true, _))) => return Err(format!("{s:?} is negative; durations must be >= 0")),
        Some(Err(e)) => return Err(e),
        None => {}
    }
    match s.parse::<i64>() {
        Ok(ms) if ms >= 0 => Ok(Duration::from_millis(ms.unsigned_abs())),
        Ok(_) => Err(format!("{s:?} is negative; durations must be >= 0")),
        Err(_) => Err(format!(
            "{s:?} is not a duration; write a Go duration such as 3s or 500ms, or a number of milliseconds such as 3000"
        )),
    }
}

/// Go `time.ParseDuration`: `None` when `s` is not a duration at all, `Some(Err)` when it is one
/// but overflows, else `(negative, magnitude)`.
fn parse_go_duration(s: &str) -> Option<Result<(bool, Duration), String>> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(Ok((neg, Duration::ZERO)));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &r[..frac_len];
            rest = &r[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(rest.len(), |(i, _)| i);
        let unit_nanos: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            match int_part.parse() {
                Ok(v) => v,
                Err(_) => return Some(Err(format!("{s:?} overflows a duration"))),
            }
        };
        let mut nanos = int.saturating_mul(unit_nanos);
        let mut scale = unit_nanos;
        for d in frac_part.bytes() {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * scale;
        }
        total_nanos = total_nanos.saturating_add(nanos);
    }
    // Go durations are int64 nanoseconds.
    if total_nanos > i64::MAX as u128 {
        return Some(Err(format!("{s:?} overflows a duration")));
    }
    let secs = (total_nanos / 1_000_000_000) as u64;
    let sub = (total_nanos % 1_000_000_000) as u32;
    Some(Ok((neg, Duration::new(secs, sub))))
}

/// KEDA's `k=v,k=v` map: elements split on `,`, each must be exactly one `key=value`; keys and
/// values are trimmed.
pub(crate) fn parse_map(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for elem in s.split(',') {
        let elem = elem.trim();
        let kv: Vec<&str> = elem.split('=').collect();
        if kv.len() != 2 {
            return Err(format!(
                "element {elem:?} is not key=value; write key1=value1,key2=value2 (values cannot contain ',' or '=')"
            ));
        }
        let key = kv[0].trim();
        if key.is_empty() {
            return Err(format!("element {elem:?} has an empty key"));
        }
        out.insert(key.to_owned(), kv[1].trim().to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_strconv_parse_bool() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["yes", "on", "tRUE", "2", "xxxx"] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_follow_json_number_grammar() {
        let table: &[(&str, Option<f64>)] = &[
            ("50", Some(50.0)),
            ("100.50", Some(100.5)),
            ("-5.5", Some(-5.5)),
            ("0", Some(0.0)),
            ("1e3", Some(1000.0)),
            ("2.5E-1", Some(0.25)),
            ("one", None),
            ("+5", None),
            (".5", None),
            ("5.", None),
            ("05", None),
            ("0x10", None),
            ("NaN", None),
            ("Inf", None),
            ("1e400", None),
            ("50m", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_json_number(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn durations_are_go_durations_or_integer_milliseconds() {
        let table: &[(&str, Option<Duration>)] = &[
            ("1000", Some(Duration::from_secs(1))),
            ("3s", Some(Duration::from_secs(3))),
            ("500ms", Some(Duration::from_millis(500))),
            ("1m30s", Some(Duration::from_secs(90))),
            ("1.5s", Some(Duration::from_millis(1500))),
            ("2h", Some(Duration::from_secs(7200))),
            ("10us", Some(Duration::from_micros(10))),
            ("0", Some(Duration::ZERO)),
            ("-1", None),
            ("-1s", None),
            ("a", None),
            ("1 s", None),
            ("1d", None),
            ("s", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_duration_or_millis(input).ok(), *want, "{input}");
        }
    }

    #[test]
    fn maps_are_comma_separated_key_value_pairs() {
        assert_eq!(
            parse_map("key1=value1, key2 = value2"),
            Ok(BTreeMap::from([
                ("key1".to_owned(), "value1".to_owned()),
                ("key2".to_owned(), "value2".to_owned()),
            ]))
        );
        for bad in ["key1=value1,key2", "a=b=c", "a=b,", "=v"] {
            assert!(parse_map(bad).is_err(), "{bad}");
        }
    }
}
