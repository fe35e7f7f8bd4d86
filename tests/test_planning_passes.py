"""The daemon plans every interval with a memo: a pass with nothing new does nothing, a pass
after an occurrence came into the window plans just that one, and any change to calls or
subscribers brings everything back in line, as a pass without the memo would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from scheduler import calls, config, db, sender, subscribers

START = datetime(2026, 1, 5, 12, tzinfo=UTC)
NOTHING = {"added": 0, "retimed": 0, "cancelled": 0}


def test_memo_plans_only_what_is_new_and_agrees_with_a_full_pass(config_case: object) -> None:
    path: Path = config_case("example")  # type: ignore[operator]
    settings = config.load(path)
    engine = db.open_database(settings.database_url())
    memo: dict[str, object] = {}
    with Session(engine, expire_on_commit=False) as session:
        calls.add_call(session, settings, calls.CallInput(
            title="Weekly", start="2026-01-06 15:00", timezone="UTC", rrule="FREQ=WEEKLY"),
            now=START - timedelta(days=30))
        for name in ("ada", "bea"):
            subscribers.add(session, settings, subscribers.NewSubscriber(
                email=f"{name}@example.org"), now=START - timedelta(days=30))

        def full(now: datetime) -> dict[str, int]:
            return sender.plan_pass(session, settings, now=now)

        def with_memo(now: datetime) -> dict[str, int]:
            return sender.plan_pass(session, settings, now=now, memo=memo)

        assert with_memo(START)["added"] > 0
        assert with_memo(START + timedelta(minutes=1)) == NOTHING
        assert full(START + timedelta(minutes=1)) == NOTHING
        # a week on, the occurrence of 20 January has come into the window: only it is new
        later = START + timedelta(days=7)
        added = with_memo(later)["added"]
        assert added == 2 * 3 + 2  # two members x three reminders, and the forum's two
        assert full(later) == NOTHING
        # a change: the next occurrence is cancelled; its pending reminders go
        calls.cancel_occurrence(session, "weekly", on="2026-01-13", now=later)
        assert with_memo(later + timedelta(minutes=1))["cancelled"] > 0
        assert full(later + timedelta(minutes=1)) == NOTHING
        # someone leaves: their pending reminders go too
        subscribers.unsubscribe(session, "bea@example.org", now=later)
        with_memo(later + timedelta(minutes=2))
        assert full(later + timedelta(minutes=2)) == NOTHING
    engine.dispose()
