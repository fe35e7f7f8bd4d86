"""GET /healthz and GET /metrics: what an operator's monitoring reads."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import create_engine
from starlette.testclient import TestClient

from scheduler import config, daemon
from scheduler.delivery import feeds, sender
from scheduler.errors import SchedulerError
from scheduler.store import db
from scheduler.web.app import create_app
from tests.conftest import Coalition
from tests.daemon_process import start, stop

PASSED = datetime(2019, 3, 5, 15, tzinfo=UTC)


class Clock:
    """A monotonic clock that a test moves by hand, in seconds."""

    def __init__(self, at: float = 1000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def app_for(coalition: Coalition, alive: bool = True, *, clock: Clock | None = None,
            health: Callable[[], dict[str, Any]] | None = None) -> TestClient:
    """The web app with a scheduler whose last pass succeeded at the clock's present moment
    (the example config.toml passes every 60 s), unless `health` says otherwise."""
    clock = clock or Clock()
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    state = {"alive": alive, "last_pass": PASSED, "last_error": None, "last_success": clock(),
             "started": clock() - 30}
    return TestClient(create_app(settings, engine, health=health or (lambda: state),
                                 monotonic=clock))


def test_healthy_service_says_so(coalition: Coalition) -> None:
    response = app_for(coalition).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True, "reason": None, "database": "ok",
                               "scheduler": "alive", "last_pass": "2019-03-05T15:00:00+00:00",
                               "last_error": None}


def test_issue_13_healthz_503_after_missed_passes(coalition: Coalition) -> None:
    """Passes that keep failing used to leave /healthz at 200 with a last_pass minutes old:
    three intervals without a successful pass are one too many."""
    clock = Clock()
    client = app_for(coalition, clock=clock)
    clock.at += 3 * 60
    assert client.get("/healthz").status_code == 200
    clock.at += 412 - 3 * 60
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["ok"] is False
    assert response.json()["reason"] == "no successful pass for 412 s (interval 60 s)"
    assert response.json()["last_pass"] == "2019-03-05T15:00:00+00:00"


def test_healthz_503_when_no_pass_succeeded_since_the_start(coalition: Coalition) -> None:
    clock = Clock()
    state = {"alive": True, "last_pass": None, "last_error": None, "last_success": None,
             "started": clock()}
    client = app_for(coalition, clock=clock, health=lambda: state)
    clock.at += 100
    assert client.get("/healthz").status_code == 200  # the first pass may still be running
    clock.at += 100
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["reason"] == "no successful pass for 200 s (interval 60 s)"


def test_pass_that_raises_keeps_last_pass_and_records_its_error(
    coalition: Coalition, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed pass is not a pass: /healthz goes to 503 with its error after three intervals,
    and back to 200 once a pass succeeds."""
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    clock = Clock()
    reminders = daemon.Reminders(settings, engine, AsyncIOScheduler(timezone=UTC), "test",
                                 monotonic=clock)
    client = app_for(coalition, clock=clock,
                     health=lambda: {**reminders.health(), "alive": True})
    real_pass = sender.run_once

    def broken(*args: object, **kwargs: object) -> sender.PassReport:
        raise RuntimeError("the database went away")

    async def passes() -> None:
        monkeypatch.setattr(sender, "run_once", broken)
        await reminders.tick()
        assert reminders.last_pass is None and reminders.last_success is None
        assert reminders.last_error is not None
        assert reminders.last_error.endswith("RuntimeError: the database went away")
        clock.at += 200
        failing = client.get("/healthz")
        assert failing.status_code == 503 and failing.json()["last_error"] == \
            reminders.last_error
        monkeypatch.setattr(sender, "run_once", real_pass)
        await reminders.tick()
        assert reminders.last_pass is not None
        assert reminders.last_error is None  # a 200 does not carry an old error

    try:
        asyncio.run(passes())
        assert client.get("/healthz").status_code == 200
    finally:
        engine.dispose()


def test_a_long_pass_that_keeps_recording_messages_is_healthy(coalition: Coalition) -> None:
    """A fan-out through a slow relay can take many intervals; while messages keep being
    recorded, a monitor that restarts on 503 must not kill it."""
    clock = Clock()
    state = {"alive": True, "last_pass": PASSED, "last_error": None,
             "last_success": clock() - 600, "last_progress": clock() - 5,
             "started": clock() - 900}
    client = app_for(coalition, clock=clock, health=lambda: state)
    assert client.get("/healthz").status_code == 200
    clock.at += 3 * 60 + 1  # and then it stalls
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["reason"] == "no successful pass for 186 s (interval 60 s)"


def run_pass(coalition: Coalition, before: Callable[[Path], None] | None = None
             ) -> daemon.Reminders:
    """One pass of a daemon started on the coalition's database (`before` sees the database
    file after the daemon opened it)."""
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    reminders = daemon.Reminders(settings, engine, AsyncIOScheduler(timezone=UTC), "test",
                                 monotonic=Clock())
    if before is not None:
        before(Path(settings.database_url().removeprefix("sqlite:///")))
    try:
        asyncio.run(reminders.tick())
    finally:
        engine.dispose()
    return reminders


def test_feeds_that_cannot_be_written_do_not_stop_the_reminders(
    coalition: Coalition, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(*args: object, **kwargs: object) -> None:
        raise SchedulerError("calendars/all.ics: cannot write: No space left on device")

    monkeypatch.setattr(feeds, "build", full_disk)
    sent: list[object] = []
    real_pass = sender.run_once

    def counted_pass(*a: Any, **k: Any) -> Any:
        sent.append(a)
        return real_pass(*a, **k)

    monkeypatch.setattr(sender, "run_once", counted_pass)
    reminders = run_pass(coalition)
    assert len(sent) == 1  # the sending pass ran
    assert reminders.last_pass is not None and reminders.last_error is None


def test_daemon_stops_sending_when_a_newer_coalition_upgrades_the_schema(
    coalition: Coalition, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An organizer's newer `coalition init` upgraded the database under this daemon: it must
    not write into a schema it does not know, and /healthz says why."""
    def newer_init(path: Path) -> None:
        with sqlite3.connect(path) as connection:
            connection.execute("UPDATE alembic_version SET version_num = '9999'")

    monkeypatch.setattr(sender, "run_once", lambda *a, **k: pytest.fail("sent anyway"))
    reminders = run_pass(coalition, newer_init)
    assert reminders.last_pass is None
    assert reminders.last_error is not None
    assert "upgraded by a newer coalition" in reminders.last_error


def test_stopped_scheduler_is_unhealthy(coalition: Coalition) -> None:
    response = app_for(coalition, alive=False).get("/healthz")
    assert response.status_code == 503 and response.json()["scheduler"] == "stopped"


def test_unreachable_database_is_unhealthy(coalition: Coalition) -> None:
    settings = config.load(coalition.config)
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:9/none")
    client = TestClient(create_app(settings, engine,
                                   health=lambda: {"alive": True, "last_pass": None}))
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"].startswith("error:")


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match[1].split(","))) == wanted:
            return float(match[2])
    return 0.0


def test_metrics_count_deliveries_lateness_errors_and_feed_requests(
    organizer: Callable[[str], Coalition],
) -> None:
    members = organizer("reminders")
    client = app_for(members)
    assert members("run-once", "--now", "2019-03-05T14:59:00Z").exit_code == 0  # queues
    before = client.get("/metrics").text
    assert metric(before, "coalition_deliveries", status="pending", channel="email") == 2
    assert members("run-once", "--now", "2019-03-05T15:02:00Z").exit_code == 0  # 2 min late
    client.get("/calendars/justice-for-all-coalition-call.ics")
    client.get("/calendars/nothing-here.ics")
    after = client.get("/metrics").text
    assert metric(after, "coalition_deliveries", status="sent", channel="email") == 2
    assert metric(after, "coalition_deliveries", status="pending", channel="email") == 0
    # run-once ran in this process: its two emails were two minutes late
    assert metric(after, "coalition_send_lateness_seconds_bucket", channel="email",
                  le="120.0") - metric(before, "coalition_send_lateness_seconds_bucket",
                                       channel="email", le="120.0") == 2
    for status in ("200", "404"):
        assert metric(after, "coalition_feed_requests_total", status=status) - metric(
            before, "coalition_feed_requests_total", status=status) == 1


def test_daemon_serves_health_and_metrics(coalition: Coalition) -> None:
    process = start(coalition.config)
    try:
        ready = next(line for line in process.log if line.startswith("ready:"))
        url = ready.split()[3].rstrip("/")
        health = httpx.get(url + "/healthz")
        assert health.status_code == 200 and health.json()["scheduler"] == "alive"
        assert "coalition_feed_requests_total" in httpx.get(url + "/metrics").text
    finally:
        assert stop(process) == 0
