"""The outbox: the only code that moves a delivery from one state to the next.

    pending --claim (lease)--> sent | pending (retry later) | failed (permanent) | missed
    pending --occurrence cancelled, subscriber gone--> cancelled
    claimed, and found owed no more when it is sent (`mark_cancelled`) --> cancelled

The unique key (call, occurrence, rule, channel, recipient) makes a delivery exist once however
many planners run. A claim takes due rows with a lease (`FOR UPDATE SKIP LOCKED` on
PostgreSQL), so two daemons never hold the same row; a daemon that dies leaves rows whose lease
runs out, and the next claim takes them, while a live one renews the lease of what it is still
sending (`renew`). A fan-out's results are recorded by a `recorder.Recorder`, a
group per commit: a crash can repeat the messages in flight (one per connection) and those
accepted but not yet recorded (at most `Recorder.WAITING`); a repeat keeps its Message-ID.
New deliveries are written by `bulk`, as each database does it fastest.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from scheduler import metrics
from scheduler.core.plan import EMAIL, FORUM, TOPIC, Planned, Step
from scheduler.store import bulk
from scheduler.store.models import Delivery, DeliveryStatus

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
LAST_RETRY = timedelta(minutes=30)
OPEN = (DeliveryStatus.PENDING,)
TO_RETRY = "to retry"  # what a pass reports for a delivery that failed for now: not a state
_TABLE = Delivery.__table__  # type: ignore[attr-defined]


def delivery_key(row: Delivery) -> tuple[int, datetime, str, str, str]:
    return (row.call_id, row.occurrence_id, row.rule, row.channel, row.recipient)


SYNCED = ("added", "missed", "retimed", "cancelled")  # what `sync` counts, in this order


def outcome(status: str) -> str:
    """What a pass reports for a delivery it tried, from the state it left it in: that state,
    or `TO_RETRY` for one still pending."""
    return TO_RETRY if status == DeliveryStatus.PENDING else status


def sync(session: Session, planned: Sequence[Planned], *, covered: Collection[Step],
         now: datetime) -> dict[str, int]:
    """Make the outbox match the plan for the steps in `covered` (call id, occurrence id, rule).

    New deliveries are added ("missed" if already expired); pending ones follow their
    occurrence when it moved; pending ones no longer owed (the occurrence was cancelled, the
    subscriber left) are cancelled. Steps not covered are left alone.
    """
    counts = dict.fromkeys(SYNCED, 0)
    if not covered:
        return counts
    ids = [occurrence for _, occurrence, _ in covered]
    # Plain rows, not ORM objects: a large coalition has hundreds of thousands of them, and
    # this runs every interval.
    columns = [_TABLE.c[name] for name in ("id", "call_id", "occurrence_id", "rule", "channel",
                                            "recipient", "status", "due_at", "expires_at")]
    found = session.connection().execute(core_select(*columns).where(
        _TABLE.c.call_id.in_(sorted({call_id for call_id, _, _ in covered})),
        _TABLE.c.occurrence_id >= min(ids), _TABLE.c.occurrence_id <= max(ids)))
    rows = {(r[1], r[2], r[3], r[4], r[5]): tuple(r) for r in found
            if (r[1], r[2], r[3]) in covered}
    new = [p for p in planned if p.owed and p.key not in rows]
    if new:
        connection = session.connection()
        moment = bulk.converter(connection)
        stamp = moment(now)
        # Owed but expired already (the daemon was down): recorded as missed, and counted so.
        # Each row holds the values of `bulk.COLUMNS`, in that order.
        for status, count in ((DeliveryStatus.PENDING, "added"),
                              (DeliveryStatus.MISSED, "missed")):
            values = [(p.call_id, moment(p.occurrence_id), p.rule, p.channel, p.recipient,
                       moment(p.due), moment(p.expires), status, 0, stamp, stamp)
                      for p in new if (p.expires <= now) == (status is DeliveryStatus.MISSED)]
            if values:
                counts[count] = bulk.insert(connection, values)
    wanted = {p.key: p for p in planned}
    cancelled, retimed = [], []
    for key, (row_id, *_, status, due, expires) in rows.items():
        if status not in OPEN:
            continue
        plan = wanted.get(key)
        if plan is None:
            cancelled.append({"row_id": row_id, "now": now})
            log.info("delivery %s cancelled", key)
        elif (due, expires) != (plan.due, plan.expires):
            retimed.append({"row_id": row_id, "due": plan.due, "expires": plan.expires,
                            "now": now})
            log.info("delivery %s re-timed", key)
    connection = session.connection()
    if cancelled:
        connection.execute(update(_TABLE).where(_TABLE.c.id == bindparam("row_id")).values(
            status=DeliveryStatus.CANCELLED, last_error="no longer owed",
            updated_at=bindparam("now")),
            cancelled)
    if retimed:
        connection.execute(update(_TABLE).where(_TABLE.c.id == bindparam("row_id")).values(
            due_at=bindparam("due"), expires_at=bindparam("expires"), next_attempt_at=None,
            updated_at=bindparam("now")), retimed)
    counts["cancelled"], counts["retimed"] = len(cancelled), len(retimed)
    session.commit()
    return counts


def queue(session: Session, *, call_id: int, occurrence_id: datetime, rule: str,
          members: Sequence[str], expires: datetime, now: datetime) -> int:
    """Owe one message now to the forum and to each of `members` (a follow-up, a change
    notice); return how many that is. Queueing the same rule twice adds nothing."""
    targets = [(FORUM, TOPIC), *((EMAIL, member) for member in members)]
    planned = [Planned(call_id=call_id, occurrence_id=occurrence_id, rule=rule, channel=channel,
                       recipient=recipient, due=now, expires=expires)
               for channel, recipient in targets]
    sync(session, planned, covered={(call_id, occurrence_id, rule)}, now=now)
    return len(planned)


def queued_steps(session: Session, *, pending: bool) -> set[Step]:
    """The steps (call, occurrence, rule) with deliveries in the outbox: still to send, or
    with `pending=False`, in any state."""
    query = core_select(_TABLE.c.call_id, _TABLE.c.occurrence_id, _TABLE.c.rule).distinct()
    found = session.connection().execute(
        query.where(_TABLE.c.status == DeliveryStatus.PENDING) if pending else query)
    return {(call_id, occurrence, rule) for call_id, occurrence, rule in found}


def expire(session: Session, *, now: datetime) -> int:
    """Pending deliveries whose moment has passed are recorded as missed, never sent."""
    stale = list(session.exec(select(Delivery).where(
        col(Delivery.status) == DeliveryStatus.PENDING, col(Delivery.expires_at) <= now,
        or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
    )).all())
    for delivery in stale:
        delivery.status, delivery.updated_at = DeliveryStatus.MISSED, now
        delivery.lease_until = None
        session.add(delivery)
        log.info("delivery %s missed: not sent before %s", delivery_key(delivery),
                 delivery.expires_at.isoformat())
    session.commit()
    return len(stale)


def claim(session: Session, *, now: datetime, worker: str, lease: timedelta,
          limit: int = 500) -> list[Delivery]:
    """Take up to `limit` due deliveries for `worker` for `lease` (`[daemon] lease_seconds`)."""
    query = (select(Delivery.id).where(
        col(Delivery.status) == DeliveryStatus.PENDING, col(Delivery.due_at) <= now,
        col(Delivery.expires_at) > now,
        or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now),
        or_(col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now),
    ).order_by(col(Delivery.due_at)).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.exec(query).all())
    if not ids:
        session.commit()
        return []
    session.exec(update(Delivery).where(
        and_(col(Delivery.id).in_(ids))
    ).values(lease_until=now + lease, leased_by=worker, attempts=Delivery.attempts + 1,
             updated_at=now))
    session.commit()
    claimed = list(session.exec(select(Delivery).where(col(Delivery.id).in_(ids),
                                                       Delivery.leased_by == worker)).all())
    return sorted(claimed, key=lambda d: (d.due_at, d.id or 0))


def renew(session: Session, ids: Collection[int], *, worker: str, until: datetime) -> int:
    """Keep `worker`'s claim on those of `ids` it has not finished with, until `until`: a
    batch that takes longer than the lease to send stays its own, while a daemon that died
    stops renewing and its claims run out within one lease."""
    result = session.exec(update(Delivery).where(
        col(Delivery.id).in_(sorted(ids)), col(Delivery.leased_by) == worker,
        col(Delivery.status) == DeliveryStatus.PENDING, col(Delivery.lease_until).is_not(None),
    ).values(lease_until=until))
    session.commit()
    return int(result.rowcount)


def next_wakeup(session: Session) -> datetime | None:
    """When the next pending delivery can be sent: its due time, retry time or lease expiry."""
    moments = []
    for delivery in session.exec(select(Delivery).where(
            col(Delivery.status) == DeliveryStatus.PENDING)
            .order_by(col(Delivery.due_at)).limit(1000)):
        moments.append(max(m for m in (delivery.due_at, delivery.next_attempt_at,
                                       delivery.lease_until) if m is not None))
    session.commit()
    return min(moments, default=None)


# Built once: the recorder runs it for every accepted message.
_SENT = (update(_TABLE).where(_TABLE.c.id == bindparam("delivery_id"))
         .values({name: bindparam(name) for name in (
             "status", "sent_at", "message_id", "lease_until", "last_error", "updated_at")}))


def _sent(message_id: str, now: datetime) -> dict[str, Any]:
    """The columns of a delivery the server accepted as `message_id` at `now`."""
    return {"status": DeliveryStatus.SENT, "sent_at": now, "message_id": message_id,
            "lease_until": None, "last_error": None, "updated_at": now}


def count_sent(key: tuple[int, datetime, str, str, str], due: datetime, message_id: str,
                now: datetime) -> None:
    """Lateness in the metrics, and a line in the log, once the record is committed."""
    metrics.LATENESS.labels(channel=key[3]).observe(max((now - due).total_seconds(), 0))
    log.info("delivery %s sent as %s", key, message_id)


def mark_sent(session: Session, delivery: Delivery, *, message_id: str, now: datetime) -> None:
    """Record one delivery as sent (a forum post), and commit; a fan-out's emails go through
    a `Recorder` instead."""
    values = _sent(message_id, now)
    session.connection().execute(_SENT, {"delivery_id": delivery.id, **values})
    session.commit()
    for name, value in values.items():  # the object in memory says the same, and stays clean
        set_committed_value(delivery, name, value)
    count_sent(delivery_key(delivery), delivery.due_at, message_id, now)


def mark_all_sent(session: Session, sent: Sequence[tuple[int, str, datetime]]) -> None:
    """Record deliveries (id, Message-ID, when) the server accepted, in one statement: a
    `Recorder`'s group. Committed by the caller, who then counts each (`count_sent`)."""
    session.connection().execute(_SENT, [
        {"delivery_id": delivery_id, **_sent(message_id, now)}
        for delivery_id, message_id, now in sent])


def mark_failed(session: Session, delivery: Delivery, *, error: str, permanent: bool,
                now: datetime, retry_after: timedelta | None = None,
                first_retry: timedelta = FIRST_RETRY,
                jitter: random.Random | None = None) -> None:
    """A permanent failure is final; a temporary one is tried again, with exponential backoff
    and jitter (or the server's Retry-After), while the delivery is still valid."""
    delivery.last_error, delivery.lease_until, delivery.updated_at = error, None, now
    metrics.SEND_ERRORS.labels(channel=delivery.channel,
                               kind="permanent" if permanent else "temporary").inc()
    if permanent:
        delivery.status = DeliveryStatus.FAILED
    else:
        backoff = min(LAST_RETRY, first_retry * 2 ** max(delivery.attempts - 1, 0))
        wait = retry_after or backoff * (0.5 + (jitter or random).random())
        delivery.next_attempt_at = now + wait
        if delivery.next_attempt_at >= delivery.expires_at:
            delivery.status = DeliveryStatus.MISSED
    session.add(delivery)
    log.info("delivery %s %s: %s", delivery_key(delivery), delivery.status
             if delivery.status != DeliveryStatus.PENDING else "will be retried", error)


def mark_cancelled(session: Session, delivery: Delivery, *, reason: str, now: datetime) -> None:
    """A claimed delivery found owed no more when its turn came (the member left, the
    occurrence was cancelled, the call or the rule is gone): cancelled with the reason, as
    planning cancels one it finds first; nothing failed. Committed by the caller."""
    delivery.status, delivery.last_error = DeliveryStatus.CANCELLED, reason
    delivery.lease_until, delivery.updated_at = None, now
    session.add(delivery)
    log.info("delivery %s cancelled: %s", delivery_key(delivery), reason)


def cancel_for_recipient(session: Session, recipient: str, *, channel: str, reason: str,
                         now: datetime) -> None:
    """`recipient`'s pending deliveries on `channel` are owed no more (they unsubscribed):
    cancelled with `reason`. Committed by the caller."""
    for delivery in session.exec(select(Delivery).where(
            Delivery.recipient == recipient, Delivery.channel == channel,
            col(Delivery.status) == DeliveryStatus.PENDING)):
        delivery.status, delivery.updated_at = DeliveryStatus.CANCELLED, now
        delivery.last_error = reason
        session.add(delivery)
