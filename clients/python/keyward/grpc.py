"""Keyward over gRPC, with the stubs generated from proto/ (keyward.v1).

Needs ``grpcio`` and ``protobuf``: on Debian ``apt-get install python3-grpcio
python3-protobuf`` (then use ``/usr/bin/python3``), elsewhere
``pip install 'keyward[grpc]'``. The rest of the keyward package does not.

    from keyward.grpc import connect, key_service_pb2

    with connect("127.0.0.1:8080", sdk_key) as kw:
        res = kw.keys.VerifyKey(key_service_pb2.VerifyKeyRequest(
            key=api_key, required_permissions=["balance_transfers:read"]), timeout=5)
        print(res.valid, key_service_pb2.VerifyCode.Name(res.code))

Every call carries ``authorization: Bearer <sdk key>``. Failures raise
``grpc.RpcError`` (``e.code()``, ``e.details()``).
"""
from __future__ import annotations

import collections
from typing import Optional

try:
    import grpc
except ImportError as e:  # pragma: no cover - depends on the interpreter
    raise ImportError(
        "keyward.grpc needs grpcio and protobuf: apt-get install python3-grpcio python3-protobuf "
        "(Debian's /usr/bin/python3), or pip install 'keyward[grpc]'"
    ) from e

from .v1 import (  # noqa: E402 - after the dependency check
    audit_event_pb2,
    audit_service_pb2,
    audit_service_pb2_grpc,
    key_pb2,
    key_service_pb2,
    key_service_pb2_grpc,
    portal_service_pb2,
    portal_service_pb2_grpc,
    scope_pb2,
    scope_service_pb2,
    scope_service_pb2_grpc,
    sdk_key_service_pb2,
    sdk_key_service_pb2_grpc,
    token_service_pb2,
    token_service_pb2_grpc,
    usage_service_pb2,
    usage_service_pb2_grpc,
    webhook_pb2,
    webhook_service_pb2,
    webhook_service_pb2_grpc,
    workspace_pb2,
    workspace_service_pb2,
    workspace_service_pb2_grpc,
)

__all__ = [
    "connect",
    "Stubs",
    "audit_event_pb2",
    "audit_service_pb2",
    "key_pb2",
    "key_service_pb2",
    "portal_service_pb2",
    "scope_pb2",
    "scope_service_pb2",
    "sdk_key_service_pb2",
    "token_service_pb2",
    "usage_service_pb2",
    "webhook_pb2",
    "webhook_service_pb2",
    "workspace_pb2",
    "workspace_service_pb2",
]


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class _BearerAuth(grpc.UnaryUnaryClientInterceptor):
    """Adds ``authorization: Bearer <sdk key>`` to every unary call."""

    def __init__(self, sdk_key: str) -> None:
        self._header = ("authorization", f"Bearer {sdk_key}")

    def intercept_unary_unary(self, continuation, client_call_details, request):
        metadata = [m for m in (client_call_details.metadata or []) if m[0] != "authorization"]
        metadata.append(self._header)
        details = _CallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            getattr(client_call_details, "wait_for_ready", None),
            getattr(client_call_details, "compression", None),
        )
        return continuation(details, request)


class Stubs:
    """One stub per Keyward service on one channel; close it (or use ``with``) when done."""

    def __init__(self, channel: "grpc.Channel") -> None:
        self.channel = channel
        self.workspaces = workspace_service_pb2_grpc.WorkspaceServiceStub(channel)
        self.scopes = scope_service_pb2_grpc.ScopeServiceStub(channel)
        self.keys = key_service_pb2_grpc.KeyServiceStub(channel)
        self.usage = usage_service_pb2_grpc.UsageServiceStub(channel)
        self.audit = audit_service_pb2_grpc.AuditServiceStub(channel)
        self.webhooks = webhook_service_pb2_grpc.WebhookServiceStub(channel)
        self.tokens = token_service_pb2_grpc.TokenServiceStub(channel)
        self.sdk_keys = sdk_key_service_pb2_grpc.SdkKeyServiceStub(channel)
        self.portal = portal_service_pb2_grpc.PortalServiceStub(channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Stubs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(target: str, sdk_key: str, credentials: Optional["grpc.ChannelCredentials"] = None) -> Stubs:
    """Stubs on a channel to ``target`` (``host:port``; cleartext h2c unless
    ``credentials``, e.g. ``grpc.ssl_channel_credentials()``) that send the SDK key with every call."""
    if not sdk_key:
        raise ValueError("sdk_key is required (an SDK key, kws_...)")
    channel = grpc.secure_channel(target, credentials) if credentials is not None else grpc.insecure_channel(target)
    return Stubs(grpc.intercept_channel(channel, _BearerAuth(sdk_key)))
