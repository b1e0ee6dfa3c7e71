"""Shared set-up of the tests that talk to a real Keyward server.

They read KEYWARD_URL and KEYWARD_SDK_KEY (an SDK key with every scope, `*`)
from the environment and are skipped without them. Nothing here prints a
secret: API keys, SDK keys and tokens are compared, never shown.
"""
import os
import unittest
import uuid

from keyward import Keyward

URL = os.environ.get("KEYWARD_URL", "")
SDK_KEY = os.environ.get("KEYWARD_SDK_KEY", "")

needs_server = unittest.skipUnless(URL and SDK_KEY, "set KEYWARD_URL and KEYWARD_SDK_KEY to run against a server")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ServerTestCase(unittest.TestCase):
    """A workspace with the scopes `balance_transfers` and `invoices`, deleted afterwards."""

    kw: Keyward
    workspace: dict

    @classmethod
    def setUpClass(cls):
        if not (URL and SDK_KEY):
            raise unittest.SkipTest("set KEYWARD_URL and KEYWARD_SDK_KEY to run against a server")
        cls.kw = Keyward(URL, SDK_KEY)
        cls.workspace = cls.kw.workspaces.create(unique("py-test"), key_prefix="pyt")
        cls.kw.scopes.create(cls.workspace["id"], "balance_transfers", description="money moving")
        cls.kw.scopes.create(cls.workspace["id"], "invoices")

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "workspace", None):
            cls.kw.workspaces.delete(cls.workspace["id"])
