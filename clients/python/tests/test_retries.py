"""Retries: only after `unavailable`, only for calls safe to repeat. No Keyward server needed."""
import json
import socket
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from keyward import Keyward, KeywardError


def closed_port() -> int:
    """A loopback port nobody listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def counting(client: Keyward):
    """Counts the client's attempts and records its backoff delays (without sleeping)."""
    t = client._transport
    attempts, delays = [], []
    send = t._send

    def counted(url, data):
        attempts.append(url.rsplit("/", 1)[1])
        return send(url, data)

    t._send = counted
    t.sleep = delays.append
    return attempts, delays


class ClosedPortTest(unittest.TestCase):
    def setUp(self):
        self.kw = Keyward(f"http://127.0.0.1:{closed_port()}", "kws_test_secret", timeout=2, retries=2)
        self.attempts, self.delays = counting(self.kw)

    def test_create_is_tried_once(self):
        with self.assertRaises(KeywardError) as cm:
            self.kw.keys.create(workspace_id="00000000-0000-4000-8000-000000000000", name="x")
        self.assertEqual(cm.exception.code, "unavailable")
        self.assertIsNone(cm.exception.request_id)
        self.assertEqual(self.attempts, ["CreateKey"])
        self.assertEqual(self.delays, [])

    def test_changes_are_tried_once(self):
        for call in (lambda: self.kw.keys.revoke("k"), lambda: self.kw.keys.rotate("k"), lambda: self.kw.workspaces.delete("w")):
            with self.assertRaises(KeywardError):
                call()
        self.assertEqual(self.attempts, ["RevokeKey", "RotateKey", "DeleteWorkspace"])

    def test_list_is_retried_with_backoff(self):
        with self.assertRaises(KeywardError) as cm:
            self.kw.keys.list("00000000-0000-4000-8000-000000000000")
        self.assertEqual(cm.exception.code, "unavailable")
        self.assertEqual(self.attempts, ["ListKeys"] * 3)  # 1 + retries
        self.assertEqual(len(self.delays), 2)
        self.assertLess(self.delays[0], self.delays[1] + 0.11)  # exponential, jittered: 0.1-0.2 s, then 0.2-0.4 s
        self.assertTrue(0.1 <= self.delays[0] <= 0.2 and 0.2 <= self.delays[1] <= 0.4, self.delays)

    def test_verify_is_retried_and_retries_zero_means_once(self):
        with self.assertRaises(KeywardError):
            self.kw.keys.verify("kw_x")
        self.assertEqual(self.attempts, ["VerifyKey"] * 3)
        once = Keyward(self.kw.base_url, "kws_test_secret", retries=0)
        attempts, _ = counting(once)
        with self.assertRaises(KeywardError):
            once.keys.get("k")
        self.assertEqual(attempts, ["GetKey"])


class StubHandler(BaseHTTPRequestHandler):
    """Answers every RPC with the error in server.answer, and counts the calls."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.calls.append((self.path, self.headers.get("Connect-Protocol-Version"), self.headers.get("Content-Type")))
        status, code = self.server.answer
        body = json.dumps({"code": code, "message": f"{code} for the test"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", f"req-{len(self.server.calls)}")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class StubServerTest(unittest.TestCase):
    def setUp(self):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
        self.server.calls = []
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.kw = Keyward(f"http://127.0.0.1:{self.server.server_address[1]}", "kws_test_secret", retries=2)
        self.kw._transport.sleep = lambda s: None

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()

    def test_unavailable_answers(self):
        self.server.answer = (503, "unavailable")
        with self.assertRaises(KeywardError) as cm:
            self.kw.keys.get("k")
        self.assertEqual((cm.exception.code, cm.exception.request_id), ("unavailable", "req-3"))
        self.assertEqual(len(self.server.calls), 3)
        self.assertEqual(self.server.calls[0], ("/keyward.v1.KeyService/GetKey", "1", "application/json"))
        self.server.calls.clear()
        with self.assertRaises(KeywardError):
            self.kw.keys.create(workspace_id="w")
        self.assertEqual(len(self.server.calls), 1)

    def test_other_errors_are_not_retried(self):
        for status, code in [(400, "invalid_argument"), (500, "internal"), (504, "deadline_exceeded"), (404, "not_found")]:
            self.server.answer = (status, code)
            self.server.calls.clear()
            with self.assertRaises(KeywardError) as cm:
                self.kw.keys.verify("kw_x")
            self.assertEqual((cm.exception.code, cm.exception.http_status), (code, status))
            self.assertEqual(len(self.server.calls), 1, code)


if __name__ == "__main__":
    unittest.main()
