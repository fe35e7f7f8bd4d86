"""The people who get reminders by email: added by organizers (confirmed at once) or, later,
signing up on the members' page (pending until they confirm)."""

from __future__ import annotations

import contextlib
import csv
import io
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from scheduler.config import Settings
from scheduler.core import addresses, inputs
from scheduler.core.plan import EMAIL, wanted
from scheduler.core.zones import get_zone
from scheduler.errors import Conflict, InvalidValue, NotFound, SchedulerError
from scheduler.store import outbox
from scheduler.store.calls import list_calls
from scheduler.store.models import Subscriber, SubscriberStatus


@dataclass(frozen=True, kw_only=True)
class NewSubscriber:
    email: str
    name: str = ""
    language: str | None = None
    timezone: str | None = None


def normalized(settings: Settings, data: NewSubscriber) -> tuple[str, str, str, str]:
    """The address as stored (see `addresses`), the name on one line, a language and zone
    we know; or the `InvalidValue` of the first that is wrong."""
    email = addresses.mailbox(data.email)
    language = inputs.language(data.language or settings.calls.default_language,
                               settings.calls.languages)
    zone = get_zone((data.timezone or settings.calls.default_zones[0]).strip()).key
    return email, clean_name(data.name), language, zone


def clean_name(text: str) -> str:
    """A name on one line, its runs of white space made single spaces; no control characters
    (`inputs.plain_text`: it goes into mail headers and the database)."""
    name = inputs.one_line(text, field="name")
    if len(name) > 200:
        raise InvalidValue("name must be one line of at most 200 characters")
    return name


def add(session: Session, settings: Settings, data: NewSubscriber, *, now: datetime,
        commit: bool = True) -> Subscriber:
    """An organizer adds someone: confirmed at once (they asked the organizer)."""
    email, name, language, zone = normalized(settings, data)
    existing = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
    if existing is not None and existing.status != SubscriberStatus.UNSUBSCRIBED:
        raise Conflict(f"{email} is already subscribed ({existing.status})")
    subscriber = existing or Subscriber(email=email, token=secrets.token_urlsafe(24),
                                        created_at=now, language=language, timezone=zone,
                                        status=SubscriberStatus.CONFIRMED)
    subscriber.name, subscriber.language, subscriber.timezone = name, language, zone
    subscriber.status, subscriber.confirmed_at = SubscriberStatus.CONFIRMED, now
    subscriber.unsubscribed_at = None
    session.add(subscriber)
    if commit:
        session.commit()
        session.refresh(subscriber)
    return subscriber


def import_csv(session: Session, settings: Settings, data: bytes, *, source: str,
               now: datetime) -> int:
    """email,name,language,timezone per line (a header line is optional); all rows or none.
    `data` is what the file `source` holds (its name, for messages).

    Two more columns may follow: calls (the slugs of the calls they follow, separated by
    spaces or semicolons; empty: every call) and reminders (the reminders they get of each,
    as `preferences.choosable` names them; empty: every one). Without them a member keeps
    what they chose before."""
    from scheduler.store import preferences  # it builds on this module

    known_calls = [c.slug for c in list_calls(session)]
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
        rows: list[tuple[int, list[str]]] = []
        first = 1  # the file's line a row starts on (line_num is where it ends: a quoted
        for row in reader:  # field can hold line breaks)
            rows.append((first, row))
            first = reader.line_num + 1
    except (UnicodeDecodeError, csv.Error) as e:
        raise SchedulerError(f"{source}: cannot read: {e}") from e
    if rows and rows[0][1] and rows[0][1][0].strip().lower() == "email":
        rows = rows[1:]
    seen: set[str] = set()
    count = 0
    try:
        for number, row in rows:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > 6:
                raise InvalidValue(f"{source} line {number}: has {len(row)} columns; expected "
                                   "email,name,language,timezone (then calls,reminders)")
            cells = [*row, "", "", "", "", ""][:6]
            wanted = NewSubscriber(email=cells[0], name=cells[1], language=cells[2] or None,
                                   timezone=cells[3] or None)
            try:
                subscriber = add(session, settings, wanted, now=now, commit=False)
                if len(row) > 4:
                    subscriber.calls = preferences.call_slugs(cells[4], known_calls,
                                                              field="calls")
                    names = preferences.reminder_names(cells[5], settings, field="reminders")
                    subscriber.reminders_off = preferences.off_from_wanted(
                        settings, {"*": names}) if names else None
            except SchedulerError as e:
                raise SchedulerError(f"{source} line {number}: {e}") from e
            if subscriber.email in seen:
                raise SchedulerError(f"{source} line {number}: {subscriber.email} appears twice")
            seen.add(subscriber.email)
            count += 1
        session.commit()
    except Exception:
        session.rollback()
        raise
    return count


def listing(session: Session, status: str | None = None) -> list[Subscriber]:
    query = select(Subscriber).order_by(Subscriber.email)
    if status is not None:
        if status not in list(SubscriberStatus):
            raise InvalidValue(f"unknown status {status!r}; choose one of "
                               f"{', '.join(SubscriberStatus)}")
        query = query.where(Subscriber.status == status)
    return list(session.exec(query).all())


def as_dict(subscriber: Subscriber) -> dict[str, Any]:
    return {"email": subscriber.email, "name": subscriber.name,
            "language": subscriber.language, "timezone": subscriber.timezone,
            "status": subscriber.status, "calls": subscriber.calls}


def find(session: Session, email: str) -> Subscriber:
    """The subscriber with this address, as typed or as it would be stored now."""
    typed = {email.strip().lower()}
    with contextlib.suppress(InvalidValue):
        typed.add(addresses.mailbox(email))
    subscriber = session.exec(select(Subscriber).where(
        col(Subscriber.email).in_(sorted(typed)))).first()
    if subscriber is None:
        raise NotFound(f"no subscriber {email.strip()!r}")
    return subscriber


def unsubscribe(session: Session, email: str, *, now: datetime) -> Subscriber:
    """They get nothing more: status unsubscribed, and their pending deliveries cancelled."""
    return _unsubscribe(session, find(session, email), now)


def unsubscribe_by_token(session: Session, token: str, *, now: datetime) -> Subscriber:
    """The one-click link in every email (RFC 8058); doing it twice is harmless."""
    subscriber = session.exec(select(Subscriber).where(Subscriber.token == token)).first()
    if subscriber is None:
        raise NotFound("this unsubscribe link is not valid")
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return subscriber
    return _unsubscribe(session, subscriber, now)


def _unsubscribe(session: Session, subscriber: Subscriber, now: datetime) -> Subscriber:
    subscriber.status, subscriber.unsubscribed_at = SubscriberStatus.UNSUBSCRIBED, now
    session.add(subscriber)
    outbox.cancel_for_recipient(session, subscriber.email, channel=EMAIL, reason="unsubscribed",
                                now=now)
    session.commit()
    return subscriber


def following(session: Session, slug: str, *, rule: str | None = None) -> list[str]:
    """The confirmed addresses that get messages about the call `slug` (and, given a `rule`,
    want that one: `preferences`)."""
    return [s.email for s in session.exec(select(Subscriber).where(
        Subscriber.status == SubscriberStatus.CONFIRMED)).all()
        if (s.calls is None or slug in s.calls) and (rule is None or wants(s, slug, rule))]


def wants(subscriber: Subscriber, slug: str, rule: str) -> bool:
    """Whether they chose to get the reminder `rule` of the call `slug` (`preferences`): a
    call's own choice, else the one for every call ("*"), else every reminder."""
    return wanted(subscriber.reminders_off or {}, slug, rule)
