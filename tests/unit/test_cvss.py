"""CVSS base scores computed from the vectors OSV records carry (scan/cvss.py), checked against
the scores NVD publishes for the same vectors."""

from __future__ import annotations

import pytest

from moorage.scan.cvss import base_score, label, normalise_label


@pytest.mark.parametrize(("kind", "vector", "score"), [
    ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
    ("CVSS_V3", "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9),
    ("CVSS_V3", "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
    ("CVSS_V3", "CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9),
    ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L", 5.3),
    ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ("CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
    ("CVSS_V2", "AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3),
    ("CVSS_V2", "AV:N/AC:L/Au:N/C:C/I:C/A:C", 10.0),
])
def test_base_scores_match_published_ones(kind: str, vector: str, score: float) -> None:
    assert base_score(kind, vector) == score


def test_unscorable_entries_have_no_score() -> None:
    assert base_score("CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") \
        is None
    assert base_score("CVSS_V3", "CVSS:3.1/AV:X/AC:L") is None
    assert base_score("CVSS_V3", "7.2") == 7.2  # a source that gives the number itself


def test_labels() -> None:
    assert [label(s) for s in (0.0, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0)] == [
        "none", "low", "medium", "medium", "high", "high", "critical"]
    assert normalise_label("MODERATE") == "medium"
    assert normalise_label("Critical") == "critical"
    assert normalise_label("unknown-word") is None
