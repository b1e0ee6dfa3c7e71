"""A cached, self-refreshing JWT for an API key (TokenService.ExchangeKey)."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, List, Optional, Protocol, Tuple

from .errors import KeywardError


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

    The client's SDK key needs the scope ``api_keys:verify``.

    Args:
        client: a :class:`keyward.Keyward`.
        key: the API key to exchange.
        refresh_buffer_seconds: how long before expiry a new token is fetched.
        permissions: ``scope:action`` strings; the token then carries only
            these (all must be granted). None: every permission of the key.
        workspace_id: if set, a key of another workspace is refused.
    """

    def __init__(
        self,
        client: _Client,
        key: str,
        refresh_buffer_seconds: float = 30,
        permissions: Optional[Iterable[str]] = None,
        workspace_id: Optional[str] = None,
    ) -> None:
        if not key:
            raise ValueError("key is required")
        if refresh_buffer_seconds < 0:
            raise ValueError("refresh_buffer_seconds must not be negative")
        self._client = client
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
        return f"TokenSource(refresh_buffer_seconds={self.refresh_buffer_seconds}, permissions={self.permissions!r})"

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

    def _refresh(self) -> str:
        started = self._monotonic()
        try:
            res = self._client.tokens.exchange(self._key, self.permissions, self.workspace_id)
        except KeywardError as e:
            # Keyward unreachable: a token that has not expired yet is still good; the next call tries again.
            cached = self._cached
            if e.code in ("unavailable", "deadline_exceeded") and cached is not None and datetime.now(timezone.utc) < cached[1]:
                return cached[0]
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
