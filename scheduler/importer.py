"""`coalition import FILE`: calls from an .ics file, all of them or none.

A Google Calendar export writes UTC times and names the calendar's zone in X-WR-TIMEZONE; the
`x-wr-timezone` package turns those into zoned times first. Outlook's zone names ("W. Europe
Standard Time") are mapped to IANA names with icalendar's own table. Each recurring VEVENT
becomes a call (its RRULE in its own zone), with EXDATEs and RECURRENCE-ID overrides as
cancellations and moves; each one-off VEVENT becomes a one-off call. Every event is checked
before anything is stored, and a hostile file (too large, nested too deep, unparseable) is
refused before it is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import x_wr_timezone
from icalendar import Calendar, Component
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from slugify import slugify
from sqlmodel import Session, select

from scheduler.config import Settings
from scheduler.core import inputs
from scheduler.core.recurrence import Change, Series, normalize_rrule, occurrences
from scheduler.core.zones import get_zone, is_ambiguous, is_nonexistent, to_utc, within_years
from scheduler.errors import InvalidRecurrence, InvalidValue, InvalidZone, SchedulerError
from scheduler.store.calls import SLUG
from scheduler.store.models import Call, OccurrenceChange

MAX_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 8
MAX_EVENTS = 10_000


class ImportFailed(SchedulerError):
    """The file cannot be imported; nothing was stored."""


@dataclass(kw_only=True)
class ImportPlan:
    """One event of the file as the call it becomes (not stored yet), with its moves and
    cancellations."""

    call: Call
    changes: list[Change] = field(default_factory=list)


def read_calendar(path: Path) -> Calendar:
    """Parse the file, refusing what could hurt before parsing it."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImportFailed(f"{path}: {size / 1e6:.1f} MB is more than this imports "
                               f"({MAX_BYTES // 2**20} MB)")
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError as e:
        raise ImportFailed(f"{path}: no such file") from e
    except UnicodeDecodeError as e:
        raise ImportFailed(f"{path}: not UTF-8 text (byte {e.start})") from e
    except OSError as e:
        raise ImportFailed(f"{path}: cannot read: {e.strerror}") from e
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.upper().startswith("BEGIN:"):
            depth += 1
            if depth > MAX_DEPTH:
                raise ImportFailed(f"{path} line {number}: components nested deeper than "
                                   f"{MAX_DEPTH}")
        elif line.upper().startswith("END:"):
            depth -= 1
    try:
        calendar = Calendar.from_ical(text)
    except (ValueError, IndexError, KeyError, TypeError) as e:
        raise ImportFailed(f"{path}: not an iCalendar file: {e}") from e
    if not isinstance(calendar, Calendar) or calendar.name != "VCALENDAR":
        raise ImportFailed(f"{path}: not an iCalendar file (no VCALENDAR)")
    try:
        standard: Calendar = x_wr_timezone.to_standard(calendar)
        return standard
    except Exception as e:  # the package raises whatever its input makes it raise
        raise ImportFailed(f"{path}: X-WR-TIMEZONE: {e}") from e


def _name(event: Component) -> str:
    return f"event {str(event.get('summary', '')).strip() or '(no summary)'!r}"


def _zoned(event: Component, prop: str) -> datetime:
    """An event's date-time as an aware datetime in an IANA zone, or a clear error (also for
    a time outside the years this service handles)."""
    value = event.get(prop)
    if value is None:
        raise InvalidValue(f"{_name(event)}: no {prop.upper()}")
    tzid = value.params.get("TZID") if hasattr(value, "params") else None
    moment = getattr(value, "dt", None)
    if not isinstance(moment, datetime):
        if isinstance(moment, date):
            raise InvalidValue(f"{_name(event)}: {prop.upper()} is a whole day; a call needs a "
                               "start time")
        raise InvalidValue(f"{_name(event)}: {prop.upper()} {value!s} is not a date-time")
    within_years(moment, what=f"{_name(event)}: {prop.upper()}")
    if tzid:
        iana = WINDOWS_TO_OLSON.get(str(tzid), str(tzid))
        try:
            zone = get_zone(iana)
        except InvalidZone as e:
            raise InvalidValue(f"{_name(event)}: TZID {tzid!r}: {e}") from e
        return moment.replace(tzinfo=None).replace(tzinfo=zone)
    if moment.tzinfo is None:
        raise InvalidValue(f"{_name(event)}: {prop.upper()} has no time zone (a floating time "
                           "means a different instant to every reader)")
    key: str | None = getattr(moment.tzinfo, "key", None) or getattr(moment.tzinfo, "zone", None)
    if key is None:
        raise InvalidValue(f"{_name(event)}: {prop.upper()} has a time zone without a name")
    return moment.replace(tzinfo=get_zone("UTC" if key in ("Etc/UTC", "Z") else str(key)))


def _duration(event: Component, start: datetime) -> int:
    if "dtend" in event:
        length = to_utc(_zoned(event, "dtend")) - to_utc(start)
    elif "duration" in event:
        length = event.decoded("duration")
    else:
        length = timedelta(hours=1)
    minutes = int(length.total_seconds() // 60)
    inputs.duration(minutes, field=f"{_name(event)}: its length")
    return minutes


def _url(value: Any) -> str | None:
    text = str(value or "").strip()
    return text if re.match(r"https?://\S+$", text) else None


def _check_broken(event: Component) -> None:
    errors = getattr(event, "errors", [])
    if errors:
        prop, message = errors[0]
        raise InvalidValue(f"{_name(event)}: {prop}: {message}")


def _plan_event(master: Component, overrides: list[Component], settings: Settings,
                now: datetime) -> ImportPlan:
    _check_broken(master)
    start = _zoned(master, "dtstart")
    wall = start.replace(tzinfo=None)
    zone = start.tzinfo
    assert isinstance(zone, ZoneInfo)
    if is_nonexistent(wall, zone) or is_ambiguous(wall, zone):
        raise InvalidValue(f"{_name(master)}: its start {wall} does not exist or happens twice "
                           f"in {zone.key}")
    rules = master.get("rrule")
    if isinstance(rules, list):
        raise InvalidRecurrence(f"{_name(master)}: has {len(rules)} RRULEs; a call has one")
    if "rdate" in master:
        raise InvalidRecurrence(f"{_name(master)}: RDATE is not supported; add those dates as "
                                "calls of their own")
    try:
        rrule = normalize_rrule(rules.to_ical().decode(), start) if rules is not None else None
    except (InvalidRecurrence, InvalidValue) as e:
        raise type(e)(f"{_name(master)}: {e}") from e
    minutes = _duration(master, start)
    title = " ".join(str(master.get("summary", "")).split()) or "Imported call"
    call = Call(
        uid=str(master.get("uid") or "").strip() or f"{slugify(title)}-{to_utc(start):%Y%m%dT%H%M}",
        slug="", title=inputs.title(title), description=str(master.get("description", "")).strip(),
        timezone=zone.key, start_local=wall.strftime("%Y-%m-%dT%H:%M:%S"),
        duration_minutes=minutes, rrule=rrule, register_url=_url(master.get("url")),
        join_url=_url(master.get("location")), language=settings.calls.default_language,
        created_at=now, updated_at=now,
    )
    series = Series(start=start, duration=timedelta(minutes=minutes), rrule=rrule)
    planned = ImportPlan(call=call)
    exdates = master.get("exdate")
    for prop in exdates if isinstance(exdates, list) else [exdates] if exdates else []:
        for value in prop.dts:
            original = _as_instant(value.dt, zone, master)
            _must_be_occurrence(series, original, master, "EXDATE")
            planned.changes.append(Change(original=original, cancelled=True))
    for override in overrides:
        _check_broken(override)
        original = to_utc(_zoned(override, "recurrence-id"))
        _must_be_occurrence(series, original, master, "RECURRENCE-ID")
        if str(override.get("status", "")).upper() == "CANCELLED":
            planned.changes.append(Change(original=original, cancelled=True))
            continue
        new_start = to_utc(_zoned(override, "dtstart"))
        new_minutes = _duration(override, new_start)
        planned.changes.append(Change(
            original=original, start=new_start,
            duration=timedelta(minutes=new_minutes) if new_minutes != minutes else None))
    return planned


def _as_instant(value: datetime | date, zone: ZoneInfo, event: Component) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidValue(f"EXDATE {value} is a whole day")
    within_years(value, what=f"{_name(event)}: EXDATE")
    return to_utc(value if value.tzinfo else value.replace(tzinfo=zone))


def _must_be_occurrence(series: Series, original: datetime, event: Component, what: str) -> None:
    found = occurrences(series, {}, start=original, count=1)
    if not found or found[0].id != original:
        raise InvalidValue(f"{_name(event)}: {what} {original:%Y-%m-%d %H:%MZ} is not one of its "
                           "occurrences")


def plan_import(calendar: Calendar, settings: Settings, now: datetime) -> list[ImportPlan]:
    """Every series and one-off of `calendar` as the call it would become, all checked;
    nothing is stored."""
    events = list(calendar.walk("VEVENT"))
    if len(events) > MAX_EVENTS:
        raise ImportFailed(f"{len(events)} events is more than this imports ({MAX_EVENTS})")
    masters = [e for e in events if "recurrence-id" not in e]
    by_uid: dict[str, list[Component]] = {}
    for event in events:
        if "recurrence-id" in event:
            by_uid.setdefault(str(event.get("uid")), []).append(event)
    planned = []
    for master in masters:
        if str(master.get("status", "")).upper() == "CANCELLED":
            continue  # a cancelled series is nothing to import
        planned.append(_plan_event(master, by_uid.pop(str(master.get("uid")), []), settings, now))
    for uid, orphans in by_uid.items():
        raise InvalidValue(f"{_name(orphans[0])}: overrides UID {uid}, which has no series "
                           "in this file")
    if not planned:
        raise ImportFailed("the file has no events to import")
    return planned


def store(session: Session, planned: Iterable[ImportPlan], *, now: datetime) -> list[Call]:
    """Insert every planned call in one transaction, or none."""
    taken = set(session.exec(select(Call.slug)).all())
    known = {uid: slug for uid, slug in session.exec(select(Call.uid, Call.slug)).all()}
    stored = []
    for item in planned:
        call = item.call
        if call.uid in known:
            raise ImportFailed(f"{_name_of(call)} (UID {call.uid}) was already imported as "
                               f"{known[call.uid]!r}; delete that call first")
        call.slug = _unique_slug(call.title, taken)
        session.add(call)
        session.flush()
        assert call.id is not None
        for change in item.changes:
            session.add(OccurrenceChange(
                call_id=call.id, original_start=change.original, cancelled=change.cancelled,
                new_start=change.start,
                new_duration_minutes=int(change.duration.total_seconds() // 60)
                if change.duration else None,
                changed_at=now))
        stored.append(call)
    session.commit()
    return stored


def _name_of(call: Call) -> str:
    return f"event {call.title!r}"


def _unique_slug(title: str, taken: set[str]) -> str:
    base = slugify(title, max_length=90, word_boundary=True) or "imported-call"
    if base == "all":
        base = "all-calls"
    slug, number = base, 2
    while slug in taken:
        slug, number = f"{base}-{number}", number + 1
    if not SLUG.fullmatch(slug):
        raise InvalidValue(f"cannot make a slug from {title!r}")
    taken.add(slug)
    return slug


def import_file(session: Session, settings: Settings, path: Path, *, now: datetime,
                dry_run: bool = False) -> list[ImportPlan]:
    planned = plan_import(read_calendar(path), settings, now)
    if not dry_run:
        try:
            store(session, planned, now=now)
        except Exception:
            session.rollback()
            raise
    return planned
