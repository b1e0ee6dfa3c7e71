"""TokenSource against a real server (best with KEYWARD_TOKEN_TTL_SECONDS=3)."""
import base64
import json
import threading
import time
import unittest
from datetime import datetime, timezone

from keyward import KeywardError, TokenSource

from _support import SDK_KEY, URL, ServerTestCase


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))



def _tokens_from_threads(test, source, n):
    """`source.token()` from n threads released at once; asserts none failed and returns the tokens."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(source.token())
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    test.assertEqual(errors, [])
    return results

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
        results = _tokens_from_threads(self, source, 20)
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


class OwnKeyTokenSourceTest(ServerTestCase):
    """TokenSource without an SDK key: the API key exchanges itself (ExchangeOwnKey)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.created = cls.kw.keys.create(
            workspace_id=cls.workspace["id"], customer_id="cus_own", grants=["balance_transfers:read", "invoices:read"]
        )

    def test_exchanges_itself_and_refreshes_before_expiry(self):
        source = TokenSource(key=self.created.secret, base_url=URL, refresh_buffer_seconds=1, permissions=["invoices:read"])
        self.assertIsNone(source._client)  # no Keyward client, so no SDK key: only the API key is sent
        self.assertIn("ExchangeOwnKey", repr(source))
        self.assertNotIn(self.created.secret, repr(source))
        first = source.token()
        c = claims(first)
        self.assertEqual((c["sub"], c["customer_id"], c["permissions"]), (self.created.id, "cus_own", ["invoices:read"]))
        self.assertEqual(c["workspace_id"], self.workspace["id"])
        self.assertEqual(int(source.expire_time.timestamp()), c["exp"])
        ttl = (source.expire_time - datetime.now(timezone.utc)).total_seconds()
        if ttl > 10:
            self.skipTest(f"the server's token TTL is {ttl:.0f}s; start it with KEYWARD_TOKEN_TTL_SECONDS=3")
        self.assertTrue(source.token() == first, "cached while fresh")
        self.assertEqual(source.exchanges, 1)
        # The token verifies like one from ExchangeKey: the SDK-key client accepts it as the same key's.
        self.assertEqual(claims(self.kw.tokens.exchange(self.created.secret).token)["sub"], c["sub"])
        # Exchanged again 1 s before expiry, while the first token is still valid.
        refresh_at = source._cached[2]
        time.sleep(max(0.0, refresh_at - time.monotonic()) + 0.1)
        second = source.token()
        self.assertEqual(source.exchanges, 2)
        self.assertFalse(second == first, "a new token")
        self.assertLess(datetime.now(timezone.utc).timestamp(), c["exp"], "refreshed before the old token expired")
        self.assertGreater(claims(second)["exp"], datetime.now(timezone.utc).timestamp())
        self.assertEqual(source.authorization(), "Bearer " + second)

    def test_single_flight_under_20_threads(self):
        source = TokenSource(key=self.created.secret, base_url=URL, refresh_buffer_seconds=0)
        results = _tokens_from_threads(self, source, 20)
        self.assertEqual(len(set(results)), 1, "every thread got the same token")
        self.assertEqual(source.exchanges, 1)

    def test_refused_key_raises_with_its_verify_code(self):
        doomed = self.kw.keys.create(workspace_id=self.workspace["id"], grants=["invoices:read"])
        with self.assertRaises(KeywardError) as cm:
            TokenSource(key=doomed.secret, base_url=URL, permissions=["invoices:delete"]).token()
        self.assertEqual((cm.exception.code, cm.exception.verify_code), ("permission_denied", "INSUFFICIENT_PERMISSIONS"))
        # A buffer longer than the TTL: every call exchanges again.
        source = TokenSource(key=doomed.secret, base_url=URL, refresh_buffer_seconds=3600)
        source.token()
        self.assertIsNotNone(source.expire_time)
        self.kw.keys.revoke(doomed.id)
        with self.assertRaises(KeywardError) as cm:
            source.token()
        self.assertEqual((cm.exception.code, cm.exception.verify_code), ("unauthenticated", "REVOKED"))
        self.assertIsNone(source.expire_time, "a refused key drops the cached token")
        # An SDK key is no API key: ExchangeOwnKey does not know it.
        with self.assertRaises(KeywardError) as cm:
            TokenSource(key=SDK_KEY, base_url=URL).token()
        self.assertEqual((cm.exception.code, cm.exception.verify_code), ("unauthenticated", "NOT_FOUND"))


if __name__ == "__main__":
    unittest.main()
