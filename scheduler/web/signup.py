"""Signing up on the members' page: double opt-in, with nothing stored until the mailbox answers.

The form's answers (address, name, language, zone, calls) travel inside the confirmation link,
signed with the site secret (itsdangerous) and valid for `[web] confirm_hours`. Only when
someone who reads that mailbox opens the link and presses "Confirm" is a subscriber stored,
confirmed. So a sign-up by a stranger changes nothing, signing up twice is harmless, and what
the page answers never depends on whether the address is already subscribed.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Engine
from sqlmodel import Session, select

from scheduler.channels import mail
from scheduler.config import Settings
from scheduler.core import addresses, inputs
from scheduler.core.zones import get_zone
from scheduler.delivery.render import Templates
from scheduler.errors import InvalidValue, SchedulerError
from scheduler.store import subscribers
from scheduler.store.models import Subscriber, SubscriberStatus

log = logging.getLogger(__name__)

MIN_SECRET = 32  # characters


class PageError(InvalidValue):
    """Bad input from the page: `key` names the words for it in scheduler/web/words.py (in
    the catalogs, so the reader sees it in their language); the message is for logs and
    tests."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class LinkError(PageError):
    """A confirmation link that is forged, damaged, too old, or older than an unsubscribe."""


class FieldError(PageError):
    """One field of the form is wrong; `field` is its name."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"invalid_{field}", message)
        self.field = field


@dataclass(frozen=True, kw_only=True)
class Request:
    """What someone asked for on the form, checked."""

    email: str
    name: str
    language: str
    timezone: str
    calls: tuple[str, ...] | None  # None: every call, including new ones


def checked(settings: Settings, *, email: str, name: str, language: str, timezone: str,
            calls: list[str] | None, known: list[str]) -> Request:
    """The form's fields, or `FieldError` naming the first one that is wrong."""
    checks: list[tuple[str, Callable[[], object]]] = [
        ("email", lambda: addresses.mailbox(email)),
        ("name", lambda: subscribers.clean_name(name)),
        ("language", lambda: inputs.language(language or settings.calls.default_language,
                                             settings.calls.languages)),
        ("zone", lambda: get_zone(timezone.strip())),
    ]
    for field, check in checks:
        try:
            check()
        except SchedulerError as e:
            raise FieldError(field, str(e)) from e
    if calls is not None:
        unknown = [c for c in calls if c not in known]
        if unknown:
            raise FieldError("calls", f"unknown call {unknown[0]!r}")
        if not calls:
            raise FieldError("calls", "choose at least one call, or all calls")
    email, name, language, zone = subscribers.normalized(settings, subscribers.NewSubscriber(
        email=email, name=name, language=language or None, timezone=timezone))
    return Request(email=email, name=name, language=language, timezone=zone,
                   calls=tuple(calls) if calls is not None else None)


class Links:
    """Signed confirmation links and form tokens, from one secret."""

    def __init__(self, secret: str, *, max_age_hours: int) -> None:
        self._signup = URLSafeTimedSerializer(secret, salt="coalition-signup")
        self._forms = URLSafeTimedSerializer(secret, salt="coalition-form")
        self.max_age = max_age_hours * 3600

    def confirmation(self, request: Request) -> str:
        return str(self._signup.dumps(asdict(request)))

    def read(self, token: str) -> tuple[Request, datetime]:
        """The request inside a confirmation link, and when the link was made."""
        try:
            data, issued = self._signup.loads(token, max_age=self.max_age, return_timestamp=True)
        except SignatureExpired as e:
            raise LinkError("confirm_expired", "this confirmation link has expired; please sign "
                            "up again") from e
        except BadSignature as e:
            raise LinkError("confirm_invalid", "this confirmation link is not valid") from e
        try:
            calls = data["calls"]
            request = Request(email=data["email"], name=data["name"], language=data["language"],
                              timezone=data["timezone"],
                              calls=tuple(calls) if calls is not None else None)
            for text in (request.email, request.name, request.language, request.timezone):
                inputs.plain_text(text, field="link")  # older versions let controls through
        except (KeyError, TypeError, InvalidValue) as e:  # signed by us, but by another version
            raise LinkError("confirm_invalid", "this confirmation link is not valid") from e
        return request, issued.astimezone(UTC)

    def form_token(self, visitor: str) -> str:
        """The hidden field of every form: binds the form to the visitor's cookie (CSRF)."""
        return str(self._forms.dumps(visitor))

    def form_ok(self, token: str, visitor: str) -> bool:
        try:
            return bool(visitor) and self._forms.loads(token, max_age=86400) == visitor
        except BadSignature:
            return False


def confirm(session: Session, settings: Settings, request: Request, *, issued: datetime,
            now: datetime) -> Subscriber:
    """The mailbox said yes: store them, confirmed, with what they asked for (once or twice)."""
    subscriber = session.exec(select(Subscriber).where(
        Subscriber.email == request.email)).first()
    if subscriber is not None and subscriber.status == SubscriberStatus.UNSUBSCRIBED and \
            subscriber.unsubscribed_at is not None and subscriber.unsubscribed_at > issued:
        raise LinkError("confirm_after_unsubscribe", "you unsubscribed after this link was "
                        "sent; sign up again to come back")
    if subscriber is None:
        subscriber = Subscriber(email=request.email, token=secrets.token_urlsafe(24),
                                created_at=now, language=request.language,
                                timezone=request.timezone, status=SubscriberStatus.CONFIRMED)
    if subscriber.status != SubscriberStatus.CONFIRMED:
        subscriber.confirmed_at = now
    subscriber.name, subscriber.language = request.name, request.language
    subscriber.timezone = request.timezone
    subscriber.calls = list(request.calls) if request.calls is not None else None
    subscriber.status, subscriber.unsubscribed_at = SubscriberStatus.CONFIRMED, None
    session.add(subscriber)
    session.commit()
    session.refresh(subscriber)
    return subscriber


def confirmation_email(settings: Settings, request: Request, *, link: str,
                       titles: list[str], now: datetime) -> EmailMessage:
    context: dict[str, Any] = {
        "name": request.name, "email": request.email, "link": link,
        "hours": settings.web.confirm_hours, "calls": titles,
    }
    rendered = Templates(settings.template_folders).email("confirm", request.language, context)
    assert rendered.html is not None and rendered.subject is not None
    message = EmailMessage()
    message["From"] = settings.email.sender
    message["To"] = addresses.header(request.name, request.email)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = mail.message_id(settings.email.sender, "confirm", request.email,
                                            now.isoformat())
    for name, value in mail.automatic(settings).items():  # Auto-Submitted, Reply-To
        message[name] = value
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


def site_secret(settings: Settings, engine: Engine) -> str:
    """The secret from the environment variable `[web] secret_env` names.

    Unset, a SQLite install (one daemon, one machine) makes one and keeps it beside its
    database file, readable by its owner only. Replicas on PostgreSQL must share one, so there
    it must be given.
    """
    given = settings.web.secret()
    if given:
        if len(given) < MIN_SECRET:
            raise SchedulerError(f"{settings.web.secret_env} is {len(given)} characters; use at "
                                 f"least {MIN_SECRET} (e.g. python3 -c 'import secrets; "
                                 "print(secrets.token_urlsafe(32))')")
        return given
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:"):
        raise SchedulerError(f"set {settings.web.secret_env or '[web] secret_env'}: every "
                             "daemon on a shared database needs the same secret to sign "
                             "sign-up links")
    path = Path(f"{database}.secret")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32))
    log.info("made a secret for sign-up links in %s", path)
    return path.read_text().strip()
