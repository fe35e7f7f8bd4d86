"""RRULE text: checking a rule where it is given, and expanding it from near a moment. Pure.

A rule makes at most one occurrence an hour (`check_density`: several BYMINUTE or BYSECOND
values are refused, where the rule is given and where a stored one is read back), so at most
24 a day, and one that dateutil would search until the year 9999 without finding anything (a
month day no month it names has) is refused where it is given (`normalize_rrule`).

dateutil counts a rule from its DTSTART, so finding what happens after a late moment would
step through every occurrence before it: an hourly rule from 1900 is 2.6 million steps to
reach 2199. A rule without a COUNT is therefore begun at a period boundary shortly before that
moment instead (`rule_from`: the same occurrences from there on, with what dateutil takes from
DTSTART written out); a rule with a COUNT is stepped from its start, at most COUNT times.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache

from dateutil.rrule import rrule, rrulestr
from icalendar.prop import vRecur

from scheduler.core.zones import to_utc, within_years
from scheduler.errors import InvalidRecurrence

SUPPORTED_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# The longest a month can be, for BYMONTHDAY against BYMONTH (February: 29, in leap years).
_MONTH_DAYS = {month: calendar.monthrange(2000, month)[1] for month in range(1, 13)}


def parsed(text: str, start: datetime) -> rrule:
    """The rule as dateutil's, from `start` (cached)."""
    # Keyed by wall time and zone: aware datetimes of two zones at one instant are equal.
    return _parsed(text, start.replace(tzinfo=None), start.tzinfo)


@lru_cache(maxsize=4096)
def _parsed(text: str, wall: datetime, zone: tzinfo | None) -> rrule:
    rule = rrulestr(text, dtstart=wall.replace(tzinfo=zone))
    assert isinstance(rule, rrule)
    return rule


@lru_cache(maxsize=4096)
def check_density(text: str) -> None:
    """Refuse a rule that makes more than one occurrence an hour (`InvalidRecurrence`).

    Several BYMINUTE or BYSECOND values put several occurrences in one hour: BYHOUR=0,...,23
    with BYMINUTE=0,...,59 and BYSECOND=0,...,59 is 86,400 a day, which no loop over a year
    of it survives. Only FREQ=DAILY and longer are supported, so one value each is at most
    one occurrence an hour.
    """
    try:
        parts = vRecur.from_ical(text.strip().removeprefix("RRULE:"))
    except (ValueError, TypeError) as e:
        raise InvalidRecurrence(f"malformed RRULE {text!r}: {e}") from e
    freq = parts.get("FREQ")
    if freq and freq[0] not in SUPPORTED_FREQUENCIES:
        raise InvalidRecurrence(
            f"RRULE FREQ={freq[0]} is not supported: a call repeats "
            f"{', '.join(SUPPORTED_FREQUENCIES[:-1]).lower()} or yearly"
        )
    per_hour = len(set(parts.get("BYMINUTE", [0]))) * len(set(parts.get("BYSECOND", [0])))
    if per_hour > 1:
        raise InvalidRecurrence(
            f"RRULE {_short(text)} makes {per_hour} occurrences an hour (BYMINUTE x "
            "BYSECOND); a call happens at most once an hour"
        )


def _short(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _never(parts: vRecur, text: str) -> None:
    """Refuse what dateutil would search for until the year 9999 without finding it: a month
    day that none of the months given has, and year days or week numbers in a rule that is
    not yearly (RFC 5545 allows them only there)."""
    freq = parts["FREQ"][0]
    for part in ("BYYEARDAY", "BYWEEKNO"):
        if part in parts and freq != "YEARLY":
            raise InvalidRecurrence(f"RRULE {_short(text)}: {part} is allowed only with "
                                    "FREQ=YEARLY (RFC 5545)")
    days = [int(d) for d in parts.get("BYMONTHDAY", [])]
    months = [int(m) for m in parts.get("BYMONTH", [])] or list(range(1, 13))
    if days and not any(1 <= m <= 12 and abs(d) <= _MONTH_DAYS[m] for d in days for m in months):
        raise InvalidRecurrence(f"RRULE {_short(text)} yields no occurrence: no month it "
                                "names has the day it names")


@dataclass(frozen=True, kw_only=True)
class _Explicit:
    text: str  # the rule with what dateutil takes from DTSTART written out
    freq: str
    interval: int
    wkst: int


@lru_cache(maxsize=4096)
def explicit(text: str, start: datetime) -> _Explicit | None:
    """The rule with what dateutil takes from DTSTART's wall time written out (the day for a
    yearly, monthly or weekly rule without BYxxx days, the time of day), so that it can start
    from a later DTSTART; None for a rule with a COUNT, which counts from its own start.
    `start` is naive: cached by wall time, not by instant."""
    parts = vRecur.from_ical(text)
    freq = parts["FREQ"][0]
    if "COUNT" in parts or freq not in SUPPORTED_FREQUENCIES:
        return None
    if not any(p in parts for p in ("BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY",
                                    "BYEASTER")):
        if freq == "YEARLY":
            parts.setdefault("BYMONTH", [start.month])
            parts["BYMONTHDAY"] = [start.day]
        elif freq == "MONTHLY":
            parts["BYMONTHDAY"] = [start.day]
        elif freq == "WEEKLY":
            parts["BYDAY"] = [WEEKDAYS[start.weekday()]]
    parts.setdefault("BYHOUR", [start.hour])
    parts.setdefault("BYMINUTE", [start.minute])
    parts.setdefault("BYSECOND", [start.second])
    return _Explicit(text=parts.to_ical().decode(), freq=freq,
                     interval=int(parts.get("INTERVAL", [1])[0]),
                     wkst=WEEKDAYS.index(str(parts.get("WKST", ["MO"])[0]).upper()))


def rule_from(text: str, start: datetime, after: datetime) -> rrule:
    """The rule, begun at the start of one of its periods (a day, a week from WKST, a month
    or a year, an INTERVAL multiple from DTSTART's) at least a period before `after`, when
    that is later than `start`: the same occurrences from `after` on, found without stepping
    through every one before it."""
    rule = parsed(text, start)
    written = explicit(text, start.replace(tzinfo=None))
    if written is None:
        return rule
    interval = written.interval
    day, target = start.date(), after.astimezone(start.tzinfo).date()
    if written.freq == "DAILY":
        steps = ((target - day).days - 1) // interval
        begin = day + timedelta(days=steps * interval)
    elif written.freq == "WEEKLY":  # weeks begin on WKST
        week = day - timedelta(days=(day.weekday() - written.wkst) % 7)
        steps = ((target - week).days // 7 - 1) // interval
        begin = week + timedelta(weeks=steps * interval)
    elif written.freq == "MONTHLY":
        steps = ((target.year - day.year) * 12 + target.month - day.month - 1) // interval
        index = day.year * 12 + day.month - 1 + steps * interval
        begin = date(index // 12, index % 12 + 1, 1) if steps > 0 else day
    else:  # YEARLY
        steps = (target.year - day.year - 1) // interval
        begin = date(day.year + steps * interval, 1, 1) if steps > 0 else day
    if steps <= 0:
        return rule
    return parsed(written.text, datetime.combine(begin, datetime.min.time(), start.tzinfo))


def normalize_rrule(text: str, start: datetime, *, field: str = "RRULE") -> str:
    """Check an RRULE typed by an organizer against the first start, and return its RFC form.

    The start must itself be the rule's first occurrence (RFC 5545 leaves a DTSTART that is not
    "synchronized with the recurrence rule" undefined, and calendar clients disagree on it). An
    UNTIL given as a date or a wall time is read in the anchor zone and stored in UTC, as RFC
    5545 requires when DTSTART has a TZID; it must lie in the years this service handles.
    `field` names the rule in that error ("--rrule").
    """
    text = text.strip().removeprefix("RRULE:")
    try:
        parts = vRecur.from_ical(text)
    except (ValueError, TypeError) as e:
        raise InvalidRecurrence(f"malformed RRULE {text!r}: {e}") from e
    freq = parts.get("FREQ")
    if not freq:
        raise InvalidRecurrence(f"malformed RRULE {text!r}: FREQ is missing")
    if freq[0] not in SUPPORTED_FREQUENCIES:
        raise InvalidRecurrence(
            f"RRULE FREQ={freq[0]} is not supported: a call repeats "
            f"{', '.join(SUPPORTED_FREQUENCIES[:-1]).lower()} or yearly"
        )
    if "COUNT" in parts and "UNTIL" in parts:
        raise InvalidRecurrence(f"RRULE {text!r} has both COUNT and UNTIL; keep one")
    if "COUNT" in parts and int(parts["COUNT"][0]) < 1:
        raise InvalidRecurrence(f"RRULE {text!r}: COUNT must be at least 1")
    check_density(text)
    _never(parts, text)
    zone = start.tzinfo
    if "UNTIL" in parts:
        until = parts["UNTIL"][0]
        within_years(until, what=f"{field} UNTIL")
        if not isinstance(until, datetime):  # a date: through the end of that day, locally
            until = datetime.combine(until + timedelta(days=1), datetime.min.time()) - timedelta(
                seconds=1
            )
        if until.tzinfo is None:
            until = until.replace(tzinfo=zone)
        parts["UNTIL"] = [until.astimezone(UTC)]
    normalized: str = parts.to_ical().decode()
    try:
        first = next(parsed(normalized, start).xafter(to_utc(start), inc=True), None)
    except (IndexError, KeyError) as e:  # dateutil's answer to BYDAY=9TU and the like
        raise InvalidRecurrence(f"malformed RRULE {text!r}: a value is out of range") from e
    except (ValueError, TypeError) as e:
        raise InvalidRecurrence(f"malformed RRULE {text!r}: {e}") from e
    if first is None:
        raise InvalidRecurrence(
            f"RRULE {text!r} yields no occurrence from {start:%Y-%m-%d %H:%M} on"
        )
    if first != start:
        raise InvalidRecurrence(
            f"the start {start:%a %Y-%m-%d %H:%M} is not an occurrence of {text!r}; its first "
            f"occurrence after that is {first:%a %Y-%m-%d %H:%M}: use that as the start"
        )
    return normalized


