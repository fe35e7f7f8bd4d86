"""Calls as iCalendar: subscription feeds and emailed invitations. Pure: bytes out, no I/O.

What calendar clients are known to need, and how this module gives it:

* no floating times: every DTSTART, DTEND, EXDATE and RECURRENCE-ID carries the call's IANA
  TZID, and each TZID has its VTIMEZONE in the same file (`scheduler.core.vtimezone`, RRULE-based);
* EXDATE and RECURRENCE-ID repeat the original wall time in the same TZID as DTSTART;
* feeds are METHOD:PUBLISH without ATTENDEE; invitations are METHOD:REQUEST or CANCEL with one
  VEVENT, an ORGANIZER and one ATTENDEE (RFC 6047; Outlook mishandles several VEVENTs);
* the same calls give the same bytes: DTSTAMP is the call's last change, not the clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr

from icalendar import Calendar, Event, vCalAddress
from icalendar.prop import vDuration, vRecur

from scheduler.core.recurrence import Change, Occurrence, Series, Status, occurrence_at
from scheduler.core.vtimezone import WINDOW_END_YEAR, vtimezone
from scheduler.core.zones import to_utc

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

    def text(self) -> str:
        lines = [self.description] if self.description else []
        if self.register_url:
            lines.append(f"Register: {self.register_url}")
        if self.join_url:
            lines.append(f"Join: {self.join_url}")
        return "\n\n".join(lines) if self.description else "\n".join(lines)


def _event(call: CallEvent, *, start: datetime, end: datetime,
           recurrence_id: datetime | None = None) -> Event:
    zone = call.series.zone
    event = Event()
    event.add("uid", call.uid)
    event.add("dtstamp", call.updated)
    if recurrence_id is not None:
        event.add("recurrence-id", recurrence_id.astimezone(zone))
    event.add("dtstart", start.astimezone(zone))
    event.add("dtend", end.astimezone(zone))
    event.add("sequence", call.sequence)
    event.add("summary", call.title)
    if call.text():
        event.add("description", call.text())
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
        event = _event(call, start=only.start, end=only.end)
        event.add("status", "CANCELLED" if only.status is Status.CANCELLED else "CONFIRMED")
        return event
    event = _event(call, start=series.start, end=series.start + series.duration)
    event.add("rrule", vRecur.from_ical(series.rrule))
    for original in sorted(o for o, c in call.changes.items() if c.cancelled):
        event.add("exdate", original.astimezone(series.zone))
    event.add("status", "CONFIRMED")
    return event


def overrides(call: CallEvent) -> list[Event]:
    """One VEVENT with RECURRENCE-ID for each moved occurrence of a recurring call."""
    if call.series.rrule is None:
        return []
    events = []
    for original, change in sorted(call.changes.items()):
        if change.cancelled:
            continue
        occurrence = occurrence_at(original, call.series, change)
        event = _event(call, start=occurrence.start, end=occurrence.end, recurrence_id=original)
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
    events: list[Event] = []
    for call in sorted(calls, key=lambda c: c.uid):
        events.append(master(call))
        events.extend(overrides(call))
    properties = {
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, url)),
        "name": name, "x-wr-calname": name, "x-wr-timezone": timezone,
        # RFC 7986 wants VALUE=DURATION on REFRESH-INTERVAL; X- properties need the type given.
        "refresh-interval": vDuration(refresh, params={"VALUE": "DURATION"}),
        "x-published-ttl": vDuration(refresh),
        "source": url, "url": url,
    }
    return _calendar(calls, events, method="PUBLISH", properties=properties)


def single(call: CallEvent, occurrence: Occurrence) -> bytes:
    """One occurrence on its own ("Add to calendar"): a one-off event with a UID of its own, so
    that a calendar which also subscribes to the feed does not take it for the series."""
    event = _event(call, start=occurrence.start, end=occurrence.end)
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
        event = _event(call, start=found.start, end=found.end, recurrence_id=occurrence)
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

