"""Who is coming: each member's answer for one occurrence ("I'll be there" / "Can't make it").

An answer is keyed by the occurrence's original start (`Occurrence.id`), like its move or
cancellation: when the occurrence moves, the answer moves with it; when it is cancelled the
answer is kept, and listings mark it (a restore finds it again). Answering again replaces the
answer. A member who cannot make it gets no reminder meant for those who come
(`core.plan.for_those_coming`): the planner reads `declined`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from scheduler.core.recurrence import Occurrence
from scheduler.store.models import Call, Rsvp, RsvpAnswer, Subscriber, SubscriberStatus


def record(session: Session, subscriber: Subscriber, call: Call, occurrence_id: datetime,
           answer: RsvpAnswer, *, now: datetime) -> Rsvp:
    """Store (or replace) `subscriber`'s answer for the occurrence whose original start is
    `occurrence_id`."""
    assert subscriber.id is not None and call.id is not None
    found = session.exec(select(Rsvp).where(
        Rsvp.subscriber_id == subscriber.id, Rsvp.call_id == call.id,
        Rsvp.occurrence_id == occurrence_id)).first()
    row = found or Rsvp(subscriber_id=subscriber.id, call_id=call.id,
                        occurrence_id=occurrence_id, answer=answer, answered_at=now)
    row.answer, row.answered_at = answer, now
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def answer_for(session: Session, subscriber: Subscriber, call: Call,
               occurrence_id: datetime) -> str | None:
    """`subscriber`'s answer for one occurrence (None: none yet)."""
    key = (call.id or 0, occurrence_id)
    return answers_of(session, subscriber, [key]).get(key)


def answers_of(session: Session, subscriber: Subscriber,
               occurrences: Iterable[tuple[int, datetime]]) -> dict[tuple[int, datetime], str]:
    """`subscriber`'s answers for `occurrences` (call id, original start), by the same key:
    what their manage page shows beside each coming occurrence. One with no answer is left
    out."""
    wanted = set(occurrences)
    if not wanted:
        return {}
    rows = session.exec(select(Rsvp.call_id, Rsvp.occurrence_id, Rsvp.answer).where(
        Rsvp.subscriber_id == subscriber.id,
        col(Rsvp.occurrence_id).in_({start for _, start in wanted}))).all()
    return {(call_id, start): str(answer) for call_id, start, answer in rows
            if (call_id, start) in wanted}


def coming(session: Session, call_id: int, occurrence_id: datetime) -> int:
    """How many members (still subscribed) have said "I'll be there" for the occurrence whose
    original start is `occurrence_id`: what the announcement and the "today" reminder say."""
    found = session.exec(select(func.count()).select_from(Rsvp).join(
        Subscriber, col(Subscriber.id) == Rsvp.subscriber_id).where(
        Rsvp.call_id == call_id, Rsvp.occurrence_id == occurrence_id,
        Rsvp.answer == RsvpAnswer.YES,
        Subscriber.status == SubscriberStatus.CONFIRMED)).one()
    return int(found)


def declined(session: Session, *, since: datetime | None = None) -> \
        dict[int, frozenset[tuple[int, datetime]]]:
    """By subscriber id: the occurrences (call id, original start) they cannot make; given
    `since`, only those that were to start after it (what planning still looks at)."""
    found: dict[int, set[tuple[int, datetime]]] = {}
    query = select(Rsvp.subscriber_id, Rsvp.call_id, Rsvp.occurrence_id).where(
        Rsvp.answer == RsvpAnswer.NO)
    if since is not None:
        query = query.where(col(Rsvp.occurrence_id) >= since)
    for subscriber_id, call_id, occurrence_id in session.exec(query).all():
        found.setdefault(subscriber_id, set()).add((call_id, occurrence_id))
    return {key: frozenset(value) for key, value in found.items()}


def listing(session: Session, call: Call, occurrence: Occurrence) -> dict[str, Any]:
    """Who answered for one occurrence, and how: for `coalition rsvp list`. A member who left
    since is left out; a cancelled occurrence keeps its answers, marked."""
    rows = session.exec(select(Subscriber.email, Subscriber.name, Rsvp.answer,
                               Rsvp.answered_at).join(
        Subscriber, col(Subscriber.id) == Rsvp.subscriber_id).where(
        Rsvp.call_id == call.id, Rsvp.occurrence_id == occurrence.id,
        Subscriber.status == SubscriberStatus.CONFIRMED).order_by(
        col(Rsvp.answer).desc(), col(Subscriber.email))).all()
    answers = [{"email": email, "name": name, "answer": answer,
                "answered_at": answered.isoformat()} for email, name, answer, answered in rows]
    return {
        "call": call.slug, "occurrence_id": occurrence.id.isoformat(),
        "start": occurrence.start.isoformat(), "status": occurrence.status.value,
        "coming": sum(1 for a in answers if a["answer"] == RsvpAnswer.YES),
        "not_coming": sum(1 for a in answers if a["answer"] == RsvpAnswer.NO),
        "answers": answers,
    }


def listing_lines(found: Mapping[str, Any]) -> list[str]:
    cancelled = " (cancelled)" if found["status"] == "cancelled" else ""
    lines = [f"{found['call']} {found['start']}{cancelled}: {found['coming']} coming, "
             f"{found['not_coming']} not coming"]
    for a in found["answers"]:
        word = "coming" if a["answer"] == RsvpAnswer.YES else "not coming"
        lines.append(f"  {word:<10}  {a['email']}" + (f"  ({a['name']})" if a["name"] else ""))
    return lines


def counts(session: Session) -> list[tuple[str, str, int]]:
    """(call slug, answer, how many) over every occurrence: for /metrics."""
    rows = session.exec(select(Call.slug, Rsvp.answer, func.count()).join(
        Call, col(Call.id) == Rsvp.call_id).join(
        Subscriber, col(Subscriber.id) == Rsvp.subscriber_id).where(
        Subscriber.status == SubscriberStatus.CONFIRMED).group_by(
        Call.slug, Rsvp.answer)).all()
    return [(slug, str(answer), int(n)) for slug, answer, n in rows]
