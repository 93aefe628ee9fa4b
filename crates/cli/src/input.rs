//! Reading manifests from files or stdin, choosing the PromScaler a command works on, and
//! parsing command-line values (times, `key=value` pairs).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::time::{Duration, SystemTime};

use promscaler_api::files::{Document, parse_documents};
use promscaler_api::proto::UpstreamAuth;
use promscaler_api::{PromScaler, PromScalerAuthenticationSpec, ValidatedScaler, resolve_auth};

use crate::Error;

/// Reads a file, or stdin for "-".
pub(crate) fn read_input(path: &str) -> Result<String, Error> {
    let read = if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// A validated PromScaler from the input and the authentications found next to it.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The file it came from (for messages).
    pub(crate) path: String,
    pub(crate) scaler: ValidatedScaler,
    /// PromScalerAuthentications in the same input, by name.
    pub(crate) authentications: BTreeMap<String, PromScalerAuthenticationSpec>,
    /// Secrets in the same input, by name.
    pub(crate) secrets: BTreeMap<String, Secret>,
}

/// Reads the PromScaler named `name` (or the only one) from `path`, validated with the
/// actuator's rules.
pub(crate) fn load_scaler(path: &str, name: Option<&str>) -> Result<Loaded, Error> {
    let text = read_input(path)?;
    let manifest = |source| Error::Manifest {
        path: path.to_owned(),
        source,
    };
    let mut scalers: Vec<PromScaler> = Vec::new();
    let mut authentications = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for doc in parse_documents(&text).map_err(manifest)? {
        match doc {
            Document::PromScaler(p) => scalers.push(*p),
            Document::Authentication(a) => {
                let key = a.metadata.name.clone().unwrap_or_default();
                authentications.insert(key, a.spec);
            }
            Document::Other(v) => {
                if let Some((name, data)) = secret(path, &v)? {
                    secrets.insert(name, data);
                }
            }
        }
    }
    let names: Vec<String> = scalers
        .iter()
        .map(|s| s.metadata.name.clone().unwrap_or_default())
        .collect();
    let index = match name {
        Some(n) => names.iter().position(|x| x == n).ok_or_else(|| {
            Error::Usage(format!(
                "{path}: no PromScaler named {n:?} (found: {})",
                list(&names)
            ))
        })?,
        None if scalers.len() == 1 => 0,
        None if scalers.is_empty() => {
            return Err(Error::Usage(format!(
                "{path}: no promscaler.io/v1alpha1 PromScaler in the input; convert a KEDA ScaledObject with `promscalerctl import-keda`"
            )));
        }
        None => {
            return Err(Error::Usage(format!(
                "{path}: {} PromScalers in the input ({}); choose one with --name",
                names.len(),
                list(&names)
            )));
        }
    };
    let scaler = scalers
        .swap_remove(index)
        .validate()
        .map_err(|errors| manifest(promscaler_api::Error::Invalid { errors }))?;
    Ok(Loaded {
        path: path.to_owned(),
        scaler,
        authentications,
        secrets,
    })
}

/// A `v1` `Secret` document's name and values (`stringData` over base64 `data`), so that
/// `helm template ... | promscalerctl check -` resolves authentications as the actuator would.
fn secret(path: &str, v: &serde_yaml::Value) -> Result<Option<(String, Secret)>, Error> {
    use base64::Engine as _;
    if v.get("apiVersion").and_then(|a| a.as_str()) != Some("v1")
        || v.get("kind").and_then(|k| k.as_str()) != Some("Secret")
    {
        return Ok(None);
    }
    let name = v
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or_default()
        .to_owned();
    let mut values = BTreeMap::new();
    if let Some(serde_yaml::Value::Mapping(data)) = v.get("data") {
        for (k, raw) in data {
            let key = k.as_str().unwrap_or_default().to_owned();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(raw.as_str().unwrap_or_default().trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{path}: Secret {name} data.{key} is not base64-encoded UTF-8 text; fix it or put the value in stringData"
                    ))
                })?;
            values.insert(key, decoded);
        }
    }
    if let Some(serde_yaml::Value::Mapping(data)) = v.get("stringData") {
        for (k, raw) in data {
            let value = match raw {
                serde_yaml::Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other)
                    .unwrap_or_default()
                    .trim_end()
                    .to_owned(),
            };
            values.insert(k.as_str().unwrap_or_default().to_owned(), value);
        }
    }
    Ok(Some((name, values)))
}

/// A Secret's values by key.
pub(crate) type Secret = BTreeMap<String, String>;

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl Loaded {
    /// Trigger `index`'s upstream authentication, built as the actuator builds it: from its
    /// PromScalerAuthentication when the input has it, with the values of the Secrets it names
    /// when the input has them, then `params` (`--auth-param`, by parameter name, e.g.
    /// `bearerToken`). What the input lacks is reported on stderr first, as it is usually why
    /// the authentication cannot be built.
    pub(crate) fn auth(
        &self,
        index: usize,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<UpstreamAuth>, Error> {
        let trigger = &self.scaler.triggers[index];
        let mut warnings = Vec::new();
        let spec = match &trigger.authentication_ref {
            Some(name) => {
                let found = self.authentications.get(name);
                if found.is_none() {
                    warnings.push(format!(
                        "trigger {}: PromScalerAuthentication {name:?} is not in {}; querying with the trigger's metadata and --auth-param values only",
                        trigger.name, self.path
                    ));
                }
                found
            }
            None => None,
        };
        let mut values = BTreeMap::new();
        for (secret, key, parameter) in spec.map(|s| s.secret_refs()).unwrap_or_default() {
            if params.contains_key(parameter) {
                continue;
            }
            match self.secrets.get(secret).and_then(|s| s.get(key)) {
                Some(v) => {
                    values.insert(parameter.to_owned(), v.clone());
                }
                None => warnings.push(format!(
                    "trigger {}: Secret {secret} (key {key}) is not in {}; give the value with --auth-param {parameter}=...",
                    trigger.name, self.path
                )),
            }
        }
        values.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
        for w in warnings {
            eprintln!("warning: {w}");
        }
        let auth = resolve_auth(
            &trigger.prometheus,
            &format!("spec.triggers[{index}]"),
            spec,
            &values,
        )
        .map_err(|errors| Error::Manifest {
            path: self.path.clone(),
            source: promscaler_api::Error::Invalid { errors },
        })?;
        Ok(auth)
    }
}

/// Parses `key=value`.
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// A point in time: "now", "-24h" (before now), or RFC 3339 ("2026-11-28T00:00:00Z").
pub(crate) fn parse_time(s: &str, now: SystemTime) -> Result<SystemTime, Error> {
    let bad = |e: String| {
        Error::Usage(format!(
            "invalid time {s:?}: {e}; use \"now\", a duration before now such as \"-24h\", or RFC 3339 such as \"2026-11-28T00:00:00Z\""
        ))
    };
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(ago) = s.strip_prefix('-') {
        let d: Duration = humantime::parse_duration(ago).map_err(|e| bad(e.to_string()))?;
        return now.checked_sub(d).ok_or_else(|| bad("too far back".into()));
    }
    humantime::parse_rfc3339_weak(s).map_err(|e| bad(e.to_string()))
}

/// A proto timestamp.
pub(crate) fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

/// A proto duration.
pub(crate) fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_now_relative_or_rfc3339() {
        let now = humantime::parse_rfc3339("2026-11-29T00:00:00Z").unwrap();
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(
            parse_time("-24h", now).unwrap(),
            humantime::parse_rfc3339("2026-11-28T00:00:00Z").unwrap()
        );
        assert_eq!(
            parse_time("2026-11-28T12:00:00Z", now).unwrap(),
            humantime::parse_rfc3339("2026-11-28T12:00:00Z").unwrap()
        );
        let err = parse_time("yesterday", now).unwrap_err().to_string();
        assert!(err.contains("-24h"), "{err}");
    }

    #[test]
    fn key_values_need_a_key() {
        assert_eq!(
            key_value("rps=140").unwrap(),
            ("rps".to_owned(), "140".to_owned())
        );
        assert!(key_value("=1").is_err());
        assert!(key_value("140").is_err());
    }
}
