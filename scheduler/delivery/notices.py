"""Late changes: a move or cancellation less than 48 hours ahead also goes out by email and on
the forum, because Google refreshes subscribed calendars only every 8 to 24 hours.

The notice is a delivery like any other, due at once, valid until the later of the old and the
new time. Its rule is named after the call's sequence (`changed-7`), so a second late change
of the same occurrence gets a notice of its own.

A notice is news only to whoever heard of the occurrence: it goes to each member that some
message about this occurrence was sent to (its announcement, a reminder, an earlier notice),
and to the forum topic once anything about it was sent (the thread is where members look for
the call, whichever message they got). Nobody else gets one: a call whose announcement never
went out (added late, or the daemon was down) is announced by the reminders still ahead of it,
which carry the new time; a "Moved" notice would be about a call they never heard of.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from scheduler.core.plan import EMAIL, FORUM, TOPIC, Planned, Rule, RuleKind
from scheduler.core.recurrence import Occurrence
from scheduler.store import outbox
from scheduler.store.models import Call, Delivery, DeliveryStatus
from scheduler.store.subscribers import following

WITHIN = timedelta(hours=48)
PREFIX = "changed-"


def rule_for(name: str) -> Rule | None:
    """The notice rule a delivery's stored rule name stands for, if it is one."""
    if not name.startswith(PREFIX):
        return None
    return Rule(name=name, channels=(FORUM, EMAIL), template="changed", kind=RuleKind.NOTICE)


def told(session: Session, call_id: int, occurrence_id: datetime) -> set[tuple[str, str]]:
    """The (channel, recipient) pairs that a message about this occurrence was sent to."""
    sent = select(Delivery.channel, Delivery.recipient).where(
        Delivery.call_id == call_id, Delivery.occurrence_id == occurrence_id,
        col(Delivery.status) == DeliveryStatus.SENT).distinct()
    return {(channel, recipient) for channel, recipient in session.exec(sent).all()}


def queue(session: Session, call: Call, occurrence: Occurrence, *, now: datetime) -> int:
    """Queue the notice a change owes, if the occurrence is less than 48 hours ahead (where it
    was, or where it is now), to whoever heard of it. Return how many messages that is."""
    ahead = [moment for moment in (occurrence.id, occurrence.start) if moment > now]
    if not ahead or min(ahead) >= now + WITHIN:
        return 0
    assert call.id is not None
    heard = told(session, call.id, occurrence.id)
    if not heard:
        return 0
    members = [member for member in following(session, call.slug) if (EMAIL, member) in heard]
    targets = [(FORUM, TOPIC), *((EMAIL, member) for member in members)]
    rule = f"{PREFIX}{call.sequence}"
    planned = [Planned(call_id=call.id, occurrence_id=occurrence.id, rule=rule, channel=channel,
                       recipient=recipient, due=now, expires=max(ahead))
               for channel, recipient in targets]
    outbox.sync(session, planned, covered={(call.id, occurrence.id, rule)}, now=now)
    return len(planned)
