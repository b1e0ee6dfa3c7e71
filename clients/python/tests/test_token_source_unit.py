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


if __name__ == "__main__":
    unittest.main()
