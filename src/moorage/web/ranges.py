"""HTTP Range for blob GET: one byte range per request, per RFC 9110."""

from __future__ import annotations

import re

from ..oci.errors import RangeInvalid
from .params import parse_uint

# ASCII digits only: `\d` would also take "０-９" and other Unicode digits.
_RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Resolve a `Range` header to an inclusive (start, end) within `size`.

    None means "send the whole blob" (no header, or one we ignore as RFC 9110 allows: several
    ranges or bad syntax). Unsatisfiable ranges raise RangeInvalid (416).
    """
    if not header:
        return None
    m = _RANGE_RE.fullmatch(header.strip().replace(" ", ""))
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last n bytes
        n = _number(last)
        if n == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - n, 0), size - 1
    start = _number(first)
    end = _number(last) if last else size - 1
    if start > end or start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _number(digits: str) -> int:
    value = parse_uint(digits)
    assert value is not None  # the regex admitted only ASCII digits
    return value


def _unsatisfiable(size: int) -> RangeInvalid:
    return RangeInvalid(headers={"Content-Range": f"bytes */{size}"})
