"""Late changes: a move or cancellation less than 48 hours ahead also goes out by email and on
the forum, because Google refreshes subscribed calendars only every 8 to 24 hours.

The notice is a delivery like any other, due at once, valid until the later of the old and the
new time. Its rule is named after the call's sequence (`changed-7`), so a second late change
of the same occurrence gets a notice of its own.

Who gets it depends on whether members can know of the occurrence without a message about it.
A call that was there before the occurrence came within those 48 hours is known: from its
page, its feed, the months before; its notice goes to the forum topic and every member who
follows it, whether or not the announcement went out (a daemon down all week must not leave
members travelling to a cancelled call). A call added within the 48 hours is known only from
what was sent about it: the notice goes to each member some message about this occurrence
reached, and to the forum topic once anything about it was sent; if nothing was, nobody gets
one (its announcement, still ahead, carries the new time; a "Moved" notice beside it would be
about a call members never heard of).
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
    was, or where it is now), to whoever can know of it (see above). Return how many messages
    that is."""
    ahead = [moment for moment in (occurrence.id, occurrence.start) if moment > now]
    if not ahead or min(ahead) >= now + WITHIN:
        return 0
    assert call.id is not None
    members = following(session, call.slug)
    if occurrence.id - WITHIN < call.created_at <= now:  # added late: known only from what was sent
        heard = told(session, call.id, occurrence.id)
        if not heard:
            return 0
        members = [member for member in members if (EMAIL, member) in heard]
    targets = [(FORUM, TOPIC), *((EMAIL, member) for member in members)]
    rule = f"{PREFIX}{call.sequence}"
    planned = [Planned(call_id=call.id, occurrence_id=occurrence.id, rule=rule, channel=channel,
                       recipient=recipient, due=now, expires=max(ahead))
               for channel, recipient in targets]
    outbox.sync(session, planned, covered={(call.id, occurrence.id, rule)}, now=now)
    return len(planned)
