"""Request building and answer parsing, without a server."""
import unittest
from datetime import datetime, timedelta, timezone

from keyward import KeywardError, VerifyResult, format_duration, format_time, grants_from_strings, parse_time
from keyward.client import Keys


class ConversionTest(unittest.TestCase):
    def test_grants_from_strings(self):
        self.assertEqual(
            grants_from_strings(["balance_transfers:read", "invoices:delete", "balance_transfers:create", "balance_transfers:read"]),
            [
                {"scope": "balance_transfers", "actions": ["ACTION_READ", "ACTION_CREATE"]},
                {"scope": "invoices", "actions": ["ACTION_DELETE"]},
            ],
        )
        self.assertEqual(grants_from_strings([{"scope": "a", "actions": ["ACTION_READ"]}]), [{"scope": "a", "actions": ["ACTION_READ"]}])
        self.assertEqual(
            grants_from_strings(["inference:read", "inference:write", "admin", "inference:write"]),
            [{"scope": "inference", "actions": ["ACTION_READ"], "customActions": ["write"]}, {"scope": "admin", "allActions": True}],
        )
        for bad in ["a:b:c", ":read", "a:", 7]:
            with self.assertRaises(ValueError):
                grants_from_strings([bad])

    def test_times_and_durations(self):
        self.assertEqual(format_time(datetime(2026, 1, 2, 3, 4, 5)), "2026-01-02T03:04:05Z")
        self.assertEqual(format_time(datetime(2026, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))), "2026-01-02T03:04:05Z")
        self.assertEqual(parse_time("2026-01-02T03:04:05.123456789Z"), datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc))
        self.assertEqual(parse_time("2026-01-02T03:04:05Z"), datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
        self.assertIsNone(parse_time(None))
        self.assertEqual(format_duration(3600), "3600s")
        self.assertEqual(format_duration(timedelta(minutes=1, milliseconds=500)), "60.5s")
        self.assertEqual(format_duration("10s"), "10s")

    def test_key_fields_and_update_mask(self):
        key, paths = Keys._key_fields(name="n", grants=["a:read"], expires_in_days=90, remaining_uses=5,
                                      rate_limits=[{"name": "per_minute", "limit": 100, "duration": 60}],
                                      refill={"amount": 5, "interval": "monthly", "day_of_month": 31})
        self.assertEqual(paths, ["name", "grants", "expire_time", "rate_limits", "remaining_uses", "refill"])
        self.assertEqual(key["remainingUses"], "5")
        self.assertEqual(key["rateLimits"], [{"name": "per_minute", "limit": "100", "duration": "60s"}])
        self.assertEqual(key["refill"], {"amount": "5", "interval": "REFILL_INTERVAL_MONTHLY", "dayOfMonth": 31})
        expires = parse_time(key["expireTime"])
        self.assertAlmostEqual((expires - datetime.now(timezone.utc)).total_seconds(), 90 * 86400, delta=5)
        # None clears: the path is in the mask, the value is absent.
        key, paths = Keys._key_fields(expire_time=None, remaining_uses=None)
        self.assertEqual((key, paths), ({}, ["expire_time", "remaining_uses"]))

    def test_verify_result_from_proto3_json(self):
        # proto3 JSON leaves out defaults: valid=false, empty lists.
        r = VerifyResult.from_json({"code": "VERIFY_CODE_REVOKED", "keyId": "k", "state": "KEY_STATE_REVOKED"})
        self.assertFalse(r.valid)
        self.assertEqual((r.code, r.key_id, r.state, r.permissions, r.remaining_uses), ("REVOKED", "k", "REVOKED", [], None))
        r = VerifyResult.from_json({"valid": True, "code": "VERIFY_CODE_VALID", "remainingUses": "41", "expireTime": "2030-01-01T00:00:00Z"})
        self.assertEqual((r.valid, r.remaining_uses, r.expire_time.year), (True, 41, 2030))

    def test_error_parsing(self):
        e = KeywardError.from_http(400, b'{"code":"invalid_argument","message":"key.grants[0].scope: the workspace has no scope named \\"x\\""}', "req-1")
        self.assertEqual((e.code, e.field, e.request_id, e.http_status), ("invalid_argument", "key.grants[0].scope", "req-1", 400))
        detailed = KeywardError.from_http(
            400,
            b'{"code":"invalid_argument","message":"anything","details":[{"type":"google.rpc.BadRequest","value":"","debug":{"fieldViolations":[{"field":"key.scopes[1]","description":"bad"}]}}]}',
            None,
        )
        self.assertEqual(detailed.field, "key.scopes[1]")
        e = KeywardError.from_http(503, b"<html>bad gateway</html>", None)
        self.assertEqual((e.code, e.field), ("unavailable", None))
        e = KeywardError.from_http(404, b'{"code":"not_found","message":"key \\"abc\\" not found"}', None)
        self.assertEqual((e.code, e.field), ("not_found", None))
        self.assertIn("not_found", str(e))


if __name__ == "__main__":
    unittest.main()
