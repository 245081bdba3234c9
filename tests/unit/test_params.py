import pytest

from moorage.web.params import INT64_MAX, parse_decimal, parse_uint


@pytest.mark.parametrize(
    "text, value",
    [("0", 0), ("007", 7), ("1234", 1234), ("9" * 19, INT64_MAX), ("9" * 5000, INT64_MAX),
     ("0" * 30 + "5", 5)],
)
def test_ascii_digits_are_numbers_and_huge_ones_saturate(text, value):
    assert parse_uint(text) == value


@pytest.mark.parametrize(
    "text", ["", " 7", "7 ", "+7", "-7", "1_000", "0x10", "\uff17", "\u0663", "\u00b2", "7.0"],
)
def test_anything_but_ascii_digits_is_refused(text):
    assert parse_uint(text) is None


def test_decimal_takes_ascii_decimals_only():
    assert parse_decimal("1700000000.25") == 1700000000.25
    assert [parse_decimal(t) for t in ("nan", "inf", "1e9", "-1", "\uff11", "1.")] == [None] * 6
