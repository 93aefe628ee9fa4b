//! SigV4 request signing with `aws-sigv4` (service `aps` for Amazon Managed Prometheus).
//!
//! The request is signed as it will be sent: method, URI (query string already in SigV4's
//! canonical percent-encoding, see `prometheus::encode_params`), every header present
//! (custom headers included) and a SHA-256 of the body (the POST form, or empty for GET).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign as sigv4_sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

/// Signs `req` in place. The error text never contains key material.
pub fn sign(
    req: &mut Request<Full<Bytes>>,
    creds: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), String> {
    let body = body_bytes(req);
    sign_with_body(req, &body, creds, region, service, time)
}

/// Signs a request whose body is `body` (split out for the benchmark and for non-`Full` bodies).
pub fn sign_with_body<B>(
    req: &mut Request<B>,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), String> {
    let identity = Identity::from(creds.clone());
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("invalid signing parameters: {e}"))?
        .into();
    let mut headers = Vec::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        let value = value
            .to_str()
            .map_err(|_| format!("header {name} is not valid text and cannot be signed"))?;
        headers.push((name.as_str(), value));
    }
    let uri = req.uri().to_string();
    let signable = SignableRequest::new(
        req.method().as_str(),
        &uri,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("cannot sign the request: {e}"))?;
    let (instructions, _signature) = sigv4_sign(signable, &params)
        .map_err(|e| format!("signing failed: {e}"))?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    for name in [http::header::AUTHORIZATION.as_str(), "x-amz-security-token"] {
        if let Some(v) = req.headers_mut().get_mut(name) {
            v.set_sensitive(true);
        }
    }
    Ok(())
}

/// The bytes of a `Full` body without consuming it (it is a single in-memory chunk).
fn body_bytes(req: &Request<Full<Bytes>>) -> Bytes {
    use http_body::Body as _;
    // `Full` yields its one chunk on the first poll; cloning the body is cheap (Bytes).
    let mut body = req.body().clone();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
        std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
        std::task::Poll::Ready(Some(Err(never))) => match never {},
        std::task::Poll::Ready(None) | std::task::Poll::Pending => Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn creds() -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token".into()),
            None,
            "test",
        )
    }

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160) // 2015-08-30T12:36:00Z
    }

    #[test]
    fn signs_with_aps_scope_and_session_token() {
        let mut req = Request::get(
            "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1/api/v1/query?query=up",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
        sign(&mut req, &creds(), "us-east-1", "aps", at()).unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/aps/aws4_request"
            ),
            "{auth}"
        );
        assert!(
            auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        assert!(req.headers()["authorization"].is_sensitive());
        assert!(!auth.contains("wJalr"));
    }

    #[test]
    fn body_is_part_of_the_signature() {
        let sign_body = |body: &'static str| {
            let mut req = Request::post("https://h/api/v1/query")
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap();
            sign(&mut req, &creds(), "us-east-1", "aps", at()).unwrap();
            req.headers()["authorization"].to_str().unwrap().to_owned()
        };
        assert_ne!(sign_body("query=up"), sign_body("query=down"));
    }
}
