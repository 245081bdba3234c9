"""The five-field cron of `--schedule`, the rate parser and token bucket of `--bandwidth`."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from moorage.replication import cron
from moorage.replication.bandwidth import TokenBucket, parse_rate


def _next(expr: str, after: str) -> str:
    start = datetime.fromisoformat(after).replace(tzinfo=UTC).timestamp()
    return datetime.fromtimestamp(cron.parse(expr).next_after(start), UTC).strftime(
        "%Y-%m-%d %H:%M")


@pytest.mark.parametrize(("expr", "after", "due"), [
    ("*/15 * * * *", "2026-12-01T18:52:10", "2026-12-01 19:00"),
    ("*/15 * * * *", "2026-12-01T19:00:00", "2026-12-01 19:15"),  # strictly after
    ("5/20 * * * *", "2026-12-01T18:30:00", "2026-12-01 18:45"),
    ("0 3 * * mon-fri", "2026-12-04T03:00:00", "2026-12-07 03:00"),  # Friday → Monday
    ("0 0 29 2 *", "2026-12-04T00:00:00", "2028-02-29 00:00"),
    ("0 0 13 * 5", "2026-12-04T03:00:00", "2026-12-11 00:00"),  # 13th OR Friday
    ("30 2 1 jan,jul *", "2026-12-04T00:00:00", "2027-01-01 02:30"),
    ("0 12 * * 7", "2026-12-01T00:00:00", "2026-12-06 12:00"),  # 7 is Sunday too
    ("@daily", "2026-12-31T23:59:59", "2027-01-01 00:00"),
    ("@hourly", "2026-12-31T23:00:00", "2027-01-01 00:00"),
])
def test_the_next_due_minute(expr: str, after: str, due: str) -> None:
    assert _next(expr, after) == due


@pytest.mark.parametrize(("expr", "error"), [
    ("* * * *", "five fields"),
    ("60 * * * *", "outside 0-59"),
    ("* * * 13 *", "outside 1-12"),
    ("5-1 * * * *", "backwards"),
    ("x * * * *", "not a number"),
    ("*/0 * * * *", "outside"),
    ("0 0 31 2 *", "never matches"),
])
def test_a_bad_expression_is_refused(expr: str, error: str) -> None:
    with pytest.raises(cron.CronError, match=error):
        cron.parse(expr)


def test_rates_take_decimal_and_binary_units() -> None:
    assert parse_rate("200MB/s") == 200_000_000
    assert parse_rate("50MiB/s") == 50 * 1024 * 1024
    assert parse_rate("1.5G") == 1_500_000_000
    assert parse_rate("4096") == 4096
    for bad in ("fast", "10XB/s", "100"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_parallel_takers_share_one_bucket() -> None:
    bucket = TokenBucket(1_000_000)

    async def send(total: int) -> None:
        for _ in range(total // 100_000):
            await bucket.take(100_000)

    async def main() -> float:
        start = time.monotonic()
        # 3 MB together at 1 MB/s, the first second's worth as a burst: at least ~2 s
        await asyncio.gather(*(send(1_000_000) for _ in range(3)))
        return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert 1.9 <= elapsed < 6
