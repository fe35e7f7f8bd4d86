"""One pass of the reminder service: plan (`planning`), expire, then claim, send and mark a
batch at a time until nothing due is left. `now` is a parameter.

`coalition run-once` is one pass; the daemon runs passes of one batch each when something falls
due (its timer runs the next at once while more is due).
Email goes to each subscriber in their language, their own zone first, with a Message-ID
derived from the delivery's key (a repeat after a crash is recognisable) and RFC 8058
one-click unsubscribe headers. A forum post is in the call's language and zone, and carries the
same key, so a post already made is never made twice. Which transport carries each channel is
config's choice (`scheduler.channels`): nothing here knows.

No message poisons a pass: whatever rendering or sending one delivery raises (a template
error, an address the mail server cannot take, a file that cannot be written) is recorded as
that delivery's failure with the reason, for good or to retry where the error may pass (the
disk, the network), and the pass goes on with every other delivery. A transport that cannot
be reached at all (`outage`) is the transport's failure, not the message's: its channel's
deliveries then wait for it together (`outbox.transport_failed`), and the first message it
takes afterwards lets them all go (`outbox.transport_worked`). A delivery found owed no
more when its turn comes (the member left, the occurrence was cancelled, the call or its rule
is gone) is cancelled with the reason: nothing failed. Only a database that cannot record
anything stops a pass: `run_once` raises `DatabaseError` then.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parseaddr
from urllib.parse import quote

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, col, select

from scheduler import channels
from scheduler.channels import Post, Result, Transport, mail
from scheduler.config import Settings
from scheduler.core import addresses
from scheduler.core.plan import EMAIL, FORUM, Rule, RuleKind
from scheduler.core.recurrence import Change, Occurrence, Status, occurrence_at
from scheduler.core.zones import get_zone
from scheduler.delivery import followups, notices, planning
from scheduler.delivery.preview import facts
from scheduler.delivery.render import Message, Templates, message_context
from scheduler.errors import DatabaseError, SchedulerError, reason
from scheduler.store import outbox, rsvp
from scheduler.store.calls import all_changes, list_calls, series_of
from scheduler.store.models import Call, Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from scheduler.store.recorder import Claimed, Recorder

log = logging.getLogger(__name__)


@dataclass
class PassReport:
    planned: dict[str, int] = field(default_factory=dict)
    expired: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        """Deliveries given up on in this pass: failed for good, out of time to retry, or
        expired before they could be sent (all recorded as failed or missed). Those cancelled
        because they were owed no more (`outcomes["cancelled"]`) are not failures."""
        return (self.outcomes[DeliveryStatus.FAILED] + self.outcomes[DeliveryStatus.MISSED]
                + self.expired)

    @property
    def to_retry(self) -> int:
        """Deliveries that failed in this pass and will be tried again."""
        return self.outcomes[outbox.TO_RETRY]

    def lines(self) -> list[str]:
        planned = ", ".join(f"{v} {k}" for k, v in self.planned.items())
        outcome = ", ".join(f"{v} {k}" for k, v in sorted(self.outcomes.items())) or "none due"
        return [f"planned: {planned}", f"expired as missed: {self.expired}", f"sent: {outcome}"]


def message_id(settings: Settings, delivery: Delivery) -> str:
    return mail.message_id(settings.email.sender, "reminder", delivery.call_id,
                           delivery.occurrence_id.isoformat(), delivery.rule,
                           delivery.channel, delivery.recipient)


@dataclass(frozen=True, kw_only=True)
class Job:
    """A claimed delivery with what rendering it needs."""

    delivery: Delivery
    call: Call
    occurrence: Occurrence
    rule: Rule
    extras: dict[str, str | None] = field(default_factory=dict)  # a follow-up's recording
    coming: int = 0  # members who said "I'll be there" (`rsvp.coming`), for every recipient


def _render(settings: Settings, templates: Templates, job: Job, *, lang: str, zone: str,
            now: datetime, unsubscribe: str | None = None) -> Message:
    context = message_context(facts(job.call, settings), job.occurrence, lang=lang,
                              reader=get_zone(zone), now=now, labels=settings.labels,
                              recording_url=job.extras.get("recording_url"),
                              notes=job.extras.get("notes"), folders=settings.template_folders,
                              coming=job.coming)
    if unsubscribe is not None:  # an email to a member: their own links (`TOKEN`)
        context["unsubscribe"] = unsubscribe
        context["manage"] = f"{settings.web.base_url}/manage/{TOKEN}"
        if job.rule.kind is RuleKind.REMINDER and job.occurrence.status is not Status.CANCELLED:
            answer = (f"{settings.web.base_url}/rsvp/{TOKEN}/{job.call.slug}/"
                      f"{job.occurrence.id.astimezone(UTC):%Y%m%dT%H%M%SZ}/")
            context["rsvp_yes"], context["rsvp_no"] = answer + "yes", answer + "no"
    return templates.render(job.rule.template, job.delivery.channel, lang, context)


TOKEN = "coalition-unsubscribe-token-placeholder"  # each recipient's own token replaces it


def email_prototype(settings: Settings, templates: Templates, job: Job, *, lang: str,
                    zone: str, now: datetime) -> mail.Prototype:
    """The reminder (or notice, or follow-up) for everyone who reads `lang` in `zone`:
    rendered once, sent to each, with the headers of a mailing list (List-Id,
    List-Unsubscribe, Auto-Submitted, Reply-To when configured)."""
    unsubscribe = f"{settings.web.base_url}/unsubscribe/{TOKEN}"
    rendered = _render(settings, templates, job, lang=lang, zone=zone, now=now,
                       unsubscribe=unsubscribe)
    assert rendered.subject is not None and rendered.html is not None
    mailto = addresses.for_sending(parseaddr(settings.email.unsubscribe_mailto)[1])
    if not mailto.isascii():  # a mailto: URI carries UTF-8 percent-encoded (RFC 6068)
        mailto = quote(mailto, safe="@!$'*+=^_`{|}~.-")
    headers = {
        "From": settings.email.sender, "Subject": rendered.subject,
        "Date": format_datetime(now),
        "List-Unsubscribe": f"<{unsubscribe}>" + (
            f", <mailto:{mailto}?subject=unsubscribe>" if mailto else ""),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": mail.list_id(settings.email.sender),
        **mail.automatic(settings),
    }
    return mail.Prototype(headers, text=rendered.text,
                          html=rendered.html, secret=TOKEN)


def post_path(call: Call, delivery: Delivery) -> str:
    return os.path.join(call.slug, f"{delivery.occurrence_id:%Y%m%dT%H%MZ}-{delivery.rule}.md")


def forum_post(settings: Settings, templates: Templates, job: Job, now: datetime) -> Post:
    """The post in the call's language and zone, for the call's topic (or a new one)."""
    call, delivery = job.call, job.delivery
    rendered = _render(settings, templates, job, lang=call.language, zone=job.occurrence.zone.key,
                       now=now)
    return Post(key=message_id(settings, delivery), text=rendered.text, title=call.title,
                topic=call.forum_topic, name=post_path(call, delivery),
                retry=delivery.attempts > 1)


def transports(settings: Settings) -> dict[str, str]:
    """The transport that carries each channel, as config.toml names it."""
    return {EMAIL: str(settings.email.transport), FORUM: str(settings.forum.transport)}


def outage(result: Result) -> bool:
    """Whether a failed result is its transport's, not its message's: the transport said the
    far side is down (`Result.unreachable`), and nothing about this message (a refused
    address, a Retry-After) asks for its own timer."""
    return (not result.ok and result.unreachable and not result.permanent
            and not result.unusable and result.retry_after is None)


def record_post(session: Session, settings: Settings, job: Job, result: Result, *,
                now: datetime) -> str:
    """What became of one post, committed at once (a post made is never made twice); returns
    the delivery's new status. A new topic becomes the call's: later posts reply in it."""
    delivery, call = job.delivery, job.call
    if result.ok:
        if call.forum_topic is None and result.topic is not None:
            call.forum_topic = result.topic
            session.add(call)
        outbox.mark_sent(session, delivery, now=now, message_id=result.receipt or result.key)
    else:
        outbox.mark_failed(session, delivery, error=result.error or "error", now=now,
                           permanent=result.permanent, retry_after=result.retry_after,
                           first_retry=timedelta(seconds=settings.daemon.retry_seconds),
                           outage=outage(result))
    session.commit()
    return delivery.status


def _job(session: Session, delivery: Delivery, calls: Mapping[int | None, Call],
         changes: Mapping[int, Mapping[datetime, Change]],
         rules: Mapping[str, Rule], coming: dict[tuple[int, datetime], int]) -> Job | str:
    """A claimed delivery with what rendering it needs, or why it is owed no more (the
    reason it is cancelled with). `coming` keeps each occurrence's count of members coming,
    counted once a batch, not once a recipient."""
    call = calls.get(delivery.call_id)
    rule = rules.get(delivery.rule) or notices.rule_for(delivery.rule)
    if call is None or rule is None:
        return "no such call or rule any more"
    current = occurrence_at(delivery.occurrence_id, series_of(call),
                            changes.get(delivery.call_id, {}).get(delivery.occurrence_id))
    if current.status is Status.CANCELLED and rule.kind is not RuleKind.NOTICE:
        return "the occurrence is cancelled"
    extras = (followups.extras(session, delivery.call_id, delivery.occurrence_id)
              if rule.kind is RuleKind.FOLLOWUP else {})
    key = (delivery.call_id, delivery.occurrence_id)
    if rule.kind is RuleKind.REMINDER and key not in coming:
        coming[key] = rsvp.coming(session, *key)
    return Job(delivery=delivery, call=call, occurrence=current, rule=rule, extras=extras,
               coming=coming.get(key, 0))


def send_pass(session: Session, settings: Settings, *, now: datetime, worker: str,
              templates: Templates | None = None,
              clock: Callable[[], datetime] | None = None,
              progress: Callable[[int], None] | None = None) -> Counter[str]:
    """Claim a batch (`[daemon] batch`) of what is due and send it; return how many ended in
    each state ("sent", "failed", "missed", "to retry", "cancelled").

    `clock` stamps each message when the server accepts it (the daemon's real clock) and keeps
    the batch's claims while it is being sent (every third of the lease); without it, the
    pass's `now` is the stamp and the claims last one lease (a preview with --now).
    `progress`, if given, is called with 1 as the server answers each email.
    """
    states, _ = _send_batch(session, settings, now=now, worker=worker, templates=templates,
                            clock=clock, progress=progress)
    return Counter(states.values())


def _send_batch(session: Session, settings: Settings, *, now: datetime, worker: str,
                templates: Templates | None, clock: Callable[[], datetime] | None,
                progress: Callable[[int], None] | None) -> tuple[dict[int, str], set[str]]:
    """`send_pass`, saying what became of each delivery it claimed, by id, and which
    channels' transports it found down (their deliveries now wait)."""
    templates = templates or Templates(settings.template_folders)
    rules = {rule.name: rule for rule in (*settings.reminders, followups.RULE)}
    states: dict[int, str] = {}
    carriers = transports(settings)
    claimed = outbox.claim(session, now=now, worker=worker, limit=settings.daemon.batch,
                           lease=timedelta(seconds=settings.daemon.lease_seconds),
                           waiting=outbox.waiting_channels(session, now=now,
                                                           transports=carriers))
    if not claimed:
        return states, set()
    answered: set[str] = set()  # channels whose transport took, or answered about, a message
    down: dict[str, str] = {}  # channels whose transport could not be reached, and why
    waiting: dict[str, list[int]] = {EMAIL: [], FORUM: []}  # recorded as waiting for it

    def seen(channel: str, result: Result) -> bool:
        """Notes what `result` says of its channel's transport; whether it is an outage."""
        if outage(result):
            down[channel] = result.error or "unreachable"
            return True
        answered.add(channel)
        return False

    def state(delivery: Delivery, outcome: str) -> None:
        assert delivery.id is not None
        states[delivery.id] = outcome
    calls = {c.id: c for c in list_calls(session)}
    changes = all_changes(session)
    coming: dict[tuple[int, datetime], int] = {}  # members coming, by occurrence
    recipients = sorted({d.recipient for d in claimed if d.channel == EMAIL})
    subscribers = {s.email: s for s in session.exec(select(Subscriber).where(
        col(Subscriber.email).in_(recipients))).all()} if recipients else {}
    emails: list[tuple[Delivery, mail.Outgoing]] = []
    prototypes: dict[tuple[object, ...], mail.Prototype | Exception] = {}
    forum: Transport[Post] | None = None  # opened at the first post

    def fail(delivery: Delivery, error: Exception | str) -> None:
        """This delivery alone: recorded with the reason, and the pass goes on."""
        reason, permanent = (error, True) if isinstance(error, str) else failure(error)
        outbox.mark_failed(session, delivery, error=reason, permanent=permanent, now=now,
                           first_retry=timedelta(seconds=settings.daemon.retry_seconds))
        state(delivery, outbox.outcome(delivery.status))

    def drop(delivery: Delivery, reason: str) -> None:
        """Owed no more since it was queued: cancelled with the reason; nothing failed."""
        outbox.mark_cancelled(session, delivery, reason=reason, now=now)
        state(delivery, DeliveryStatus.CANCELLED)

    def email(job: Job, subscriber: Subscriber) -> mail.Outgoing | Exception:
        """The reminder to one member, from the prototype of everyone who reads it in the
        same language and zone: rendered once for them all, or failed once for them all."""
        delivery = job.delivery
        group = (delivery.call_id, delivery.occurrence_id, delivery.rule, subscriber.language,
                 subscriber.timezone)
        if group not in prototypes:
            try:
                prototypes[group] = email_prototype(settings, templates, job, now=now,
                                                    lang=subscriber.language,
                                                    zone=subscriber.timezone)
            except SQLAlchemyError:
                raise
            except Exception as e:
                log.warning("%s for %s in %s cannot be rendered: %s", delivery.rule,
                            subscriber.language, subscriber.timezone, failure(e)[0])
                prototypes[group] = e
        prototype = prototypes[group]
        if isinstance(prototype, Exception):
            return prototype
        return prototype.to(name=subscriber.name, address=subscriber.email,
                            message_id=message_id(settings, delivery), secret=subscriber.token)

    try:  # whatever stops the pass, the forum's client is closed
        for delivery in claimed:
            try:
                job = _job(session, delivery, calls, changes, rules, coming)
                if isinstance(job, str):
                    drop(delivery, job)
                elif delivery.channel == FORUM:
                    post = forum_post(settings, templates, job, now)
                    if FORUM in down:  # unreachable a moment ago: waits with the others
                        result = Result(key=post.key, error=down[FORUM], unreachable=True)
                    else:
                        forum = forum or channels.forum(settings)
                        (result,) = forum.send([post])
                    if seen(FORUM, result):
                        assert delivery.id is not None
                        waiting[FORUM].append(delivery.id)
                    state(delivery, outbox.outcome(record_post(session, settings, job, result,
                                                               now=now)))
                elif delivery.channel == EMAIL:
                    subscriber = subscribers.get(delivery.recipient)
                    if subscriber is None or subscriber.status != SubscriberStatus.CONFIRMED:
                        drop(delivery, "not subscribed")
                        continue
                    outgoing = email(job, subscriber)
                    if isinstance(outgoing, Exception):
                        fail(delivery, outgoing)
                    else:
                        emails.append((delivery, outgoing))
            except SQLAlchemyError:
                raise  # nothing can be recorded: the pass stops, and its claims run out
            except Exception as e:
                fail(delivery, e)
        by_id = {message.message_id: Claimed.of(delivery) for delivery, message in emails}
        session.commit()
        engine = session.get_bind()
        assert isinstance(engine, Engine)
        lease = timedelta(seconds=settings.daemon.lease_seconds)
        ids = [claimed.delivery_id for claimed in by_id.values()]

        def renew(session: Session) -> None:
            """While the batch is being sent, on the real clock: a preview (--now) is not."""
            assert clock is not None
            outbox.renew(session, ids, worker=worker, until=clock() + lease)

        recorder = Recorder(engine, first_retry=timedelta(seconds=settings.daemon.retry_seconds),
                            renew=renew if clock is not None else None,
                            renew_every=lease.total_seconds() / 3)

        answered_keys: set[str] = set()

        def record(result: Result) -> None:
            """As the server answers; recorded a group at a time, beside the sending."""
            answered_keys.add(result.key)
            claimed = by_id[result.key]
            moment = clock() if clock is not None else now
            unreached = seen(EMAIL, result)
            if unreached:
                waiting[EMAIL].append(claimed.delivery_id)
            if result.ok:
                recorder.sent(claimed, message_id=result.receipt or result.key, now=moment)
            else:
                recorder.failed(claimed, error=result.error or "unknown",
                                permanent=result.permanent, now=moment, outage=unreached)
            if progress is not None:
                progress(1)

        try:
            try:
                if emails:
                    with closing(channels.email(settings)) as transport:
                        transport.send([m for _, m in emails], on_result=record)
            except Exception as e:
                if recorder.error is not None:
                    raise  # recording stopped: nothing more may go out
                reason, _ = failure(e)
                log.warning("sending stopped: %s; the rest is retried", reason)
                moment = clock() if clock is not None else now
                down[EMAIL] = f"sending stopped: {reason}"
                for unanswered in by_id.keys() - answered_keys:
                    recorder.failed(by_id[unanswered], error=down[EMAIL],
                                    permanent=False, now=moment, outage=True)
                    waiting[EMAIL].append(by_id[unanswered].delivery_id)
        finally:
            recorder.close()
            states.update(recorder.states)
    finally:
        if forum is not None:
            forum.close()
    moment = clock() if clock is not None else now
    unreached = set()
    for channel in (EMAIL, FORUM):  # the transport's one schedule, shared through the database
        if channel in answered:
            outbox.transport_worked(session, channel)
            if waiting[channel]:  # not down after all: what failed failed on its own
                outbox.retry_alone(session, waiting[channel], now=moment,
                                   first_retry=timedelta(seconds=settings.daemon.retry_seconds))
        elif channel in down:
            outbox.transport_failed(session, channel, transport=carriers[channel],
                                    error=down[channel], now=moment,
                                    first_retry=timedelta(seconds=settings.daemon.retry_seconds))
            unreached.add(channel)
    return states, unreached


def failure(error: Exception) -> tuple[str, bool]:
    """What a delivery's record says about an error raised while rendering or sending it,
    and whether that failure is for good: an error of the disk or the network may pass, and
    is retried; anything else would happen again."""
    permanent = isinstance(error, SchedulerError) or not isinstance(error, OSError)
    return reason(error), permanent


def run_once(session: Session, settings: Settings, *, now: datetime, worker: str,
             clock: Callable[[], datetime] | None = None,
             memo: dict[str, object] | None = None,
             templates: Templates | None = None,
             progress: Callable[[int], None] | None = None,
             batches: int | None = None) -> PassReport:
    """One pass: plan, expire, then send what is due, a batch (`[daemon] batch`) after another,
    until nothing due is left: the last batch is one that was not full, or that got nothing
    done (all of it failed for now) without finding a transport down (whose channel then
    waits, while another channel's deliveries may still be due), or the `batches`-th (the
    daemon sends one a pass, so that SIGTERM waits for one batch only; its timer runs the next
    pass at once while more is due). Each delivery counts once in the report, as the last batch
    that tried it left it; later batches go on `clock`, when given.

    A database that stops answering midway (gone, locked, out of disk) raises `DatabaseError`,
    in one line: what the pass recorded stays, and a later pass takes up the rest (the
    worker's own claims are free to it at once, and to others once it is gone)."""
    report = PassReport()
    try:
        report.planned = planning.plan_pass(session, settings, now=now, memo=memo)
        report.expired = outbox.expire(session, now=now)
        states: dict[int, str] = {}
        moment, sent = now, 0
        while True:
            batch, unreached = _send_batch(session, settings, now=moment, worker=worker,
                                           templates=templates, clock=clock, progress=progress)
            states.update(batch)
            sent += 1
            done = any(state != outbox.TO_RETRY for state in batch.values())
            if len(batch) < settings.daemon.batch or not (done or unreached) or sent == batches:
                break
            if clock is not None:
                moment = clock()
                report.expired += outbox.expire(session, now=moment)
        report.outcomes = Counter(states.values())
    except OperationalError as e:
        where = session.get_bind().engine.url.render_as_string(hide_password=True)
        reason = str(e.orig if e.orig is not None else e).strip().splitlines()[0]
        raise DatabaseError(f"database {where} stopped the pass: {reason}") from e
    return report
