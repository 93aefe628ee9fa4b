//! `promscalerctl import-keda`: multi-document KEDA YAML (ScaledObject, TriggerAuthentication,
//! ClusterTriggerAuthentication) converted to PromScaler objects, which must then pass the
//! same checks as hand-written ones.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match promscaler_api::keda::import_keda(input) {
        Ok(imported) => {
            let _ = imported.notes.len();
            let _ = promscaler_api::files::check(&imported.to_yaml());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
