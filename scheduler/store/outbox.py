"""The outbox: the only code that moves a delivery from one state to the next.

    pending --claim (lease)--> sent | pending (retry later) | failed (permanent) | missed
    pending --occurrence cancelled, subscriber gone--> cancelled
    claimed, and found owed no more when it is sent (`mark_cancelled`) --> cancelled

The unique key (call, occurrence, rule, channel, recipient) makes a delivery exist once however
many planners run. A claim takes due rows with a lease (`FOR UPDATE SKIP LOCKED` on
PostgreSQL), so two daemons never hold the same row, and a live one renews the lease of what it
is still sending (`renew`). A dead worker's claims are free at once, not when their lease runs
out: on PostgreSQL each worker holds an advisory lock named by its id from its first claim until
its process ends (`hold`), and a claim whose worker's lock can be taken is a dead one's; on
SQLite, where one daemon runs, the daemon frees every older claim when it starts
(`free_claims`). The lease stays the last resort (a machine gone without closing its
connections). A worker's own claims are free when it claims again: it finishes a batch before
it claims the next.

While a channel's transport cannot be reached, its deliveries wait for it, not each on its own
timer: `transport_failed` records the outage with one backoff for the transport, claims leave
the channel alone until then, and the first message it takes afterwards (`transport_worked`)
releases every delivery that waited.

A fan-out's results are recorded by a `recorder.Recorder`, a group per commit: a crash can
repeat the messages in flight (one per connection) and those accepted but not yet recorded (at
most `Recorder.WAITING`); a repeat keeps its Message-ID. New deliveries are written by `bulk`,
as each database does it fastest.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, delete, or_, text, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, col, select

from scheduler import metrics
from scheduler.core.plan import EMAIL, FORUM, TOPIC, Planned, Step
from scheduler.errors import Conflict
from scheduler.store import bulk
from scheduler.store.models import Delivery, DeliveryStatus, TransportOutage

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
          limit: int = 500, waiting: Collection[str] = ()) -> list[Delivery]:
    """Take up to `limit` due deliveries for `worker` for `lease` (`[daemon] lease_seconds`),
    leaving alone the channels in `waiting` (their transport is down: `waiting_channels`).

    Free to take: what nobody holds, what a lease no longer covers, `worker`'s own (it
    finished its last batch before claiming this one), and what a worker that is gone held
    (`others`)."""
    hold(session.get_bind().engine, worker)
    gone = [other for other, alive in others(session, now=now, worker=worker).items()
            if not alive]
    free = [col(Delivery.lease_until).is_(None), col(Delivery.lease_until) < now,
            col(Delivery.leased_by) == worker]
    if gone:
        free.append(col(Delivery.leased_by).in_(gone))
        log.info("taking over the claims of %s: gone", ", ".join(gone))
    conditions = [
        col(Delivery.status) == DeliveryStatus.PENDING, col(Delivery.due_at) <= now,
        col(Delivery.expires_at) > now,
        or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now),
        or_(*free)]
    if waiting:
        conditions.append(col(Delivery.channel).not_in(sorted(waiting)))
    query = select(Delivery.id).where(*conditions).order_by(col(Delivery.due_at)).limit(limit)
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
    claimed = list(session.exec(select(Delivery).where(
        col(Delivery.id).in_(ids), Delivery.leased_by == worker,
    ).execution_options(populate_existing=True)).all())  # not as an earlier batch left them
    return sorted(claimed, key=lambda d: (d.due_at, d.id or 0))


# --- who is alive: a dead worker's claims are free at once

TAKEOVER_CHECK = timedelta(seconds=2)
"""How often a daemon looks whether a worker holding claims is gone (PostgreSQL only)."""
_HELD: dict[tuple[str, str], Connection] = {}  # (database, worker): the connection holding it
_HOLDING = threading.Lock()


def _lock_key(worker: str) -> int:
    """The advisory lock (a signed 64-bit number) that says `worker` is alive."""
    digest = hashlib.sha256(f"coalition worker {worker}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def hold(engine: Engine, worker: str) -> None:
    """On PostgreSQL, `worker`'s sign of life: a session advisory lock named by its id, on a
    connection of its own, taken before its first claim and held until its process ends (the
    server lets go when the connection closes, however the process ended) or `let_go`. Looked
    at on every claim, and taken again when the connection was lost (the server restarted).
    A second live process with the same worker id is refused (`Conflict`). Elsewhere, nothing.

    Not through a connection pooler in transaction mode (PgBouncer's): it needs a session.
    """
    if engine.dialect.name != "postgresql":
        return
    key = (engine.url.render_as_string(hide_password=False), worker)
    with _HOLDING:
        held = _HELD.get(key)
        if held is not None:
            try:
                held.execute(text("SELECT 1"))
                held.commit()
                return
            except SQLAlchemyError:
                log.warning("the connection that says %s is alive was lost; taking it again",
                            worker)
                del _HELD[key]
                _drop(held)
        connection = engine.connect()
        try:
            # Another worker may hold it for an instant, looking whether this one is alive.
            connection.execute(text("SELECT set_config('lock_timeout', '5s', true)"))
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _lock_key(worker)})
            connection.commit()
        except SQLAlchemyError as e:
            _drop(connection)
            if getattr(getattr(e, "orig", None), "sqlstate", None) == "55P03":  # lock_timeout
                raise Conflict(f"another live process works as {worker} on this database: "
                               "each daemon and run-once needs a worker id of its own") from e
            raise
        _HELD[key] = connection


def let_go(engine: Engine, worker: str) -> None:
    """`worker` stops: its lock goes with its connection, and claims it left are free."""
    with _HOLDING:
        held = _HELD.pop((engine.url.render_as_string(hide_password=False), worker), None)
    if held is not None:
        _drop(held)


def _drop(connection: Connection) -> None:
    """Closed for good, not returned to the pool, where the session's lock would live on."""
    try:
        connection.invalidate()
        connection.close()
    except SQLAlchemyError:
        pass


def others(session: Session, *, now: datetime, worker: str) -> dict[str, bool]:
    """The workers other than `worker` that hold claims a lease still covers, each with whether
    it is alive (its lock is held: `hold`). Only PostgreSQL can tell; on SQLite none is looked
    at ({}): one daemon runs there, and it frees every older claim when it starts."""
    if session.get_bind().dialect.name != "postgresql":
        return {}
    holders = session.connection().execute(core_select(_TABLE.c.leased_by).distinct().where(
        _TABLE.c.status == DeliveryStatus.PENDING, _TABLE.c.lease_until >= now,
        _TABLE.c.leased_by.is_not(None), _TABLE.c.leased_by != worker)).scalars().all()
    # Taken for this transaction only, so that one looker at a time takes a dead one's claims.
    taken = text("SELECT pg_try_advisory_xact_lock(:key)")
    return {holder: not session.connection().execute(taken, {"key": _lock_key(holder)})
            .scalar_one() for holder in sorted(holders)}


def free_claims(session: Session, *, alive: Callable[[str], bool]) -> int:
    """Claims whose worker is gone are free again: the one daemon a SQLite file serves frees
    them when it starts. `alive(worker)` says whether a worker may still be sending (a
    `run-once` from cron on this machine, say): its claims stay its own, and run out with
    their lease if it dies. Committed; how many were freed."""
    held = session.connection().execute(core_select(_TABLE.c.leased_by).where(
        _TABLE.c.status == DeliveryStatus.PENDING, _TABLE.c.lease_until.is_not(None),
    ).distinct()).scalars().all()
    gone = [worker for worker in held if worker is None or not alive(worker)]
    if not gone:
        return 0
    result = session.connection().execute(update(_TABLE).where(
        _TABLE.c.status == DeliveryStatus.PENDING, _TABLE.c.lease_until.is_not(None),
        or_(_TABLE.c.leased_by.in_([w for w in gone if w is not None]),
            _TABLE.c.leased_by.is_(None)),
    ).values(lease_until=None))
    session.commit()
    return int(result.rowcount)


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


def next_wakeup(session: Session, *, worker: str,
                waiting: Mapping[str, datetime] | None = None) -> datetime | None:
    """When the next pending delivery can be sent: its due time, its retry time, the end of
    another worker's lease on it, or when its channel's transport is tried again (`waiting`:
    `waiting_channels`). Read as plain rows: a long-lived session's objects may be stale."""
    waiting = waiting or {}
    moments = []
    for due, retry, lease, holder, channel in session.connection().execute(core_select(
            _TABLE.c.due_at, _TABLE.c.next_attempt_at, _TABLE.c.lease_until, _TABLE.c.leased_by,
            _TABLE.c.channel).where(_TABLE.c.status == DeliveryStatus.PENDING)
            .order_by(_TABLE.c.due_at).limit(1000)):
        moments.append(max(m for m in (due, retry, None if holder == worker else lease,
                                       waiting.get(channel)) if m is not None))
    session.commit()
    return min(moments, default=None)


# --- transports that cannot be reached: their deliveries wait for them, on one schedule

_OUTAGE = TransportOutage.__table__  # type: ignore[attr-defined]


def waiting_channels(session: Session, *, now: datetime,
                     transports: Mapping[str, str]) -> dict[str, datetime]:
    """The channels whose transport (the one `transports` names now) is down, each with when
    it is tried again; an outage of a transport config no longer names is not waited for."""
    found = session.connection().execute(core_select(
        _OUTAGE.c.channel, _OUTAGE.c.transport, _OUTAGE.c.retry_at))
    return {channel: retry_at for channel, transport, retry_at in found
            if transports.get(channel) == transport and retry_at > now}


def _backoff(failures: int, first_retry: timedelta, jitter: random.Random | None) -> timedelta:
    """The wait after `failures` failures in a row: doubling from `first_retry` up to
    `LAST_RETRY`, times 0.5 to 1.5 (those that failed together do not come back together)."""
    backoff = min(LAST_RETRY, first_retry * (1 << min(max(failures - 1, 0), 20)))
    spread: float = (jitter or random).random()
    return backoff * (0.5 + spread)


def transport_failed(session: Session, channel: str, *, transport: str, error: str,
                     now: datetime, first_retry: timedelta = FIRST_RETRY,
                     jitter: random.Random | None = None) -> datetime:
    """`channel`'s `transport` reached nothing (refused, timed out, cut off): one more failure
    in a row of its outage, which the channel's deliveries wait out together (no claim takes
    them before). Committed; returns when the transport is tried again: exponential backoff
    with jitter, one schedule for the transport."""
    for attempt in range(2):
        connection = session.connection()
        found = connection.execute(core_select(_OUTAGE.c.transport, _OUTAGE.c.failures)
                                   .where(_OUTAGE.c.channel == channel).with_for_update()).first()
        failures = found.failures + 1 if found is not None and found.transport == transport else 1
        retry_at = now + _backoff(failures, first_retry, jitter)
        values = {"transport": transport, "failures": failures, "retry_at": retry_at,
                  "last_error": error}
        try:
            if found is None:
                connection.execute(_OUTAGE.insert().values(channel=channel, since=now, **values))
            else:
                connection.execute(update(_OUTAGE).where(_OUTAGE.c.channel == channel).values(
                    **values, **({} if failures > 1 else {"since": now})))
            session.commit()
        except IntegrityError:  # another replica recorded it first: add to its record
            session.rollback()
            if attempt:
                raise
            continue
        log.warning("%s transport %s unreachable (%d in a row): %s; its deliveries wait for it "
                    "until %s", channel, transport, failures, error,
                    retry_at.isoformat(timespec="seconds"))
        return retry_at
    raise AssertionError("unreachable")


def transport_worked(session: Session, channel: str) -> bool:
    """`channel`'s transport took a message (or answered about one): an outage it had is
    over, and every delivery that waited for it may go at once, since those wait on no timer
    of their own (`mark_failed(outage=True)`). Committed; whether there was an outage."""
    ended = session.connection().execute(delete(_OUTAGE).where(_OUTAGE.c.channel == channel))
    session.commit()
    if ended.rowcount:
        log.info("%s transport answers again: the deliveries that waited for it go now", channel)
    return bool(ended.rowcount)


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
                first_retry: timedelta = FIRST_RETRY, outage: bool = False,
                jitter: random.Random | None = None) -> None:
    """A permanent failure is final. A temporary one of this message (a 4xx for its recipient)
    is tried again on its own timer, with exponential backoff and jitter (or the server's
    Retry-After), while the delivery is still valid; one of its transport (`outage`: the
    server could not be reached) waits for the transport instead, on no timer of its own
    (`transport_failed`, `transport_worked`), until it goes or expires."""
    delivery.last_error, delivery.lease_until, delivery.updated_at = error, None, now
    metrics.SEND_ERRORS.labels(channel=delivery.channel,
                               kind="permanent" if permanent else "temporary").inc()
    if permanent:
        delivery.status = DeliveryStatus.FAILED
    elif outage:
        delivery.next_attempt_at = None
    else:
        wait = retry_after or _backoff(delivery.attempts, first_retry, jitter)
        delivery.next_attempt_at = now + wait
        if delivery.next_attempt_at >= delivery.expires_at:
            delivery.status = DeliveryStatus.MISSED
    session.add(delivery)
    log.info("delivery %s %s: %s", delivery_key(delivery), delivery.status
             if delivery.status != DeliveryStatus.PENDING
             else "waits for its transport" if outage else "will be retried", error)


def retry_alone(session: Session, ids: Iterable[int], *, now: datetime,
                first_retry: timedelta = FIRST_RETRY,
                jitter: random.Random | None = None) -> None:
    """Deliveries recorded as waiting for their transport (`mark_failed(outage=True)`) in a
    batch whose transport took other messages: it was not down, so whatever cut their
    connection was theirs. Each gets its own timer, as any temporary failure of one message
    (a message that breaks every connection it is sent on must not be sent again at once,
    pass after pass). Committed."""
    wanted = list(ids)
    for delivery in session.exec(select(Delivery).where(col(Delivery.id).in_(wanted))).all():
        if delivery.status != DeliveryStatus.PENDING or delivery.next_attempt_at is not None:
            continue
        delivery.next_attempt_at = now + _backoff(delivery.attempts, first_retry, jitter)
        if delivery.next_attempt_at >= delivery.expires_at:
            delivery.status = DeliveryStatus.MISSED
        session.add(delivery)
    session.commit()


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
