"""The daemon plans every interval with a memo: a pass with nothing new does nothing, a pass
after a reminder came within reach queues just that one, and any change to calls or
subscribers brings everything back in line, as a pass without the memo would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from scheduler import config
from scheduler.delivery import planning, sender
from scheduler.store import calls, db, subscribers
from tests.conftest import ConfigCase

START = datetime(2026, 1, 5, 12, tzinfo=UTC)
NOTHING = {"added": 0, "missed": 0, "retimed": 0, "cancelled": 0}


def weekly_call_and_two_members(session: Session, settings: config.Settings) -> None:
    """A weekly call on Tuesdays at 15:00 UTC from 6 January 2026; two members, a month
    subscribed."""
    calls.add_call(session, settings, calls.CallInput(
        title="Weekly", start="2026-01-06 15:00", timezone="UTC", rrule="FREQ=WEEKLY"),
        now=START - timedelta(days=30))
    for name in ("ada", "bea"):
        subscribers.add(session, settings, subscribers.NewSubscriber(
            email=f"{name}@example.org"), now=START - timedelta(days=30))


def test_memo_plans_only_what_is_new_and_agrees_with_a_full_pass(config_case: ConfigCase) -> None:
    path: Path = config_case("example")
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    memo: dict[str, object] = {}
    with Session(engine, expire_on_commit=False) as session:
        weekly_call_and_two_members(session, settings)

        def full(now: datetime) -> dict[str, int]:
            return planning.plan_pass(session, settings, now=now)

        def with_memo(now: datetime) -> dict[str, int]:
            return planning.plan_pass(session, settings, now=now, memo=memo)

        # Monday noon: of the 6 January call only the announcement is queued (two members and
        # the forum): due a week ago, still valid until "tomorrow" is due at 15:00
        assert with_memo(START)["added"] == 3
        assert with_memo(START + timedelta(minutes=1)) == NOTHING
        assert full(START + timedelta(minutes=1)) == NOTHING
        # at 14:50 "tomorrow" (due at 15:00) is within the queue's 15 minutes: only it is new
        assert with_memo(START + timedelta(hours=2, minutes=44)) == NOTHING
        assert with_memo(START + timedelta(hours=2, minutes=50)) == {**NOTHING, "added": 2}
        assert full(START + timedelta(hours=2, minutes=51)) == NOTHING
        # a change: the occurrence is cancelled; its queued reminders go
        calls.cancel_occurrence(session, "weekly", on="2026-01-06", now=START)
        assert with_memo(START + timedelta(hours=2, minutes=52))["cancelled"] == 3 + 2
        assert full(START + timedelta(hours=2, minutes=53)) == NOTHING
        # a day on, the 13 January announcement is queued; then someone leaves (which cancels
        # what was queued for them) and nothing comes back for them
        later = START + timedelta(days=1, hours=2, minutes=50)
        assert with_memo(later) == {**NOTHING, "added": 3}
        subscribers.unsubscribe(session, "bea@example.org", now=later)
        assert with_memo(later + timedelta(minutes=1)) == NOTHING
        assert full(later + timedelta(minutes=2)) == NOTHING
        # what is not queued yet is still planned, for whoever is subscribed by then
        ahead = planning.upcoming(session, settings, now=later)
        assert {(row["rule"], row["channel"], row["recipients"]) for row in ahead
                if row["occurrence_id"] == datetime(2026, 1, 13, 15, tzinfo=UTC)} == {
            ("tomorrow", "email", 1), ("starts-soon", "email", 1), ("starts-soon", "forum", 1)}
    engine.dispose()


def test_a_first_pass_after_downtime_counts_what_it_can_no_longer_send_as_missed(
        config_case: ConfigCase) -> None:
    path: Path = config_case("example")
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    with Session(engine, expire_on_commit=False) as session:
        weekly_call_and_two_members(session, settings)
        # The daemon's first pass is at 14:50 on the day of the call: the announcement (two
        # members and the forum) and "tomorrow" (two members) expired unsent; "starts in 30
        # minutes" and next week's announcement (due at 15:00) can still go.
        report = sender.run_once(session, settings, now=START + timedelta(days=1, hours=2,
                                                                          minutes=50), worker="t")
        assert report.planned == {**NOTHING, "added": 6, "missed": 5}
        assert report.lines()[0] == "planned: 6 added, 5 missed, 0 retimed, 0 cancelled"
    engine.dispose()
