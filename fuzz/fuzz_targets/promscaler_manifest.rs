//! PromScaler and PromScalerAuthentication YAML, the way `promscalerctl check` and the cluster
//! see it: strict schema validation against the generated CRDs, then the actuator's
//! validation (`validate_spec`, which also parses the pause annotations). The input's
//! `key=value` lines are also parsed directly as pause annotations.

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match promscaler_api::files::check(input) {
        Ok(checked) => {
            for c in checked {
                for e in c.errors.iter().chain(&c.warnings) {
                    let _ = e.to_string();
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = promscaler_api::files::parse_promscalers(input);

    let annotations: BTreeMap<String, String> = input
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Err(errors) = promscaler_api::parse_pause(&annotations) {
        for e in errors {
            let _ = e.to_string();
        }
    }
});
