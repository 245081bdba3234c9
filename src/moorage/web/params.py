"""Numbers in headers and query strings: ASCII digits only (RFC 9110 DIGIT), never a 500."""

from __future__ import annotations

import re

INT64_MAX = 2**63 - 1
_DIGITS_RE = re.compile(r"[0-9]+")
_DECIMAL_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_uint(text: str) -> int | None:
    """The value of a run of ASCII digits, saturated at INT64_MAX; None for anything else.

    `int()` alone would take "٣", "１", " 7", "1_0" and refuse over 4300 digits with a ValueError;
    no size, offset or id is beyond int64, so a longer number means "more than any".
    """
    if not _DIGITS_RE.fullmatch(text):
        return None
    significant = text.lstrip("0")
    if len(significant) > 19:
        return INT64_MAX
    return min(int(significant or "0"), INT64_MAX)


def parse_decimal(text: str) -> float | None:
    """A non-negative decimal such as `1700000000.5` in ASCII; None for anything else."""
    if not _DECIMAL_RE.fullmatch(text) or len(text) > 40:
        return None
    return float(text)
