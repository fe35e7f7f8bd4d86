"""The planner: which message is owed to whom, when it is due, and until when it may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.config import DEFAULT_REMINDERS, reminder_rules
from scheduler.core.plan import CallOccurrences, Planned, Recipient, plan
from scheduler.core.recurrence import Occurrence, Status

RULES = reminder_rules(DEFAULT_REMINDERS)
NEW_YORK = ZoneInfo("America/New_York")
MARCH = datetime(2019, 3, 12, 14, tzinfo=UTC)  # 10:00 EDT, two days after DST began
LONG_AGO = datetime(2018, 1, 1, tzinfo=UTC)


def occurrence(start: datetime = MARCH, status: Status = Status.CONFIRMED) -> Occurrence:
    return Occurrence(id=start, start=start, end=start + timedelta(hours=1), zone=NEW_YORK,
                      status=status)


def planned(*occurrences: Occurrence, recipients: list[Recipient] | None = None
            ) -> dict[tuple[str, str, str], Planned]:
    people = recipients if recipients is not None else [
        Recipient(address="ada@example.org", since=LONG_AGO)]
    calls = [CallOccurrences(call_id=1, slug="jfa", created=LONG_AGO, occurrences=occurrences)]
    return {(p.rule, p.channel, p.recipient): p for p in plan(calls, RULES, people) if p.owed}


def test_a_week_before_is_the_same_wall_time_whatever_dst_did() -> None:
    """5 March 2019 was still winter time: 10:00 EST is 15:00 UTC, not 14:00."""
    announcement = planned(occurrence())[("announcement", "email", "ada@example.org")]
    assert announcement.due == datetime(2019, 3, 5, 15, tzinfo=UTC)


def test_minutes_before_are_exact() -> None:
    soon = planned(occurrence())[("starts-soon", "email", "ada@example.org")]
    assert soon.due == MARCH - timedelta(minutes=30)


def test_each_reminder_expires_when_the_next_one_is_due() -> None:
    found = planned(occurrence())
    assert found[("announcement", "email", "ada@example.org")].expires == \
        found[("tomorrow", "email", "ada@example.org")].due
    assert found[("tomorrow", "email", "ada@example.org")].expires == \
        found[("starts-soon", "email", "ada@example.org")].due
    assert found[("starts-soon", "email", "ada@example.org")].expires == MARCH


def test_forum_posts_once_per_rule_and_expires_at_its_own_next_rule() -> None:
    found = planned(occurrence())
    forum = {k: p for k, p in found.items() if k[1] == "forum"}
    assert sorted(forum) == [("announcement", "forum", "topic"), ("starts-soon", "forum", "topic")]
    assert forum[("announcement", "forum", "topic")].expires == MARCH - timedelta(minutes=30)


def test_cancelled_occurrence_owes_nothing() -> None:
    assert planned(occurrence(status=Status.CANCELLED)) == {}


def test_new_subscriber_gets_only_what_is_still_ahead() -> None:
    """Joining 20 minutes before the start: the "starts soon" window is still open (it says
    "in 20 minutes" then); the announcement and "tomorrow" are closed: not owed, not missed."""
    joined = MARCH - timedelta(minutes=20)
    found = planned(occurrence(), recipients=[Recipient(address="new@example.org", since=joined)])
    assert sorted(k[0] for k in found if k[1] == "email") == ["starts-soon"]


def test_subscriber_joining_the_day_before_still_gets_that_days_reminder() -> None:
    """3 hours before the start, "tomorrow" is still valid (it reads "later today" then)."""
    joined = MARCH - timedelta(hours=3)
    found = planned(occurrence(), recipients=[Recipient(address="new@example.org", since=joined)])
    assert sorted(k[0] for k in found if k[1] == "email") == ["starts-soon", "tomorrow"]


def test_subscriber_following_other_calls_gets_nothing() -> None:
    other = Recipient(address="bea@example.org", since=LONG_AGO, calls=frozenset({"other"}))
    assert [k for k in planned(occurrence(), recipients=[other]) if k[1] == "email"] == []


@pytest.mark.parametrize(("before", "message"), [("7", "is not an offset"),
                                                 ("0m", "must be positive"),
                                                 ("1w", "is not an offset")])
def test_bad_offset_is_refused(before: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reminder_rules([{"name": "x", "before": before, "channels": ["email"],
                         "template": "tomorrow"}])
