"""Times and durations as proto3 JSON writes them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional, Union

TimeLike = Union[datetime, str]
DurationLike = Union[timedelta, int, float, str]


def format_time(t: TimeLike) -> str:
    """A datetime (naive means UTC) or an RFC 3339 string, as an RFC 3339 string in UTC."""
    if isinstance(t, str):
        return t
    if not isinstance(t, datetime):
        raise TypeError(f"expected a datetime or an RFC 3339 string, got {type(t).__name__}")
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    t = t.astimezone(timezone.utc)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: Optional[str]) -> Optional[datetime]:
    """An RFC 3339 string from the server as an aware datetime (UTC), or None."""
    if not s:
        return None
    s = s.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    # Python < 3.11 takes at most 6 fractional digits; proto3 JSON may send 9.
    if "." in s:
        head, rest = s.split(".", 1)
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, tz = rest[:i], rest[i:]
        s = head + ("." + (frac + "000000")[:6] if frac else "") + tz
    return datetime.fromisoformat(s).astimezone(timezone.utc)


def format_duration(d: DurationLike) -> str:
    """Seconds (int or float), a timedelta, or a ready string like ``"3600s"``, as a proto3 JSON Duration."""
    if isinstance(d, str):
        return d
    if isinstance(d, timedelta):
        d = d.total_seconds()
    if isinstance(d, bool) or not isinstance(d, (int, float)):
        raise TypeError(f"expected seconds, a timedelta or a string like '60s', got {type(d).__name__}")
    if float(d).is_integer():
        return f"{int(d)}s"
    return f"{d:.9f}".rstrip("0").rstrip(".") + "s"
