"""Five-field cron expressions (minute hour day-of-month month day-of-week, in UTC) for
`--schedule`: `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists, month and day names,
and the `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly` shorthands. As in cron, when both
day fields are restricted a day matches either of them."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
            "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
            "@annually": "0 0 1 1 *"}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {d.lower(): (i + 1) % 7 for i, d in enumerate(calendar.day_abbr)}  # sun = 0
# (lowest, highest, names) of each field
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = ((0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 7, _DAYS))
_HORIZON = 5 * 366  # days searched for a next match (Feb 29 on a given weekday is rare)


class CronError(ValueError):
    """A schedule that is not a valid five-field cron expression."""


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.lower()) if names else None
    if value is None:
        if not text.isdigit():
            raise CronError(f"{text!r} is not a number")
        value = int(text)
    if not low <= value <= high:
        raise CronError(f"{value} is outside {low}-{high}")
    return value


def _field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = _value(step_text, 1, high, {}) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = _value(a, low, high, names), _value(b, low, high, names)
            if first > last:
                raise CronError(f"range {span!r} runs backwards")
        else:
            first = _value(span, low, high, names)
            last = high if step_text else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Cron:
    """A parsed expression; `next_after(t)` is the first matching minute after t."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        by_day, by_weekday = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def next_after(self, when: float) -> float:
        """The UNIX time of the first matching minute strictly after `when`."""
        start = datetime.fromtimestamp(when, UTC).replace(second=0, microsecond=0)
        start += timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(_HORIZON):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        at = day.replace(hour=hour, minute=minute)
                        if at >= start:
                            return at.timestamp()
            day += timedelta(days=1)
        raise CronError("the schedule never matches")


def parse(text: str) -> Cron:
    """Parse a five-field expression or a shorthand (CronError when it is not one)."""
    expr = _ALIASES.get(text.strip().lower(), text)
    parts = expr.split()
    if len(parts) != 5:
        raise CronError(f"a schedule has five fields (minute hour day month weekday), "
                        f"not {len(parts)}: {text!r}")
    fields = [_field(p, lo, hi, names) for p, (lo, hi, names) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in fields[4])
    cron = Cron(fields[0], fields[1], fields[2], fields[3], weekdays,
                parts[2].startswith("*"), parts[4].startswith("*"))
    cron.next_after(0)  # "30 0 31 2 *" is well-formed and never due
    return cron
