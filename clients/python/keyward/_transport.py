"""The Connect JSON transport every call goes through: one POST, retried while the server cannot be reached."""
from __future__ import annotations

import json
import random
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Mapping

from .errors import KeywardError

__version__ = "0.1.0"

# Codes worth another attempt: the server (or its database) could not be reached.
_RETRYABLE = frozenset({"unavailable"})


class _Transport:
    def __init__(self, base_url: str, sdk_key: str, timeout: float, retries: int, user_agent: str) -> None:
        if not base_url:
            raise ValueError("base_url is required, e.g. http://localhost:8080")
        self.base_url = base_url.rstrip("/")
        self._sdk_key = sdk_key
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.user_agent = user_agent
        # Seconds before the n-th retry: backoff_base * 2**(n-1), jittered, at most backoff_max.
        self.backoff_base = 0.2
        self.backoff_max = 2.0
        self.sleep: Callable[[float], None] = time.sleep

    def call(self, service: str, method: str, body: Mapping[str, Any], idempotent: bool) -> Dict[str, Any]:
        url = f"{self.base_url}/keyward.v1.{service}/{method}"
        data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(1, attempts + 1):
            try:
                return self._send(url, data)
            except KeywardError as e:
                if e.code not in _RETRYABLE or attempt == attempts:
                    raise
                delay = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
                self.sleep(delay * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    def _send(self, url: str, data: bytes) -> Dict[str, Any]:
        """One attempt: the answer's JSON, or a KeywardError."""
        req = urllib.request.Request(
            url,
            data=data,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Connect-Protocol-Version": "1",
                "Authorization": f"Bearer {self._sdk_key}",
                "User-Agent": self.user_agent,
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                body = res.read()
        except urllib.error.HTTPError as e:
            try:
                err_body = e.read()
            except Exception:  # noqa: BLE001 - the status alone still says what happened
                err_body = b""
            raise KeywardError.from_http(e.code, err_body, e.headers.get("x-request-id") if e.headers else None) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise KeywardError("deadline_exceeded", f"no answer from {self.base_url} within {self.timeout}s") from None
            raise KeywardError("unavailable", f"cannot reach {self.base_url}: {reason}") from None
        except (socket.timeout, TimeoutError):
            raise KeywardError("deadline_exceeded", f"no answer from {self.base_url} within {self.timeout}s") from None
        except (ConnectionError, OSError) as e:
            # Includes http.client.RemoteDisconnected: the connection dropped before an answer.
            raise KeywardError("unavailable", f"connection to {self.base_url} failed: {e}") from None
        try:
            return json.loads(body.decode("utf-8")) if body else {}
        except (ValueError, UnicodeDecodeError):
            raise KeywardError("internal", "the server's answer is not JSON") from None
