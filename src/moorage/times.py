"""Times as people and programs read them: RFC 3339 (UTC, `Z`) in the API and JSON output,
a short human form in tables. Stored times are Unix seconds (floats)."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?")
_RFC3339_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def rfc3339(ts: float | None) -> str | None:
    """`2026-12-01T09:38:36.123456Z` for Unix seconds (None stays None).

    Truncated, never rounded, to the microsecond: the string read back as a filter bound
    (`since=`) is never later than the event it came from.
    """
    if ts is None:
        return None
    micros = math.floor(ts * 1_000_000)
    if micros / 1_000_000 > ts:  # the product rounded up
        micros -= 1
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(raw: str) -> float:
    """Unix seconds from RFC 3339 (`Z` or an offset) or from a plain number of seconds.

    ASCII only: `float()` and `fromisoformat()` alone would take "１７", " 7", "1_0" or "nan".
    """
    if _SECONDS_RE.fullmatch(raw):
        return float(raw)
    if not raw.isascii() or not _RFC3339_RE.fullmatch(raw):
        raise ValueError(f"not an RFC 3339 time or a number of seconds: {raw[:64]!r}")
    text = raw
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 time or a number of seconds: {raw!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"an RFC 3339 time needs a zone (Z or +HH:MM): {raw!r}")
    delta = parsed - _EPOCH
    return (delta.days * 86400 + delta.seconds) + delta.microseconds / 1_000_000


def human(ts: float | None, never: str = "never") -> str:
    """`2026-12-01 09:38:36 UTC` for tables; `never` for None."""
    if ts is None:
        return never
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


TIME_KEYS = frozenset({"time"})


def with_rfc3339(value: Any) -> Any:
    """A copy of a JSON-able value with every time field (`time`, `*_at`) as RFC 3339."""
    if isinstance(value, dict):
        return {k: (rfc3339(v) if _is_time_key(k) and isinstance(v, int | float)
                    and not isinstance(v, bool) else with_rfc3339(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [with_rfc3339(v) for v in value]
    return value


def _is_time_key(key: object) -> bool:
    return isinstance(key, str) and (key in TIME_KEYS or key.endswith("_at"))
