"""What organizers do to calls: add, edit, delete, and move, cancel or restore one occurrence
(an occurrence's agenda: `scheduler.store.agendas`).

Each operation checks all of its input before it writes, and writes in one transaction, so a
refused command leaves nothing behind. `now` is a parameter: the caller owns the clock. Every
change raises the call's `sequence`, which calendar invitations use to order updates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from slugify import slugify
from sqlmodel import Session, col, select

from scheduler.config import Settings
from scheduler.core import inputs
from scheduler.core.recurrence import (
    Change,
    Occurrence,
    Series,
    Status,
    find_original,
    normalize_rrule,
    occurrence_at,
    occurrences,
    rekey_changes,
)
from scheduler.core.zones import get_zone, localize_strict, resolve_recurring, to_utc, within_years
from scheduler.errors import (
    Conflict,
    InvalidRecurrence,
    InvalidValue,
    NotFound,
    SchedulerError,
    reason,
)
from scheduler.store.models import Call, OccurrenceAgenda, OccurrenceChange

log = logging.getLogger(__name__)
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
DEFAULT_COUNT = 10


@dataclass(frozen=True, kw_only=True)
class CallInput:
    """Fields as an organizer gives them; None means "not given".

    For `edit`, an empty string clears a text field ("" rrule makes a one-off, "" zones
    follows config.toml again) and forum_topic 0 removes the topic.
    """

    title: str | None = None
    slug: str | None = None
    description: str | None = None
    timezone: str | None = None
    start: str | None = None
    duration: int | None = None
    rrule: str | None = None
    register_url: str | None = None
    join_url: str | None = None
    forum_topic: int | None = None
    language: str | None = None
    zones: str | None = None

    def given(self) -> set[str]:
        return {f.name for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, kw_only=True)
class OccurrenceResult:
    call: Call
    occurrence: Occurrence
    changed: bool


# --- reading


def get_call(session: Session, slug: str) -> Call:
    call = session.exec(select(Call).where(Call.slug == slug)).first()
    if call is None:
        known = session.exec(select(Call.slug).order_by(Call.slug)).all()
        hint = f"; known calls: {', '.join(known)}" if known else "; there are no calls yet"
        raise NotFound(f"no call {slug!r}{hint}")
    return call


def list_calls(session: Session) -> list[Call]:
    return list(session.exec(select(Call).order_by(Call.slug)).all())


def zone_of(call: Call) -> ZoneInfo:
    return get_zone(call.timezone)


_SERIES: dict[tuple[str, str, int, str | None], Series] = {}


def series_of(call: Call) -> Series:
    """The stored call's schedule. A row this version would not store (written by an older
    one, or by hand: a start in the year 9999) raises a `SchedulerError` naming the call.
    Kept by the fields it is made of (a listing of 10,000 calls asks twice for each)."""
    key = (call.start_local, call.timezone, call.duration_minutes, call.rrule)
    found = _SERIES.get(key)
    if found is None:
        found = _series_of(call)
        if len(_SERIES) >= 20_000:
            _SERIES.clear()
        _SERIES[key] = found
    return found


def _series_of(call: Call) -> Series:
    try:
        wall = datetime.fromisoformat(call.start_local)
    except ValueError as e:
        raise InvalidValue(f"call {call.slug}: its start {call.start_local!r} is not a date "
                           "and time") from e
    within_years(wall, what=f"call {call.slug}'s start")
    start = resolve_recurring(wall, zone_of(call))
    try:
        return Series(start=start, duration=timedelta(minutes=call.duration_minutes),
                      rrule=call.rrule)
    except InvalidRecurrence as e:  # a rule no loop could finish: refused as it is read
        raise InvalidRecurrence(f"call {call.slug}: {e}") from e


_told: set[tuple[str, str, str]] = set()


def skipped(logger: logging.Logger, call: Call, what: str, error: Exception) -> str:
    """Log that `what` ("the feed", "the reminders") of one stored call was left out, and return
    the reason. One warning per call, task and reason in a process: a daemon that meets the
    same bad row at every pass says so once, then at DEBUG."""
    why = reason(error)
    key = (what, call.uid, why)
    level = logging.DEBUG if key in _told else logging.WARNING
    _told.add(key)
    logger.log(level, "%s of call %s left out: %s", what, call.slug, why)
    logger.debug("%s of call %s left out", what, call.slug, exc_info=error)
    return why


def display_zones(call: Call, settings: Settings) -> list[str]:
    return list(call.zones) if call.zones else list(settings.calls.default_zones)


def changes_of(session: Session, call: Call) -> dict[datetime, Change]:
    """The call's changes by original start: moves, cancellations and agendas (each
    `Change` carries its occurrence's agenda, if any)."""
    return _merged(*_stored_changes(session, call))


def _stored_changes(session: Session, call: Call) -> tuple[
        list[OccurrenceChange], list[OccurrenceAgenda]]:
    """The call's rows of moves and cancellations, and of agendas."""
    rows = session.exec(select(OccurrenceChange).where(OccurrenceChange.call_id == call.id)).all()
    agendas = session.exec(select(OccurrenceAgenda).where(
        OccurrenceAgenda.call_id == call.id)).all()
    return list(rows), list(agendas)


def _merged(rows: list[OccurrenceChange],
            agendas: list[OccurrenceAgenda]) -> dict[datetime, Change]:
    found = {row.original_start: _change(row) for row in rows}
    for agenda in agendas:
        _with_agenda(found, agenda)
    return found


def all_changes(session: Session) -> dict[int, dict[datetime, Change]]:
    """Every call's changes, agendas included, in two queries (planning reads them for every
    call at once)."""
    found: dict[int, dict[datetime, Change]] = {}
    for row in session.exec(select(OccurrenceChange)).all():
        found.setdefault(row.call_id, {})[row.original_start] = _change(row)
    for agenda in session.exec(select(OccurrenceAgenda)).all():
        _with_agenda(found.setdefault(agenda.call_id, {}), agenda)
    return found


def _with_agenda(changes: dict[datetime, Change], row: OccurrenceAgenda) -> None:
    original = row.original_start
    change = changes.get(original)
    changes[original] = (Change(original=original, agenda=row.text) if change is None
                         else replace(change, agenda=row.text))


def _change(row: OccurrenceChange) -> Change:
    duration = row.new_duration_minutes
    return Change(
        original=row.original_start, cancelled=row.cancelled, start=row.new_start,
        duration=timedelta(minutes=duration) if duration else None,
    )


def call_occurrences(
    session: Session, call: Call, *, now: datetime, start: str | None = None,
    end: str | None = None, count: int | None = None,
) -> list[Occurrence]:
    """Occurrences from `start` (default: now) through the `end` date, at most `count`.

    Dates are read in the call's anchor zone; `end` is inclusive of its whole day.
    """
    zone = zone_of(call)
    window_start = inputs.window_bound(start, zone, field="--from") if start else to_utc(now)
    window_end = (inputs.window_bound(end, zone, field="--to", end_of_day=True)
                  if end else None)
    if count is not None and count < 1:
        raise InvalidValue(f"--count must be at least 1, got {count}")
    if window_end is not None and window_end <= window_start:
        raise InvalidValue("--to is before --from")
    if window_end is None and count is None:
        count = DEFAULT_COUNT
    return occurrences(series_of(call), changes_of(session, call), start=window_start,
                       end=window_end, count=count)


def next_occurrence(session: Session, call: Call, now: datetime) -> Occurrence | None:
    return first_upcoming(series_of(call), changes_of(session, call), now)


def first_upcoming(series: Series, changes: Mapping[datetime, Change],
             now: datetime) -> Occurrence | None:
    """The first occurrence from `now` on that is not cancelled (among the next five)."""
    if series.rrule is None:  # a one-off: no rule to expand
        only = occurrence_at(series.start, series, changes.get(to_utc(series.start)))
        ahead = only.start >= to_utc(now) and only.status is not Status.CANCELLED
        return only if ahead else None
    found = [o for o in occurrences(series, changes, start=now, count=5)
             if o.status is not Status.CANCELLED]
    return found[0] if found else None


# --- writing the call itself


def add_call(session: Session, settings: Settings, data: CallInput, *, now: datetime) -> Call:
    missing = [name for name in ("title", "timezone", "start") if name not in data.given()]
    if missing:
        raise InvalidValue(f"a new call needs {', '.join('--' + m for m in missing)}")
    call = Call(
        slug="", title="", timezone="", start_local="", language=settings.calls.default_language,
        duration_minutes=settings.calls.default_duration, created_at=now, updated_at=now,
    )
    _apply(session, settings, call, data)
    session.add(call)
    session.commit()
    session.refresh(call)
    return call


def edit_call(
    session: Session, settings: Settings, slug: str, data: CallInput, *, now: datetime
) -> Call:
    call = get_call(session, slug)
    if not data.given():
        raise InvalidValue("nothing to change: give at least one option, such as --title")
    before = call.model_dump()
    try:
        old_series: Series | None = series_of(call)
    except SchedulerError:
        old_series = None  # a row an older version stored (see series_of): this edit mends it
    _apply(session, settings, call, data, stored=data.start is None)
    if call.model_dump() == before:
        return call  # nothing changed: no new sequence, so calendars see no phantom update
    new_series = series_of(call)
    if new_series != old_series:
        # Without the old schedule, changes are matched by their dates in the new one's zone.
        _rekey(session, call, old_series or new_series, new_series, now)
    call.sequence += 1
    call.updated_at = now
    session.add(call)
    session.commit()
    session.refresh(call)
    return call


def delete_call(session: Session, slug: str) -> Call:
    call = get_call(session, slug)
    rows, agendas = _stored_changes(session, call)
    for row in (*rows, *agendas):
        session.delete(row)
    session.flush()  # the changes first: the database would otherwise cascade under the ORM
    session.delete(call)
    session.commit()
    return call


def _apply(session: Session, settings: Settings, call: Call, data: CallInput, *,
           stored: bool = False) -> None:
    """Check every given field, then set them on `call` (not yet committed). `stored`: the
    start is the one already stored (an edit that does not give --start)."""
    given = data.given()
    if "title" in given:
        call.title = inputs.title(data.title or "")
    if "slug" in given or not call.slug:
        call.slug = _free_slug(session, call, data.slug if "slug" in given else None)
    if data.description is not None:
        call.description = data.description.strip()
    zone = get_zone(data.timezone.strip()) if data.timezone is not None else zone_of(call)
    wall = (inputs.wall_time(data.start, field="--start") if data.start is not None
            else datetime.fromisoformat(call.start_local))
    if stored:
        within_years(wall, what="the call's stored start (give --start to change it)")
    if stored and data.timezone is None:  # not typed: an imported start may lie in a gap
        start = resolve_recurring(wall, zone)
    else:
        start = localize_strict(wall, zone, what="--start")
    rrule = call.rrule if data.rrule is None else (data.rrule.strip() or None)
    if rrule is not None and given & {"rrule", "start", "timezone"}:
        rrule = normalize_rrule(rrule, start, field="--rrule")
    call.timezone, call.rrule = zone.key, rrule
    call.start_local = start.strftime("%Y-%m-%dT%H:%M:%S")
    if data.duration is not None:
        call.duration_minutes = int(inputs.duration(data.duration).total_seconds() // 60)
    if data.register_url is not None:
        call.register_url = (inputs.web_url(data.register_url, field="--register-url")
                             if data.register_url.strip() else None)
    if data.join_url is not None:
        call.join_url = (inputs.web_url(data.join_url, field="--join-url")
                         if data.join_url.strip() else None)
    if data.forum_topic is not None:
        call.forum_topic = inputs.forum_topic(data.forum_topic) if data.forum_topic else None
    if data.language is not None:
        call.language = inputs.language(data.language, settings.calls.languages)
    if data.zones is not None:
        call.zones = inputs.zone_names(data.zones) if data.zones.strip() else None


def _free_slug(session: Session, call: Call, wanted: str | None) -> str:
    slug = wanted.strip() if wanted is not None else slugify(call.title, max_length=100,
                                                             word_boundary=True)
    if not slug:
        raise InvalidValue("the title has no letters or digits to make a slug from; give --slug")
    if slug == "all":
        raise InvalidValue("slug 'all' is taken by the feed of all calls (calendars/all.ics); "
                           "give another with --slug")
    if not SLUG.fullmatch(slug) or len(slug) > 100:
        raise InvalidValue(f"slug {slug!r} must be lowercase letters, digits and single hyphens "
                           "(at most 100 characters)")
    other = session.exec(select(Call).where(Call.slug == slug)).first()
    if other is not None and other.id != call.id:
        raise Conflict(f"a call with slug {slug!r} already exists; give another with --slug")
    return slug


def _rekey(session: Session, call: Call, old: Series, new: Series, now: datetime) -> None:
    """Carry the moves, cancellations and agendas over to the new schedule, by date."""
    rows, agendas = _stored_changes(session, call)
    carried = rekey_changes(old, new, _merged(rows, agendas))
    for row in (*rows, *agendas):
        session.delete(row)
    session.flush()
    for change in carried.values():
        rescheduled = change.without_agenda()
        if rescheduled is not None:
            session.add(_row(call, rescheduled, now))
        if change.agenda is not None:
            assert call.id is not None
            session.add(OccurrenceAgenda(call_id=call.id, original_start=change.original,
                                         text=change.agenda, changed_at=now))


def _row(call: Call, change: Change, now: datetime) -> OccurrenceChange:
    assert call.id is not None
    minutes = int(change.duration.total_seconds() // 60) if change.duration else None
    return OccurrenceChange(
        call_id=call.id, original_start=change.original, cancelled=change.cancelled,
        new_start=change.start, new_duration_minutes=minutes, changed_at=now,
    )


# --- changing one occurrence


def locate(session: Session, call: Call, on: str) -> tuple[datetime, dict[datetime, Change]]:
    """The original start (UTC) of the occurrence an organizer names by its date.

    The date is the occurrence's original date in the anchor zone; failing that, the date a
    moved occurrence now has.
    """
    day = inputs.day_or_wall_time(on, field="--on")
    changes = changes_of(session, call)
    try:
        return to_utc(find_original(series_of(call), day)), changes
    except NotFound as e:
        moved_here = [c.original for c in changes.values()
                      if c.start is not None and _matches(c.start.astimezone(zone_of(call)), day)]
        if len(moved_here) == 1:
            return moved_here[0], changes
        raise NotFound(f"{call.slug}: {e}") from e


def _matches(local: datetime, day: date | datetime) -> bool:
    if isinstance(day, datetime):
        return local.replace(tzinfo=None) == day
    return local.date() == day


def result_of(session: Session, call: Call, original: datetime, changed: bool,
              ) -> OccurrenceResult:
    """The occurrence whose original start is `original`, as it is stored now."""
    occurrence = occurrence_at(original, series_of(call), changes_of(session, call).get(original))
    return OccurrenceResult(call=call, occurrence=occurrence, changed=changed)


def _store(session: Session, call: Call, change: Change | None, original: datetime,
           now: datetime) -> None:
    """Replace the change for `original` (None: restore it), and bump the call's sequence."""
    row = session.exec(select(OccurrenceChange).where(
        OccurrenceChange.call_id == call.id, col(OccurrenceChange.original_start) == original,
    )).first()
    if row is not None:
        session.delete(row)
        session.flush()
    if change is not None:
        session.add(_row(call, change, now))
    call.sequence += 1
    call.updated_at = now
    session.add(call)
    session.commit()
    session.refresh(call)


def move_occurrence(
    session: Session, slug: str, *, on: str, to: str, duration: int | None = None,
    now: datetime,
) -> OccurrenceResult:
    call = get_call(session, slug)
    original, changes = locate(session, call, on)
    if original in changes and changes[original].cancelled:
        day = f"{original.astimezone(zone_of(call)):%Y-%m-%d}"
        raise Conflict(f"{slug}: the occurrence of {day} is cancelled; run `call restore "
                       f"{slug} --on {day}` first, then move it")
    new_start = to_utc(localize_strict(inputs.wall_time(to, field="--to"), zone_of(call),
                                       what="--to"))
    length = inputs.duration(duration) if duration is not None else None
    series = series_of(call)
    for other in occurrences(series, changes, start=new_start, count=1):
        clash = other.id != original and other.status is not Status.CANCELLED
        if other.start == new_start and clash:
            raise Conflict(f"{slug}: the occurrence of {other.original_local:%Y-%m-%d} already "
                           f"starts at {other.local_start:%Y-%m-%d %H:%M}")
    if new_start == original and length in (None, series.duration):
        change = None  # moved back to where it was: that is a restore
    else:
        change = Change(original=original, start=new_start, duration=length)
    current = changes.get(original)
    if (current.without_agenda() if current is not None else None) == change:
        return result_of(session, call, original, changed=False)
    _store(session, call, change, original, now)
    return result_of(session, call, original, changed=True)


def cancel_occurrence(session: Session, slug: str, *, on: str, now: datetime) -> OccurrenceResult:
    call = get_call(session, slug)
    original, changes = locate(session, call, on)
    if original in changes and changes[original].cancelled:
        return result_of(session, call, original, changed=False)
    _store(session, call, Change(original=original, cancelled=True), original, now)
    return result_of(session, call, original, changed=True)


def restore_occurrence(session: Session, slug: str, *, on: str, now: datetime) -> OccurrenceResult:
    call = get_call(session, slug)
    original, changes = locate(session, call, on)
    if original not in changes or not changes[original].reschedules:
        day = f"{original.astimezone(zone_of(call)):%Y-%m-%d}"
        raise Conflict(f"{slug}: nothing to restore: the occurrence of {day} was neither "
                       "moved nor cancelled")
    _store(session, call, None, original, now)
    return result_of(session, call, original, changed=True)
