"""Strict JSON (RFC 8259) decoding of request bodies: UTF-8 only, bounded nesting, unique keys."""

from __future__ import annotations

import codecs
import json
import operator
import re
from itertools import accumulate, repeat
from typing import Any

MAX_DEPTH = 64  # real manifests nest ~5 levels; json.loads recurses on the C stack
# A JSON string token (unrolled loop: linear, no backtracking); brackets inside it do not nest.
_STRING_RE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET_RE = re.compile(r"[^\[\]{}]+")
# Opening brackets weigh 2, closing 0: minus one each gives the running depth, all in C.
_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
# Only a \uD800-\uDFFF escape can yield a lone surrogate; without one, no walk is needed.
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class JsonInvalid(ValueError):
    """A body that is not strict JSON; the message says what is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def loads(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Decode `data` as one UTF-8 JSON value; raise JsonInvalid naming the problem otherwise."""
    if data.startswith(codecs.BOM_UTF8) or data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise JsonInvalid("JSON must be UTF-8 without a byte order mark (RFC 8259)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonInvalid(f"JSON must be UTF-8: invalid byte at offset {exc.start}") from None
    if nesting_depth(text) > max_depth:
        raise JsonInvalid(f"JSON nests deeper than {max_depth} levels")
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except JsonInvalid:
        raise
    except RecursionError:  # belt and braces: the scan above should have refused it
        raise JsonInvalid(f"JSON nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise JsonInvalid(f"not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE_RE.search(text):
        _check_strings(value)
    return value


def nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside strings."""
    brackets = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text)).encode("ascii")
    steps = map(operator.sub, brackets.translate(_WEIGHTS), repeat(1))
    return max(accumulate(steps), default=0)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys are ambiguous (RFC 8259 §4): two parsers may see two different manifests.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise JsonInvalid(f"duplicate key {key[:100]!r} in a JSON object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise JsonInvalid(f"{name} is not a JSON value")


def _check_strings(value: Any) -> None:
    # "\ud800" escapes decode to lone surrogates, which no UTF-8 store or encoder accepts.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonInvalid("JSON string holds an unpaired surrogate escape") from None
