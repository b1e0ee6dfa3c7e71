"""TokenSource against a real server (best with KEYWARD_TOKEN_TTL_SECONDS=3)."""
import base64
import json
import threading
import time
import unittest
from datetime import datetime, timezone

from keyward import KeywardError, TokenSource

from _support import ServerTestCase


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class TokenSourceTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.created = cls.kw.keys.create(
            workspace_id=cls.workspace["id"], customer_id="cus_jwt", grants=["balance_transfers:read", "invoices:read"]
        )

    def test_exchange(self):
        res = self.kw.tokens.exchange(self.created.secret, permissions=["invoices:read"])
        self.assertTrue(res.valid)
        self.assertEqual((res.code, res.key_id), ("VALID", self.created.id))
        self.assertNotIn(res.token, repr(res))
        c = claims(res.token)
        self.assertEqual((c["sub"], c["customer_id"], c["permissions"]), (self.created.id, "cus_jwt", ["invoices:read"]))
        self.assertEqual(c["exp"], int(res.expire_time.timestamp()))
        refused = self.kw.tokens.exchange(self.created.secret, permissions=["invoices:delete"])
        self.assertEqual((refused.valid, refused.code, refused.token), (False, "INSUFFICIENT_PERMISSIONS", ""))

    def lifetime(self) -> float:
        res = self.kw.tokens.exchange(self.created.secret)
        return (res.expire_time - datetime.now(timezone.utc)).total_seconds()

    def test_refreshes_before_expiry(self):
        ttl = self.lifetime()
        if ttl > 10:
            self.skipTest(f"the server's token TTL is {ttl:.0f}s; start it with KEYWARD_TOKEN_TTL_SECONDS=3")
        source = TokenSource(self.kw, self.created.secret, refresh_buffer_seconds=1)
        first = source.token()
        self.assertEqual(source.exchanges, 1)
        self.assertTrue(source.token() == first, "cached while fresh")
        self.assertEqual(source.exchanges, 1)
        self.assertEqual(claims(first)["permissions"], ["balance_transfers:read", "invoices:read"])
        # Fresh until 1 s before expiry (on the monotonic clock), then exchanged again.
        refresh_at = source._cached[2]
        expected_in = (source.expire_time - datetime.now(timezone.utc)).total_seconds() - 1
        self.assertAlmostEqual(refresh_at - time.monotonic(), expected_in, delta=0.3)
        time.sleep(max(0.0, refresh_at - time.monotonic() - 0.4))
        if time.monotonic() < refresh_at - 0.1:  # not late (a busy machine may be)
            self.assertTrue(source.token() == first, "still cached just before the refresh buffer")
            self.assertEqual(source.exchanges, 1)
        time.sleep(max(0.0, refresh_at - time.monotonic()) + 0.1)
        second = source.token()
        self.assertEqual(source.exchanges, 2)
        self.assertFalse(second == first, "a new token")
        self.assertGreater(source.expire_time, datetime.now(timezone.utc))
        self.assertGreater(claims(second)["exp"], datetime.now(timezone.utc).timestamp())
        self.assertEqual(source.authorization(), "Bearer " + second)

    def test_single_flight_under_20_threads(self):
        source = TokenSource(self.kw, self.created.secret, refresh_buffer_seconds=0, permissions=["balance_transfers:read"])
        exchange = self.kw.tokens.exchange
        calls = []

        def slow_exchange(*args, **kwargs):  # widens the window in which threads could race
            calls.append(1)
            time.sleep(0.3)
            return exchange(*args, **kwargs)

        source._client = type("Proxy", (), {"tokens": type("T", (), {"exchange": staticmethod(slow_exchange)})()})()
        barrier = threading.Barrier(20)
        results, errors = [], []

        def worker():
            try:
                barrier.wait()
                results.append(source.token())
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 20)
        self.assertEqual(len(set(results)), 1, "every thread got the same token")
        self.assertEqual((len(calls), source.exchanges), (1, 1))
        self.assertEqual(claims(results[0])["permissions"], ["balance_transfers:read"])

    def test_refused_key_raises(self):
        doomed = self.kw.keys.create(workspace_id=self.workspace["id"], grants=["invoices:read"])
        source = self.kw.tokens.source(doomed.secret, refresh_buffer_seconds=3600)
        source.token()  # the buffer exceeds the TTL: every call exchanges again
        with self.assertRaises(KeywardError) as cm:
            TokenSource(self.kw, doomed.secret, permissions=["invoices:delete"]).token()
        self.assertEqual((cm.exception.code, cm.exception.verify_code), ("permission_denied", "INSUFFICIENT_PERMISSIONS"))
        self.kw.keys.revoke(doomed.id)
        with self.assertRaises(KeywardError) as cm:
            source.token()
        self.assertEqual((cm.exception.code, cm.exception.verify_code), ("unauthenticated", "REVOKED"))
        self.assertIsNone(source.expire_time)


if __name__ == "__main__":
    unittest.main()
