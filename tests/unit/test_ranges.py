import pytest

from moorage.oci.errors import RangeInvalid
from moorage.web.ranges import parse_range


@pytest.mark.parametrize(
    "header,expected",
    [
        (None, None),
        ("bytes=500-1499", (500, 1499)),
        ("bytes=500-", (500, 2047)),
        ("bytes=-500", (1548, 2047)),
        ("bytes=2000-5000", (2000, 2047)),  # past the end clamps
        ("bytes=-5000", (0, 2047)),
        ("bytes=0-0", (0, 0)),
        ("bytes=1-2,5-6", None),  # several ranges: whole body
        ("items=1-2", None),
    ],
)
def test_ranges(header, expected):
    assert parse_range(header, 2048) == expected


@pytest.mark.parametrize("header", ["bytes=500-0", "bytes=5000-10000", "bytes=2048-", "bytes=-0"])
def test_unsatisfiable_ranges(header):
    with pytest.raises(RangeInvalid) as info:
        parse_range(header, 2048)
    assert info.value.status == 416
    assert info.value.headers["Content-Range"] == "bytes */2048"


@pytest.mark.parametrize(
    "header", ["bytes=\uff10-\uff19", "bytes=\u0660-\u0669", "bytes=-\uff15", "bytes=\u00b2-"]
)
def test_non_ascii_digits_are_bad_syntax_so_the_whole_blob_is_sent(header):
    assert parse_range(header, 2048) is None


def test_numbers_longer_than_int_parsing_allows_are_handled():
    assert parse_range("bytes=0-" + "9" * 5000, 2048) == (0, 2047)
    assert parse_range("bytes=-" + "9" * 5000, 2048) == (0, 2047)
    with pytest.raises(RangeInvalid):
        parse_range("bytes=" + "9" * 5000 + "-", 2048)
