"""A cached, self-refreshing JWT for an API key (TokenService.ExchangeKey, or
ExchangeOwnKey when there is no SDK key)."""
from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, List, Optional, Protocol, Tuple

from ._time import parse_time
from ._transport import _Transport, __version__
from .errors import KeywardError


@dataclass
class ExchangeResult:
    """ExchangeKey's answer: a JWT when ``code`` is ``VALID``, else why not."""

    code: str
    token: str = field(default="", repr=False)
    expire_time: Optional[datetime] = None
    key_id: str = ""
    signing_key_id: str = ""

    @property
    def valid(self) -> bool:
        return self.code == "VALID" and bool(self.token)


class _Client(Protocol):
    """What a TokenSource needs of a :class:`keyward.Keyward`: its ``tokens`` helper."""

    @property
    def tokens(self) -> Any: ...

__all__ = ["TokenSource"]

# What a refused key means for whoever asked for a token.
_REFUSED = {
    "INSUFFICIENT_PERMISSIONS": "permission_denied",
    "RATE_LIMITED": "resource_exhausted",
    "USAGE_EXCEEDED": "resource_exhausted",
}

# The errors ExchangeOwnKey refuses a key with (the same codes as _REFUSED's);
# the message names the verify code: "the API key was revoked (REVOKED)".
_OWN_REFUSALS = frozenset({"unauthenticated", "permission_denied", "resource_exhausted"})
_VERIFY_CODE_RE = re.compile(r"\(([A-Z_]+)\)")

# Errors after which a token that has not expired yet is still good: Keyward could
# not be reached (or, for ExchangeOwnKey, throttled the exchanges).
_TRANSIENT = frozenset({"unavailable", "deadline_exceeded"})


def _verify_code_of(message: str) -> Optional[str]:
    m = _VERIFY_CODE_RE.search(message or "")
    return m.group(1) if m else None


class TokenSource:
    """Exchanges an API key for a JWT and keeps it fresh.

    ``token()`` returns the cached token until ``refresh_buffer_seconds``
    before its expiry (the answer's ``expireTime``), then exchanges the key
    again. Concurrent callers share one exchange (single flight): only one
    thread asks Keyward while the others wait for its answer. A refused key
    (revoked, expired, ...) raises :class:`KeywardError` with ``verify_code``
    set and drops the cached token. If Keyward cannot be reached when a
    refresh is due, the cached token is returned for as long as it has not
    expired, and the next call tries again.

    With a ``client`` (a :class:`keyward.Keyward`, whose SDK key needs the
    scope ``api_keys:verify``) the key is exchanged with
    ``TokenService.ExchangeKey``. Without one, give ``base_url``: the key then
    exchanges itself with ``TokenService.ExchangeOwnKey``, which needs no SDK
    key (what a customer holding only its API key does). Refusals are the
    same either way: ``unauthenticated``, ``permission_denied`` or
    ``resource_exhausted`` with ``verify_code`` set; an ExchangeOwnKey
    throttled for too many exchanges (``resource_exhausted`` without a
    ``verify_code``) keeps a cached token that has not expired, as an outage does.

    Args:
        client: a :class:`keyward.Keyward`; None to use ExchangeOwnKey.
        key: the API key to exchange.
        refresh_buffer_seconds: how long before expiry a new token is fetched.
        permissions: ``scope:action`` strings; the token then carries only
            these (all must be granted). None: every permission of the key.
        workspace_id: if set, a key of another workspace is refused.
        base_url: where Keyward listens, without a client (ExchangeOwnKey).
        timeout: seconds per attempt, without a client.
        retries: further attempts after an ``unavailable`` error, without a client.
    """

    def __init__(
        self,
        client: Optional[_Client] = None,
        key: str = "",
        refresh_buffer_seconds: float = 30,
        permissions: Optional[Iterable[str]] = None,
        workspace_id: Optional[str] = None,
        *,
        base_url: Optional[str] = None,
        timeout: float = 10,
        retries: int = 2,
    ) -> None:
        if not key:
            raise ValueError("key is required")
        if refresh_buffer_seconds < 0:
            raise ValueError("refresh_buffer_seconds must not be negative")
        if (client is None) == (base_url is None):
            raise ValueError("give either client (ExchangeKey, with its SDK key) or base_url (ExchangeOwnKey, with the key itself)")
        self._client = client
        # Without a client: calls authenticated by the API key itself.
        self._own: Optional[_Transport] = (
            _Transport(base_url, key, timeout, retries, f"keyward-python/{__version__}") if base_url is not None else None
        )
        self._key = key
        self.refresh_buffer_seconds = float(refresh_buffer_seconds)
        self.permissions: Optional[List[str]] = list(permissions) if permissions is not None else None
        self.workspace_id = workspace_id
        self._lock = threading.Lock()
        # (token, expire_time, monotonic deadline for refresh); replaced as a whole, read without the lock.
        self._cached: Optional[Tuple[str, datetime, float]] = None
        #: How many exchanges this source made (for metrics and tests).
        self.exchanges = 0
        self._monotonic: Callable[[], float] = time.monotonic

    def __repr__(self) -> str:
        how = "ExchangeOwnKey" if self._own is not None else "ExchangeKey"
        return f"TokenSource({how}, refresh_buffer_seconds={self.refresh_buffer_seconds}, permissions={self.permissions!r})"

    def token(self) -> str:
        """A valid JWT, from the cache or a new exchange."""
        cached = self._cached
        if cached is not None and self._monotonic() < cached[2]:
            return cached[0]
        with self._lock:
            # Another thread may have refreshed it while this one waited.
            cached = self._cached
            if cached is not None and self._monotonic() < cached[2]:
                return cached[0]
            return self._refresh()

    __call__ = token

    def authorization(self) -> str:
        """``"Bearer <jwt>"``, for an Authorization header."""
        return f"Bearer {self.token()}"

    @property
    def expire_time(self) -> Optional[datetime]:
        """When the cached token expires, or None before the first exchange."""
        cached = self._cached
        return cached[1] if cached else None

    def invalidate(self) -> None:
        """Drops the cached token; the next ``token()`` exchanges the key again."""
        self._cached = None

    def _exchange(self) -> ExchangeResult:
        if self._own is None:
            assert self._client is not None
            return self._client.tokens.exchange(self._key, self.permissions, self.workspace_id)
        body: Dict[str, Any] = {}
        if self.permissions:
            body["requiredPermissions"] = list(self.permissions)
        if self.workspace_id:
            body["workspaceId"] = self.workspace_id
        r = self._own.call("TokenService", "ExchangeOwnKey", body, idempotent=True)
        # ExchangeOwnKey refuses a key with an error, so an answer is a token.
        return ExchangeResult(
            code="VALID",
            token=r.get("token", ""),
            expire_time=parse_time(r.get("expireTime")),
            key_id=r.get("keyId", ""),
            signing_key_id=r.get("signingKeyId", ""),
        )

    def _refresh(self) -> str:
        started = self._monotonic()
        try:
            res = self._exchange()
        except KeywardError as e:
            if self._own is not None and e.code in _OWN_REFUSALS and e.verify_code is None:
                e.verify_code = _verify_code_of(e.message)
            refused = self._own is not None and e.code in _OWN_REFUSALS and e.verify_code is not None
            # Keyward unreachable: a token that has not expired yet is still good; the next call tries again.
            transient = e.code in _TRANSIENT or (self._own is not None and e.code == "resource_exhausted" and not refused)
            cached = self._cached
            if transient and cached is not None and datetime.now(timezone.utc) < cached[1]:
                return cached[0]
            if refused:
                self._cached = None
            raise
        self.exchanges += 1
        if not res.valid or res.expire_time is None:
            self._cached = None
            raise KeywardError(
                _REFUSED.get(res.code, "unauthenticated"),
                f"the API key was refused: {res.code}",
                verify_code=res.code,
            )
        # Seconds the token lives from now, measured on the monotonic clock from the
        # start of the exchange, so a later wall-clock jump does not matter.
        lifetime = (res.expire_time - datetime.now(timezone.utc)).total_seconds()
        refresh_at = started + max(0.0, lifetime - self.refresh_buffer_seconds)
        self._cached = (res.token, res.expire_time, refresh_at)
        return res.token
