"""After a call: its recording and notes, to the forum and to every member following it.

An organizer adds them with `coalition followup`; the deliveries go into the outbox due at
once and valid for two weeks, and the daemon (or `run-once`) sends them like any reminder.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, select

from scheduler.core import inputs
from scheduler.core.plan import EMAIL, FORUM, Rule, RuleKind
from scheduler.core.recurrence import Status
from scheduler.delivery.preview import find_occurrence
from scheduler.errors import Conflict, InvalidValue
from scheduler.store import outbox
from scheduler.store.calls import get_call
from scheduler.store.models import Followup
from scheduler.store.subscribers import following

RULE = Rule(name="followup", channels=(FORUM, EMAIL), template="followup",
            kind=RuleKind.FOLLOWUP)
VALID_FOR = timedelta(days=14)


def add(session: Session, slug: str, *, on: str, recording: str | None, notes: str,
        now: datetime) -> int:
    """Store the follow-up and queue it; return how many messages it will be."""
    call = get_call(session, slug)
    occurrence = find_occurrence(session, call, on)
    if occurrence.status is Status.CANCELLED:
        raise InvalidValue(f"{slug}: the occurrence of {on} was cancelled")
    if occurrence.start > now:
        raise InvalidValue(f"{slug}: the occurrence of {on} has not happened yet")
    url = inputs.web_url(recording, field="--recording") if recording else None
    if url is None and not notes.strip():
        raise InvalidValue("give --recording, --notes, or both")
    assert call.id is not None
    if session.exec(select(Followup).where(Followup.call_id == call.id,
                                           Followup.occurrence_id == occurrence.id)).first():
        raise Conflict(f"{slug}: the occurrence of {on} already has a follow-up")
    session.add(Followup(call_id=call.id, occurrence_id=occurrence.id, recording_url=url,
                         notes=notes.strip(), created_at=now))
    session.commit()
    return outbox.queue(session, call_id=call.id, occurrence_id=occurrence.id, rule=RULE.name,
                        members=following(session, call.slug, rule=RULE.name),
                        expires=now + VALID_FOR, now=now)


def extras(session: Session, call_id: int, occurrence_id: datetime) -> dict[str, str | None]:
    """What the followup template needs beyond the occurrence."""
    found = session.exec(select(Followup).where(Followup.call_id == call_id,
                                                Followup.occurrence_id == occurrence_id)).first()
    if found is None:
        return {"recording_url": None, "notes": None}
    return {"recording_url": found.recording_url, "notes": found.notes or None}
