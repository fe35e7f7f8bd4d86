"""Issue 13: nothing stored can stop the feeds, the listing or the reminders of other calls.

Each test stores a call the way an older version (or someone with the database open) could
have, bypassing today's checks, beside the README's call and its two members; every command
and the daemon go on for the others, and say which call they left out and why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlmodel import Session
from starlette.testclient import TestClient

from scheduler import config
from scheduler.store import db
from scheduler.store.models import Call, OccurrenceChange
from scheduler.web.app import create_app
from tests.conftest import Coalition
from tests.daemon_process import Daemon, start, stop

GOOD = "justice-for-all-coalition-call"
NOW = datetime(2019, 3, 1, tzinfo=UTC)


def store_behind_the_checks(coalition: Coalition, kind: str) -> str:
    """Write a bad call straight into the database; return its slug."""
    settings = config.load(coalition.config)
    engine = db.open_database(settings.database_url())
    rows = {  # slug, zone, wall start, rule
        "far-future": ("far-future", "Europe/Brussels", "9999-12-31T23:59:00", None),
        "unknown-zone": ("on-mars", "Mars/Olympus_Mons", "2019-03-12T10:00:00", "FREQ=WEEKLY"),
        "move-to-9999": ("moved-far", "Europe/Brussels", "2019-01-08T10:00:00", "FREQ=WEEKLY"),
    }
    slug, zone, wall, rule = rows[kind]
    try:
        with Session(engine) as session:
            call = Call(slug=slug, title=slug.replace("-", " ").title(), timezone=zone,
                        start_local=wall, rrule=rule, duration_minutes=60, language="en",
                        created_at=NOW, updated_at=NOW)
            session.add(call)
            session.flush()
            assert call.id is not None
            if kind == "move-to-9999":
                session.add(OccurrenceChange(
                    call_id=call.id, original_start=datetime(2019, 1, 15, 9, tzinfo=UTC),
                    new_start=datetime(9999, 12, 31, 23, 30, tzinfo=UTC), changed_at=NOW))
            session.commit()
    finally:
        engine.dispose()
    return slug


KINDS = [pytest.param("far-future", id="start-in-9999"),
         pytest.param("unknown-zone", id="zone-not-in-tzdata"),
         pytest.param("move-to-9999", id="occurrence-moved-to-9999")]


@pytest.fixture
def service(organizer: Callable[[str], Coalition]) -> Coalition:
    return organizer("reminders")


def left_out(caplog: pytest.LogCaptureFixture, slug: str, what: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
            and r.getMessage().startswith(f"{what} of call {slug} left out: ")]


@pytest.mark.parametrize("kind", KINDS)
def test_issue_13_bad_row_does_not_stop_feed_build(
    service: Coalition, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad = store_behind_the_checks(service, kind)
    folder = service.config.parent / "calendars"
    for path in folder.glob("*.ics"):
        path.unlink()
    ran = service("feed", "build")
    assert ran.exit_code == 0, ran.stderr
    assert "1 left out" in ran.stdout
    assert len(left_out(caplog, bad, "the feed")) == 1
    assert {p.name for p in folder.glob("*.ics")} == {"all.ics", f"{GOOD}.ics"}
    assert b"SUMMARY:Justice For All coalition call" in (folder / "all.ics").read_bytes()


@pytest.mark.parametrize("kind", KINDS)
def test_issue_13_bad_row_does_not_stop_call_list(service: Coalition, kind: str) -> None:
    bad = store_behind_the_checks(service, kind)
    ran = service("call", "list", "--json")
    assert ran.exit_code == 0, ran.stderr
    listed = {c["slug"]: c for c in json.loads(ran.stdout)}
    assert listed[GOOD]["error"] is None and listed[GOOD]["next"] is not None
    assert listed[bad]["error"] and listed[bad]["next"] is None
    table = service("call", "list")
    assert table.exit_code == 0 and GOOD in table.stdout
    assert bad in table.stdout and "cannot be served" in table.stdout


def test_issue_13_far_future_row_does_not_stop_call_add(service: Coalition) -> None:
    store_behind_the_checks(service, "far-future")
    ran = service("call", "add", "--title", "Next call", "--start", "2030-01-08 10:00", "--tz",
                  "Europe/Brussels")
    assert ran.exit_code == 0, ran.stderr
    folder = service.config.parent / "calendars"
    assert b"SUMMARY:Next call" in (folder / "all.ics").read_bytes()
    assert (folder / "next-call.ics").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_issue_13_bad_row_does_not_stop_run_once(
    service: Coalition, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The announcement of 12 March 2019 is due at 15:00 UTC on the 5th: the forum post and
    both members' emails go out."""
    bad = store_behind_the_checks(service, kind)
    ran = service("run-once", "--now", "2019-03-05T15:00:30Z")
    assert ran.exit_code == 0, ran.stderr
    assert len(left_out(caplog, bad, "the reminders")) == 1
    sent = [(d["call"], d["rule"], d["status"])
            for d in service.deliveries()]
    assert sent == [(GOOD, "announcement", "sent")] * 3


def test_issue_13_far_future_row_does_not_stop_the_members_page(service: Coalition) -> None:
    store_behind_the_checks(service, "far-future")
    settings = config.load(service.config)
    engine = db.open_database(settings.database_url())
    try:
        with TestClient(create_app(settings, engine)) as client:
            page = client.get("/")
        assert page.status_code == 200 and "Justice For All coalition call" in page.text
    finally:
        engine.dispose()


def test_bad_row_is_mended_by_an_edit_that_gives_a_start(service: Coalition) -> None:
    bad = store_behind_the_checks(service, "far-future")
    refused = service("call", "edit", bad, "--title", "Still far")
    assert refused.exit_code == 2 and "stored start (give --start to change it): " \
        "9999-12-31 23:59 is outside" in refused.stderr
    assert service("call", "edit", bad, "--start", "2030-01-08 10:00").exit_code == 0
    listed = {c["slug"]: c for c in json.loads(service("call", "list", "--json").stdout)}
    assert listed[bad]["error"] is None and listed[bad]["start_utc"] == "2030-01-08T09:00:00Z"


@pytest.fixture
def daemon_beside_a_bad_row(service: Coalition) -> Iterator[tuple[Daemon, str]]:
    store_behind_the_checks(service, "far-future")
    process = start(service.config)
    try:
        ready = next(line for line in process.log if line.startswith("ready:"))
        yield process, ready.split()[3].rstrip("/")
    finally:
        assert stop(process) == 0


def test_issue_13_far_future_row_does_not_stop_the_daemon(
    daemon_beside_a_bad_row: tuple[Daemon, str],
) -> None:
    """A restarted daemon used to exit at once; it starts, names the call it leaves out,
    serves the others and keeps passing."""
    process, url = daemon_beside_a_bad_row
    assert process.wait_for_line(
        "the reminders of call far-future left out: call far-future's start: "
        "9999-12-31 23:59 is outside", timeout=60)
    assert any("the feed of call far-future left out" in line
               for line in process.log)
    assert httpx.get(url + "/healthz").status_code == 200
    assert httpx.get(f"{url}/calendars/{GOOD}.ics").status_code == 200
    page = httpx.get(url + "/")
    assert page.status_code == 200 and "Justice For All coalition call" in page.text
