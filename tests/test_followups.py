"""After a call: the recording and notes, once, to the forum and every member following it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import time_machine

from tests.conftest import DATA, Coalition

SLUG = "justice-for-all-coalition-call"
DAY_AFTER = datetime(2019, 3, 13, 12, tzinfo=UTC)


@pytest.fixture
def members(organizer: Callable[[str], Coalition]) -> Coalition:
    return organizer("reminders")


@time_machine.travel(DAY_AFTER, tick=False)
def test_followup_reaches_the_forum_and_each_member_once(members: Coalition) -> None:
    ran = members("followup", SLUG, "--on", "2019-03-12", "--recording",
                  "https://example.org/rec/2019-03", "--notes",
                  str(DATA / "notes" / "march-2019.md"))
    assert ran.exit_code == 0 and "3 messages" in ran.stdout, ran.stderr
    members("run-once")
    members("run-once")
    mails = members.inbox()
    assert sorted(str(m["Subject"]) for m in mails) == [
        "After the Justice For All coalition call of Tuesday, March 12, 2019",
        "Après l’appel « Justice For All coalition call » du mardi 12 mars 2019",
    ]
    body = next(m for m in mails if m["To"] == "Bea <bea@example.org>").get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Here is the recording: https://example.org/rec/2019-03" in text
    assert "We agreed on three actions." in text
    post = (members.folder / "var" / "forum" / SLUG / "20190312T1400Z-followup.md").read_text()
    assert "Here is the recording: https://example.org/rec/2019-03" in post
    sent = members.deliveries("--status", "sent")
    assert sorted(d["recipient"] for d in sent if d["rule"] == "followup") == [
        "ada@example.org", "bea@example.org", "topic"]


@time_machine.travel(DAY_AFTER, tick=False)
@pytest.mark.parametrize(("args", "message"), [
    (["--on", "2019-04-09", "--recording", "https://example.org/r"], "has not happened yet"),
    (["--on", "2019-03-13", "--recording", "https://example.org/r"], "no occurrence on"),
    (["--on", "2019-03-12", "--recording", "ftp://example.org/r"], "must be an http"),
    (["--on", "2019-03-12"], "give --recording, --notes, or both"),
])
def test_bad_followup_is_one_line_and_queues_nothing(
    members: Coalition, args: list[str], message: str
) -> None:
    ran = members("followup", SLUG, *args)
    assert ran.exit_code == 2 and message in ran.stderr
    assert members.deliveries() == []


@time_machine.travel(DAY_AFTER, tick=False)
def test_second_followup_for_the_same_call_is_refused(members: Coalition) -> None:
    first = members("followup", SLUG, "--on", "2019-03-12", "--recording", "https://e.org/1")
    assert first.exit_code == 0
    again = members("followup", SLUG, "--on", "2019-03-12", "--recording", "https://e.org/2")
    assert again.exit_code == 2 and "already has a follow-up" in again.stderr
