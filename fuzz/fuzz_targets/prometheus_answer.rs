//! The Prometheus answer parser: an HTTP status, a `Retry-After` header and a body, through
//! `prometheus::interpret` and both reductions, as the fetcher does with every upstream answer.
//! Input: byte 0 picks the status, byte 1 the reduction flags, then a header line (up to the
//! first `\n`) as `Retry-After`, then the body.

#![no_main]

use http::{HeaderMap, HeaderValue, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use promscaler_metrics_fetcher::prometheus::{interpret, reduce_instant, reduce_range};

/// Statuses the parser treats differently (success, auth, throttling, bad query, server error).
const STATUSES: [u16; 12] = [200, 204, 400, 401, 403, 404, 422, 429, 500, 502, 503, 504];

fuzz_target!(|data: &[u8]| {
    let [selector, flags, rest @ ..] = data else {
        return;
    };
    let status = StatusCode::from_u16(STATUSES[usize::from(*selector) % STATUSES.len()])
        .unwrap_or(StatusCode::OK);
    let (header_line, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(header_line) {
        headers.insert(header::RETRY_AFTER, value);
    }
    match interpret("prometheus.fuzz:9090", status, &headers, body) {
        Ok(answer) => {
            let _ = answer.result_type();
            let _ = answer.series_count();
            if let Err(e) = reduce_instant(&answer, flags & 1 == 1) {
                let _ = e.to_string();
            }
            if let Err(e) = reduce_range(&answer) {
                let _ = e.to_string();
            }
        }
        Err(e) => {
            // Error messages quote (and truncate) the server's text: they must not panic either.
            let _ = e.to_string();
        }
    }
});
