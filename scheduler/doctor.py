"""`coalition doctor`: is everything this service needs there and working? One line per check.

`check_templates` is also what `coalition check` and the daemon's start run: it is the one place
that knows both the messages (delivery) and the members' pages (web) have templates."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, select

from scheduler import channels
from scheduler.channels import EMAIL, FORUM
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


def transport(settings: Settings, channel: str) -> Check:
    """The transport config.toml names for `channel`, asked whether it can send now."""
    chosen = channels.open_transport(settings, channel)
    try:
        health = chosen.check()
    finally:
        chosen.close()
    return Check(name=channel, ok=health.ok, detail=health.detail)


def run(settings: Settings) -> list[Check]:
    return [Check(name="config", ok=True, detail=str(settings.path)), database(settings),
            templates(settings), transport(settings, EMAIL), transport(settings, FORUM)]
