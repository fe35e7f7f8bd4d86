"""Calls as iCalendar: subscription feeds and emailed invitations. Pure: bytes out, no I/O.

What calendar clients are known to need, and how this module gives it:

* no floating times: every DTSTART, DTEND, EXDATE and RECURRENCE-ID carries the call's IANA
  TZID, and each TZID has its VTIMEZONE in the same file (`scheduler.core.vtimezone`, RRULE-based);
* EXDATE and RECURRENCE-ID repeat the original wall time in the same TZID as DTSTART;
* a start or end that is the *second* of a wall time that happens twice (a move imported from
  an exact UTC time) is written in UTC: with a TZID, that wall time means the first;
* feeds are METHOD:PUBLISH without ATTENDEE; invitations are METHOD:REQUEST or CANCEL with one
  VEVENT, an ORGANIZER and one ATTENDEE (RFC 6047; Outlook mishandles several VEVENTs);
* the same calls give the same bytes: DTSTAMP is the call's last change, not the clock;
* an occurrence with an agenda of its own is an override (RECURRENCE-ID, its time unchanged)
  whose DESCRIPTION is that agenda in place of the call's description; a one-off call's only
  event carries it. Setting, changing or clearing one raises the call's SEQUENCE.

Feeds are written by `_FeedWriter`, a plain writer of the few properties a feed holds, byte for
byte what icalendar writes for them (its ordering, escaping and folding; the TZID parameter is
taken from icalendar once per zone), but fast enough for 10,000 calls, each in its own feed
and in all.ics: icalendar spends about 25 microseconds on a content line.
tests/test_import_feeds.py holds the two to the same bytes. Invitations and single events
keep icalendar's writer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress
from icalendar.prop import vDuration, vRecur

from scheduler.core.recurrence import Change, Occurrence, Series, Status, occurrence_at
from scheduler.core.vtimezone import WINDOW_END_YEAR, vtimezone
from scheduler.core.zones import is_ambiguous, to_utc

PRODID = "-//Coalition call scheduler//coalition-calls//EN"
# A VTIMEZONE is derived from the tz database up to WINDOW_END_YEAR, its yearly rules left open
# from there on. One for a call that starts later begins this many years before that end, so
# that its rules are found (a window after the end would hold no change: no summer time).
_RULE_YEARS = 10


@dataclass(frozen=True, kw_only=True)
class CallEvent:
    """One call as a calendar sees it."""

    uid: str
    title: str
    description: str
    register_url: str | None
    join_url: str | None
    series: Series
    changes: Mapping[datetime, Change] = field(default_factory=dict)
    sequence: int
    created: datetime
    updated: datetime

    @property
    def zone_key(self) -> str:
        return self.series.zone.key

    def text(self, agenda: str | None = None) -> str:
        """DESCRIPTION: the call's description, or an occurrence's `agenda` in its place, then
        the links."""
        about = agenda or self.description
        lines = [about] if about else []
        if self.register_url:
            lines.append(f"Register: {self.register_url}")
        if self.join_url:
            lines.append(f"Join: {self.join_url}")
        return "\n\n".join(lines) if about else "\n".join(lines)


def _when(moment: datetime, zone: ZoneInfo) -> datetime:
    """`moment` as a wall time in `zone`, as clients want it; in UTC when that wall time
    happens twice and `moment` is the second (RFC 5545 3.3.5 reads it as the first)."""
    local = moment.astimezone(zone)
    if local.fold and is_ambiguous(local.replace(tzinfo=None), zone):
        return moment.astimezone(UTC)
    return local


def _event(call: CallEvent, *, start: datetime, end: datetime,
           recurrence_id: datetime | None = None, agenda: str | None = None) -> Event:
    zone = call.series.zone
    event = Event()
    event.add("uid", call.uid)
    event.add("dtstamp", call.updated)
    if recurrence_id is not None:
        event.add("recurrence-id", recurrence_id.astimezone(zone))
    event.add("dtstart", _when(start, zone))
    event.add("dtend", _when(end, zone))
    event.add("sequence", call.sequence)
    event.add("summary", call.title)
    text = call.text(agenda)
    if text:
        event.add("description", text)
    if call.register_url or call.join_url:
        event.add("url", call.register_url or call.join_url)
    if call.join_url:
        event.add("location", call.join_url)
    event.add("created", call.created)
    event.add("last-modified", call.updated)
    return event


def master(call: CallEvent) -> Event:
    """The series: RRULE in the anchor zone, EXDATE for cancelled occurrences. A one-off call
    is its single occurrence, moved or cancelled in place."""
    series = call.series
    if series.rrule is None:
        only = occurrence_at(series.start, series, call.changes.get(to_utc(series.start)))
        event = _event(call, start=only.start, end=only.end, agenda=only.agenda)
        event.add("status", "CANCELLED" if only.status is Status.CANCELLED else "CONFIRMED")
        return event
    event = _event(call, start=series.start, end=series.start + series.duration)
    event.add("rrule", vRecur.from_ical(series.rrule))
    for original in sorted(o for o, c in call.changes.items() if c.cancelled):
        event.add("exdate", original.astimezone(series.zone))
    event.add("status", "CONFIRMED")
    return event


def overrides(call: CallEvent) -> list[Event]:
    """One VEVENT with RECURRENCE-ID for each moved occurrence of a recurring call, and for
    each with an agenda of its own (a cancelled one has none: its EXDATE stands)."""
    if call.series.rrule is None:
        return []
    events = []
    for original, change in sorted(call.changes.items()):
        if change.cancelled:
            continue
        occurrence = occurrence_at(original, call.series, change)
        event = _event(call, start=occurrence.start, end=occurrence.end, recurrence_id=original,
                       agenda=occurrence.agenda)
        event.add("status", "CONFIRMED")
        events.append(event)
    return events


def _first_years(calls: Iterable[CallEvent]) -> dict[str, int]:
    """For each zone, the earliest year any of its DTSTART, EXDATE or override uses."""
    years: dict[str, int] = {}
    for call in calls:
        moments = [call.series.start, *call.changes,
                   *(c.start for c in call.changes.values() if c.start is not None)]
        first = min(min(m.astimezone(call.series.zone).year for m in moments),
                    WINDOW_END_YEAR - _RULE_YEARS)
        years[call.zone_key] = min(years.get(call.zone_key, first), first)
    return years


def _calendar(calls: Sequence[CallEvent], events: list[Event], *, method: str,
              properties: Mapping[str, object]) -> bytes:
    calendar = Calendar()
    calendar.add("version", "2.0")
    calendar.add("prodid", PRODID)
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    for name, value in properties.items():
        calendar.add(name, value)
    for key, year in sorted(_first_years(calls).items()):
        calendar.add_component(vtimezone(key, year))
    for event in events:
        calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data


def feed(calls: Sequence[CallEvent], *, name: str, url: str, timezone: str,
         refresh: timedelta) -> bytes:
    """A subscription feed (RFC 5545 + RFC 7986 calendar properties)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{_escape(PRODID)}",
             # icalendar writes NAME and X-WR-* as they are (it does not type them as TEXT)
             "CALSCALE:GREGORIAN", "METHOD:PUBLISH", f"NAME:{name}", f"X-WR-CALNAME:{name}",
             # RFC 7986 wants VALUE=DURATION on REFRESH-INTERVAL
             f"REFRESH-INTERVAL;VALUE=DURATION:{_duration(refresh)}",
             f"SOURCE:{url}", f"UID:{_escape(str(uuid.uuid5(uuid.NAMESPACE_URL, url)))}",
             f"URL:{url}", f"X-PUBLISHED-TTL:{_duration(refresh)}",
             f"X-WR-TIMEZONE:{timezone}"]
    text = ["\r\n".join(_fold(line) for line in lines), "\r\n"]
    text.extend(_vtimezone_text(key, year) for key, year in sorted(_first_years(calls).items()))
    for call in sorted(calls, key=lambda c: c.uid):
        text.append(_events_of(call))
    text.append("END:VCALENDAR\r\n")
    if len(calls) > 1:
        _WRITTEN.clear()  # all.ics comes last: what the calls' own feeds kept is used up
    return "".join(text).encode()


# A call's VEVENTs, kept for the same CallEvent object (held, so that its id is not reused):
# feeds.build writes each call into its own feed, then all of them into all.ics.
_WRITTEN: dict[int, tuple[CallEvent, str]] = {}


def _events_of(call: CallEvent) -> str:
    kept = _WRITTEN.get(id(call))
    if kept is not None and kept[0] is call:
        return kept[1]
    text = _FeedWriter(call).events()
    if len(_WRITTEN) >= 20_000:
        _WRITTEN.clear()
    _WRITTEN[id(call)] = (call, text)
    return text


class _FeedWriter:
    """A call's VEVENTs in a feed, as `master` and `overrides` make them and icalendar writes
    them: canonical properties first (SUMMARY, DTSTART, DTEND, DTSTAMP, UID, RECURRENCE-ID,
    SEQUENCE, RRULE, EXDATE), then the others by name."""

    def __init__(self, call: CallEvent) -> None:
        self.call = call
        self.zone = call.series.zone
        self.stamp = _utc(call.updated)
        self.tail = self._tail(None)
        self.url = call.register_url or call.join_url

    def _tail(self, agenda: str | None) -> list[str]:
        """CREATED, DESCRIPTION (the call's, or `agenda` in its place), LAST-MODIFIED,
        LOCATION."""
        call = self.call
        text = call.text(agenda)
        tail = [f"CREATED:{_utc(call.created)}"]
        if text:
            tail.append(f"DESCRIPTION:{_escape(text)}")
        tail.append(f"LAST-MODIFIED:{self.stamp}")
        if call.join_url:
            tail.append(f"LOCATION:{_escape(call.join_url)}")
        return tail

    def events(self) -> str:
        series, call = self.call.series, self.call
        if series.rrule is None:
            only = occurrence_at(series.start, series, call.changes.get(to_utc(series.start)))
            status = "CANCELLED" if only.status is Status.CANCELLED else "CONFIRMED"
            return self._event(only.start, only.end, status=status, agenda=only.agenda)
        exdates = [f"EXDATE{self._moment(original.astimezone(self.zone))}"
                   for original in sorted(o for o, c in call.changes.items() if c.cancelled)]
        text = [self._event(series.start, series.start + series.duration, status="CONFIRMED",
                            rrule=_rrule(series.rrule), exdates=exdates)]
        for original, change in sorted(call.changes.items()):
            if not change.cancelled:
                moved = occurrence_at(original, series, change)
                text.append(self._event(moved.start, moved.end, status="CONFIRMED",
                                        recurrence_id=original, agenda=moved.agenda))
        return "".join(text)

    def _moment(self, moment: datetime) -> str:
        """`;TZID=...:20190605T100000` as icalendar writes it, or `:20190605T100000Z`."""
        tzid = _tzid(moment.tzinfo.key) if isinstance(moment.tzinfo, ZoneInfo) else None
        value = _digits(moment)
        return f":{value}Z" if tzid is None else f"{tzid}:{value}"

    def _event(self, start: datetime, end: datetime, *, status: str, rrule: str | None = None,
               exdates: Sequence[str] = (), recurrence_id: datetime | None = None,
               agenda: str | None = None) -> str:
        call = self.call
        lines = ["BEGIN:VEVENT", f"SUMMARY:{_escape(call.title)}",
                 f"DTSTART{self._moment(_when(start, self.zone))}",
                 f"DTEND{self._moment(_when(end, self.zone))}", f"DTSTAMP:{self.stamp}",
                 f"UID:{_escape(call.uid)}"]
        if recurrence_id is not None:
            lines.append(f"RECURRENCE-ID{self._moment(recurrence_id.astimezone(self.zone))}")
        lines.append(f"SEQUENCE:{call.sequence}")
        if rrule is not None:
            lines.append(f"RRULE:{rrule}")
        lines.extend(exdates)
        lines.extend(self.tail if agenda is None else self._tail(agenda))
        lines.append(f"STATUS:{status}")
        if self.url:
            lines.append(f"URL:{self.url}")
        lines.append("END:VEVENT")
        return "".join(_fold(line) + "\r\n" for line in lines)


def _escape(text: str) -> str:
    """TEXT escaping as icalendar does it (a literal \\N included)."""
    return (text.replace(r"\N", "\n").replace("\\", "\\\\").replace(";", r"\;")
            .replace(",", r"\,").replace("\r\n", r"\n").replace("\n", r"\n")
            .replace("\r", r"\n"))


def _fold(line: str, limit: int = 75) -> str:
    """RFC 5545 folding as icalendar does it: at most 74 octets a line, the continuation
    after CRLF and a space, no backslash or caret left at the end of a line."""
    ascii_only = line.isascii()
    if len(line) < limit and (ascii_only or len(line.encode()) < limit):
        return line
    folded: list[str] = []
    if ascii_only:  # a character is an octet: cut every 74, a trailing \ or ^ carried over
        begin = 0
        while len(line) - begin >= limit:
            end = begin + limit - 1
            if line[end - 1] in "\\^":
                end -= 1
            folded.append(line[begin:end])
            begin = end
        folded.append(line[begin:])
        return "\r\n ".join(folded)
    current: list[str] = []
    count = 0
    for char in line:
        size = len(char.encode())
        if current and count + size >= limit:
            if len(current) > 1 and current[-1] in "\\^":
                carried = current.pop()
                folded.append("".join(current))
                current, count = [carried], len(carried.encode())
            else:
                folded.append("".join(current))
                current, count = [], 0
        current.append(char)
        count += size
    if current:
        folded.append("".join(current))
    return "\r\n ".join(folded)


def _digits(moment: datetime) -> str:
    """20190605T100000 (faster than strftime)."""
    return (f"{moment.year:04d}{moment.month:02d}{moment.day:02d}T{moment.hour:02d}"
            f"{moment.minute:02d}{moment.second:02d}")


def _utc(moment: datetime) -> str:
    return _digits(moment.astimezone(UTC)) + "Z"


@cache
def _tzid(key: str) -> str | None:
    """The TZID parameter icalendar writes for a zone (";TZID=Europe/Brussels"), or None
    where it writes the time in UTC with a Z instead."""
    event = Event()
    event.add("dtstart", datetime(2000, 1, 1, tzinfo=ZoneInfo(key)))
    line = next(line for line in event.to_ical().decode().splitlines()
                if line.startswith("DTSTART"))
    head, _, value = line.partition(":")
    return None if value.endswith("Z") else head.removeprefix("DTSTART")


@lru_cache(maxsize=1024)
def _rrule(text: str) -> str:
    rule: str = vRecur.from_ical(text).to_ical().decode()
    return rule


@lru_cache(maxsize=64)
def _duration(length: timedelta) -> str:
    text: str = vDuration(length).to_ical().decode()  # type: ignore[no-untyped-call]
    return text


@lru_cache(maxsize=1024)
def _vtimezone_text(key: str, year: int) -> str:
    text: str = vtimezone(key, year).to_ical().decode()
    return text


def single(call: CallEvent, occurrence: Occurrence) -> bytes:
    """One occurrence on its own ("Add to calendar"): a one-off event with a UID of its own, so
    that a calendar which also subscribes to the feed does not take it for the series."""
    event = _event(call, start=occurrence.start, end=occurrence.end, agenda=occurrence.agenda)
    event.pop("uid")
    event.add("uid", f"{occurrence.id:%Y%m%dT%H%M%SZ}-{call.uid}")
    event.add("status", "CANCELLED" if occurrence.status is Status.CANCELLED else "CONFIRMED")
    return _calendar([call], [event], method="PUBLISH", properties={})


def _mailto(address: str) -> tuple[str, str]:
    name, mail = parseaddr(address)
    return name, f"mailto:{mail}"


def invitation(call: CallEvent, *, method: str, organizer: str, attendee: str,
               occurrence: datetime | None = None) -> bytes:
    """One VEVENT for one attendee: the series, or one occurrence (by its original start).

    `method` is REQUEST (new or updated) or CANCEL (the occurrence, or the whole series).
    """
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unknown iTIP method {method}")
    if occurrence is None:
        event = master(call)
    else:
        found = occurrence_at(occurrence, call.series, call.changes.get(occurrence))
        event = _event(call, start=found.start, end=found.end, recurrence_id=occurrence,
                       agenda=found.agenda)
    if method == "CANCEL":
        event.pop("status", None)
        event.add("status", "CANCELLED")
    elif "status" not in event:
        event.add("status", "CONFIRMED")
    organizer_name, organizer_mail = _mailto(organizer)
    event.add("organizer", vCalAddress(organizer_mail),
              parameters={"CN": organizer_name} if organizer_name else {})
    name, mail = _mailto(attendee)
    parameters = {"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"}
    if name:
        parameters["CN"] = name
    event.add("attendee", vCalAddress(mail), parameters=parameters)
    return _calendar([call], [event], method=method, properties={})

