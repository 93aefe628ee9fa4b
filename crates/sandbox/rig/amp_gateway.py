#!/usr/bin/env python3
"""An Amazon Managed Prometheus look-alike for tests: verifies SigV4 like AMP, forwards to Prometheus.

AMP's query API is https://aps-workspaces.<region>.amazonaws.com/workspaces/<id>/api/v1/...,
signed with SigV4 for service "aps". This gateway serves /workspaces/<id>/api/v1/... on
127.0.0.1, checks each request's signature with botocore's SigV4 implementation (independent of
the Rust signer under test) against the credentials moto's STS issued (read from moto's
/moto-api/data.json), answers 403 with AMP's messages when the signature, region or service is
wrong, and forwards valid requests to a real Prometheus.

Gateway-only paths (never forwarded, never signed):
  GET  /-/gateway/stats           {"forwarded": n, "rejected": n, "last_rejection": "...",
                                   "signed_by": {role ARN: forwarded requests signed with
                                   credentials moto issued for that role}}
  POST /-/gateway/delay?seconds=S delay every forwarded request by S seconds (slow upstream)
  POST /-/gateway/limit?rps=N     answer 429 ThrottlingException, as AMP does above a
                                  workspace's query rate, to signed requests beyond N per second
                                  (a token bucket holding two seconds' worth: this process sees
                                  requests when it gets the CPU, not when they arrive, so on a
                                  busy machine a paced stream reaches it in bunches); 0 = no
                                  limit.
                                  Throttled requests count as "throttled" in the stats.
  GET  /-/gateway/ready           200 once serving

Usage: amp_gateway.py --port P --upstream http://127.0.0.1:9090 --moto http://127.0.0.1:5000
                      --region ap-northeast-2
"""

import argparse
import json
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<sig>[0-9a-f]+)$"
)
WORKSPACE_RE = re.compile(r"^/workspaces/[^/]+(?P<rest>/api/v1/.*)$")


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.forwarded = 0
        self.rejected = 0
        self.last_rejection = ""
        self.delay = 0.0
        self.secrets = {}
        self.signed_by = {}
        self.throttled = 0
        self.rps = 0.0
        self.tokens = 0.0
        self.refilled = time.monotonic()

    def admit(self):
        """Whether one more request fits the rate limit (always, without one)."""
        with self.lock:
            if self.rps <= 0:
                return True
            now = time.monotonic()
            self.tokens = min(2 * self.rps, self.tokens + (now - self.refilled) * self.rps)
            self.refilled = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            self.throttled += 1
            return False

    def secret_for(self, akid):
        """(secret, token, role ARN) moto issued for akid, refreshing from moto on a miss."""
        with self.lock:
            if akid in self.secrets:
                return self.secrets[akid]
        url = self.args.moto.rstrip("/") + "/moto-api/data.json"
        with urllib.request.urlopen(url, timeout=5) as resp:
            data = json.load(resp)
        found = {}
        for role in data.get("sts", {}).get("AssumedRole", []):
            found[role["access_key_id"]] = (
                role["secret_access_key"], role.get("session_token"), role.get("role_arn", ""))
        with self.lock:
            self.secrets.update(found)
            return self.secrets.get(akid)


def make_handler(state):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet; the stats endpoint tells what happened
            pass

        def reply(self, status, body, content_type="application/json", extra=None):
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def reject(self, status, message, error_type="AccessDeniedException"):
            with state.lock:
                state.rejected += 1
                state.last_rejection = message
            self.reply(status, json.dumps({"message": message}), extra={"x-amzn-ErrorType": error_type})

        def read_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def handle_any(self, method):
            body = self.read_body()
            parsed = urllib.parse.urlsplit(self.path)
            if parsed.path.startswith("/-/gateway/"):
                return self.gateway_api(method, parsed)
            m = WORKSPACE_RE.match(parsed.path)
            if not m:
                return self.reply(404, json.dumps({"message": "Not Found"}))
            problem = self.verify(method, body)
            if problem:
                return self.reject(*problem)
            if not state.admit():
                return self.reply(429, json.dumps({"message": "Rate exceeded"}),
                                  extra={"x-amzn-ErrorType": "ThrottlingException"})
            self.forward(method, m.group("rest"), parsed.query, body)

        def gateway_api(self, method, parsed):
            if parsed.path == "/-/gateway/stats":
                with state.lock:
                    stats = {
                        "forwarded": state.forwarded,
                        "rejected": state.rejected,
                        "last_rejection": state.last_rejection,
                        "signed_by": dict(state.signed_by),
                        "throttled": state.throttled,
                    }
                return self.reply(200, json.dumps(stats))
            if parsed.path == "/-/gateway/delay" and method == "POST":
                seconds = float(urllib.parse.parse_qs(parsed.query).get("seconds", ["0"])[0])
                with state.lock:
                    state.delay = seconds
                return self.reply(200, json.dumps({"delay": seconds}))
            if parsed.path == "/-/gateway/limit" and method == "POST":
                rps = float(urllib.parse.parse_qs(parsed.query).get("rps", ["0"])[0])
                with state.lock:
                    state.rps = rps
                    state.tokens = 2 * rps
                    state.refilled = time.monotonic()
                return self.reply(200, json.dumps({"rps": rps}))
            if parsed.path == "/-/gateway/ready":
                return self.reply(200, "ready", "text/plain")
            return self.reply(404, json.dumps({"message": "Not Found"}))

        def verify(self, method, body):
            """None when the request is signed correctly (counted under the signer's role), else
            (status, AMP-like message)."""
            auth = self.headers.get("Authorization")
            amz_date = self.headers.get("X-Amz-Date")
            if not auth or not amz_date:
                return (403, "Missing Authentication Token", "MissingAuthenticationTokenException")
            m = AUTH_RE.match(auth)
            if not m:
                return (403, "Authorization header requires 'Credential', 'Signature' and "
                             "'SignedHeaders' parameters.", "IncompleteSignatureException")
            if m.group("region") != state.args.region:
                return (403, "Credential should be scoped to a valid region. ",
                        "InvalidSignatureException")
            if m.group("service") != "aps":
                return (403, "Credential should be scoped to correct service: 'aps'. ",
                        "InvalidSignatureException")
            if not amz_date.startswith(m.group("date")):
                return (403, "Date in Credential scope does not match YYYYMMDD from ISO-8601 "
                             "version of date from HTTP.", "InvalidSignatureException")
            found = state.secret_for(m.group("akid"))
            if not found:
                return (403, "The security token included in the request is invalid.",
                        "UnrecognizedClientException")
            secret, token, role_arn = found
            if token and self.headers.get("X-Amz-Security-Token") != token:
                return (403, "The security token included in the request is invalid.",
                        "UnrecognizedClientException")
            signed = m.group("signed").split(";")
            headers = {}
            for name in signed:
                value = self.headers.get(name)
                if value is None:
                    return (403, f"Signed header {name} missing.", "InvalidSignatureException")
                headers[name] = value
            url = f"http://{self.headers.get('Host')}{self.path}"
            request = AWSRequest(method=method, url=url, data=body, headers=headers)
            request.context["timestamp"] = amz_date
            signer = SigV4Auth(Credentials(m.group("akid"), secret, token), "aps", state.args.region)
            if signer.signed_headers(signer.headers_to_sign(request)) != m.group("signed"):
                return (403, "The request signature we calculated does not match the signature "
                             "you provided (signed headers differ).", "InvalidSignatureException")
            canonical = signer.canonical_request(request)
            string_to_sign = signer.string_to_sign(request, canonical)
            expected = signer.signature(string_to_sign, request)
            if expected != m.group("sig"):
                return (403, "The request signature we calculated does not match the signature "
                             "you provided. Check your AWS Secret Access Key and signing method.",
                        "InvalidSignatureException")
            with state.lock:
                state.signed_by[role_arn] = state.signed_by.get(role_arn, 0) + 1
            return None

        def forward(self, method, rest, query, body):
            with state.lock:
                state.forwarded += 1
                delay = state.delay
            if delay > 0:
                time.sleep(delay)
            url = state.args.upstream.rstrip("/") + rest + (("?" + query) if query else "")
            headers = {}
            if method == "POST":
                headers["Content-Type"] = self.headers.get(
                    "Content-Type", "application/x-www-form-urlencoded")
            req = urllib.request.Request(url, data=body if method == "POST" else None,
                                         headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    self.reply(resp.status, resp.read(), resp.headers.get("Content-Type", "application/json"))
            except urllib.error.HTTPError as e:
                self.reply(e.code, e.read(), e.headers.get("Content-Type", "application/json"))
            except (urllib.error.URLError, OSError) as e:
                self.reply(502, json.dumps({"message": f"upstream unavailable: {e}"}))

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--moto", required=True)
    parser.add_argument("--region", required=True)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(State(args)))
    server.daemon_threads = True
    print(f"amp gateway on 127.0.0.1:{args.port} -> {args.upstream}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
