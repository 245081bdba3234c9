"""`--bandwidth 200MB/s`: parsing a rate, and the token bucket one run's parallel transfers
share, so the run as a whole stays under it."""

from __future__ import annotations

import asyncio
import re
import time

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?i?b?)\s*(?:/s)?\s*", re.IGNORECASE)


def parse_rate(text: str) -> int:
    """Bytes per second of `200MB/s`, `1.5GiB/s`, `500k` (decimal units, `i` for binary)."""
    found = _RATE.fullmatch(text)
    unit = found.group(2).lower() if found else ""
    if found is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a rate such as 200MB/s or 50MiB/s")
    rate = int(float(found.group(1)) * _UNITS[unit])
    if rate < 1024:
        raise ValueError(f"a bandwidth of {text!r} is below 1 KiB/s")
    return rate


class TokenBucket:
    """Bytes a run may send: `rate` a second, in bursts of at most one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self.tokens = self.rate
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, amount: int) -> None:
        """Wait until `amount` bytes may go (a chunk larger than a burst waits its share)."""
        async with self.lock:  # first come, first served across the run's transfers
            now = time.monotonic()
            self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            self.tokens -= amount
            if self.tokens < 0:
                await asyncio.sleep(-self.tokens / self.rate)
