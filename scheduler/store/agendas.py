"""Each occurrence's own agenda: what that month's call is about, in every message about it.

An agenda is Markdown, stored by the occurrence's original start (its id), apart from its
move or cancellation: a move keeps it, a cancellation keeps it for a restore, and an
occurrence with only an agenda is neither moved nor cancelled (no change notice, no new
announcement). `scheduler.store.calls.changes_of` hands it out on each `Change`, so that
every occurrence built from the store (messages, the page, feeds, invitations) carries it.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from scheduler.core import inputs
from scheduler.store.calls import OccurrenceResult, get_call, locate, result_of
from scheduler.store.models import OccurrenceAgenda


def agendas_of(session: Session, call_id: int | None) -> dict[datetime, str]:
    """A call's agendas by original start (UTC), in time order."""
    rows = session.exec(select(OccurrenceAgenda).where(OccurrenceAgenda.call_id == call_id)
                        .order_by(col(OccurrenceAgenda.original_start))).all()
    return {row.original_start: row.text for row in rows}


def set_agenda(session: Session, slug: str, *, on: str, text: str | None, now: datetime,
               field: str = "the agenda") -> OccurrenceResult:
    """Give the occurrence on `on` its own agenda (`text`, Markdown; `field` names it in an
    error), or remove it (None). A change raises the call's sequence, so that calendars take
    the new text; the same text again, or clearing where there is none, changes nothing.
    Everything is checked before anything is written."""
    if text is not None:
        text = inputs.agenda(text, field=field)
    call = get_call(session, slug)
    original, _ = locate(session, call, on)
    row = session.exec(select(OccurrenceAgenda).where(
        OccurrenceAgenda.call_id == call.id, col(OccurrenceAgenda.original_start) == original,
    )).first()
    if (row.text if row is not None else None) == text:
        return result_of(session, call, original, changed=False)
    if text is None:
        assert row is not None
        session.delete(row)
    elif row is None:
        assert call.id is not None
        session.add(OccurrenceAgenda(call_id=call.id, original_start=original, text=text,
                                     changed_at=now))
    else:
        row.text, row.changed_at = text, now
        session.add(row)
    call.sequence += 1
    call.updated_at = now
    session.add(call)
    session.commit()
    session.refresh(call)
    return result_of(session, call, original, changed=True)
