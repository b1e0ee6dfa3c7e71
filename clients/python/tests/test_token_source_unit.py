"""TokenSource's caching rules with a fake client (no server)."""
import time
import unittest
from datetime import datetime, timedelta, timezone

from keyward import ExchangeResult, KeywardError, TokenSource


class FakeTokens:
    def __init__(self):
        self.answers = []
        self.calls = 0

    def exchange(self, key, permissions=None, workspace_id=None):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeClient:
    def __init__(self):
        self.tokens = FakeTokens()


class FakeTransport:
    """Answers ExchangeOwnKey in place of a server."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def call(self, service, method, body, idempotent):
        self.calls.append((service, method, body, idempotent))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def own_answer(token, seconds):
    expire = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"token": token, "expireTime": expire, "keyId": "key-id", "signingKeyId": "kid"}


def valid(token, seconds):
    return ExchangeResult("VALID", token, datetime.now(timezone.utc) + timedelta(seconds=seconds), "key-id", "kid")


class TokenSourceUnitTest(unittest.TestCase):
    def test_outage_keeps_an_unexpired_token_then_fails(self):
        client = FakeClient()
        client.tokens.answers = [valid("t1", 2.0), KeywardError("unavailable", "down"), KeywardError("unavailable", "down")]
        source = TokenSource(client, "kw_x", refresh_buffer_seconds=1.5)
        self.assertEqual(source.token(), "t1")
        time.sleep(0.7)  # refresh due (0.5 s), token valid until 2 s
        self.assertEqual(source.token(), "t1")
        self.assertEqual(client.tokens.calls, 2)
        time.sleep(max(0.0, (source.expire_time - datetime.now(timezone.utc)).total_seconds()) + 0.05)  # expired
        with self.assertRaises(KeywardError) as cm:
            source.token()
        self.assertEqual(cm.exception.code, "unavailable")

    def test_buffer_longer_than_the_token_refreshes_every_call(self):
        client = FakeClient()
        client.tokens.answers = [valid("t1", 5), valid("t2", 5)]
        source = TokenSource(client, "kw_x", refresh_buffer_seconds=30)
        self.assertEqual([source.token(), source.token()], ["t1", "t2"])

    def test_refused_key_and_invalid_arguments(self):
        client = FakeClient()
        client.tokens.answers = [ExchangeResult("EXPIRED", key_id="k")]
        with self.assertRaises(KeywardError) as cm:
            TokenSource(client, "kw_x").token()
        self.assertEqual((cm.exception.code, cm.exception.verify_code), ("unauthenticated", "EXPIRED"))
        with self.assertRaises(ValueError):
            TokenSource(client, "")
        with self.assertRaises(ValueError):
            TokenSource(client, "kw_x", refresh_buffer_seconds=-1)
        with self.assertRaises(ValueError):
            TokenSource(key="kw_x")  # neither a client nor base_url
        with self.assertRaises(ValueError):
            TokenSource(client, "kw_x", base_url="http://localhost:8080")  # both

    def test_without_a_client_the_key_exchanges_itself(self):
        source = TokenSource(key="kw_x", base_url="http://localhost:8080/", permissions=["invoices:read"], workspace_id="ws")
        self.assertEqual(source._own.base_url, "http://localhost:8080")
        self.assertEqual(source._own._sdk_key, "kw_x")  # sent as "Authorization: Bearer kw_x"
        source._own = FakeTransport([own_answer("t1", 60)])
        self.assertEqual(source.token(), "t1")
        self.assertEqual(
            source._own.calls,
            [("TokenService", "ExchangeOwnKey", {"requiredPermissions": ["invoices:read"], "workspaceId": "ws"}, True)],
        )

    def test_own_key_throttled_keeps_an_unexpired_token_refused_drops_it(self):
        source = TokenSource(key="kw_x", base_url="http://localhost:8080", refresh_buffer_seconds=3600)
        throttled = KeywardError("resource_exhausted", "too many token exchanges for this API key (at most 60 a minute)")
        revoked = KeywardError("unauthenticated", "the API key was revoked (REVOKED)")
        source._own = FakeTransport([own_answer("t1", 60), throttled, revoked])
        self.assertEqual(source.token(), "t1")
        self.assertEqual(source.token(), "t1")  # throttled: the cached token is still good
        with self.assertRaises(KeywardError) as cm:
            source.token()
        self.assertEqual((cm.exception.code, cm.exception.verify_code), ("unauthenticated", "REVOKED"))
        self.assertIsNone(source.expire_time)
        source._own = FakeTransport([KeywardError("resource_exhausted", "the API key is over its rate limit (RATE_LIMITED)")])
        with self.assertRaises(KeywardError) as cm:
            source.token()
        self.assertEqual((cm.exception.code, cm.exception.verify_code), ("resource_exhausted", "RATE_LIMITED"))


if __name__ == "__main__":
    unittest.main()
