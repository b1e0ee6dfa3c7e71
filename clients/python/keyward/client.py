"""Keyward's Connect JSON API from plain Python (standard library only).

Every call is ``POST {base_url}/keyward.v1.<Service>/<Method>`` with the
proto3 JSON of the request, ``Connect-Protocol-Version: 1`` and the SDK key as
``Authorization: Bearer``. Resources come back as dicts in proto3 JSON
(lowerCamelCase keys, int64 as strings, enums by name, times in RFC 3339);
a few results are small dataclasses (:class:`CreatedKey`,
:class:`VerifyResult`, :class:`ExchangeResult`, :class:`Page`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Generic, Iterable, Iterator, List, Mapping, Optional, TypeVar, Union

from ._time import DurationLike, TimeLike, format_duration, format_time, parse_time
from ._transport import _Transport, __version__
from .errors import KeywardError
from .tokens import ExchangeResult, TokenSource

__all__ = [
    "Keyward",
    "Page",
    "CreatedKey",
    "CreatedSdkKey",
    "VerifyResult",
    "ExchangeResult",
    "grants_from_strings",
    "format_time",
    "parse_time",
    "format_duration",
]

T = TypeVar("T")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: Default of optional update arguments: the field is left alone (None clears it where that means something).
UNSET: Any = _Unset()

_ACTIONS = {"read": "ACTION_READ", "create": "ACTION_CREATE", "update": "ACTION_UPDATE", "delete": "ACTION_DELETE"}


# ---------------------------------------------------------------- conversions


def grants_from_strings(grants: Iterable[Union[str, Mapping[str, Any]]]) -> List[Dict[str, Any]]:
    """Permission strings as Grant messages: ``["inference:read", "inference:write", "admin"]`` as
    ``[{"scope": "inference", "actions": ["ACTION_READ"], "customActions": ["write"]},
    {"scope": "admin", "allActions": True}]``.

    ``scope:action`` grants one action (the standard four as enum values, any
    other action the scope declares by name); a bare ``scope`` grants the
    whole scope. Actions of one scope are merged into one grant, in first-seen
    order. Dicts (``{"scope": ..., "actions": [...]}``) are passed through.
    """
    out: List[Dict[str, Any]] = []
    by_scope: Dict[str, Dict[str, Any]] = {}
    for g in grants:
        if isinstance(g, Mapping):
            out.append(dict(g))
            continue
        if not isinstance(g, str) or g.count(":") > 1 or g.startswith(":") or g.endswith(":"):
            raise ValueError(f"a grant is 'scope:action' or a scope name, e.g. 'balance_transfers:read' or 'admin', not {g!r}")
        scope, _, action = g.partition(":")
        grant = by_scope.get(scope)
        if grant is None:
            grant = by_scope[scope] = {"scope": scope}
            out.append(grant)
        if action == "":
            grant["allActions"] = True
            continue
        standard = _ACTIONS.get(action, action if action.startswith("ACTION_") else None)
        field, name = ("actions", standard) if standard else ("customActions", action)
        names = grant.setdefault(field, [])
        if name not in names:
            names.append(name)
    return out


def _enum(value: Optional[str], prefix: str) -> Optional[str]:
    """``"active"`` / ``"ACTIVE"`` / ``"KEY_STATE_ACTIVE"`` -> ``"KEY_STATE_ACTIVE"``."""
    if value is None:
        return None
    v = value.upper()
    return v if v.startswith(prefix) else prefix + v


def _strip(value: Optional[str], prefix: str) -> Optional[str]:
    if value and value.startswith(prefix):
        return value[len(prefix):]
    return value


def _int64(v: Any) -> Optional[int]:
    return None if v is None else int(v)


def _rate_limits(limits: Iterable[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    out = []
    for rl in limits:
        out.append({"name": rl["name"], "limit": str(int(rl["limit"])), "duration": format_duration(rl["duration"])})
    return out


def _refill(r: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if r is None:
        return None
    out: Dict[str, Any] = {"amount": str(int(r["amount"])), "interval": _enum(r["interval"], "REFILL_INTERVAL_")}
    dom = r.get("day_of_month", r.get("dayOfMonth"))
    if dom:
        out["dayOfMonth"] = int(dom)
    return out


def _mask(paths: Iterable[str]) -> str:
    """A FieldMask in proto3 JSON: ``["key_prefix", "name"]`` -> ``"keyPrefix,name"``."""
    return ",".join(re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), p) for p in paths)


def _compact(d: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v is not UNSET}


# ---------------------------------------------------------------- results


@dataclass
class Page(Generic[T]):
    """One page of a list call; iterate over it for its items."""

    items: List[T]
    next_page_token: str = ""

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class CreatedKey:
    """CreateKey's or RotateKey's answer: the key (proto3 JSON dict) and its secret, shown only now."""

    key: Dict[str, Any]
    secret: str = field(repr=False)

    @property
    def id(self) -> str:
        return self.key["id"]


@dataclass
class CreatedSdkKey:
    """CreateSdkKey's answer: the SDK key (dict) and its token, shown only now."""

    sdk_key: Dict[str, Any]
    token: str = field(repr=False)


@dataclass
class VerifyResult:
    """VerifyKey's answer. ``code`` is the VerifyCode without its prefix:
    ``VALID``, ``NOT_FOUND``, ``DISABLED``, ``EXPIRED``, ``REVOKED``,
    ``INSUFFICIENT_PERMISSIONS``, ``RATE_LIMITED``, ``USAGE_EXCEEDED``."""

    valid: bool
    code: str
    key_id: str = ""
    workspace_id: str = ""
    customer_id: str = ""
    name: str = ""
    permissions: List[str] = field(default_factory=list)
    metadata: Dict[str, str] = field(default_factory=dict)
    expire_time: Optional[datetime] = None
    state: Optional[str] = None
    rate_limits: List[Dict[str, Any]] = field(default_factory=list)
    remaining_uses: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "VerifyResult":
        rate_limits = []
        for rl in d.get("rateLimits", []):
            rate_limits.append(
                {
                    "name": rl.get("name", ""),
                    "limit": int(rl.get("limit", 0)),
                    "remaining": int(rl.get("remaining", 0)),
                    "reset_time": parse_time(rl.get("resetTime")),
                    "exceeded": bool(rl.get("exceeded", False)),
                }
            )
        return cls(
            valid=bool(d.get("valid", False)),
            code=_strip(d.get("code"), "VERIFY_CODE_") or "UNSPECIFIED",
            key_id=d.get("keyId", ""),
            workspace_id=d.get("workspaceId", ""),
            customer_id=d.get("customerId", ""),
            name=d.get("name", ""),
            permissions=list(d.get("permissions", [])),
            metadata=dict(d.get("metadata", {})),
            expire_time=parse_time(d.get("expireTime")),
            state=_strip(d.get("state"), "KEY_STATE_"),
            rate_limits=rate_limits,
            remaining_uses=_int64(d.get("remainingUses")),
            raw=dict(d),
        )

    def retry_after_seconds(self) -> Optional[int]:
        """For RATE_LIMITED: whole seconds until the exceeded limit's window resets."""
        now = datetime.now(timezone.utc)
        waits = [rl["reset_time"] for rl in self.rate_limits if rl["exceeded"] and rl["reset_time"]]
        if not waits:
            return None
        return max(1, int((min(waits) - now).total_seconds() + 0.999))


# ---------------------------------------------------------------- transport

# ---------------------------------------------------------------- helpers


class _Service:
    _service = ""

    def __init__(self, client: "Keyward") -> None:
        self._client = client

    def _call(self, method: str, body: Mapping[str, Any], idempotent: bool = False) -> Dict[str, Any]:
        return self._client._transport.call(self._service, method, body, idempotent)

    def _paged(self, fetch: Callable[[str], Page[T]]) -> Iterator[T]:
        token = ""
        while True:
            page = fetch(token)
            yield from page.items
            token = page.next_page_token
            if not token:
                return


class Workspaces(_Service):
    """WorkspaceService. Workspaces are dicts: ``id``, ``name``, ``keyPrefix``, ``createTime``, ``updateTime``."""

    _service = "WorkspaceService"

    def create(self, name: str, key_prefix: Optional[str] = None) -> Dict[str, Any]:
        return self._call("CreateWorkspace", {"workspace": _compact({"name": name, "keyPrefix": key_prefix})})["workspace"]

    def get(self, id: str) -> Dict[str, Any]:
        return self._call("GetWorkspace", {"id": id}, idempotent=True)["workspace"]

    def list(self, page_size: int = 0, page_token: str = "") -> Page[Dict[str, Any]]:
        r = self._call("ListWorkspaces", _compact({"pageSize": page_size or None, "pageToken": page_token or None}), True)
        return Page(r.get("workspaces", []), r.get("nextPageToken", ""))

    def iter(self, page_size: int = 0) -> Iterator[Dict[str, Any]]:
        """Every workspace the SDK key may see, fetching pages as needed."""
        return self._paged(lambda token: self.list(page_size, token))

    def update(self, id: str, name: Any = UNSET, key_prefix: Any = UNSET) -> Dict[str, Any]:
        ws: Dict[str, Any] = {"id": id}
        paths = []
        if name is not UNSET:
            ws["name"] = name
            paths.append("name")
        if key_prefix is not UNSET:
            ws["keyPrefix"] = key_prefix
            paths.append("key_prefix")
        return self._call("UpdateWorkspace", {"workspace": _compact(ws), "updateMask": _mask(paths)})["workspace"]

    def delete(self, id: str) -> None:
        self._call("DeleteWorkspace", {"id": id})


class Scopes(_Service):
    """ScopeService. Scopes are dicts: ``id``, ``workspaceId``, ``name``, ``description``, ``actions``, times."""

    _service = "ScopeService"

    def create(self, workspace_id: str, name: str, description: Optional[str] = None, actions: Optional[Iterable[str]] = None) -> Dict[str, Any]:
        """``actions``: what keys may be granted on the scope; None means read, create, update, delete."""
        scope = _compact({"workspaceId": workspace_id, "name": name, "description": description, "actions": list(actions) if actions else None})
        return self._call("CreateScope", {"scope": scope})["scope"]

    def get(self, id: str) -> Dict[str, Any]:
        return self._call("GetScope", {"id": id}, idempotent=True)["scope"]

    def list(self, workspace_id: str, page_size: int = 0, page_token: str = "") -> Page[Dict[str, Any]]:
        body = _compact({"workspaceId": workspace_id, "pageSize": page_size or None, "pageToken": page_token or None})
        r = self._call("ListScopes", body, True)
        return Page(r.get("scopes", []), r.get("nextPageToken", ""))

    def iter(self, workspace_id: str, page_size: int = 0) -> Iterator[Dict[str, Any]]:
        return self._paged(lambda token: self.list(workspace_id, page_size, token))

    def update(self, id: str, name: Any = UNSET, description: Any = UNSET, actions: Any = UNSET) -> Dict[str, Any]:
        scope: Dict[str, Any] = {"id": id}
        paths = []
        if name is not UNSET:
            scope["name"] = name
            paths.append("name")
        if description is not UNSET:
            scope["description"] = description or ""
            paths.append("description")
        if actions is not UNSET:
            scope["actions"] = list(actions)
            paths.append("actions")
        return self._call("UpdateScope", {"scope": _compact(scope), "updateMask": _mask(paths)})["scope"]

    def delete(self, id: str) -> None:
        self._call("DeleteScope", {"id": id})


class Keys(_Service):
    """KeyService. Keys are dicts in proto3 JSON: ``id``, ``workspaceId``,
    ``customerId``, ``name``, ``grants``, ``enabled``, ``state``
    (``KEY_STATE_ACTIVE``...), ``maskedKey``, ``start``, ``metadata``,
    ``expireTime``, ``lastUsedTime``, ``rateLimits``, ``remainingUses``, ..."""

    _service = "KeyService"

    @staticmethod
    def _key_fields(
        customer_id: Any = UNSET,
        name: Any = UNSET,
        description: Any = UNSET,
        grants: Any = UNSET,
        enabled: Any = UNSET,
        metadata: Any = UNSET,
        expire_time: Any = UNSET,
        expires_in_days: Any = UNSET,
        rate_limits: Any = UNSET,
        remaining_uses: Any = UNSET,
        refill: Any = UNSET,
    ) -> "tuple[Dict[str, Any], List[str]]":
        key: Dict[str, Any] = {}
        paths: List[str] = []

        def put(json_name: str, path: str, value: Any) -> None:
            paths.append(path)
            if value is not None:
                key[json_name] = value

        if customer_id is not UNSET:
            put("customerId", "customer_id", customer_id)
        if name is not UNSET:
            put("name", "name", name)
        if description is not UNSET:
            put("description", "description", description)
        if grants is not UNSET:
            put("grants", "grants", grants_from_strings(grants or []))
        if enabled is not UNSET:
            put("enabled", "enabled", enabled)
        if metadata is not UNSET:
            put("metadata", "metadata", dict(metadata) if metadata is not None else None)
        if expire_time is not UNSET and expires_in_days is not UNSET:
            raise ValueError("give expire_time or expires_in_days, not both")
        if expires_in_days is not UNSET:
            at = None if expires_in_days is None else datetime.now(timezone.utc) + timedelta(days=expires_in_days)
            put("expireTime", "expire_time", None if at is None else format_time(at.replace(microsecond=0)))
        if expire_time is not UNSET:
            put("expireTime", "expire_time", None if expire_time is None else format_time(expire_time))
        if rate_limits is not UNSET:
            put("rateLimits", "rate_limits", _rate_limits(rate_limits or []))
        if remaining_uses is not UNSET:
            put("remainingUses", "remaining_uses", None if remaining_uses is None else str(int(remaining_uses)))
        if refill is not UNSET:
            put("refill", "refill", _refill(refill))
        return key, paths

    def create(
        self,
        workspace_id: str,
        customer_id: Optional[str] = None,
        name: Optional[str] = None,
        description: Optional[str] = None,
        grants: Optional[Iterable[Union[str, Mapping[str, Any]]]] = None,
        enabled: Optional[bool] = None,
        metadata: Optional[Mapping[str, str]] = None,
        expire_time: Optional[TimeLike] = None,
        expires_in_days: Optional[float] = None,
        rate_limits: Optional[Iterable[Mapping[str, Any]]] = None,
        remaining_uses: Optional[int] = None,
        refill: Optional[Mapping[str, Any]] = None,
    ) -> CreatedKey:
        """Issues a key. ``grants`` are ``scope:action`` strings; ``rate_limits``
        are ``{"name", "limit", "duration"}`` (duration in seconds, a timedelta
        or ``"60s"``); ``refill`` is ``{"amount", "interval": "daily"|"monthly",
        "day_of_month"}``. The secret is in the result and never again."""
        given = {
            k: v
            for k, v in dict(
                customer_id=customer_id,
                name=name,
                description=description,
                grants=grants,
                enabled=enabled,
                metadata=metadata,
                expire_time=expire_time,
                expires_in_days=expires_in_days,
                rate_limits=rate_limits,
                remaining_uses=remaining_uses,
                refill=refill,
            ).items()
            if v is not None
        }
        key, _ = self._key_fields(**given)
        key["workspaceId"] = workspace_id
        r = self._call("CreateKey", {"key": key})
        return CreatedKey(r["key"], r.get("secret", ""))

    def get(self, id: str) -> Dict[str, Any]:
        return self._call("GetKey", {"id": id}, idempotent=True)["key"]

    def list(
        self,
        workspace_id: str,
        customer_id: Optional[str] = None,
        state: Optional[str] = None,
        expire_before: Optional[TimeLike] = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Dict[str, Any]]:
        """One page of a workspace's keys, oldest first. ``state`` is ``active``,
        ``disabled``, ``expired`` or ``revoked``."""
        body = _compact(
            {
                "workspaceId": workspace_id,
                "customerId": customer_id or None,
                "state": _enum(state, "KEY_STATE_"),
                "expireBefore": format_time(expire_before) if expire_before is not None else None,
                "pageSize": page_size or None,
                "pageToken": page_token or None,
            }
        )
        r = self._call("ListKeys", body, True)
        return Page(r.get("keys", []), r.get("nextPageToken", ""))

    def iter(
        self,
        workspace_id: str,
        customer_id: Optional[str] = None,
        state: Optional[str] = None,
        expire_before: Optional[TimeLike] = None,
        page_size: int = 0,
    ) -> Iterator[Dict[str, Any]]:
        """Every key matching the filters, fetching pages as needed."""
        return self._paged(lambda token: self.list(workspace_id, customer_id, state, expire_before, page_size, token))

    def update(self, id: str, **fields: Any) -> Dict[str, Any]:
        """Updates the fields given, and only those: ``customer_id``, ``name``,
        ``description``, ``grants``, ``enabled``, ``metadata``, ``expire_time``
        or ``expires_in_days`` (None clears the expiry), ``rate_limits``,
        ``remaining_uses`` (None: unlimited), ``refill`` (None: none)."""
        key, paths = self._key_fields(**fields)
        if not paths:
            raise ValueError("give at least one field to update")
        key["id"] = id
        return self._call("UpdateKey", {"key": key, "updateMask": _mask(paths)})["key"]

    def rotate(self, id: str, grace_period: Optional[DurationLike] = None) -> CreatedKey:
        """A new secret for the key; the old one keeps verifying for ``grace_period`` (seconds or a timedelta)."""
        body: Dict[str, Any] = {"id": id}
        if grace_period is not None:
            body["gracePeriod"] = format_duration(grace_period)
        r = self._call("RotateKey", body)
        return CreatedKey(r["key"], r.get("secret", ""))

    def revoke(self, id: str) -> Dict[str, Any]:
        return self._call("RevokeKey", {"id": id})["key"]

    def delete(self, id: str) -> None:
        self._call("DeleteKey", {"id": id})

    def verify(
        self,
        key: str,
        permissions: Optional[Iterable[str]] = None,
        workspace_id: Optional[str] = None,
        cost: Optional[int] = None,
    ) -> VerifyResult:
        """Checks an API key presented to your API. A key that fails is an
        answer (``valid`` False and a ``code``), not an exception; a
        KeywardError means the check itself could not be made."""
        body = _compact(
            {
                "key": key,
                "requiredPermissions": list(permissions) if permissions else None,
                "workspaceId": workspace_id or None,
                "cost": None if cost is None else str(int(cost)),
            }
        )
        return VerifyResult.from_json(self._call("VerifyKey", body, idempotent=True))


class Usage(_Service):
    """UsageService: verifications per hour and outcome. Answers are dicts
    with ``buckets`` (``startTime``, ``counts``, ``total``), ``totals`` and
    ``total`` (int64 counts as strings, as proto3 JSON sends them)."""

    _service = "UsageService"

    def for_key(self, key_id: str, start_time: TimeLike, end_time: Optional[TimeLike] = None) -> Dict[str, Any]:
        body = _compact(
            {"keyId": key_id, "startTime": format_time(start_time), "endTime": format_time(end_time) if end_time else None}
        )
        return self._call("GetKeyUsage", body, True)

    def for_workspace(self, workspace_id: str, start_time: TimeLike, end_time: Optional[TimeLike] = None) -> Dict[str, Any]:
        body = _compact(
            {
                "workspaceId": workspace_id,
                "startTime": format_time(start_time),
                "endTime": format_time(end_time) if end_time else None,
            }
        )
        return self._call("GetWorkspaceUsage", body, True)


class Audit(_Service):
    """AuditService: the audit trail, newest first."""

    _service = "AuditService"

    def list(
        self,
        workspace_id: Optional[str] = None,
        resource_type: Optional[str] = None,
        resource_id: Optional[str] = None,
        actor: Optional[str] = None,
        action: Optional[str] = None,
        start_time: Optional[TimeLike] = None,
        end_time: Optional[TimeLike] = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> Page[Dict[str, Any]]:
        body = _compact(
            {
                "workspaceId": workspace_id,
                "resourceType": resource_type,
                "resourceId": resource_id,
                "actor": actor,
                "action": action,
                "startTime": format_time(start_time) if start_time else None,
                "endTime": format_time(end_time) if end_time else None,
                "pageSize": page_size or None,
                "pageToken": page_token or None,
            }
        )
        r = self._call("ListAuditEvents", body, True)
        return Page(r.get("events", []), r.get("nextPageToken", ""))

    def iter(self, page_size: int = 0, **filters: Any) -> Iterator[Dict[str, Any]]:
        """Every event matching the filters (those of :meth:`list`)."""
        return self._paged(lambda token: self.list(page_size=page_size, page_token=token, **filters))


class Webhooks(_Service):
    """WebhookService: one webhook per workspace."""

    _service = "WebhookService"

    def set(
        self, workspace_id: str, url: str, expiring_notice_days: Optional[int] = None, rotate_secret: bool = False
    ) -> Dict[str, Any]:
        """Returns ``{"webhook": {...}, "signingSecret": "whsec_..."}``; the secret only on the first set or a rotation."""
        hook = _compact({"workspaceId": workspace_id, "url": url, "expiringNoticeDays": expiring_notice_days})
        body: Dict[str, Any] = {"webhook": hook}
        if rotate_secret:
            body["rotateSecret"] = True
        return self._call("SetWebhook", body)

    def get(self, workspace_id: str) -> Dict[str, Any]:
        return self._call("GetWebhook", {"workspaceId": workspace_id}, True)["webhook"]

    def delete(self, workspace_id: str) -> None:
        self._call("DeleteWebhook", {"workspaceId": workspace_id})


class Tokens(_Service):
    """TokenService: an API key for a short-lived JWT (checked offline against ``/.well-known/jwks.json``)."""

    _service = "TokenService"

    def exchange(
        self, key: str, permissions: Optional[Iterable[str]] = None, workspace_id: Optional[str] = None
    ) -> ExchangeResult:
        """A key that does not pass is an answer: ``code`` says why and ``token`` is empty."""
        body = _compact(
            {"key": key, "requiredPermissions": list(permissions) if permissions else None, "workspaceId": workspace_id}
        )
        r = self._call("ExchangeKey", body, idempotent=True)
        return ExchangeResult(
            code=_strip(r.get("code"), "VERIFY_CODE_") or "UNSPECIFIED",
            token=r.get("token", ""),
            expire_time=parse_time(r.get("expireTime")),
            key_id=r.get("keyId", ""),
            signing_key_id=r.get("signingKeyId", ""),
        )

    def source(
        self,
        key: str,
        refresh_buffer_seconds: float = 30,
        permissions: Optional[Iterable[str]] = None,
        workspace_id: Optional[str] = None,
    ) -> "TokenSource":
        """A :class:`~keyward.tokens.TokenSource` for ``key`` on this client."""
        return TokenSource(self._client, key, refresh_buffer_seconds, permissions, workspace_id)


class SdkKeys(_Service):
    """SdkKeyService: management credentials (``kws_...``)."""

    _service = "SdkKeyService"

    def current(self) -> Dict[str, Any]:
        """The calling SDK key itself: ``id``, ``name``, ``scopes``, ``workspaceIds``."""
        return self._call("GetCurrentSdkKey", {}, True)["sdkKey"]

    def create(self, name: str, scopes: Iterable[str], workspace_ids: Optional[Iterable[str]] = None) -> CreatedSdkKey:
        sdk_key = _compact({"name": name, "scopes": list(scopes), "workspaceIds": list(workspace_ids) if workspace_ids else None})
        r = self._call("CreateSdkKey", {"sdkKey": sdk_key})
        return CreatedSdkKey(r["sdkKey"], r.get("token", ""))

    def list(self, page_size: int = 0, page_token: str = "") -> Page[Dict[str, Any]]:
        r = self._call("ListSdkKeys", _compact({"pageSize": page_size or None, "pageToken": page_token or None}), True)
        return Page(r.get("sdkKeys", []), r.get("nextPageToken", ""))

    def iter(self, page_size: int = 0) -> Iterator[Dict[str, Any]]:
        return self._paged(lambda token: self.list(page_size, token))

    def revoke(self, id: str) -> Dict[str, Any]:
        return self._call("RevokeSdkKey", {"id": id})["sdkKey"]


class Keyward:
    """A Keyward client over the Connect protocol with JSON (standard library only).

    Args:
        base_url: where Keyward listens, e.g. ``http://localhost:8080``.
        sdk_key: an SDK key (``kws_...``) with the scopes the calls need.
        timeout: seconds per attempt.
        retries: further attempts, with exponential backoff, after an
            ``unavailable`` error; only for calls that are safe to repeat
            (reads, verify, token exchange), never for creates and changes.

    It is safe to share one client between threads.
    """

    def __init__(self, base_url: str, sdk_key: str, timeout: float = 10, retries: int = 2) -> None:
        if not sdk_key:
            raise ValueError("sdk_key is required (an SDK key, kws_...)")
        self._transport = _Transport(base_url, sdk_key, timeout, retries, f"keyward-python/{__version__}")
        self.workspaces = Workspaces(self)
        self.scopes = Scopes(self)
        self.keys = Keys(self)
        self.usage = Usage(self)
        self.audit = Audit(self)
        self.webhooks = Webhooks(self)
        self.tokens = Tokens(self)
        self.sdk_keys = SdkKeys(self)

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def __repr__(self) -> str:
        return f"Keyward(base_url={self.base_url!r})"

    def call(self, service: str, method: str, body: Mapping[str, Any], idempotent: bool = False) -> Dict[str, Any]:
        """Any RPC by name with a proto3 JSON body, e.g. ``call("KeyService", "GetKey", {"id": ...}, idempotent=True)``."""
        return self._transport.call(service, method, body, idempotent)
