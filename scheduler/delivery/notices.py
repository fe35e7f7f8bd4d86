"""Late changes: a move or cancellation less than 48 hours ahead also goes out by email and on
the forum, because Google refreshes subscribed calendars only every 8 to 24 hours.

The notice is a delivery like any other, due at once, valid until the later of the old and the
new time. Its rule is named after the call's sequence (`changed-7`), so a second late change
of the same occurrence gets a notice of its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from scheduler.core.plan import EMAIL, FORUM, Rule, RuleKind
from scheduler.core.recurrence import Occurrence
from scheduler.store import outbox
from scheduler.store.models import Call
from scheduler.store.subscribers import following

WITHIN = timedelta(hours=48)
PREFIX = "changed-"


def rule_for(name: str) -> Rule | None:
    """The notice rule a delivery's stored rule name stands for, if it is one."""
    if not name.startswith(PREFIX):
        return None
    return Rule(name=name, channels=(FORUM, EMAIL), template="changed", kind=RuleKind.NOTICE)


def queue(session: Session, call: Call, occurrence: Occurrence, *, now: datetime) -> int:
    """Queue the notice a change owes, if the occurrence is less than 48 hours ahead (where it
    was, or where it is now). Return how many messages that is."""
    ahead = [moment for moment in (occurrence.id, occurrence.start) if moment > now]
    if not ahead or min(ahead) >= now + WITHIN:
        return 0
    assert call.id is not None
    return outbox.queue(session, call_id=call.id, occurrence_id=occurrence.id,
                        rule=f"{PREFIX}{call.sequence}", members=following(session, call.slug),
                        expires=max(ahead), now=now)
