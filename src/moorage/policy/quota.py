"""Namespace quotas: the sentence a refusal shows, and the upload-time check with its short
cache (pure rules; the figures come from the unit of work the caller's database opens)."""

from __future__ import annotations

import re
import time
from typing import Any

from ..oci.errors import Denied

QUOTA_CACHE_SECONDS = 2.0
MAX_CACHED_NAMESPACES = 10_000


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def parse_size(raw: str) -> int:
    """Bytes of `500000000`, `20GB`, `1.5TiB` (decimal or binary units); ValueError else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)?\s*", raw.lower())
    if not m:
        raise ValueError(f"invalid size {raw!r}: use e.g. 500000000, 20GB, 1.5TiB")
    unit = (m.group(2) or "").rstrip("b")
    powers = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
    base = 1024 if unit.endswith("i") else 1000
    return int(float(m.group(1)) * base ** powers[unit.rstrip("i")])


def quota_denied(namespace: str, used: int, limit: int, requested: int) -> Denied:
    """The DENIED error of a push or upload that would exceed the namespace's quota."""
    return Denied(
        f"quota exceeded for namespace {namespace!r}: using {human_bytes(used)} ({used} bytes) "
        f"of {human_bytes(limit)} ({limit} bytes); this push needs {requested} more bytes",
        detail={"namespace": namespace, "usage": used, "limit": limit, "requested": requested},
    )


class UploadQuota:
    """Refuses an upload whose declared size alone would exceed its namespace's quota.

    Figures are cached for a moment per namespace to spare the pass path a read per chunk; a
    refusal is only ever made on fresh figures.
    """

    def __init__(self, ttl: float = QUOTA_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._cache: dict[str, tuple[int | None, int, float]] = {}

    def check(self, database: Any, namespace: str, total_bytes: int, digest: str | None = None
              ) -> None:
        """DENIED when `total_bytes` would exceed the quota (content the namespace already
        holds, known by `digest`, adds nothing)."""
        now = time.monotonic()
        cached = self._cache.get(namespace)
        if cached is None or cached[2] < now:
            cached = self._load(database, namespace, now)
        limit, used, _ = cached
        if limit is not None and used + total_bytes > limit:
            limit, used, _ = self._load(database, namespace, now)
        if limit is None or used + total_bytes <= limit:
            return
        if digest is not None:
            with database.read() as uow:
                if uow.usage.holds(namespace, digest):
                    return
        raise quota_denied(namespace, used, limit, total_bytes)

    def forget(self, namespace: str | None = None) -> None:
        """Drop cached figures (of one namespace, or all) after a quota or usage change."""
        if namespace is None:
            self._cache.clear()
        else:
            self._cache.pop(namespace, None)

    def _load(self, database: Any, namespace: str, now: float) -> tuple[int | None, int, float]:
        with database.read() as uow:
            limit = uow.policies.quota(namespace)
            used = uow.usage.total(namespace) if limit is not None else 0
        if len(self._cache) >= MAX_CACHED_NAMESPACES:
            self._cache.clear()
        figures = (limit, used, now + self.ttl)
        self._cache[namespace] = figures
        return figures
