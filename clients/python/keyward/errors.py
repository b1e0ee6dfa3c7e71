"""The one exception the Keyward client raises."""
from __future__ import annotations

import re
from typing import Optional

__all__ = ["KeywardError"]

# `key.name: must be at most 120 characters` -> field `key.name`
_FIELD_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\d+\])?)*): ")

# Connect's mapping of HTTP statuses to codes, for answers without a Connect error body.
_HTTP_TO_CODE = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "unimplemented",
    408: "deadline_exceeded",
    429: "unavailable",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}


def field_of(message: str) -> Optional[str]:
    """The request field an `invalid_argument` message starts with, if any."""
    m = _FIELD_RE.match(message or "")
    return m.group(1) if m else None


class KeywardError(Exception):
    """An RPC that failed.

    Attributes:
        code: the Connect code in lower snake case, e.g. ``invalid_argument``,
            ``not_found``, ``permission_denied``, ``unauthenticated``,
            ``already_exists``, ``failed_precondition``, ``unavailable``,
            ``deadline_exceeded``, ``resource_exhausted``, ``internal``.
        message: the server's message (never a secret).
        field: the request field it is about, e.g. ``key.grants[0].scope``,
            from the error's ``google.rpc.BadRequest`` detail (or, from
            servers that send none, the start of the message), or None.
        request_id: the ``x-request-id`` of the failed call, or None (for
            example when the server could not be reached).
        http_status: the HTTP status, or None when there was no answer.
        verify_code: for a TokenSource whose key was refused, the VerifyCode
            (``REVOKED``, ``NOT_FOUND``, ...), else None.
    """

    def __init__(
        self,
        code: str,
        message: str,
        field: Optional[str] = None,
        request_id: Optional[str] = None,
        http_status: Optional[int] = None,
        verify_code: Optional[str] = None,
    ) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.field = field if field is not None else field_of(message)
        self.request_id = request_id
        self.http_status = http_status
        self.verify_code = verify_code

    def __repr__(self) -> str:
        return (
            f"KeywardError(code={self.code!r}, message={self.message!r}, "
            f"field={self.field!r}, request_id={self.request_id!r})"
        )

    @classmethod
    def from_http(cls, status: int, body: bytes, request_id: Optional[str]) -> "KeywardError":
        """Builds the error from a Connect error answer (JSON body), or from the status alone."""
        import json

        code = _HTTP_TO_CODE.get(status, "unknown")
        message = f"HTTP {status}"
        try:
            data = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            data = None
        field = None
        if isinstance(data, dict):
            if isinstance(data.get("code"), str) and data["code"]:
                code = data["code"]
            if isinstance(data.get("message"), str):
                message = data["message"]
            field = _bad_request_field(data.get("details"))
        return cls(code, message, field=field, request_id=request_id, http_status=status)


def _bad_request_field(details: object) -> Optional[str]:
    """The first field violation of a ``google.rpc.BadRequest`` detail, as Connect's JSON carries it (``debug``)."""
    if not isinstance(details, list):
        return None
    for d in details:
        if isinstance(d, dict) and d.get("type") == "google.rpc.BadRequest" and isinstance(d.get("debug"), dict):
            violations = d["debug"].get("fieldViolations")
            if isinstance(violations, list) and violations and isinstance(violations[0], dict):
                field = violations[0].get("field")
                if isinstance(field, str) and field:
                    return field
    return None
