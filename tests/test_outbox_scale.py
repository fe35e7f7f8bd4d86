"""A planning pass that owes more rows than one SQL statement can carry."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func
from sqlmodel import Session, select

from scheduler import config
from scheduler.delivery import planning
from scheduler.store import calls, db
from scheduler.store.models import Delivery, Subscriber
from tests.conftest import ConfigCase


def test_more_rows_than_one_statement_carries_are_planned(config_case: ConfigCase) -> None:
    """Each outbox row is 11 values; SQLite takes so many per statement (250,000 here)."""
    limit = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    members = limit // (3 * 11) + 1  # three reminders each
    path: Path = config_case("example")
    path.write_text(path.read_text().replace("queue_minutes = 15", "queue_minutes = 20160"))
    settings = config.load(path)  # all three reminders queued at once
    engine = db.open_database(settings.database_url())
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    joined = now - timedelta(days=30)
    with Session(engine, expire_on_commit=False) as session:
        calls.add_call(session, settings, calls.CallInput(
            title="Big call", start="2026-01-07 13:00", timezone="UTC"), now=joined)
        session.add_all(Subscriber(email=f"member{n}@example.org", language="en",
                                   timezone="UTC", status="confirmed", token=f"t{n:031d}",
                                   created_at=joined, confirmed_at=joined)
                        for n in range(members))
        session.commit()
        planning.plan_pass(session, settings, now=now)
        stored = session.exec(select(func.count()).select_from(Delivery).where(
            Delivery.channel == "email")).one()
    engine.dispose()
    assert stored == 3 * members
