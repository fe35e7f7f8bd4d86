"""Issue 17: the headers of every email read back exactly (a Subject beyond ASCII keeps its
spaces), and those a mailing list sends are there: List-Id, Auto-Submitted, Reply-To."""

from __future__ import annotations

import re
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
import time_machine

from scheduler import config
from scheduler.channels.mail import Outgoing, Prototype, list_id
from scheduler.errors import ConfigError
from tests.conftest import Coalition, ConfigCase

SLUG = "justice-for-all-coalition-call"
ANNOUNCE = "2019-03-05T15:00:00Z"  # the announcement of 12 March is due
JOINED = "2019-03-01T12:00:00Z"
REPLY_TO = "Organisateurs Réunion <organizers@example.org>"

SUBJECTS = [
    pytest.param("Déplacé : Réunion régionale Afrique de l’Est, mardi 1 décembre 2026 à "
                 "8:00 (Nairobi)", id="french"),
    pytest.param("نقل: الاجتماع الإقليمي لشرق أفريقيا، الثلاثاء 1 ديسمبر 2026، الساعة 8:00 "
                 "(نيروبي)", id="arabic"),
    pytest.param("Movido: Reunión regional de África del Este, martes, 1 de diciembre de "
                 "2026, 8:00 (Nairóbi)", id="spanish"),
    pytest.param("Remarcado: Reunião regional da África Oriental, terça-feira, 1 de "
                 "dezembro de 2026, 8:00", id="portuguese"),
    pytest.param("Перенесено: Региональная встреча Восточной Африки, вторник, 1 декабря "
                 "2026, 8:00", id="russian"),
    pytest.param("移動: 東アフリカ地域会議 2026年12月1日 8:00  two  spaces ", id="japanese"),
]


def read(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    head = data.split(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    words = re.findall(rb"=\?[^?]+\?[bqBQ]\?[^?]*\?=", head)
    assert all(len(word) <= 75 for word in words), words  # RFC 2047
    return message


@pytest.mark.parametrize("subject", SUBJECTS)
def test_issue_17_reminder_subject_decodes_exactly(subject: str) -> None:
    """Python 3.11 folds a long Subject into encoded words with the space between them
    outside, where a reader drops it: "Afrique de" read "Afriquede"."""
    prototype = Prototype({"From": "Coalition calls <calls@example.org>", "Subject": subject},
                          text="x", html="<p>x</p>", secret="token")
    out = prototype.to(name="Amélie", address="amelie@example.org", message_id="<1@x>",
                       secret="s" * 32)
    assert read(out.data)["Subject"] == subject


@pytest.mark.parametrize("subject", SUBJECTS)
def test_issue_17_invitation_subject_decodes_exactly(subject: str) -> None:
    """A message built one by one (an invitation) goes through the same policy."""
    message = EmailMessage()
    message["From"], message["To"] = "calls@example.org", "Amélie <amelie@example.org>"
    message["Subject"], message["Message-ID"] = subject, "<2@x>"
    message.set_content("x")
    assert read(Outgoing.of(message).data)["Subject"] == subject


@pytest.fixture
def members(organizer: Callable[[str], Coalition]) -> Coalition:
    with time_machine.travel(JOINED, tick=False):
        return organizer("reminders")


def test_issue_17_french_title_moved_late_keeps_its_spaces(coalition: Coalition) -> None:
    """The issue's case, end to end: a French call moved less than 48 hours ahead, on the
    day the issue was found."""
    title = "Réunion régionale Afrique de l’Est"
    slug = "reunion-regionale-afrique-de-lest"
    steps = [("2026-11-01T12:00:00Z", ["call", "add", "--title", title, "--start",
                                       "2026-09-01 10:00", "--tz", "Africa/Nairobi",
                                       "--rrule", "FREQ=MONTHLY;BYDAY=1TU", "--lang", "fr"]),
             ("2026-11-01T12:00:00Z", ["subscriber", "add", "ada@example.org", "--lang", "fr",
                                       "--tz", "Africa/Kinshasa"]),
             ("2026-11-24T07:00:00Z", ["run-once"]),  # the announcement
             ("2026-11-30T12:00:00Z", ["call", "move", slug, "--on", "2026-12-01", "--to",
                                       "2026-12-01 12:00"]),
             ("2026-11-30T12:00:00Z", ["run-once"])]
    for moment, args in steps:
        with time_machine.travel(moment, tick=False):
            ran = coalition(*args)
        assert ran.exit_code == 0, f"{args}: {ran.stderr}"
    (moved,) = [m for m in coalition.inbox()
                if str(m["Subject"]).startswith("Changement d’horaire")]
    assert str(moved["Subject"]).startswith(f"Changement d’horaire : {title} ")
    assert all(m["Auto-Submitted"] == "auto-generated" for m in coalition.inbox())


def test_issue_17_reminders_carry_list_id_and_auto_submitted(members: Coalition) -> None:
    ran = members("run-once", "--now", ANNOUNCE)
    assert ran.exit_code == 0, ran.stderr
    messages = members.inbox()
    assert len(messages) == 2
    for message in messages:
        assert message["List-Id"] == "Coalition calls <calls.example.org>"
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["Reply-To"] is None  # none configured: replies go to the sender


def test_issue_17_reply_to_from_config_on_reminders_and_invitations(members: Coalition) -> None:
    members.config.write_text(members.config.read_text().replace(
        'reply_to = ""', f'reply_to = "{REPLY_TO}"'))
    assert members("run-once", "--now", ANNOUNCE).exit_code == 0
    assert members("invite", SLUG, "--to", "cleo@example.org").exit_code == 0
    messages = members.inbox()
    assert len(messages) == 3
    assert [str(m["Reply-To"]) for m in messages] == [REPLY_TO] * 3


def test_issue_17_invitations_are_auto_submitted(coalition: Coalition) -> None:
    with time_machine.travel(JOINED, tick=False):
        assert coalition("call", "add", "--title", "Call", "--start", "2019-01-08 10:00",
                         "--tz", "America/New_York").exit_code == 0
        assert coalition("invite", "call", "--to", "cleo@example.org").exit_code == 0
    (message,) = coalition.inbox()
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] is None  # nothing unsubscribes from an invitation


def test_issue_17_reply_to_must_be_an_address(config_case: ConfigCase) -> None:
    path = config_case("example")
    path.write_text(path.read_text().replace('reply_to = ""', 'reply_to = "the organizers"'))
    with pytest.raises(ConfigError, match=r"reply_to.*is not an email address"):
        config.load(path)


@pytest.mark.parametrize(("sender", "expected"), [
    pytest.param("Coalition calls <calls@example.org>", "Coalition calls <calls.example.org>",
                 id="named"),
    pytest.param("reminders+fr@lists.example.org", "Coalition calls "
                 "<reminders-fr.lists.example.org>", id="bare-with-plus"),
    pytest.param("Appels <appels@exémple.fr>", "Appels <appels.xn--exmple-cva.fr>", id="idn"),
])
def test_issue_17_list_id_is_derived_from_the_sender(sender: str, expected: str) -> None:
    assert list_id(sender) == expected


def test_list_id_keeps_its_identifier_bare_when_the_name_is_not_ascii(
        members: Coalition) -> None:
    """Filters (Gmail, Sieve, procmail) match "<calls.example.org>" in the raw header: only
    the name may be encoded (RFC 2919)."""
    config_file = members.config
    config_file.write_text(config_file.read_text().replace(
        'from = "Coalition calls <calls@example.org>"',
        'from = "Appels de la coalition en Afrique de l’Est <calls@example.org>"'))
    assert members("run-once", "--now", ANNOUNCE).exit_code == 0
    raw = next((members.folder / "var" / "mail" / "new").iterdir()).read_bytes()
    unfolded = re.sub(rb"\r?\n[ \t]+", b" ", raw.split(b"\n\n")[0])
    (line,) = [x for x in unfolded.split(b"\n") if x.startswith(b"List-Id:")]
    assert line.rstrip().endswith(b" <calls.example.org>")
    assert members.inbox()[0]["List-Id"] == (
        "Appels de la coalition en Afrique de l’Est <calls.example.org>")
