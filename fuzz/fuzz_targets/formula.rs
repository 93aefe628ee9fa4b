//! The scalingModifiers formula: `Formula::parse` (which also runs the formula once with every
//! trigger at -1), then `Formula::eval` with values from the input. Input: byte 0 says which of
//! the three triggers failed (nil), the next 24 bytes are their values (f64, little endian),
//! the rest is the formula text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use promscaler_core::Formula;

const TRIGGERS: [&str; 3] = ["a", "b", "connections"];

fuzz_target!(|data: &[u8]| {
    let Some((&failed, rest)) = data.split_first() else {
        return;
    };
    let Some((numbers, text)) = rest.split_at_checked(24) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(formula) = Formula::parse(text, &TRIGGERS) else {
        return;
    };
    let values: Vec<Option<f64>> = numbers
        .chunks_exact(8)
        .enumerate()
        .map(|(i, b)| {
            let bytes: [u8; 8] = b.try_into().unwrap_or([0; 8]);
            (failed & (1 << i) == 0).then(|| f64::from_le_bytes(bytes))
        })
        .collect();
    let _ = formula.max_eval_steps();
    let _ = formula.referenced_triggers();
    // The contract callers rely on: a result is a finite number, or nil only when the formula
    // uses `??`.
    if let Ok(Some(n)) = formula.eval(&values) {
        assert!(n.is_finite(), "{text:?} gave {n}");
    }
});
