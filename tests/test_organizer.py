"""What an organizer's change owes, through the library alone (as a web admin page would call it):
the change is stored first, and what follows it is reported beside it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar
from sqlmodel import Session, select

from scheduler import config, organizer
from scheduler.config import Settings
from scheduler.delivery import invites
from scheduler.errors import SchedulerError
from scheduler.store import calls, db, subscribers
from scheduler.store.models import Delivery, DeliveryStatus
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


@pytest.fixture
def tomorrows(config_case: Callable[..., Path]) -> Iterator[tuple[Settings, Session, str]]:
    """Settings, a session, and the slug of a weekly call added at NOW whose first occurrence
    is 22 hours ahead (2026-01-06 10:00 Brussels), before any message about it went out."""
    settings = config.load(config_case("example"))
    engine = db.open_database(settings.database_url())
    try:
        with Session(engine, expire_on_commit=False) as session:
            done = organizer.add_call(session, settings, calls.CallInput(
                title="Short notice call", start="2026-01-06 10:00", timezone="Europe/Brussels",
                rrule="FREQ=WEEKLY"), now=NOW)
            yield settings, session, done.call.slug
    finally:
        engine.dispose()


def test_issue_17_a_call_added_within_48_hours_and_moved_owes_no_late_notice(
        tomorrows: tuple[Settings, Session, str]) -> None:
    """Nothing about the occurrence went out yet: its announcement carries the new time, and a
    "Moved" notice beside it would be about a call members never heard of."""
    settings, session, slug = tomorrows
    done = organizer.move(session, settings, slug, on="2026-01-06", to="2026-01-06 11:00",
                          now=NOW + timedelta(hours=1))
    assert done.changed and done.owed.notice == 0
    assert session.exec(select(Delivery)).all() == []


def test_issue_17_a_late_move_after_a_message_went_out_owes_a_notice(
        tomorrows: tuple[Settings, Session, str]) -> None:
    """Once the announcement of the occurrence was sent, a late move is news again."""
    settings, session, slug = tomorrows
    call = calls.get_call(session, slug)
    original = datetime(2026, 1, 6, 9, tzinfo=UTC)
    assert call.id is not None
    session.add(Delivery(call_id=call.id, occurrence_id=original, rule="announcement",
                         channel="forum", recipient="topic", due_at=NOW, expires_at=original,
                         status=DeliveryStatus.SENT, sent_at=NOW, created_at=NOW,
                         updated_at=NOW))
    session.commit()
    done = organizer.move(session, settings, slug, on="2026-01-06", to="2026-01-06 11:00",
                          now=NOW + timedelta(hours=1))
    assert done.owed.notice >= 1


def _members(session: Session, settings: Settings, *emails: str) -> None:
    for email in emails:
        subscribers.add(session, settings, subscribers.NewSubscriber(email=email), now=NOW)


def _sent(session: Session, slug: str, original: datetime, channel: str, recipient: str) -> None:
    """A message about the occurrence of `original` that went out at NOW."""
    call = calls.get_call(session, slug)
    assert call.id is not None
    session.add(Delivery(call_id=call.id, occurrence_id=original, rule="7d", channel=channel,
                         recipient=recipient, due_at=NOW, expires_at=original,
                         status=DeliveryStatus.SENT, sent_at=NOW, created_at=NOW,
                         updated_at=NOW))
    session.commit()


def test_a_late_move_of_an_established_call_reaches_every_member_even_unannounced(
        weekly: tuple[Settings, Session, str]) -> None:
    """Added a week ahead, its announcement never went out (the daemon was down all week):
    members know the call from its page and feed all the same, so a move 21 hours ahead is
    sent to the forum and to every member who follows it."""
    settings, session, slug = weekly
    _members(session, settings, "ada@example.org", "bea@example.org")
    done = organizer.move(session, settings, slug, on="2026-01-12", to="2026-01-12 11:00",
                          now=datetime(2026, 1, 11, 12, tzinfo=UTC))
    notices = [(d.channel, d.recipient) for d in session.exec(select(Delivery)).all()
               if d.rule.startswith("changed-")]
    assert done.owed.notice == 3
    assert sorted(notices) == [("email", "ada@example.org"), ("email", "bea@example.org"),
                               ("forum", "topic")]


def test_issue_17_a_late_notice_goes_only_to_whoever_heard_of_the_occurrence(
        tomorrows: tuple[Settings, Session, str]) -> None:
    """A call added within the 48 hours is known only from what was sent: Ada got the
    announcement; Bea subscribed after it went out and has heard nothing yet. The notice goes
    to the forum topic and to Ada, not to Bea (her reminders carry the new time)."""
    settings, session, slug = tomorrows
    _members(session, settings, "ada@example.org", "bea@example.org")
    original = datetime(2026, 1, 6, 9, tzinfo=UTC)
    _sent(session, slug, original, "forum", "topic")
    _sent(session, slug, original, "email", "ada@example.org")
    done = organizer.move(session, settings, slug, on="2026-01-06", to="2026-01-06 11:00",
                          now=NOW + timedelta(hours=1))
    notices = [(d.channel, d.recipient) for d in session.exec(select(Delivery)).all()
               if d.rule.startswith("changed-")]
    assert done.owed.notice == 2
    assert sorted(notices) == [("email", "ada@example.org"), ("forum", "topic")]
