#!/usr/bin/env python3
"""A tiny Python service that checks the caller's API key with Keyward on
every request (standard library only, plus the keyward package).

    KEYWARD_URL=http://localhost:8080 KEYWARD_SDK_KEY=kws_... \\
        PYTHONPATH=clients/python python3 clients/python/examples/verify_service.py --port 8000

    curl -H "Authorization: Bearer $API_KEY" localhost:8000/balance_transfers

The SDK key needs the scope ``api_keys:verify``. The API key comes in
``Authorization: Bearer`` or ``X-API-Key``. Routes and the permission each
needs are in ROUTES. Answers as Keyward's forward auth does: 401 with
``WWW-Authenticate: Bearer realm="keyward"`` for a missing, unknown,
disabled, expired or revoked key; 403 for missing permissions; 429 with
``Retry-After`` when rate limited or out of uses; 503 when Keyward cannot be
reached (it fails closed). On success the handler sees who called.

Prints ``listening on http://HOST:PORT`` on stdout once it serves.
"""
import argparse
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keyward import Keyward, KeywardError

# (method, path) -> the permission the request needs.
ROUTES = {
    ("GET", "/balance_transfers"): "balance_transfers:read",
    ("POST", "/balance_transfers"): "balance_transfers:create",
}

STATUS = {
    "NOT_FOUND": 401,
    "DISABLED": 401,
    "EXPIRED": 401,
    "REVOKED": 401,
    "INSUFFICIENT_PERMISSIONS": 403,
    "RATE_LIMITED": 429,
    "USAGE_EXCEEDED": 429,
}


def api_key_of(headers):
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return headers.get("X-API-Key", "").strip()


def make_handler(keyward: Keyward):
    class Handler(BaseHTTPRequestHandler):
        server_version = "verify-service/1"

        def handle_request(self):
            permission = ROUTES.get((self.command, self.path.split("?", 1)[0]))
            if permission is None:
                return self.answer(404, {"error": "not_found"})
            key = api_key_of(self.headers)
            if not key:
                return self.answer(401, {"error": "missing_api_key"}, {"WWW-Authenticate": 'Bearer realm="keyward"'})
            try:
                result = keyward.keys.verify(key, permissions=[permission])
            except KeywardError as e:
                # Fail closed: no answer from Keyward is no access.
                self.log_message("keyward: %s (request %s)", e.code, e.request_id)
                return self.answer(503, {"error": "unavailable"}, {"Retry-After": "1"})
            if not result.valid:
                status = STATUS.get(result.code, 401)
                headers = {}
                if status == 401:
                    headers["WWW-Authenticate"] = 'Bearer realm="keyward"'
                if status == 429:
                    headers["Retry-After"] = str(result.retry_after_seconds() or 1)
                return self.answer(status, {"error": result.code.lower()}, headers)
            # The caller is known: do the work for this customer.
            return self.answer(
                200,
                {"customer_id": result.customer_id, "key_id": result.key_id, "permissions": result.permissions},
                {"X-Keyward-Key-Id": result.key_id, "X-Keyward-Customer-Id": result.customer_id},
            )

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_request

        def answer(self, status, body, headers=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            # The request line never holds the key (it is in a header); logged to stderr.
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    return Handler


def main():
    parser = argparse.ArgumentParser(description="A service that verifies API keys with Keyward.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args()
    url, sdk_key = os.environ.get("KEYWARD_URL"), os.environ.get("KEYWARD_SDK_KEY")
    if not url or not sdk_key:
        sys.exit("set KEYWARD_URL and KEYWARD_SDK_KEY (an SDK key with api_keys:verify)")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Keyward(url, sdk_key, timeout=5)))
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
