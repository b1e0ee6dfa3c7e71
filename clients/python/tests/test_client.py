"""The client against a real server: management, verify, errors, paging."""
import time
import unittest
from datetime import datetime, timedelta, timezone

from keyward import CreatedKey, Keyward, KeywardError

from _support import URL, ServerTestCase, unique


class ManagementTest(ServerTestCase):
    def test_workspace_and_scope_round_trip(self):
        ws = self.kw.workspaces.create(unique("py-rt"))
        try:
            self.assertEqual(ws["keyPrefix"], "kw")
            self.assertEqual(self.kw.workspaces.get(ws["id"])["name"], ws["name"])
            renamed = self.kw.workspaces.update(ws["id"], name=ws["name"] + "-2", key_prefix="rt")
            self.assertEqual((renamed["name"], renamed["keyPrefix"]), (ws["name"] + "-2", "rt"))
            self.assertIn(ws["id"], [w["id"] for w in self.kw.workspaces.iter()])
            scope = self.kw.scopes.create(ws["id"], "reports", description="monthly")
            self.assertEqual(self.kw.scopes.update(scope["id"], description="weekly")["description"], "weekly")
            self.assertEqual([s["name"] for s in self.kw.scopes.list(ws["id"])], ["reports"])
            self.assertEqual(scope["actions"], ["read", "create", "update", "delete"])
            inference = self.kw.scopes.create(ws["id"], "inference", actions=["read", "write"])
            self.assertEqual(self.kw.scopes.update(inference["id"], actions=["read", "write", "stream"])["actions"], ["read", "write", "stream"])
            own = self.kw.keys.create(workspace_id=ws["id"], grants=["inference:write", "reports"])
            self.assertEqual(own.key["scopes"], ["inference:write", "reports"])
            self.assertEqual(self.kw.keys.verify(own.secret, permissions=["inference:write", "reports:delete"]).code, "VALID")
            self.kw.keys.delete(own.key["id"])
            self.kw.scopes.delete(inference["id"])
            self.kw.scopes.delete(scope["id"])
            self.assertEqual(list(self.kw.scopes.iter(ws["id"])), [])
        finally:
            self.kw.workspaces.delete(ws["id"])
        with self.assertRaises(KeywardError) as cm:
            self.kw.workspaces.get(ws["id"])
        self.assertEqual(cm.exception.code, "not_found")

    def test_key_round_trip(self):
        ws_id = self.workspace["id"]
        created = self.kw.keys.create(
            workspace_id=ws_id,
            customer_id="cus_42",
            name="production",
            grants=["balance_transfers:read", "balance_transfers:create"],
            metadata={"plan": "pro"},
            expires_in_days=90,
        )
        self.assertIsInstance(created, CreatedKey)
        self.assertNotIn(created.secret, repr(created))  # the secret stays out of reprs and logs
        self.assertTrue(created.secret.startswith("pyt_"))
        key = created.key
        self.assertEqual((key["customerId"], key["name"], key["state"]), ("cus_42", "production", "KEY_STATE_ACTIVE"))
        self.assertEqual(key["grants"], [{"scope": "balance_transfers", "actions": ["ACTION_READ", "ACTION_CREATE"]}])
        self.assertTrue(key["maskedKey"].startswith("pyt_****"))
        expires = datetime.fromisoformat(key["expireTime"].replace("Z", "+00:00"))
        self.assertAlmostEqual((expires - datetime.now(timezone.utc)).total_seconds(), 90 * 86400, delta=120)

        self.assertEqual(self.kw.keys.get(key["id"])["metadata"], {"plan": "pro"})
        updated = self.kw.keys.update(key["id"], name="renamed", enabled=False, expire_time=None,
                                      rate_limits=[{"name": "per_minute", "limit": 100, "duration": 60}])
        self.assertEqual((updated["name"], updated.get("enabled"), updated["state"]), ("renamed", False, "KEY_STATE_DISABLED"))
        self.assertNotIn("expireTime", updated)
        self.assertEqual(updated["rateLimits"], [{"name": "per_minute", "limit": "100", "duration": "60s"}])
        self.assertEqual(self.kw.keys.verify(created.secret).code, "DISABLED")
        self.kw.keys.update(key["id"], enabled=True)

        rotated = self.kw.keys.rotate(key["id"], grace_period=timedelta(minutes=5))
        self.assertFalse(rotated.secret == created.secret)
        self.assertTrue(self.kw.keys.verify(rotated.secret).valid)
        self.assertTrue(self.kw.keys.verify(created.secret).valid, "the old secret verifies during the grace period")

        ids = [k["id"] for k in self.kw.keys.iter(ws_id, customer_id="cus_42", state="active")]
        self.assertIn(key["id"], ids)
        self.kw.keys.delete(key["id"])
        self.assertEqual(self.kw.keys.verify(rotated.secret).code, "NOT_FOUND")

        events = list(self.kw.audit.iter(workspace_id=ws_id, resource_id=key["id"]))
        self.assertEqual([e["action"] for e in events][:3], ["key.delete", "key.rotate", "key.update"])

    def test_usage_webhooks_and_sdk_keys(self):
        created = self.kw.keys.create(workspace_id=self.workspace["id"], customer_id="cus_usage")
        self.kw.keys.verify(created.secret)
        since = datetime.now(timezone.utc) - timedelta(hours=2)
        # Counts are written behind (KEYWARD_USAGE_FLUSH_MS); wait for them a little.
        deadline = time.monotonic() + 8
        while True:
            report = self.kw.usage.for_key(created.id, start_time=since)
            if int(report.get("total", "0")) >= 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(int(report.get("total", "0")), 1)
        self.assertEqual(report["totals"], [{"code": "VERIFY_CODE_VALID", "count": "1"}])
        ws_report = self.kw.usage.for_workspace(self.workspace["id"], start_time=since)
        self.assertGreaterEqual(int(ws_report.get("total", "0")), 1)

        hook = self.kw.webhooks.set(self.workspace["id"], "https://example.com/hooks/keyward", expiring_notice_days=3)
        self.assertTrue(hook["signingSecret"].startswith("whsec_"))
        self.assertEqual(self.kw.webhooks.get(self.workspace["id"])["expiringNoticeDays"], 3)
        self.kw.webhooks.delete(self.workspace["id"])

        me = self.kw.sdk_keys.current()
        self.assertIn("*", me["scopes"])
        made = self.kw.sdk_keys.create("py verify only", ["api_keys:verify"], workspace_ids=[self.workspace["id"]])
        self.assertNotIn(made.token, repr(made))
        verifier = Keyward(URL, made.token)
        self.assertTrue(verifier.keys.verify(created.secret).valid)
        with self.assertRaises(KeywardError) as cm:
            verifier.keys.list(self.workspace["id"])
        self.assertEqual(cm.exception.code, "permission_denied")
        self.assertIn(made.sdk_key["id"], [k["id"] for k in self.kw.sdk_keys.iter()])
        self.assertIn("revokeTime", self.kw.sdk_keys.revoke(made.sdk_key["id"]))
        with self.assertRaises(KeywardError) as cm:
            verifier.keys.verify(created.secret)
        self.assertEqual(cm.exception.code, "unauthenticated")


class VerifyTest(ServerTestCase):
    def test_valid_insufficient_permissions_and_revoked(self):
        created = self.kw.keys.create(
            workspace_id=self.workspace["id"], customer_id="cus_7", name="verify me",
            grants=["balance_transfers:read"], metadata={"tier": "gold"},
        )
        ok = self.kw.keys.verify(created.secret, permissions=["balance_transfers:read"])
        self.assertTrue(ok.valid)
        self.assertEqual(ok.code, "VALID")
        self.assertEqual((ok.key_id, ok.customer_id, ok.workspace_id), (created.id, "cus_7", self.workspace["id"]))
        self.assertEqual((ok.permissions, ok.metadata, ok.state), (["balance_transfers:read"], {"tier": "gold"}, "ACTIVE"))

        denied = self.kw.keys.verify(created.secret, permissions=["balance_transfers:create"])
        self.assertFalse(denied.valid)
        self.assertEqual((denied.code, denied.key_id), ("INSUFFICIENT_PERMISSIONS", created.id))

        self.assertEqual(self.kw.keys.revoke(created.id)["state"], "KEY_STATE_REVOKED")
        revoked = self.kw.keys.verify(created.secret, permissions=["balance_transfers:read"])
        self.assertFalse(revoked.valid)
        self.assertEqual(revoked.code, "REVOKED")

        self.assertEqual(self.kw.keys.verify("pyt_not-a-real-key").code, "NOT_FOUND")

    def test_rate_limited_and_usage_exceeded(self):
        limited = self.kw.keys.create(workspace_id=self.workspace["id"], rate_limits=[{"name": "per_hour", "limit": 1, "duration": 3600}])
        self.assertTrue(self.kw.keys.verify(limited.secret).valid)
        r = self.kw.keys.verify(limited.secret)
        self.assertEqual(r.code, "RATE_LIMITED")
        self.assertTrue(r.rate_limits[0]["exceeded"])
        self.assertGreaterEqual(r.retry_after_seconds(), 1)
        counted = self.kw.keys.create(workspace_id=self.workspace["id"], remaining_uses=2)
        self.assertEqual(self.kw.keys.verify(counted.secret, cost=2).remaining_uses, 0)
        self.assertEqual(self.kw.keys.verify(counted.secret).code, "USAGE_EXCEEDED")


class ErrorTest(ServerTestCase):
    def test_invalid_argument_names_the_field(self):
        with self.assertRaises(KeywardError) as cm:
            self.kw.scopes.create(self.workspace["id"], "Not A Scope Name")
        e = cm.exception
        self.assertEqual((e.code, e.field, e.http_status), ("invalid_argument", "scope.name", 400))
        self.assertTrue(e.message.startswith("scope.name: "))
        self.assertTrue(e.request_id)

        with self.assertRaises(KeywardError) as cm:
            self.kw.keys.create(workspace_id=self.workspace["id"], grants=["balance_transfers:read", "no_such_scope:read"])
        self.assertEqual((cm.exception.code, cm.exception.field), ("invalid_argument", "key.grants[1].scope"))

        with self.assertRaises(KeywardError) as cm:
            self.kw.keys.create(workspace_id=self.workspace["id"], name="x" * 121)
        self.assertEqual((cm.exception.code, cm.exception.field), ("invalid_argument", "key.name"))

    def test_other_codes(self):
        with self.assertRaises(KeywardError) as cm:
            self.kw.workspaces.create(self.workspace["name"])
        self.assertEqual(cm.exception.code, "already_exists")
        with self.assertRaises(KeywardError) as cm:
            self.kw.keys.get("00000000-0000-4000-8000-000000000000")
        self.assertEqual(cm.exception.code, "not_found")
        with self.assertRaises(KeywardError) as cm:
            Keyward(URL, "kws_nobody_nothing").keys.verify("pyt_x")
        self.assertEqual(cm.exception.code, "unauthenticated")
        revoked = self.kw.keys.create(workspace_id=self.workspace["id"])
        self.kw.keys.revoke(revoked.id)
        with self.assertRaises(KeywardError) as cm:
            self.kw.keys.rotate(revoked.id)
        self.assertEqual(cm.exception.code, "failed_precondition")


class PagingTest(ServerTestCase):
    def test_iterator_walks_every_page(self):
        ws_id = self.workspace["id"]
        made = [self.kw.keys.create(workspace_id=ws_id, customer_id="cus_paging", name=f"k{i}").id for i in range(7)]
        first = self.kw.keys.list(ws_id, customer_id="cus_paging", page_size=3)
        self.assertEqual(len(first), 3)
        self.assertTrue(first.next_page_token)
        pages = []
        orig = self.kw.keys.list

        def counting_list(*args, **kwargs):
            page = orig(*args, **kwargs)
            pages.append(len(page))
            return page

        self.kw.keys.list = counting_list  # type: ignore[method-assign]
        try:
            walked = [k["id"] for k in self.kw.keys.iter(ws_id, customer_id="cus_paging", page_size=3)]
        finally:
            del self.kw.keys.list
        self.assertEqual(walked, made)  # oldest first, each once
        self.assertEqual(pages, [3, 3, 1])
        self.assertEqual(len(list(self.kw.keys.iter(ws_id, customer_id="cus_paging"))), 7)


if __name__ == "__main__":
    unittest.main()
