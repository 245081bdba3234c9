"""Parameter counts as people write them: "7B", "1.5b", "770M", "6.7 B", "124000000"."""

from __future__ import annotations

import re
from decimal import Decimal

_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12, "q": 10**15}
_COUNT = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmbgtq]?)\s*", re.IGNORECASE)


def parse_count(text: object) -> float | None:
    """The number `text` names (a scale letter K M B T Q multiplies), None if it names none."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    if not isinstance(text, str):
        return None
    m = _COUNT.fullmatch(text)
    if m is None:
        return None
    # Decimal: "8.03B" is 8030000000, not 8029999999.999999.
    return float(Decimal(m.group(1)) * _SCALE[m.group(2).lower()])


def format_count(value: float | None) -> str:
    """A parameter count for people: 7e9 -> "7B", 1.5e9 -> "1.5B", 7.7e8 -> "770M"."""
    if value is None:
        return ""
    for letter, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g}{letter}"
    return f"{value:g}"
