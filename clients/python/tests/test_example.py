"""examples/verify_service.py, run as its own process against a real server."""
import os
import subprocess
import sys
import unittest
import urllib.error
import urllib.request

from _support import URL, ServerTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "verify_service.py")
PACKAGE_ROOT = os.path.abspath(os.path.join(HERE, ".."))


def request(url, method="GET", headers=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, dict(res.headers), res.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class VerifyServiceExampleTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The service gets an SDK key that can only verify keys, as a real one should.
        cls.verifier = cls.kw.sdk_keys.create("py example service", ["api_keys:verify"])
        env = dict(os.environ, KEYWARD_URL=URL, KEYWARD_SDK_KEY=cls.verifier.token, PYTHONDONTWRITEBYTECODE="1")
        env["PYTHONPATH"] = PACKAGE_ROOT + os.pathsep + env.get("PYTHONPATH", "")
        cls.proc = subprocess.Popen(
            [sys.executable, EXAMPLE, "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        line = cls.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            cls.proc.kill()
            raise RuntimeError(f"the example did not start: {line!r} {cls.proc.stderr.read()}")
        cls.base = line[len("listening on "):]
        cls.reader = cls.kw.keys.create(workspace_id=cls.workspace["id"], customer_id="cus_reader", grants=["balance_transfers:read"])

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "proc", None):
            cls.proc.terminate()
            cls.proc.wait(10)
            cls.proc.stdout.close()
            cls.proc.stderr.close()
        if getattr(cls, "verifier", None):
            cls.kw.sdk_keys.revoke(cls.verifier.sdk_key["id"])
        super().tearDownClass()

    def test_200_with_a_valid_key(self):
        status, headers, body = request(self.base + "/balance_transfers", headers={"Authorization": f"Bearer {self.reader.secret}"})
        self.assertEqual(status, 200, body)
        self.assertIn(b'"customer_id": "cus_reader"', body)
        self.assertEqual(headers["X-Keyward-Key-Id"], self.reader.id)
        status, _, _ = request(self.base + "/balance_transfers", headers={"X-API-Key": self.reader.secret})
        self.assertEqual(status, 200)

    def test_401_without_or_with_a_bad_key(self):
        for headers in ({}, {"Authorization": "Bearer pyt_nothing"}, {"X-API-Key": "kw_0000"}):
            status, got, _ = request(self.base + "/balance_transfers", headers=headers)
            self.assertEqual(status, 401, headers)
            self.assertEqual(got["WWW-Authenticate"], 'Bearer realm="keyward"')

    def test_403_without_the_permission(self):
        status, got, body = request(self.base + "/balance_transfers", method="POST", headers={"Authorization": f"Bearer {self.reader.secret}"})
        self.assertEqual(status, 403)
        self.assertIn(b"insufficient_permissions", body)
        self.assertNotIn("WWW-Authenticate", got)

    def test_401_once_revoked(self):
        key = self.kw.keys.create(workspace_id=self.workspace["id"], grants=["balance_transfers:read"])
        auth = {"Authorization": f"Bearer {key.secret}"}
        self.assertEqual(request(self.base + "/balance_transfers", headers=auth)[0], 200)
        self.kw.keys.revoke(key.id)
        status, _, body = request(self.base + "/balance_transfers", headers=auth)
        self.assertEqual((status, body), (401, b'{"error": "revoked"}'))

    def test_429_when_rate_limited(self):
        key = self.kw.keys.create(
            workspace_id=self.workspace["id"], grants=["balance_transfers:read"], rate_limits=[{"name": "per_hour", "limit": 1, "duration": 3600}]
        )
        auth = {"X-API-Key": key.secret}
        self.assertEqual(request(self.base + "/balance_transfers", headers=auth)[0], 200)
        status, headers, _ = request(self.base + "/balance_transfers", headers=auth)
        self.assertEqual(status, 429)
        self.assertTrue(1 <= int(headers["Retry-After"]) <= 3600)

    def test_404_for_unknown_routes(self):
        self.assertEqual(request(self.base + "/nothing")[0], 404)


if __name__ == "__main__":
    unittest.main()
