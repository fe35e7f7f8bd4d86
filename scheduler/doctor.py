"""`coalition doctor`: is everything this service needs there and working? One line per check.

`check_templates` is also what `coalition check` and the daemon's start run: it is the one place
that knows both the messages (delivery) and the members' pages (web) have templates."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
from sqlalchemy import func
from sqlmodel import Session, select

from scheduler.channels.discourse import Discourse
from scheduler.config import Settings
from scheduler.delivery import preview
from scheduler.errors import SchedulerError
from scheduler.store import db
from scheduler.store.models import Call, Subscriber
from scheduler.web import site


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    ok: bool
    detail: str


def _writable(folder: Path) -> str | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {folder}: {e.strerror}"
    return None if os.access(folder, os.W_OK) else f"{folder} is not writable"


def database(settings: Settings) -> Check:
    try:
        engine = db.open_database(settings.database_url())
    except SchedulerError as e:
        return Check(name="database", ok=False, detail=str(e))
    try:
        with Session(engine) as session:
            calls = session.exec(select(func.count()).select_from(Call)).one()
            members = session.exec(select(func.count()).select_from(Subscriber)).one()
        where = engine.url.render_as_string(hide_password=True)
        return Check(name="database", ok=True, detail=f"{where} (schema {db.head_revision()}): "
                     f"{calls} calls, {members} subscribers")
    finally:
        engine.dispose()


def check_templates(settings: Settings) -> list[str]:
    """Every message template and every members' page in every language, rendered with sample
    data: one line per problem, messages first."""
    return [*preview.check_messages(settings), *site.check_pages(settings)]


def templates(settings: Settings) -> Check:
    problems = check_templates(settings)
    if problems:
        return Check(name="templates", ok=False, detail="; ".join(problems))
    return Check(name="templates", ok=True, detail="every template renders in every language")


async def _smtp_login(settings: Settings) -> None:
    smtp = settings.smtp
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, timeout=smtp.timeout,
                             use_tls=smtp.security == "tls",
                             start_tls=smtp.security == "starttls")
    await client.connect()
    try:
        if smtp.username:
            await client.login(smtp.username, smtp.password())
    finally:
        await client.quit()


def email(settings: Settings) -> Check:
    if settings.email.transport == "maildir":
        problem = _writable(settings.maildir)
        return Check(name="email", ok=problem is None,
                     detail=problem or f"written to the Maildir {settings.maildir}")
    smtp = settings.smtp
    if smtp.username and not smtp.password():
        return Check(name="email", ok=False, detail=f"{smtp.password_env} is not set")
    try:
        asyncio.run(_smtp_login(settings))
    except (aiosmtplib.SMTPException, OSError) as e:
        return Check(name="email", ok=False, detail=f"SMTP {smtp.host}:{smtp.port}: {e}")
    login = f", logged in as {smtp.username}" if smtp.username else ""
    return Check(name="email", ok=True, detail=f"SMTP {smtp.host}:{smtp.port} "
                 f"({smtp.security}){login}")


def forum(settings: Settings) -> Check:
    if settings.forum.transport == "files":
        problem = _writable(settings.forum_folder)
        return Check(name="forum", ok=problem is None,
                     detail=problem or f"posts written to {settings.forum_folder}")
    key = settings.forum.api_key()
    if not key:
        return Check(name="forum", ok=False, detail=f"{settings.forum.api_key_env} is not set")
    client = Discourse(settings.forum.url, api_key=key, api_username=settings.forum.api_username,
                       category=settings.forum.category)
    try:
        problem = client.check()
    finally:
        client.close()
    return Check(name="forum", ok=problem is None,
                 detail=problem or f"{settings.forum.url} accepts the key of "
                 f"{settings.forum.api_username}")


def run(settings: Settings) -> list[Check]:
    return [Check(name="config", ok=True, detail=str(settings.path)), database(settings),
            templates(settings), email(settings), forum(settings)]
