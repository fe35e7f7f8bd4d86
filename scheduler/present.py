"""Calls and occurrences as JSON-ready dicts and as rich tables, for the CLI to print."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table
from sqlmodel import Session, col, select

from scheduler.config import Settings
from scheduler.core.recurrence import Occurrence, Status
from scheduler.core.timetable import ZoneRow
from scheduler.errors import InvalidValue, reason
from scheduler.importer import ImportResult
from scheduler.store.calls import (
    all_changes,
    display_zones,
    first_upcoming,
    list_calls,
    series_of,
)
from scheduler.store.models import Call, Delivery, DeliveryStatus

if TYPE_CHECKING:
    from pathlib import Path

    from scheduler.delivery.feeds import BuildResult
    from scheduler.delivery.render import Message
    from scheduler.delivery.sender import PassReport
    from scheduler.doctor import Check
    from scheduler.organizer import OccurrenceDone, Owed
    from scheduler.store.backup import Backup


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z: 2018-11-13T15:00:00Z."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat()[:-6] + "Z"


@dataclass(frozen=True, kw_only=True)
class Listed:
    """A call in a listing: its next occurrence, or why it cannot be served."""

    call: Call
    next: Occurrence | None
    error: str | None = None
    agendas: Mapping[datetime, str] = field(default_factory=dict)  # by original start


def listing(session: Session, now: datetime) -> list[Listed]:
    """Every call with its next occurrence (every call's changes read in one query). A stored
    call that cannot be served (a row an older version stored: a start in the year 9999, a
    rule that repeats within the hour) is listed with its error, not dropped, and does not
    stop the list."""
    rows = []
    changes = all_changes(session)
    for call in list_calls(session):
        try:
            next_one = first_upcoming(series_of(call), changes.get(call.id or 0, {}), now)
            if next_one is not None:  # its local times, too, must be within reach
                next_one.local_start, next_one.local_end  # noqa: B018
        except Exception as e:  # whatever one stored call raises must not hide the others
            rows.append(Listed(call=call, next=None, error=reason(e)))
            continue
        found = changes.get(call.id or 0, {})
        rows.append(Listed(call=call, next=next_one, agendas={
            original: c.agenda for original, c in found.items() if c.agenda is not None}))
    return rows


def call_dict(call: Call, settings: Settings, next_one: Occurrence | None = None, *,
              error: str | None = None,
              agendas: Mapping[datetime, str] | None = None) -> dict[str, Any]:
    """A call's fields, and the `agendas` of its occurrences (by original start; none if not
    given).
    With an `error` (see `listing`), the start is the stored wall time, as text, and there is
    no UTC start and no next occurrence."""
    if error is None:
        start = series_of(call).start
        start_text, start_utc = start.isoformat(), iso_utc(start)
    else:
        start_text, start_utc, next_one = call.start_local, None, None
    return {
        "slug": call.slug,
        "uid": call.uid,
        "title": call.title,
        "description": call.description,
        "timezone": call.timezone,
        "start": start_text,
        "start_utc": start_utc,
        "duration": call.duration_minutes,
        "rrule": call.rrule,
        "register_url": call.register_url,
        "join_url": call.join_url,
        "forum_topic": call.forum_topic,
        "language": call.language,
        "zones": display_zones(call, settings),
        "zones_from_config": not call.zones,
        "sequence": call.sequence,
        "next": occurrence_dict(next_one) if next_one else None,
        "created_at": iso_utc(call.created_at),
        "updated_at": iso_utc(call.updated_at),
        "error": error,
        "agendas": [{"id": iso_utc(original), "agenda": text}
                    for original, text in sorted((agendas or {}).items())],
    }


def occurrence_dict(occurrence: Occurrence) -> dict[str, Any]:
    local_start = occurrence.local_start.isoformat()
    return {
        "id": iso_utc(occurrence.id),
        "start": local_start,
        "end": occurrence.local_end.isoformat(),
        "start_utc": iso_utc(occurrence.start),
        "end_utc": iso_utc(occurrence.end),
        "timezone": occurrence.zone.key,
        "status": occurrence.status.value,
        "original_start": (local_start if occurrence.id == occurrence.start
                           else occurrence.original_local.isoformat()),
        "agenda": occurrence.agenda,
    }


def _local(moment: datetime) -> str:
    return f"{moment:%a %Y-%m-%d %H:%M} {moment.tzname()}"


def calls_table(calls: Sequence[Listed | tuple[Call, Occurrence | None]]) -> Table:
    table = Table(box=None, pad_edge=False)
    table.add_column("slug", no_wrap=True)
    for name in ("title", "schedule", "next"):
        table.add_column(name)
    for row in calls:
        listed = row if isinstance(row, Listed) else Listed(call=row[0], next=row[1])
        call, next_one = listed.call, listed.next
        if listed.error is not None:
            table.add_row(call.slug, call.title, f"{call.start_local[11:16]} {call.timezone}, "
                          f"{call.rrule or 'once'}", f"cannot be served: {listed.error}")
            continue
        schedule = f"{series_of(call).start:%H:%M} {call.timezone}, {call.rrule or 'once'}"
        table.add_row(call.slug, call.title, schedule, _local(next_one.local_start)
                      if next_one else "-")
    return table


def call_table(call: Call, settings: Settings, next_one: Occurrence | None,
               agendas: Mapping[datetime, str] | None = None) -> Table:
    """A call's fields; with `agendas`, the dates that have one, and the next occurrence's."""
    table = Table(show_header=False, box=None, pad_edge=False)
    series = series_of(call)
    rows = [
        ("slug", call.slug), ("title", call.title), ("description", call.description or "-"),
        ("first start", f"{_local(series.start)} ({iso_utc(series.start)})"),
        ("duration", f"{call.duration_minutes} min"), ("repeats", call.rrule or "once"),
        ("register", call.register_url or "-"), ("join", call.join_url or "-"),
        ("forum topic", str(call.forum_topic or "-")), ("language", call.language),
        ("zones", ", ".join(display_zones(call, settings))
         + (" (config default)" if not call.zones else "")),
        ("next", f"{_local(next_one.local_start)} ({iso_utc(next_one.start)})"
         if next_one else "-"),
        ("sequence", str(call.sequence)),
    ]
    if agendas is not None:
        rows.insert(-1, ("agendas", ", ".join(f"{o.astimezone(series.zone):%Y-%m-%d}"
                                              for o in sorted(agendas)) or "-"))
        if next_one is not None and next_one.agenda is not None:
            rows.insert(-2, ("next agenda", next_one.agenda))
    for name, value in rows:
        table.add_row(name, value)
    return table


def occurrences_table(found: list[Occurrence]) -> Table:
    table = Table("id (original start)", "local start", "UTC", "status", box=None,
                  pad_edge=False)
    for o in found:
        status = o.status.value
        if o.status is Status.MOVED:
            status += f" (from {o.original_local:%a %Y-%m-%d %H:%M})"
        if o.agenda is not None:
            status += ", with its agenda"
        table.add_row(iso_utc(o.id), _local(o.local_start), f"{o.start:%Y-%m-%d %H:%M}",
                      status, style="dim" if o.status is Status.CANCELLED else None)
    return table


def zone_table(rows: list[ZoneRow]) -> Table:
    table = Table("city", "time", "date", "offset", "zone", box=None, pad_edge=False)
    for row in rows:
        table.add_row(row.label, row.time, row.date + (" (another day)" if row.other_day else ""),
                      row.offset, row.zone)
    return table


def dict_table(rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(*columns, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


def deliveries(session: Session, status: str | None) -> list[dict[str, Any]]:
    if status is not None and status not in list(DeliveryStatus):
        raise InvalidValue(f"unknown status {status!r}; choose one of "
                           f"{', '.join(DeliveryStatus)}")
    slugs = {c.id: c.slug for c in session.exec(select(Call)).all()}
    query = select(Delivery).order_by(col(Delivery.due_at), col(Delivery.id))
    if status is not None:
        query = query.where(Delivery.status == status)
    return [{"call": slugs.get(d.call_id, "?"), "occurrence_id": iso_utc(d.occurrence_id),
             "rule": d.rule, "channel": d.channel, "recipient": d.recipient,
             "status": d.status, "due": iso_utc(d.due_at), "expires": iso_utc(d.expires_at),
             "attempts": d.attempts, "last_error": d.last_error,
             "sent_at": iso_utc(d.sent_at) if d.sent_at else None,
             "message_id": d.message_id} for d in session.exec(query).all()]


def upcoming(planned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`planning.upcoming`'s rows with their moments as UTC text."""
    return [{**row, **{key: iso_utc(row[key]) for key in ("occurrence_id", "due", "expires")}}
            for row in planned]


def delivery_summary(rows: list[dict[str, Any]]) -> list[str]:
    """One line per occurrence: how many sent, pending, failed, missed."""
    by_occurrence: dict[tuple[str, str], Counter[str]] = {}
    for row in rows:
        by_occurrence.setdefault((row["call"], row["occurrence_id"]), Counter())[row["status"]] += 1
    return [f"{call} {occurrence}: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            for (call, occurrence), counts in sorted(by_occurrence.items())]


# --- what a command did, as JSON (`--json`; the shapes are listed in the README)


def owed_dict(owed: Owed) -> dict[str, Any]:
    """What a stored change did after it was stored: the late notice's messages (0: none),
    the invited who were sent the calendar update, and those it failed for ("address:
    reason")."""
    return {"notice": owed.notice, "updates_sent": list(owed.updates.sent),
            "updates_failed": list(owed.updates.failed)}


def occurrence_done_dict(done: OccurrenceDone) -> dict[str, Any]:
    """An occurrence moved, cancelled or restored, or its agenda set or cleared (`changed`
    false: it already was)."""
    return {"call": done.call.slug, "changed": done.changed,
            "occurrence": occurrence_dict(done.occurrence), **owed_dict(done.owed)}


def feeds_dict(result: BuildResult, folder: Path) -> dict[str, Any]:
    return {"folder": str(folder), "written": [str(p) for p in result.written],
            "removed": [str(p) for p in result.removed], "unchanged": result.unchanged,
            "skipped": [{"slug": s.slug, "reason": s.reason} for s in result.skipped]}


def pass_dict(report: PassReport) -> dict[str, Any]:
    """One planning and sending pass: queued per rule, expired, and each outcome's count."""
    return {"planned": dict(report.planned), "expired": report.expired,
            "outcomes": {str(k): v for k, v in sorted(report.outcomes.items())},
            "failed": report.failed, "to_retry": report.to_retry}


def backup_dict(done: Backup) -> dict[str, Any]:
    return {"source": str(done.source), "target": str(done.target), "schema": done.revision,
            "secret": str(done.secret) if done.secret is not None else None}


def message_dict(message: Message) -> dict[str, Any]:
    """A rendered message: a forum post has only its Markdown `text`."""
    return {"subject": message.subject, "text": message.text, "html": message.html}


def check_dict(check: Check) -> dict[str, Any]:
    return {"name": check.name, "ok": check.ok, "detail": check.detail}


def import_lines(result: ImportResult, *, dry_run: bool) -> list[str]:
    """What an import did (or, in a dry run, would do): a line per call with its notes
    indented under it, a line per event skipped with its reason, the file's notes, and, when
    anything was skipped, the counts."""
    verb = "would import" if dry_run else "imported"
    lines = []
    for item in result:
        moved = sum(1 for c in item.changes if c.reschedules and not c.cancelled)
        cancelled = sum(1 for c in item.changes if c.cancelled)
        agendas = sum(1 for c in item.changes if c.agenda is not None)
        call = item.call
        lines.append(f"{verb} {call.slug or call.title}: {call.start_local[:16]} "
                     f"{call.timezone}, {call.rrule or 'once'} ({moved} moved, "
                     f"{cancelled} cancelled" + (f", {agendas} with an agenda of their own"
                                                 if agendas else "") + ")")
        lines.extend(f"  note: {note}" for note in item.notes)
    lines.extend(f"skipped {skipped}" for skipped in result.skipped)
    lines.extend(f"note: {note}" for note in result.notes)
    if result.skipped:
        lines.append(f"{len(result)} {'to import' if dry_run else 'imported'}, "
                     f"{len(result.skipped)} skipped")
    return lines


def import_dict(result: ImportResult, *, dry_run: bool) -> dict[str, Any]:
    """`import_lines` as JSON: the calls, what was skipped and why, the file's notes."""
    return {
        "dry_run": dry_run,
        "imported": [{
            "slug": item.call.slug or None, "uid": item.call.uid, "title": item.call.title,
            "timezone": item.call.timezone, "start": item.call.start_local,
            "rrule": item.call.rrule, "duration": item.call.duration_minutes,
            "moved": sum(1 for c in item.changes if c.reschedules and not c.cancelled),
            "cancelled": sum(1 for c in item.changes if c.cancelled),
            "agendas": sum(1 for c in item.changes if c.agenda is not None),
            "line": item.line, "notes": item.notes,
        } for item in result],
        "skipped": [{"what": s.what, "line": s.line, "reason": s.reason}
                    for s in result.skipped],
        "notes": result.notes,
    }
