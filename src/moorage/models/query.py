"""The model search language: `key op value` terms, all of which must hold.

`family=llama params>=7B quantization=q4 accuracy>0.9`: ops are `= != > >= < <=` and `~`
(substring); keys are model columns or metric names (`org.moorage.metrics.<name>`). Text
compares case-insensitively; `params` takes unit letters (7B, 770M); metrics are numbers.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..oci.errors import RegistryError
from .params import parse_count

TEXT_KEYS = ("repository", "digest", "kind", "name", "family", "version", "architecture",
             "precision", "quantization", "format", "license", "training_run",
             "training_run_url", "dataset_digest", "base_digest", "base_name")
NUMBER_KEYS = ("params",)
ALIASES = {"run": "training_run", "base": "base_digest", "dataset": "dataset_digest",
           "repo": "repository", "arch": "architecture"}
OPS = ("!=", ">=", "<=", "=", ">", "<", "~")
_TERM = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*)\s*(!=|>=|<=|=|>|<|~)(.*)", re.DOTALL)
MAX_TERMS = 32


class QueryInvalid(RegistryError):
    """A search query that does not parse; the message says where and why."""

    default_message = "the model query is invalid"


@dataclass(frozen=True, slots=True)
class Term:
    """One `key op value` condition; `number` is the value as a number for numeric keys."""

    key: str
    op: str
    value: str
    metric: bool
    number: float | None = None

    def holds(self, model: Mapping[str, Any]) -> bool:
        """Whether `model` (a row with `metrics`) satisfies this term."""
        if self.metric:
            found = (model.get("metrics") or {}).get(self.key)
            return found is not None and _compare(float(found), self.op, self.number)
        if self.number is not None:
            found = model.get(self.key)
            return found is not None and _compare(float(found), self.op, self.number)
        text = model.get(self.key)
        if text is None:
            return self.op == "!="
        have, want = str(text).lower(), self.value.lower()
        if self.op == "~":
            return want in have
        return (have == want) if self.op == "=" else (have != want)


def _compare(have: float, op: str, want: float | None) -> bool:
    assert want is not None
    return {"=": have == want, "!=": have != want, ">": have > want, ">=": have >= want,
            "<": have < want, "<=": have <= want}[op]


def parse_query(text: str) -> list[Term]:
    """The terms of `text` (AND between them); QueryInvalid naming the term that is wrong."""
    try:
        words = shlex.split(text or "")
    except ValueError as exc:
        raise QueryInvalid(f"the query does not split into terms: {exc}") from None
    if len(words) > MAX_TERMS:
        raise QueryInvalid(f"a query has at most {MAX_TERMS} terms, not {len(words)}")
    return [_term(i + 1, word) for i, word in enumerate(words)]


def _term(position: int, word: str) -> Term:
    where = f"term {position} {word!r}"
    m = _TERM.fullmatch(word)
    if m is None:
        raise QueryInvalid(f"{where}: expected KEY OP VALUE with OP one of {' '.join(OPS)}")
    key, op, value = m.group(1), m.group(2), m.group(3).strip()
    key = ALIASES.get(key.lower(), key)
    if not value:
        raise QueryInvalid(f"{where}: no value after {op!r}")
    if value[0] in "=<>!~":
        raise QueryInvalid(f"{where}: {op + value[0]!r} is not an operator "
                           f"(one of {' '.join(OPS)})")
    if key.lower() in TEXT_KEYS:
        if op not in ("=", "!=", "~"):
            raise QueryInvalid(f"{where}: {key} is text: use =, != or ~")
        return Term(key.lower(), op, value, metric=False)
    number = parse_count(value)
    if key.lower() in NUMBER_KEYS:
        if number is None:
            raise QueryInvalid(f"{where}: {key} takes a number such as 7B, 1.5B or 770M")
        if op == "~":
            raise QueryInvalid(f"{where}: {key} is a number: use = != > >= < <=")
        return Term(key.lower(), op, value, metric=False, number=number)
    if op == "~":
        raise QueryInvalid(f"{where}: metric {key} is a number: use = != > >= < <=")
    try:
        number = float(value)
    except ValueError:
        raise QueryInvalid(f"{where}: {key} is not a model field, so it is a metric, and "
                           f"metrics compare with numbers, not {value!r}") from None
    return Term(key, op, value, metric=True, number=number)


def matches(terms: list[Term], model: Mapping[str, Any]) -> bool:
    """Whether every term holds for `model`."""
    return all(t.holds(model) for t in terms)
