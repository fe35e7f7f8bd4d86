"""A call's schedule and its per-occurrence changes, as occurrences. Pure: no clock, no I/O.

A series is anchored to a wall time in one IANA zone plus an optional RFC 5545 RRULE; python-
dateutil expands the rule on aware datetimes in that zone, so every instance keeps the anchor's
wall time across DST changes (see `scheduler.core.zones` for the policy on gaps and repeats). An
occurrence's id is its *original* start in UTC: a moved occurrence keeps it, so deliveries and
calendar overrides (RECURRENCE-ID) stay attached to it.

    occurrences(series, changes, start=..., count=6)

Every expansion is bounded: a rule makes at most one occurrence an hour, each loop over it
stops at the end of its window and at the latest before `END_YEAR`, and starts near where it
looks, not at the rule's first occurrence (`scheduler.core.rrules`). Checking many dates
against a rule (`which_occur`) is bounded too.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from scheduler.core.rrules import (  # normalize_rrule: where callers have always found it
    SUPPORTED_FREQUENCIES,
    check_density,
    explicit,
    normalize_rrule,
    rule_from,
)
from scheduler.core.zones import before_end, to_utc
from scheduler.errors import Conflict, InvalidRecurrence, NotFound

__all__ = ["SUPPORTED_FREQUENCIES", "Change", "Occurrence", "Series", "Status", "find_original",
           "last_before", "normalize_rrule", "occurrence_at", "occurrences", "rekey_changes",
           "which_occur"]
MAX_LOOKUPS = 10_000  # dates checked against one rule at once (`which_occur`)
MAX_STEPS = 500_000  # occurrences of a COUNT rule stepped through to check them


class Status(StrEnum):
    CONFIRMED = "confirmed"
    MOVED = "moved"
    CANCELLED = "cancelled"


@dataclass(frozen=True, kw_only=True)
class Series:
    """When a call happens: its first start (aware, in its anchor zone), length and rule."""

    start: datetime
    duration: timedelta
    rrule: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.start.tzinfo, ZoneInfo):
            raise ValueError("Series.start must carry its anchor ZoneInfo")
        if self.duration <= timedelta(0):
            raise ValueError("Series.duration must be positive")
        if self.rrule is not None:
            check_density(self.rrule)  # a stored rule too: none may run for ever

    @property
    def zone(self) -> ZoneInfo:
        assert isinstance(self.start.tzinfo, ZoneInfo)
        return self.start.tzinfo

    def originals(self, after: datetime, before: datetime | None = None) -> Iterator[datetime]:
        """Original starts (aware, in the anchor zone) at or after the instant `after`, and
        before the instant `before` if given, and always before the years this service
        handles end (a rule without COUNT or UNTIL ends there, instead of running into the
        year 9999, where datetime overflows)."""
        after = to_utc(after)  # compare as instants, never as wall times of one zone
        limit = to_utc(before) if before is not None else None
        if self.rrule is None:
            if self.start >= after and before_end(self.start) and (
                    limit is None or self.start < limit):
                yield self.start
            return
        for original in rule_from(self.rrule, self.start, after).xafter(after, inc=True):
            if not before_end(original) or (limit is not None and original >= limit):
                return
            yield original


@dataclass(frozen=True, kw_only=True)
class Change:
    """An organizer's change to one occurrence, keyed by its original start (UTC): it is
    cancelled, or moved (a new start, a new length, or both), and it may have an agenda of
    its own. An agenda alone leaves the occurrence where it was (`reschedules` is False):
    confirmed, not moved."""

    original: datetime
    cancelled: bool = False
    start: datetime | None = None
    duration: timedelta | None = None
    agenda: str | None = None  # this occurrence's own agenda (Markdown); kept while cancelled

    def __post_init__(self) -> None:
        object.__setattr__(self, "original", to_utc(self.original))
        if self.start is not None:
            object.__setattr__(self, "start", to_utc(self.start))
        if not self.reschedules and self.agenda is None:
            raise ValueError("a Change cancels or moves its occurrence, or gives its agenda")

    @property
    def reschedules(self) -> bool:
        """Whether it cancels or moves the occurrence (not only gives its agenda)."""
        return self.cancelled or self.start is not None or self.duration is not None

    def without_agenda(self) -> Change | None:
        """The same change without the agenda: None when the agenda was all of it."""
        if not self.reschedules:
            return None
        return replace(self, agenda=None)


@dataclass(frozen=True, kw_only=True)
class Occurrence:
    """One happening of a call. `id` is the original start; `start`/`end` are where it is now."""

    id: datetime
    start: datetime
    end: datetime
    zone: ZoneInfo
    status: Status
    agenda: str | None = None  # this occurrence's own agenda (Markdown), if it has one

    @property
    def local_start(self) -> datetime:
        return self.start.astimezone(self.zone)

    @property
    def local_end(self) -> datetime:
        return self.end.astimezone(self.zone)

    @property
    def original_local(self) -> datetime:
        return self.id.astimezone(self.zone)


def occurrence_at(original: datetime, series: Series, change: Change | None) -> Occurrence:
    """The occurrence whose original start is `original`, with its change applied."""
    original = to_utc(original)
    if change is None:
        return Occurrence(
            id=original, start=original, end=original + series.duration,
            zone=series.zone, status=Status.CONFIRMED,
        )
    start = change.start or original
    duration = change.duration or series.duration
    if change.cancelled:
        status = Status.CANCELLED
    else:
        status = Status.MOVED if change.reschedules else Status.CONFIRMED
    return Occurrence(id=original, start=start, end=start + duration, zone=series.zone,
                      status=status, agenda=change.agenda)


def _max_shift(changes: Mapping[datetime, Change]) -> timedelta:
    return max(
        (abs(c.start - c.original) for c in changes.values() if c.start is not None),
        default=timedelta(0),
    )


def occurrences(
    series: Series,
    changes: Mapping[datetime, Change],
    *,
    start: datetime,
    end: datetime | None = None,
    count: int | None = None,
) -> list[Occurrence]:
    """Occurrences whose current start lies in [start, end), in time order, at most `count`.

    Cancelled ones are included (marked); a moved one is found where it now is. At least one of
    `end` and `count` bounds the window.
    """
    if end is None and count is None:
        raise ValueError("occurrences() needs an end or a count")
    start = to_utc(start)
    end = to_utc(end) if end is not None else None
    shift = _max_shift(changes)
    found: list[Occurrence] = []
    keys: list[datetime] = []
    for original in series.originals(start - shift):
        earliest_possible = to_utc(original) - shift
        if end is not None and earliest_possible >= end:
            break
        if count is not None and len(found) >= count and earliest_possible > found[count - 1].start:
            break
        occurrence = occurrence_at(original, series, changes.get(to_utc(original)))
        if occurrence.start < start or (end is not None and occurrence.start >= end):
            continue
        position = bisect.bisect_right(keys, occurrence.start)
        keys.insert(position, occurrence.start)
        found.insert(position, occurrence)
    return found[:count] if count is not None else found


def find_original(series: Series, day: date | datetime) -> datetime:
    """The original start (aware, anchor zone) of the occurrence on a local date or wall time.

    Raises `NotFound` naming the nearest occurrences when there is none, and `Conflict` when a
    date holds several (then the caller must give the time too).
    """
    zone = series.zone
    if isinstance(day, datetime):
        wall = day.replace(tzinfo=None)
        first_day = wall.date()
    else:
        wall, first_day = None, day
    day_start = datetime.combine(first_day, datetime.min.time(), zone)
    on_day = [
        o for o in _take_while_before(series.originals(day_start - timedelta(days=1)),
                                      day_start + timedelta(days=2))
        if o.date() == first_day and (wall is None or o.replace(tzinfo=None) == wall)
    ]
    if len(on_day) == 1:
        return on_day[0]
    if len(on_day) > 1:
        times = ", ".join(f"{o:%H:%M}" for o in on_day)
        raise Conflict(f"{first_day} has {len(on_day)} occurrences ({times}); give the time too")
    what = f"{wall:%Y-%m-%d %H:%M}" if wall is not None else f"{first_day}"
    raise NotFound(f"no occurrence on {what} ({_nearest(series, day_start)})")


def _take_while_before(originals: Iterator[datetime], limit: datetime) -> Iterator[datetime]:
    for original in originals:
        if original >= limit:
            return
        yield original


def _nearest(series: Series, moment: datetime) -> str:
    before = None
    if series.rrule is None:
        after = series.start if series.start >= moment else None
        before = series.start if series.start < moment else None
    else:
        after = next(series.originals(moment), None)
        before = last_before(series, moment)
    parts = [f"the one before is {before:%a %Y-%m-%d %H:%M}" if before else "none before it",
             f"the next is {after:%a %Y-%m-%d %H:%M}" if after else "none after it"]
    return "; ".join(parts)


def last_before(series: Series, moment: datetime) -> datetime | None:
    """The last original start before `moment`: looked for in a window that grows back from
    it (a rule can skip years: 29 February), the last window reaching the start."""
    if series.rrule is None:
        return series.start if to_utc(series.start) < to_utc(moment) else None
    for back in (timedelta(days=400), timedelta(days=400 * 30), None):
        since = series.start if back is None else max(series.start, moment - back)
        last = None
        for original in series.originals(since, moment):
            last = original
        if last is not None or back is None or since == series.start:
            return last
    return None


def which_occur(series: Series, instants: Collection[datetime]) -> set[datetime]:
    """Those of `instants` that are original starts of `series`, in UTC. Each is looked up in
    a window of one second; a rule with a COUNT, which can only be stepped from its start, is
    swept once from there to the latest of them. Either way at most `MAX_LOOKUPS` instants
    and `MAX_STEPS` steps: beyond, `InvalidRecurrence` (checking them would take too long)."""
    if not instants:
        return set()
    wanted = {to_utc(i) for i in instants}
    if len(wanted) > MAX_LOOKUPS:
        raise InvalidRecurrence(f"{len(wanted)} dates to check against its rule; at most "
                                f"{MAX_LOOKUPS:,}")
    if not wanted:
        return set()
    if series.rrule is None or explicit(series.rrule,
                                         series.start.replace(tzinfo=None)) is not None:
        second = timedelta(seconds=1)
        return {i for i in wanted if next(series.originals(i, i + second), None) is not None}
    found: set[datetime] = set()
    limit = max(wanted) + timedelta(seconds=1)
    for steps, original in enumerate(series.originals(series.start, limit)):
        if steps >= MAX_STEPS:
            raise InvalidRecurrence(f"checking its dates would step through more than "
                                    f"{MAX_STEPS:,} occurrences of its rule")
        if to_utc(original) in wanted:
            found.add(to_utc(original))
    return found


def rekey_changes(
    old: Series, new: Series, changes: Mapping[datetime, Change]
) -> dict[datetime, Change]:
    """Carry per-occurrence changes over to an edited schedule, matching by local date.

    When an organizer moves the whole series from 10:00 to 11:00, a cancellation of 8 January
    should still cancel 8 January. A change whose date has no occurrence in the new schedule
    raises `Conflict`, naming the dates, so nothing is silently dropped.
    """
    carried: dict[datetime, Change] = {}
    orphaned: list[str] = []
    agendas = False  # whether an orphaned one has an agenda
    for original, change in sorted(changes.items()):
        local_day = original.astimezone(old.zone).date()
        try:
            new_original = to_utc(find_original(new, local_day))
        except (NotFound, Conflict):
            orphaned.append(f"{local_day}")
            agendas = agendas or change.agenda is not None
            continue
        carried[new_original] = Change(
            original=new_original, cancelled=change.cancelled,
            start=change.start, duration=change.duration, agenda=change.agenda,
        )
    if orphaned:
        what = ("a move or cancellation; restore those first (coalition call restore --on "
                "DATE)" if not agendas else "a move, cancellation or agenda; restore or clear "
                "those first (coalition call restore --on DATE, coalition call agenda --on "
                "DATE --clear)")
        raise Conflict(
            "the new schedule has no single occurrence on "
            f"{', '.join(orphaned)}, which {'has' if len(orphaned) == 1 else 'have'} {what}"
        )
    return carried
