"""What an organizer's change owes, through the library alone (as a web admin page would call it):
the change is stored first, and what follows it is reported beside it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlmodel import Session

from scheduler import config, organizer
from scheduler.config import Settings
from scheduler.delivery import invites
from scheduler.errors import SchedulerError
from scheduler.store import calls, db
from tests.conftest import read_maildir

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)


@pytest.fixture
def weekly(config_case: Callable[..., Path]) -> Iterator[tuple[Settings, Session, str]]:
    """Settings, a session, and the slug of a weekly call added through the organizer."""
    settings = config.load(config_case("example"))
    engine = db.open_database(settings.database_url())
    try:
        with Session(engine, expire_on_commit=False) as session:
            done = organizer.add_call(session, settings, calls.CallInput(
                title="Weekly call", start="2026-01-12 10:00", timezone="Europe/Brussels",
                rrule="FREQ=WEEKLY"), now=NOW)
            assert done.owed.failure is None
            yield settings, session, done.call.slug
    finally:
        engine.dispose()


def test_a_change_whose_feeds_cannot_be_written_stays_stored_and_says_why(
        weekly: tuple[Settings, Session, str]) -> None:
    """A cancellation is kept when calendars/ cannot be written; the failure comes back beside
    it, and stops what would have followed it."""
    settings, session, slug = weekly
    for feed in settings.calendars.glob("*.ics"):
        feed.unlink()
    settings.calendars.rmdir()
    settings.calendars.write_text("a file where the folder should be")
    done = organizer.cancel(session, settings, slug, on="2026-01-19", now=NOW)
    assert done.changed and done.owed.feeds is None
    assert isinstance(done.owed.failure, SchedulerError)
    assert "cannot write feeds" in str(done.owed.failure)
    (change,) = calls.changes_of(session, calls.get_call(session, slug)).values()
    assert change.cancelled


def test_an_edit_that_changes_nothing_owes_the_invited_nothing(
        weekly: tuple[Settings, Session, str]) -> None:
    settings, session, slug = weekly
    invites.invite(session, settings, slug, ["ada@example.org"], now=NOW)
    done = organizer.edit_call(session, settings, slug, calls.CallInput(title="Weekly call"),
                               now=NOW)
    assert done.owed.updates == invites.Report(sent=[], failed=[])
    assert len(read_maildir(settings.maildir)) == 1


def test_a_deleted_call_cancels_its_series_one_sequence_above_its_last(
        weekly: tuple[Settings, Session, str]) -> None:
    settings, session, slug = weekly
    invites.invite(session, settings, slug, ["ada@example.org"], now=NOW)
    sequence = calls.get_call(session, slug).sequence
    done = organizer.delete_call(session, settings, slug, now=NOW)
    assert done.owed.updates.sent == ["ada@example.org"]
    calendar = Calendar.from_ical(next(
        part.get_content() for part in read_maildir(settings.maildir)[-1].walk()
        if part.get_content_type() == "text/calendar"))
    (event,) = calendar.walk("VEVENT")
    assert calendar["method"] == "CANCEL" and int(str(event["sequence"])) == sequence + 1
    assert not (settings.calendars / f"{slug}.ics").exists()
