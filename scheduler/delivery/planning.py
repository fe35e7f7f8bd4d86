"""The planning pass: calls, their changes and subscribers to the outbox rows now within
reach (`plan_pass`), and what is planned beyond that (`upcoming`). `now` is a parameter; the
plan itself is pure (`core.plan`), and the outbox writes it (`outbox.sync`)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlmodel import Session, select

from scheduler.config import Settings
from scheduler.core.plan import CallOccurrences, Recipient, Rule, Step, plan
from scheduler.core.recurrence import Change, occurrences
from scheduler.store import outbox, preferences, rsvp
from scheduler.store.calls import all_changes, list_calls, series_of, skipped
from scheduler.store.models import Call, Subscriber, SubscriberStatus

log = logging.getLogger(__name__)
PLAN_CHUNK = 200  # calls planned and compared with the outbox at a time
LOOK_BACK = timedelta(days=2)  # occurrences this far back still get their "missed" records


def _horizon(rules: tuple[Rule, ...]) -> timedelta:
    return max((timedelta(days=r.days + 1) + r.delta for r in rules), default=timedelta(0))


def _plan_inputs(session: Session, now: datetime) -> tuple[
        list[Call], dict[int, dict[datetime, Change]], list[Recipient]]:
    """Calls, their changes, and who is subscribed, as planning reads them."""
    # A pass at a moment before someone subscribed (a preview with --now) counts them as
    # subscribed by that moment: they get what is still ahead of it.
    # Their choices too (`preferences`, `rsvp`): a change to them is a change of the inputs,
    # so the next pass cancels what is queued but no longer owed.
    # Answers are keyed by original starts: a month's slack keeps those of occurrences moved
    # later, short of a move by more than a month.
    declined = rsvp.declined(session, since=now - LOOK_BACK - timedelta(days=31))
    recipients = [Recipient(address=s.email, since=min(s.confirmed_at or s.created_at, now),
                            calls=frozenset(s.calls) if s.calls is not None else None,
                            off=preferences.off_table(s),
                            declined=declined.get(s.id or 0, frozenset()))
                  for s in session.exec(select(Subscriber).where(
                      Subscriber.status == SubscriberStatus.CONFIRMED)).all()]
    return list_calls(session), all_changes(session), recipients


def _occurrences(settings: Settings, calls: Sequence[Call],
                 changes: Mapping[int, Mapping[datetime, Change]], *, now: datetime,
                 ahead: timedelta = timedelta(days=1)) -> list[CallOccurrences]:
    """Each call's occurrences within the planning horizon (the longest rule plus a day) and
    `ahead`: all whose reminders can fall due within `ahead`. A stored call that cannot be
    planned (a row an older version stored) is left out with a warning; the others are not."""
    start, end = now - LOOK_BACK, now + _horizon(settings.reminders) + ahead
    found = []
    for call in calls:
        assert call.id is not None
        try:
            within = occurrences(series_of(call), changes.get(call.id, {}), start=start,
                                 end=end)
        except Exception as e:  # whatever one stored call raises must not stop the others
            skipped(log, call, "the reminders", e)
            continue
        found.append(CallOccurrences(
            call_id=call.id, slug=call.slug, created=min(call.created_at, now),
            occurrences=within))
    return found


def _lead(rule: Rule) -> timedelta:
    """How long before the start a rule falls due, at most (a day's DST slack for days)."""
    return timedelta(days=rule.days + 1) if rule.days else rule.delta


def plan_pass(session: Session, settings: Settings, *, now: datetime,
              memo: dict[str, object] | None = None) -> dict[str, int]:
    """Bring the outbox in line with calls, their changes and subscribers.

    The plan reaches every occurrence within the horizon (the longest rule plus a day), but a
    step (one rule of one occurrence) is written out, one delivery per recipient, only from
    `[daemon] queue_minutes` before it falls due: a coalition of 10,000 calls and 1,000
    members would otherwise hold tens of millions of rows for reminders weeks away, and
    rewrite them whenever someone subscribes. A step already written stays in line with its
    occurrence (moved, cancelled) and its recipients (one left) until it is sent.

    With a `memo` (the daemon keeps one across passes), a pass whose calls, changes and
    subscribers are the same as the last one's compares with the outbox only the steps that
    have come within reach since.
    """
    reach = now + timedelta(minutes=settings.daemon.queue_minutes)
    call_rows, changes, recipients = _plan_inputs(session, now)
    inputs = hash((
        frozenset(recipients),
        tuple((c.id, c.slug, c.created_at, c.updated_at) for c in call_rows),
        frozenset((call_id, frozenset(found.items())) for call_id, found in changes.items()),
    ))
    leads = [(rule, _lead(rule)) for rule in settings.reminders]
    calls, due = _occurrences(settings, call_rows, changes, now=now), set()
    for call in calls:
        due |= {(call.call_id, o.id, rule.name) for o in call.occurrences for rule, lead in leads
                if o.start - lead <= reach and rule.due(o) <= reach}
    if memo is not None and memo.get("inputs") == inputs:
        seen = memo["due"]
        assert isinstance(seen, frozenset)
        to_sync = due - seen
    else:  # also what was written before and may no longer be owed, or owed otherwise
        names = {rule.name for rule in settings.reminders}
        queued = outbox.queued_steps(session, pending=True)
        to_sync = due | {step for step in queued if step[2] in names}
    by_call: dict[int, set[Step]] = {}
    for step in to_sync:
        by_call.setdefault(step[0], set()).add(step)
    counts = dict.fromkeys(outbox.SYNCED, 0)
    chunks = [c for c in calls if c.call_id in by_call]
    for first in range(0, len(chunks), PLAN_CHUNK):  # a chunk of calls at a time: bounded memory
        chunk = chunks[first:first + PLAN_CHUNK]
        steps = {step for c in chunk for step in by_call[c.call_id]}
        part = outbox.sync(session, plan(chunk, settings.reminders, recipients, steps),
                           covered=steps, now=now)
        counts = {key: counts[key] + part[key] for key in counts}
    if memo is not None:
        memo["inputs"], memo["due"] = inputs, frozenset(due)
    return counts


UPCOMING_DAYS = 35  # how far `coalition deliveries --upcoming` looks by default


def upcoming(session: Session, settings: Settings, *, now: datetime,
             days: int = UPCOMING_DAYS) -> list[dict[str, object]]:
    """The reminders planned but not queued yet (due after `[daemon] queue_minutes`, within
    `days`), one row per step and channel with how many recipients it has today, in order of
    due time. Planning itself needs only the occurrences whose reminders can fall due before
    its next pass; this looks as far as asked."""
    reach = now + timedelta(minutes=settings.daemon.queue_minutes)
    until = now + timedelta(days=days)
    call_rows, changes, recipients = _plan_inputs(session, now)
    queued = outbox.queued_steps(session, pending=False)
    counts: Counter[tuple[str, datetime, str, str, datetime, datetime]] = Counter()
    for call in _occurrences(settings, call_rows, changes, now=now,
                             ahead=timedelta(days=days)):
        counts.update((call.slug, p.occurrence_id, p.rule, p.channel, p.due, p.expires)
                      for p in plan([call], settings.reminders, recipients)
                      if reach < p.due <= until and p.owed
                      and (p.call_id, p.occurrence_id, p.rule) not in queued)
    fields = ("call", "occurrence_id", "rule", "channel", "due", "expires")
    return [{**dict(zip(fields, key, strict=True)), "recipients": n}
            for key, n in sorted(counts.items(), key=lambda item: (item[0][4], item[0][0]))]
