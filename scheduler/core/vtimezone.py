"""VTIMEZONE components derived from the tz database, with yearly RRULEs. Pure.

Calendar clients need a VTIMEZONE for every TZID, and Outlook misreads the RDATE-list form
that icalendar's `Timezone.from_tzinfo` writes (it also writes a DAYLIGHT onset as the wall time
after the jump, where RFC 5545 3.6.5 wants it in TZOFFSETFROM). So:

1. the zone's transitions in a window are found from `zoneinfo` (the tzdata package): scan,
   then bisect each change to the second;
2. transitions of one kind (same offsets, name and DST flag) that fall on the same
   "nth/last weekday of a month, same wall time" every year become one observance with
   ``RRULE:FREQ=YEARLY;BYMONTH=..;BYDAY=..`` (checked by expanding it with dateutil), open-ended
   when the run reaches the end of the window, with UNTIL otherwise;
3. only what no yearly rule describes (a one-time change, or Cairo's "last Thursday at 24:00",
   which is no RFC 5545 weekday rule) is listed with RDATE, the first onset included.

Onsets are local times in the offset *before* the change (RFC 5545 3.6.5).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

from dateutil.rrule import YEARLY, rrule, weekday
from icalendar import Component, Timezone, TimezoneDaylight, TimezoneStandard, vRecur

WINDOW_END_YEAR = 2100
# Since 1990 no zone has changed twice within 6.9 days (America/Cambridge_Bay, 2000), so a
# six-day scan cannot step over a pair of changes (tests/test_vtimezone.py checks the scan
# against pytz's own transition lists for every zone).
STEP = timedelta(days=6)
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True, kw_only=True)
class Transition:
    at: datetime  # the instant, UTC
    offset_from: timedelta
    offset_to: timedelta
    name: str
    dst: bool

    @property
    def onset(self) -> datetime:
        """Local wall time of the change, read in the offset before it (naive, as RFC 5545)."""
        return (self.at + self.offset_from).replace(tzinfo=None)

    @property
    def kind(self) -> tuple[bool, timedelta, timedelta, str]:
        return (self.dst, self.offset_from, self.offset_to, self.name)


def _state(zone: ZoneInfo, moment: datetime) -> tuple[timedelta, str, bool]:
    local = moment.astimezone(zone)
    return (local.utcoffset() or timedelta(0), local.tzname() or "", bool(local.dst()))


def transitions(zone: ZoneInfo, start: datetime, end: datetime) -> list[Transition]:
    """Every change of offset, name or DST flag in [start, end)."""
    found = []
    moment, state = start, _state(zone, start)
    while moment < end:
        following = moment + STEP
        new_state = _state(zone, following)
        if new_state != state:
            low, high = moment, following
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if _state(zone, middle) == state:
                    low = middle
                else:
                    high = middle
            found.append(Transition(at=high.replace(microsecond=0), offset_from=state[0],
                                    offset_to=new_state[0], name=new_state[1],
                                    dst=new_state[2]))
        moment, state = following, new_state
    return found


@dataclass(frozen=True)
class YearlyRule:
    """'2nd Sunday of March' (nth=2), 'last Sunday' (nth=-1), or 'Sunday on or after the 2nd'
    (days=(2, ..., 8)), the forms tz database rules take."""

    month: int
    day: int  # 0 = Monday
    nth: int | None = None
    days: tuple[int, ...] = ()

    def expand(self, start: datetime) -> rrule:
        if self.nth is not None:
            return rrule(YEARLY, dtstart=start, bymonth=self.month,
                         byweekday=weekday(self.day)(self.nth))
        return rrule(YEARLY, dtstart=start, bymonth=self.month, byweekday=weekday(self.day),
                     bymonthday=self.days)

    def recur(self) -> vRecur:
        if self.nth is not None:
            byday = f"{self.nth}{WEEKDAYS[self.day]}"
            return vRecur(freq="YEARLY", bymonth=self.month, byday=byday)
        return vRecur(freq="YEARLY", bymonth=self.month, byday=WEEKDAYS[self.day],
                      bymonthday=list(self.days))


def _candidate_rules(onset: datetime) -> list[YearlyRule]:
    """The ways tz rules name the day of `onset`: nth or last weekday, or weekday >= N."""
    month, day = onset.month, onset.weekday()
    rules = [YearlyRule(month=month, day=day, nth=(onset.day - 1) // 7 + 1)]
    if onset.day + 7 > calendar.monthrange(onset.year, onset.month)[1]:
        rules.append(YearlyRule(month=month, day=day, nth=-1))
    for first in range(max(1, onset.day - 6), onset.day + 1):
        if first not in (1, 8, 15, 22):  # those are the nth-weekday rules above
            rules.append(YearlyRule(month=month, day=day, days=tuple(range(first, first + 7))))
    return rules


def _run(onsets: list[datetime], first: int) -> tuple[int, YearlyRule | None]:
    """How many onsets from `first` on follow one yearly rule, and which rule."""
    best, best_rule = 1, None
    for rule in _candidate_rules(onsets[first]):
        expected = rule.expand(onsets[first])
        length = 0
        for have, want in zip(onsets[first:], expected, strict=False):
            if have != want:
                break
            length += 1
        if length > best:
            best, best_rule = length, rule
    return best, best_rule


def _observance(kind: tuple[bool, timedelta, timedelta, str], onset: datetime) -> Component:
    dst, offset_from, offset_to, name = kind
    component = TimezoneDaylight() if dst else TimezoneStandard()
    component.add("dtstart", onset)
    component.add("tzoffsetfrom", offset_from)
    component.add("tzoffsetto", offset_to)
    component.add("tzname", name)
    return component


@cache
def vtimezone(key: str, first_year: int) -> Timezone:
    """A VTIMEZONE for `key`, valid from 1 January of `first_year` onwards."""
    zone = ZoneInfo(key)
    start = datetime(first_year, 1, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(WINDOW_END_YEAR, 1, 1, tzinfo=UTC)
    offset, name, dst = _state(zone, start)
    timezone = Timezone()
    timezone.add("tzid", key)
    # What is in force when the window opens, so that nothing before the first change is
    # left undefined.
    observances = [_observance((dst, offset, offset, name), (start + offset).replace(tzinfo=None))]
    by_kind: dict[tuple[bool, timedelta, timedelta, str], list[Transition]] = defaultdict(list)
    for change in transitions(zone, start, end):
        by_kind[change.kind].append(change)
    for kind, changes in by_kind.items():
        onsets = [c.onset for c in changes]
        singles: list[datetime] = []
        index = 0
        while index < len(onsets):
            length, rule = _run(onsets, index)
            if rule is None or length < 2:
                singles.append(onsets[index])
                index += 1
                continue
            component = _observance(kind, onsets[index])
            recur = rule.recur()
            last = changes[index + length - 1]
            if last.at.year < WINDOW_END_YEAR - 1:  # the rule stopped inside the window
                recur["UNTIL"] = last.at
            component.add("rrule", recur)
            observances.append(component)
            index += length
        if singles:
            component = _observance(kind, singles[0])
            # DTSTART is the first onset by RFC 5545, but ical.js (Thunderbird) only reads the
            # RDATEs of such an observance; vzic's data repeats DTSTART there too.
            for onset in singles:
                component.add("rdate", onset)
            observances.append(component)
    for component in sorted(observances, key=lambda c: c.decoded("dtstart")):
        timezone.add_component(component)
    return timezone
