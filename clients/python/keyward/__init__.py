"""Keyward's Python client: manage and verify API keys over Keyward's Connect
JSON API, with the standard library only.

    from keyward import Keyward
    kw = Keyward("http://localhost:8080", sdk_key="kws_...")
    result = kw.keys.verify(api_key, permissions=["balance_transfers:read"])

gRPC stubs generated from proto/ are in :mod:`keyward.grpc` when grpcio and
protobuf are installed (optional).
"""
from .client import (
    UNSET,
    CreatedKey,
    CreatedSdkKey,
    ExchangeResult,
    Keyward,
    Page,
    VerifyResult,
    __version__,
    format_duration,
    format_time,
    grants_from_strings,
    parse_time,
)
from .errors import KeywardError
from .tokens import TokenSource

__all__ = [
    "Keyward",
    "KeywardError",
    "TokenSource",
    "Page",
    "CreatedKey",
    "CreatedSdkKey",
    "VerifyResult",
    "ExchangeResult",
    "UNSET",
    "grants_from_strings",
    "format_time",
    "parse_time",
    "format_duration",
    "__version__",
]
