"""No poison message: whatever rendering or sending one delivery raises is recorded as that
delivery's failure with the reason (for good, or to retry where it may pass), and the pass
goes on with every other delivery."""

from __future__ import annotations

import mailbox
import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import aiosmtplib
import httpx
import pytest
from sqlalchemy.exc import OperationalError

from scheduler import channels
from scheduler.channels import OnResult, Result, mail
from scheduler.channels.discourse import Discourse
from scheduler.channels.maildir import Maildir
from scheduler.config import Settings
from scheduler.store import outbox
from tests.conftest import DATA, Coalition, SmtpSink, use_smtp

DUE = "2018-11-06T15:00:30Z"  # the announcement: five emails and a forum post
LATER = "2018-11-06T16:00:00Z"  # after the first retry's wait
EVERYONE = ["ada@example.org", "bea@example.org", "carl@example.org", "dina@example.org",
            "élodie@exemple.fr"]


@pytest.fixture
def members(organizer: Callable[[str], Coalition]) -> Coalition:
    return organizer("issue_13")


def rows(coalition: Coalition) -> dict[str, dict[str, Any]]:
    """The announcement's deliveries, by recipient ('topic' for the forum)."""
    return {d["recipient"]: d for d in coalition.deliveries()}


def statuses(coalition: Coalition) -> dict[str, str]:
    return {recipient: row["status"] for recipient, row in rows(coalition).items()}


def written_to(coalition: Coalition) -> Counter[str]:
    return Counter(str(m["To"]).rpartition("<")[2].rstrip(">")
                   for m in coalition.inbox())


def test_a_member_whose_stored_zone_is_unknown_fails_alone(members: Coalition) -> None:
    """A row stored by an older version, or a zone the tz database dropped."""
    with sqlite3.connect(members.folder / "var" / "coalition.sqlite3") as database:
        database.execute("UPDATE subscriber SET timezone = 'Mars/Olympus' "
                         "WHERE email = 'bea@example.org'")
    ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 1 and "sent: 1 failed, 5 sent" in ran.stdout
    assert rows(members)["bea@example.org"]["last_error"] == "unknown time zone 'Mars/Olympus'"
    assert statuses(members) == {**dict.fromkeys([*EVERYONE, "topic"], "sent"),
                                 "bea@example.org": "failed"}
    assert written_to(members) == Counter(a for a in EVERYONE if a != "bea@example.org")


def test_a_template_broken_for_one_language_fails_only_its_readers(members: Coalition) -> None:
    config = members.config
    shutil.copytree(DATA / "templates" / "misspelled_email", config.parent / "mine")
    config.write_text(config.read_text().replace('folder = ""', 'folder = "mine"'))
    ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 1
    found = rows(members)
    for french in ("bea@example.org", "élodie@exemple.fr"):
        assert found[french]["status"] == "failed"
        assert found[french]["last_error"].endswith(
            "/mine/email/announcement.fr.txt line 1: 'dict object' has no attribute 'titel'")
    assert written_to(members) == Counter(["ada@example.org", "carl@example.org",
                                           "dina@example.org"])
    assert found["topic"]["status"] == "sent"


def test_a_forum_folder_that_cannot_be_written_is_retried_and_the_emails_go(
        members: Coalition) -> None:
    forum = members.folder / "var" / "forum"
    forum.parent.mkdir(parents=True, exist_ok=True)
    forum.write_text("a file where the folder should be")
    ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 75, ran.stderr  # none failed for good; one waits
    topic = rows(members)["topic"]
    assert topic["status"] == "pending" and "var/forum" in topic["last_error"]
    assert written_to(members) == Counter(EVERYONE)
    forum.unlink()
    assert members("run-once", "--now", LATER).exit_code == 0
    assert statuses(members) == dict.fromkeys([*EVERYONE, "topic"], "sent")
    assert written_to(members) == Counter(EVERYONE)  # nobody twice


def test_an_smtp_client_that_raises_for_one_message_fails_that_message_alone(
        members: Coalition, smtp_sink: tuple[SmtpSink, int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    sink, port = smtp_sink
    use_smtp(members.config, port)
    original = aiosmtplib.SMTP.sendmail

    async def sendmail(self: aiosmtplib.SMTP, sender: str, recipients: Sequence[str],
                       message: bytes, **options: Any) -> Any:
        if "carl@example.org" in recipients:
            raise RuntimeError("the library broke on this one")
        return await original(self, sender, recipients, message, **options)

    monkeypatch.setattr(aiosmtplib.SMTP, "sendmail", sendmail)
    (members.folder / "config.toml").write_text(
        (members.folder / "config.toml").read_text().replace("connections = 4",
                                                              "connections = 1"))
    ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 1
    carl = rows(members)["carl@example.org"]
    assert (carl["status"], carl["last_error"]) == (
        "failed", "RuntimeError: the library broke on this one")
    # on one connection: the messages after it went through the same session
    assert Counter(sink.recipients()) == Counter(a for a in EVERYONE if a != "carl@example.org")


def test_a_maildir_message_that_cannot_be_written_fails_alone(
        members: Coalition, monkeypatch: pytest.MonkeyPatch) -> None:
    original = mailbox.Maildir.add

    def add(self: mailbox.Maildir, message: Any) -> str:
        if b"dina@example.org" in message:
            raise ValueError("cannot store this one")
        return original(self, message)

    monkeypatch.setattr(mailbox.Maildir, "add", add)
    ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 1
    dina = rows(members)["dina@example.org"]
    assert (dina["status"], dina["last_error"]) == ("failed", "ValueError: cannot store this one")
    assert written_to(members) == Counter(a for a in EVERYONE if a != "dina@example.org")


def test_a_transport_that_stops_midway_leaves_the_rest_to_retry(
        members: Coalition, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass does not die: what was answered is recorded, the rest waits for a retry."""
    original = Maildir.send

    def stops(self: Maildir, messages: Sequence[mail.Outgoing],
              on_result: OnResult | None = None) -> list[Result]:
        original(self, messages[:2], on_result)
        raise RuntimeError("the transport fell over")

    monkeypatch.setattr(Maildir, "send", stops)
    ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 75 and "sent: 3 sent, 3 to retry" in ran.stdout  # the forum's too
    waiting = [r for r in rows(members).values() if r["status"] == "pending"]
    assert len(waiting) == 3 and {r["last_error"] for r in waiting} == {
        "sending stopped: RuntimeError: the transport fell over"}
    monkeypatch.setattr(Maildir, "send", original)
    assert members("run-once", "--now", LATER).exit_code == 0
    assert statuses(members) == dict.fromkeys([*EVERYONE, "topic"], "sent")
    assert written_to(members) == Counter(EVERYONE)  # each once


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"[]"], ids=["html", "list"])
def test_a_forum_answer_that_is_not_discourses_json_is_retried(body: bytes) -> None:
    """A proxy's page with status 200: the post may have been made, so it is retried (and a
    retry looks for its marker first), not recorded as sent or failed for good."""
    forum = Discourse("https://forum.example.org", api_key="k", api_username="system",
                      category=1, transport=httpx.MockTransport(
                          lambda request: httpx.Response(200, content=body)))
    posted = forum.post(key="<reminder.1@example.org>", raw="Hello", topic_id=77, title="Call",
                        retry=False)
    assert not posted.ok and not posted.permanent
    assert str(posted.error).startswith("the forum's answer is not Discourse's JSON")


def test_a_database_failing_midway_still_closes_the_forum_client(
        members: Coalition, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass stops (nothing can be recorded), and the Discourse client it opened is closed
    on the way out, not left to the garbage collector."""
    made: list[Discourse] = []

    def client(settings: Settings) -> Discourse:
        made.append(Discourse(settings.forum.url, api_key="k", api_username="system",
                              category=1, transport=httpx.MockTransport(
                                  lambda request: httpx.Response(200, json={"id": 9,
                                                                            "topic_id": 77}))))
        return made[-1]

    def cannot_record(*args: object, **kwargs: object) -> None:
        raise OperationalError("UPDATE delivery", {}, sqlite3.OperationalError("disk I/O error"))

    config = members.folder / "config.toml"
    config.write_text(config.read_text().replace('transport = "files"', 'transport = "discourse"'))
    monkeypatch.setattr(channels, "forum", client)
    monkeypatch.setattr(outbox, "mark_sent", cannot_record)
    ran = members("run-once", "--now", DUE)
    assert ran.exit_code == 75 and ran.stderr.endswith("stopped the pass: disk I/O error\n")
    (forum,) = made
    assert forum.client.is_closed
