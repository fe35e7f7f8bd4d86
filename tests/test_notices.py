"""A move or cancellation less than 48 hours ahead reaches members by email and the forum."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import time_machine

from tests.conftest import Coalition

SLUG = "justice-for-all-coalition-call"
DAY_BEFORE = datetime(2019, 3, 11, 12, tzinfo=UTC)  # 26 hours before 10:00 EDT on 12 March


@pytest.fixture
def members(organizer: Callable[[str], Coalition]) -> Coalition:
    return organizer("reminders")


def announced(members: Coalition) -> list[str]:
    """Send what is due now (the announcement of 12 March, to the forum and both members);
    return the subjects sent so far, to leave out of what a test reads next."""
    assert members("run-once").exit_code == 0
    return [str(m["Subject"]) for m in members.inbox()]


@time_machine.travel(DAY_BEFORE, tick=False)
def test_late_cancellation_is_announced_and_its_reminders_are_not(members: Coalition) -> None:
    before = announced(members)
    ran = members("call", "cancel", SLUG, "--on", "2019-03-12")
    assert "change notice queued for the forum and 2 members" in ran.stdout
    members("run-once")
    subjects = sorted(str(m["Subject"]) for m in members.inbox()[len(before):])
    assert subjects == [
        "Annulation : Justice For All coalition call du mardi 12 mars 2019",
        "Cancelled: Justice For All coalition call of Tuesday, March 12, 2019",
    ]
    forum = members.config.parent / "var" / "forum" / SLUG
    (post,) = forum.glob("*changed*.md")
    assert "**Cancelled:** the Justice For All coalition call of Tuesday, March 12, 2019" \
        in post.read_text()
    owed = members.deliveries("--status", "pending")
    assert owed == []


@time_machine.travel(DAY_BEFORE, tick=False)
def test_late_move_gives_the_new_time_in_each_members_zone(members: Coalition) -> None:
    announced(members)
    members("call", "move", SLUG, "--on", "2019-03-12", "--to", "2019-03-14 11:00")
    members("run-once")
    ada = next(m for m in members.inbox() if m["To"] == "Ada <ada@example.org>"
               and str(m["Subject"]).startswith("Changement d’horaire"))
    assert str(ada["Subject"]) == ("Changement d’horaire : Justice For All coalition call du "
                                   "mardi 12 mars 2019")
    body = ada.get_body(("plain",))
    assert body is not None and "au jeudi 14 mars 2019, à 16:00 chez vous (Kinshasa)" in \
        body.get_content()


@time_machine.travel(DAY_BEFORE, tick=False)
def test_each_late_change_gets_its_own_notice(members: Coalition) -> None:
    announced(members)
    members("call", "move", SLUG, "--on", "2019-03-12", "--to", "2019-03-12 11:00")
    members("call", "move", SLUG, "--on", "2019-03-12", "--to", "2019-03-12 12:00")
    members("run-once")
    notices = [m for m in members.inbox() if m["To"] == "Bea <bea@example.org>"
               and str(m["Subject"]).startswith("Moved:")]
    assert len(notices) == 2


@time_machine.travel(DAY_BEFORE, tick=False)
def test_change_further_ahead_needs_no_notice(members: Coalition) -> None:
    ran = members("call", "cancel", SLUG, "--on", "2019-04-09")
    assert ran.exit_code == 0 and "change notice" not in ran.stdout
    members("run-once")
    assert [m for m in members.inbox() if "Cancelled" in str(m["Subject"])
            or "Annulé" in str(m["Subject"])] == []


@time_machine.travel(DAY_BEFORE, tick=False)
def test_late_cancellation_reaches_everyone_even_if_the_announcement_never_went_out(
        members: Coalition) -> None:
    """The announcement of 12 March never went out (the daemon was down all week), but the
    series is months old: members know the second Tuesday. Cancelled 26 hours ahead, the
    call's forum thread and both members are told."""
    ran = members("call", "cancel", SLUG, "--on", "2019-03-12")
    assert "change notice queued for the forum and 2 members" in ran.stdout
    members("run-once")
    subjects = sorted(str(m["Subject"]) for m in members.inbox())
    assert subjects == [
        "Annulation : Justice For All coalition call du mardi 12 mars 2019",
        "Cancelled: Justice For All coalition call of Tuesday, March 12, 2019",
    ]
    forum = members.config.parent / "var" / "forum" / SLUG
    assert len(list(forum.glob("*changed*.md"))) == 1
