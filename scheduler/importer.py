"""`coalition import FILE`: the events of an .ics file that can be calls, as calls.

The file is read forgivingly (`scheduler.core.icsread`: a byte-order mark, any line ending,
folded lines); one whose structure cannot be known (cut off before END:VCALENDAR, say), or
that is too large, is refused in one line naming it. Each event then becomes a call's plan
(`scheduler.core.icsevent`, which writes down how times, rules, EXDATEs and RDATEs are read),
or is skipped with its reason: an all-day or floating event, a cancelled one, one whose zone,
times, rule or length cannot be used, one already imported (by UID), and what is not an event
(a to-do, a journal entry). The same event twice (one UID and RECURRENCE-ID) is one event when
the copies agree; otherwise the copy with the highest SEQUENCE, then LAST-MODIFIED, is taken,
and when those tie it is skipped.

The calls are stored in one transaction, or none. With `strict`, any event that would be
skipped refuses the whole file instead; a file with nothing to import is refused too
(`NothingToImport`, which carries what was skipped, and why).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from slugify import slugify
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from scheduler.config import Settings
from scheduler.core import icsread
from scheduler.core.icsevent import (
    CalendarReader,
    ImportPlan,
    NewCall,
    name_of,
    named,
    one_line,
    shown,
    uid_of,
)
from scheduler.core.icsread import Component
from scheduler.errors import SchedulerError
from scheduler.store.calls import SLUG
from scheduler.store.models import Call, OccurrenceAgenda, OccurrenceChange

__all__ = ["ImportFailed", "ImportPlan", "ImportResult", "NewCall", "NothingToImport", "Skipped",
           "import_file", "plan_import", "read_calendar", "store"]

MAX_BYTES = 10 * 1024 * 1024
MAX_EVENTS = 10_000
_KINDS = {"VTODO": "to-do", "VJOURNAL": "journal entry", "VFREEBUSY": "free/busy block",
          "VAVAILABILITY": "availability"}
_CALL_TABLE = Call.__table__  # type: ignore[attr-defined]
_CHANGE_TABLE = OccurrenceChange.__table__  # type: ignore[attr-defined]
_AGENDA_TABLE = OccurrenceAgenda.__table__  # type: ignore[attr-defined]


class ImportFailed(SchedulerError):
    """The file cannot be imported; nothing was stored."""


class NothingToImport(ImportFailed):
    """The file imports nothing: no event of it can be a call, or (strict) some cannot;
    `result.skipped` says why, event by event."""

    def __init__(self, message: str, result: ImportResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """An event (or other component) of the file that is not imported, and why."""

    what: str  # "event 'Holiday'"
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.what} (line {self.line}): {self.reason}"


class ImportResult(list[ImportPlan]):
    """The calls of a file (a list of plans), with the events skipped and the file's notes."""

    def __init__(self, plans: Iterable[ImportPlan] = (), *, skipped: Iterable[Skipped] = (),
                 notes: Iterable[str] = ()) -> None:
        super().__init__(plans)
        self.skipped = list(skipped)
        self.notes = list(notes)


# --- the file


def read_calendar(data: bytes, *, source: str) -> list[Component]:
    """The calendars in `data`, what the file `source` holds (named in messages), refusing
    what could hurt before parsing it."""
    if len(data) > MAX_BYTES:
        raise ImportFailed(f"{source}: more than this imports ({MAX_BYTES // 2**20} MB)")
    try:
        return icsread.parse(data)
    except icsread.UnreadableFile as e:
        where = f"{source} line {e.line}" if e.line is not None else source
        raise ImportFailed(f"{where}: {e.detail}") from e


def import_file(session: Session, settings: Settings, data: bytes, *, source: str,
                now: datetime, dry_run: bool = False, strict: bool = False) -> ImportResult:
    """Plan every event of the file `source` (`data`, what it holds), then store the calls in
    one transaction (not in a dry run). `strict`: refuse the file when any event would be
    skipped."""
    calendars = read_calendar(data, source=source)
    known = {uid: slug for uid, slug in session.exec(select(Call.uid, Call.slug)).all()}
    result = plan_import(calendars, settings, now, known=known, source=source)
    if strict and result.skipped:
        count = len(result.skipped)
        raise NothingToImport(f"{source}: nothing imported (strict): {count} of its events "
                              f"cannot be calls; the first: {result.skipped[0]}", result)
    if not result:
        raise NothingToImport(_nothing(source, result), result)
    if not dry_run:
        try:
            store(session, result, now=now, source=source)
        except Exception:
            session.rollback()
            raise
    return result


def _nothing(path: str, result: ImportResult) -> str:
    if not result.skipped:
        return f"{path}: the calendar holds no events"
    if len(result.skipped) == 1:
        first = result.skipped[0]
        return f"{first.what}: {first.reason} ({path} line {first.line}; nothing imported)"
    return (f"{path}: nothing to import: none of its {len(result.skipped)} events can be a "
            f"call (the first: {result.skipped[0]})")


# --- events to plans


def plan_import(calendars: Sequence[Component], settings: Settings, now: datetime, *,
                known: Mapping[str, str] | None = None,
                source: str = "the file") -> ImportResult:
    """Every event of `calendars` as the call it would become, or skipped with its reason;
    nothing is stored. `known`: UIDs already stored, with their slugs; `source` names the
    file in an error."""
    result = ImportResult()
    events: list[_Event] = []
    for calendar in calendars:
        reader = CalendarReader(calendar)
        for component in calendar.components:
            if component.name == "VEVENT":
                events.append(_Event(component, reader))
            elif component.name not in ("VTIMEZONE",):
                kind = _KINDS.get(component.name, f"{component.name} component")
                result.skipped.append(Skipped(
                    what=named(kind, component), line=component.line,
                    reason="not an event: only events (VEVENT) become calls"))
    if len(events) > MAX_EVENTS:
        raise ImportFailed(f"{source}: {len(events)} events is more than this imports "
                           f"({MAX_EVENTS})")
    masters, overrides = _unique(events, result)
    taken = dict(known or {})
    for event in masters:
        try:
            plan = event.reader.plan(event.component, overrides.pop(event.uid, []),
                                     language=settings.calls.default_language)
        except (SchedulerError, ValueError, OverflowError, KeyError, IndexError, TypeError) as e:
            # Unusable, or what the rule's or zone's checks raise; dateutil raises ValueError,
            # KeyError and IndexError for rules it cannot expand
            result.skipped.append(Skipped(what=event.what, line=event.line, reason=one_line(e)))
            continue
        uid = plan.call.uid
        if uid in taken:
            slug = taken[uid]
            reason = (f"was already imported as {slug!r} (UID {shown(uid)}); delete that call "
                      "first to import it again" if slug else
                      f"has the same UID {shown(uid)} as an event before it")
            result.skipped.append(Skipped(what=event.what, line=event.line, reason=reason))
            continue
        taken[uid] = ""
        result.append(plan)
    for uid, orphans in overrides.items():
        for orphan in orphans:
            result.skipped.append(Skipped(
                what=name_of(orphan), line=orphan.line,
                reason=f"overrides UID {shown(uid)}, which has no series in this file"))
    result.skipped.sort(key=lambda s: s.line)
    return result


class _Event:
    """A VEVENT with what grouping needs: its UID, which occurrence it overrides, its copy."""

    def __init__(self, component: Component, reader: CalendarReader) -> None:
        self.component = component
        self.reader = reader
        self.line = component.line
        self.uid = uid_of(component)
        rid = component.first("RECURRENCE-ID")
        self.rid = (rid.value.strip().upper(), rid.params.get("TZID", "")) if rid else None

    @property
    def what(self) -> str:
        return name_of(self.component)

    def copy(self) -> tuple[object, ...]:
        """What makes two copies the same: every property but DTSTAMP (the export's time)."""
        return tuple(sorted((p.name, tuple(sorted(p.params.items())), p.value)
                            for p in self.component.properties if p.name != "DTSTAMP"))

    def rank(self) -> tuple[int, datetime]:
        """SEQUENCE, then LAST-MODIFIED: which of two copies is newer."""
        sequence = self.component.first("SEQUENCE")
        modified = self.component.first("LAST-MODIFIED")
        try:
            number = int(sequence.value.strip()) if sequence else 0
        except ValueError:
            number = 0
        try:
            when = icsread.moment(modified.value) if modified else None
        except ValueError:
            when = None
        if not isinstance(when, datetime):
            return number, datetime.min.replace(tzinfo=UTC)
        return number, when if when.tzinfo else when.replace(tzinfo=UTC)


def _unique(events: list[_Event], result: ImportResult,
            ) -> tuple[list[_Event], dict[str, list[Component]]]:
    """The series and one-offs, and the overrides by UID: unreadable events skipped, and each
    event that the file holds several times taken once (see the module docstring)."""
    groups: dict[tuple[object, ...], list[_Event]] = {}
    for event in events:
        if event.component.problems:
            problems = event.component.problems
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            result.skipped.append(Skipped(what=event.what, line=event.line,
                                          reason=f"{problems[0]}{more}"))
            continue
        key = (event.uid, event.rid) if event.uid else ("", event.copy())
        groups.setdefault(key, []).append(event)
    masters: list[_Event] = []
    overrides: dict[str, list[Component]] = {}
    lost: set[str] = set()
    for copies in groups.values():
        chosen = _choose(copies, result)
        if chosen is None:
            if copies[0].rid is None:
                lost.add(copies[0].uid)
            continue
        if chosen.rid is None:
            masters.append(chosen)
        else:
            overrides.setdefault(chosen.uid, []).append(chosen.component)
    masters.sort(key=lambda e: e.line)
    for uid in lost:  # their series was skipped: so are its overrides, with it
        overrides.pop(uid, None)
    return masters, overrides


def _choose(copies: list[_Event], result: ImportResult) -> _Event | None:
    if len(copies) == 1:
        return copies[0]
    first = copies[0]
    lines = ", ".join(str(c.line) for c in copies)
    if len({c.copy() for c in copies}) == 1:
        result.notes.append(f"{first.what} (lines {lines}) is in the file {len(copies)} times, "
                            "the same each time: imported once")
        return first
    ranked = sorted(copies, key=lambda c: c.rank(), reverse=True)
    if ranked[0].rank() == ranked[1].rank():
        result.skipped.append(Skipped(
            what=first.what, line=first.line,
            reason=f"UID {shown(first.uid)} is in the file {len(copies)} times (lines "
                   f"{lines}) with different contents, and no SEQUENCE or LAST-MODIFIED says "
                   "which is the newer"))
        return None
    result.notes.append(f"{first.what}: UID {shown(first.uid)} is in the file {len(copies)} "
                        f"times (lines {lines}) with different contents: the newest, line "
                        f"{ranked[0].line}, is taken")
    return ranked[0]


# --- storing


def store(session: Session, planned: Sequence[ImportPlan], *, now: datetime,
          source: str = "the file") -> None:
    """Insert every planned call and its changes in one transaction, or none: each call gets
    a free slug (the title's, numbered when taken). `source` names the file in an error."""
    taken = set(session.exec(select(Call.slug)).all())
    rows = []
    for item in planned:
        call = item.call
        call.slug = _unique_slug(call.title, taken)
        rows.append({
            "uid": call.uid, "slug": call.slug, "title": call.title,
            "description": call.description, "timezone": call.timezone,
            "start_local": call.start_local, "duration_minutes": call.duration_minutes,
            "rrule": call.rrule, "register_url": call.register_url, "join_url": call.join_url,
            "forum_topic": None, "language": call.language, "zones": None,
            "sequence": 0, "created_at": now, "updated_at": now,
        })
    try:
        if rows:
            session.execute(insert(_CALL_TABLE), rows)
        with_changes = [item for item in planned if item.changes]
        if with_changes:
            ids = {uid: id_ for uid, id_ in session.exec(select(Call.uid, Call.id)).all()}
            moves = [{"call_id": ids[item.call.uid], "original_start": change.original,
                      "cancelled": change.cancelled, "new_start": change.start,
                      "new_duration_minutes": int(change.duration.total_seconds() // 60)
                      if change.duration else None, "changed_at": now}
                     for item in with_changes for change in item.changes if change.reschedules]
            if moves:
                session.execute(insert(_CHANGE_TABLE), moves)
            agendas = [{"call_id": ids[item.call.uid], "original_start": change.original,
                        "text": change.agenda, "changed_at": now}
                       for item in with_changes for change in item.changes
                       if change.agenda is not None]  # an override's own DESCRIPTION
            if agendas:
                session.execute(insert(_AGENDA_TABLE), agendas)
        session.commit()
    except IntegrityError as e:
        session.rollback()
        raise ImportFailed(f"{source}: nothing was stored: the calls changed while it was "
                           "imported (another import at the same time?); run it again") from e


def _unique_slug(title: str, taken: set[str]) -> str:
    base = slugify(title, max_length=90, word_boundary=True) or "imported-call"
    if base == "all":
        base = "all-calls"
    slug, number = base, 2
    while slug in taken:
        slug, number = f"{base}-{number}", number + 1
    if not SLUG.fullmatch(slug):
        slug = f"imported-call-{len(taken) + 1}"
        while slug in taken:
            slug += "-1"
    taken.add(slug)
    return slug
