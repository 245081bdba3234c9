"""CVSS base scores from the vectors OSV records carry (v3.0/v3.1 and v2), and their labels.

OSV's `severity[].score` is the vector, not the number; the number is computed here once, at
import. CVSS v4 needs the specification's large lookup table: its vectors are kept but not
scored (the record's own severity label is used then).
"""

from __future__ import annotations

import math

_V3_WEIGHTS = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_V3_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
_V2_WEIGHTS = {
    "AV": {"L": 0.395, "A": 0.646, "N": 1.0},
    "AC": {"H": 0.35, "M": 0.61, "L": 0.71},
    "Au": {"M": 0.45, "S": 0.56, "N": 0.704},
    "C": {"N": 0.0, "P": 0.275, "C": 0.660},
    "I": {"N": 0.0, "P": 0.275, "C": 0.660},
    "A": {"N": 0.0, "P": 0.275, "C": 0.660},
}
LABELS = ("none", "low", "medium", "high", "critical")


def _metrics(vector: str) -> dict[str, str]:
    parts = [p.split(":", 1) for p in vector.strip().split("/") if ":" in p]
    return {k: v for k, v in parts}


def _roundup(value: float) -> float:
    """CVSS 3.1's round up to one decimal, free of floating-point artefacts."""
    whole = round(value * 100000)
    if whole % 10000 == 0:
        return whole / 100000.0
    return (math.floor(whole / 10000) + 1) / 10.0


def v3_base_score(vector: str) -> float | None:
    """The base score of a `CVSS:3.x/...` vector; None when it is not one."""
    m = _metrics(vector)
    if not vector.startswith("CVSS:3") or m.get("S") not in ("U", "C"):
        return None
    try:
        w = {k: table[m[k]] for k, table in _V3_WEIGHTS.items()}
        pr = _V3_PR[m["S"]][m["PR"]]
    except KeyError:
        return None
    iss = 1 - (1 - w["C"]) * (1 - w["I"]) * (1 - w["A"])
    if m["S"] == "U":
        impact = 6.42 * iss
    else:
        impact = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * w["AV"] * w["AC"] * pr * w["UI"]
    if impact <= 0:
        return 0.0
    if m["S"] == "U":
        return _roundup(min(impact + exploitability, 10))
    return _roundup(min(1.08 * (impact + exploitability), 10))


def v2_base_score(vector: str) -> float | None:
    """The base score of a CVSS v2 vector (`AV:N/AC:L/Au:N/C:P/I:P/A:P`); None otherwise."""
    m = _metrics(vector.removeprefix("(").removesuffix(")"))
    try:
        w = {k: table[m[k]] for k, table in _V2_WEIGHTS.items()}
    except KeyError:
        return None
    impact = 10.41 * (1 - (1 - w["C"]) * (1 - w["I"]) * (1 - w["A"]))
    exploitability = 20 * w["AV"] * w["AC"] * w["Au"]
    f = 0.0 if impact == 0 else 1.176
    return round(((0.6 * impact) + (0.4 * exploitability) - 1.5) * f + 1e-9, 1)


def base_score(kind: str, score: str) -> float | None:
    """The numeric base score of one OSV severity entry (type, score); None when unknown."""
    text = score.strip()
    try:
        value = float(text)  # some sources give the number itself
    except ValueError:
        pass
    else:
        return value if 0 <= value <= 10 else None
    if kind == "CVSS_V3" or text.startswith("CVSS:3"):
        return v3_base_score(text)
    if kind == "CVSS_V2":
        return v2_base_score(text)
    return None


def label(score: float) -> str:
    """CVSS's qualitative rating of a base score: none, low, medium, high, critical."""
    if score == 0:
        return "none"
    if score < 4:
        return "low"
    if score < 7:
        return "medium"
    if score < 9:
        return "high"
    return "critical"


def normalise_label(text: str) -> str | None:
    """A source's own severity word as one of LABELS (GitHub's `MODERATE` is medium)."""
    word = text.strip().lower()
    word = {"moderate": "medium", "important": "high", "negligible": "low",
            "unimportant": "low"}.get(word, word)
    return word if word in LABELS else None
