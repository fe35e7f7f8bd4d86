"""What an organizer's change to a call does, and everything it owes: the one place to ask.

`cli.py` calls these functions, and a web admin page would call the same ones. Each takes the
session, the settings and `now`, makes the change through `scheduler.store.calls` (or the
importer), then does what the change owes, in this order:

* the feeds in calendars/ are rebuilt (even when nothing changed; not for a dry-run import);
* a move or cancellation less than 48 hours ahead queues a late-change notice
  (`scheduler.delivery.notices`), unless members cannot have heard of the occurrence yet (the
  call was added within those 48 hours and nothing about it was sent); a restore does not;
* the people invited to the call get the invitation update it owes (`scheduler.delivery.invites`):
  an edit that raised the sequence updates the series, a move, cancellation or restore updates
  that occurrence, and a deletion cancels the series, one sequence above the call's last.

An occurrence's agenda (set, changed or cleared) rebuilds the feeds and updates that occurrence
for the invited (not while it is cancelled: a REQUEST would bring it back in their calendars).
It is no change of time: no late-change notice, and no new announcement (the reminders still
to go carry the new text).

A change that is refused raises, and nothing is stored. Once the change is stored, it stays:
what it owes then cannot undo it, so a step that fails (calendars/ cannot be written, say)
stops the steps after it and comes back as `Owed.failure`, beside what was done before it. The
caller decides how to tell it (the CLI raises it after the lines that come before it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from sqlmodel import Session

from scheduler import importer
from scheduler.config import Settings
from scheduler.core.recurrence import Occurrence, Status
from scheduler.delivery import feeds, invites, notices
from scheduler.store import agendas, calls
from scheduler.store.models import Call

log = logging.getLogger(__name__)


def _nothing_sent() -> invites.Report:
    return invites.Report(sent=[], failed=[])


@dataclass(frozen=True, kw_only=True)
class Owed:
    """What a stored change did after it was stored, as far as it got."""

    feeds: feeds.BuildResult | None = None  # None: not rebuilt (a dry run, or it failed)
    notice: int = 0  # late-change notice: messages queued, the forum post and one per member
    updates: invites.Report = field(default_factory=_nothing_sent)  # invitation updates
    failure: Exception | None = None  # what stopped the steps after it; the change is stored


@dataclass(frozen=True, kw_only=True)
class CallDone:
    """A call added, edited or deleted (`call` as it was before the delete)."""

    call: Call
    owed: Owed


@dataclass(frozen=True, kw_only=True)
class OccurrenceDone:
    """One occurrence moved, cancelled or restored, or its agenda set or cleared; or found
    already so (`changed` False: nothing stored, and nothing owed but the feeds)."""

    call: Call
    occurrence: Occurrence
    changed: bool
    off_schedule: bool  # it starts or lasts otherwise than the series says
    owed: Owed


@dataclass(frozen=True, kw_only=True)
class ImportDone:
    """The calls of an .ics file, stored (or, in a dry run, only checked)."""

    plans: importer.ImportResult
    owed: Owed


# --- the call itself


def add_call(session: Session, settings: Settings, data: calls.CallInput, *,
             now: datetime) -> CallDone:
    call = calls.add_call(session, settings, data, now=now)
    return CallDone(call=call, owed=_owe(session, settings, call, now=now))


def edit_call(session: Session, settings: Settings, slug: str, data: calls.CallInput, *,
              now: datetime) -> CallDone:
    """An edit that changes nothing keeps the sequence, and owes the invited nothing."""
    sequence = calls.get_call(session, slug).sequence
    call = calls.edit_call(session, settings, slug, data, now=now)
    update = invites.Update.SERIES if call.sequence != sequence else None
    return CallDone(call=call, owed=_owe(session, settings, call, now=now, update=update))


def delete_call(session: Session, settings: Settings, slug: str, *, now: datetime) -> CallDone:
    """The invited are told with the call's messages built before it goes."""
    target = calls.get_call(session, slug)
    target.sequence += 1  # the cancellation must outrank every earlier message
    farewell = invites.prepare_update(session, settings, target, invites.Update.DELETED,
                                      now=now)
    call = calls.delete_call(session, slug)
    return CallDone(call=call, owed=_owe(session, settings, call, now=now, farewell=farewell))


def import_calls(session: Session, settings: Settings, data: bytes, *, source: str,
                 now: datetime, dry_run: bool = False, strict: bool = False) -> ImportDone:
    """Every event of the file `source` (`data`) that can be a call, in one transaction, or
    with `strict` all of them or none; a dry run checks them all and stores nothing."""
    plans = importer.import_file(session, settings, data, source=source, now=now,
                                 dry_run=dry_run, strict=strict)
    owed = Owed() if dry_run else _owe(session, settings, None, now=now)
    return ImportDone(plans=plans, owed=owed)


# --- one occurrence


def move(session: Session, settings: Settings, slug: str, *, on: str, to: str,
         duration: int | None = None, now: datetime) -> OccurrenceDone:
    result = calls.move_occurrence(session, slug, on=on, to=to, duration=duration, now=now)
    return _occurrence_done(session, settings, result, now=now, late=True,
                            update=invites.Update.MOVED)


def cancel(session: Session, settings: Settings, slug: str, *, on: str,
           now: datetime) -> OccurrenceDone:
    result = calls.cancel_occurrence(session, slug, on=on, now=now)
    return _occurrence_done(session, settings, result, now=now, late=True,
                            update=invites.Update.CANCELLED)


def restore(session: Session, settings: Settings, slug: str, *, on: str,
            now: datetime) -> OccurrenceDone:
    result = calls.restore_occurrence(session, slug, on=on, now=now)
    return _occurrence_done(session, settings, result, now=now, late=False,
                            update=invites.Update.RESTORED)


def agenda(session: Session, settings: Settings, slug: str, *, on: str, text: str | None,
           now: datetime, field: str = "the agenda") -> OccurrenceDone:
    """Set (`text`) or clear (None) the agenda of the occurrence on `on`."""
    result = agendas.set_agenda(session, slug, on=on, text=text, now=now, field=field)
    cancelled = result.occurrence.status is Status.CANCELLED
    return _occurrence_done(session, settings, result, now=now, late=False,
                            update=None if cancelled else invites.Update.AGENDA)


def _occurrence_done(session: Session, settings: Settings, result: calls.OccurrenceResult, *,
                     now: datetime, late: bool,
                     update: invites.Update | None) -> OccurrenceDone:
    o = result.occurrence
    if result.changed:
        owed = _owe(session, settings, result.call, now=now, late=o if late else None,
                    update=update, original=o.id)
    else:
        owed = _owe(session, settings, result.call, now=now)
    off = o.start != o.id or o.end - o.start != calls.series_of(result.call).duration
    return OccurrenceDone(call=result.call, occurrence=o, changed=result.changed,
                          off_schedule=off, owed=owed)


# --- what a change owes


def _owe(session: Session, settings: Settings, call: Call | None, *, now: datetime,
         late: Occurrence | None = None, update: invites.Update | None = None,
         original: datetime | None = None,
         farewell: list[EmailMessage] | None = None) -> Owed:
    """Feeds, then the late notice for `late`, then the invitation `update` of `call` (or the
    `farewell` of a deleted call), each only if the one before it succeeded."""
    built: feeds.BuildResult | None = None
    notice = 0
    try:
        built = feeds.build(session, settings)
        if built.written or built.removed:
            log.info("feeds: %d written, %d removed", len(built.written), len(built.removed))
        if late is not None and call is not None:  # to whoever heard of it (notices.queue)
            notice = notices.queue(session, call, late, now=now)
        if update is not None and call is not None:
            pending = invites.prepare_update(session, settings, call, update,
                                             original=original, now=now)
            updates = invites.send_update(session, settings, call, pending, now=now)
        elif farewell is not None:
            updates = invites.send_update(session, settings, None, farewell, now=now)
        else:
            updates = _nothing_sent()
    except Exception as e:  # the change is stored: say what stopped the rest, beside it
        return Owed(feeds=built, notice=notice, failure=e)
    return Owed(feeds=built, notice=notice, updates=updates)
